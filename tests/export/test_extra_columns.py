"""A dataset policy's ``extra_columns``: a team's model's columns in the published rows, by
response or pair, as the walk-through in docs/transforms.md ("Adding a signal") does it, from
the very files it shows (docs/examples/)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from export.build import Rekeyer
from export.policy import DatasetPolicy, load_datasets
from flywheel.errors import ConfigError
from tests.helpers.cli import assert_one_line_error, env, flywheel
from tests.helpers.datasets import KEYRING, check_published
from tests.helpers.lake import query

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"
MODELS = EXAMPLES / "models"
DATASETS = EXAMPLES / "datasets.toml"


def published(version_dir: Path, kind: str) -> pl.DataFrame:
    return pl.concat(
        [pl.read_parquet(f) for f in sorted((version_dir / "data" / kind).glob("*.parquet"))]
    )


@pytest.mark.slow
def test_the_walk_through_publishes_the_teams_signal(data_dir: Path) -> None:
    settings = env(
        data_dir,
        FLYWHEEL_TRANSFORMS__MODELS_DIR=str(MODELS),
        FLYWHEEL_EXPORT__DATASETS_FILE=str(DATASETS),
    )
    run = flywheel("transform", "run", env=settings)
    assert run.returncode == 0, run.stderr
    assert "quick_copies (full)" in run.stdout

    # The model against its definition, computed here from responses.
    responses = query(
        data_dir, "SELECT response_id, occurred_at, first_copy_at FROM responses ORDER BY 1"
    )
    expected = {
        r: first is not None and (first - shown).total_seconds() <= 60
        for r, shown, first in responses
    }
    quick = dict(query(data_dir, "SELECT response_id, quick_copy FROM quick_copies"))
    assert quick == expected
    assert set(quick.values()) == {True, False}  # the simulated users do both

    export = flywheel("export", "run", "--dataset", "quick", env=settings)
    assert export.returncode == 0, export.stderr
    version = data_dir / "datasets" / "quick" / "v1"
    manifest = check_published(version)
    assert manifest["policy"]["extra_columns"] == [
        {"model": "quick_copies", "key": "response_id", "columns": ["quick_copy"]}
    ]
    card = (version / "README.md").read_text()
    assert "kto: `quick_copy`" in card and "`chosen_quick_copy`, `rejected_quick_copy`" in card

    rekey = Rekeyer(KEYRING.keys[KEYRING.current], "quick")
    kto = published(version, "kto")
    assert kto.columns[-1] == "quick_copy"
    by_id = {rekey.lineage(r): value for r, value in quick.items()}
    assert kto["quick_copy"].to_list() == [by_id[i] for i in kto["id"]]

    dpo = published(version, "dpo")
    assert dpo.columns[-2:] == ["chosen_quick_copy", "rejected_quick_copy"]
    sides = {
        rekey.lineage(pair): (quick.get(chosen), quick.get(rejected))
        for pair, chosen, rejected in query(
            data_dir,
            "SELECT pair_id, chosen_response_id, rejected_response_id FROM preference_pairs",
        )
    }
    got = list(zip(dpo["chosen_quick_copy"], dpo["rejected_quick_copy"], strict=True))
    assert got == [sides[i] for i in dpo["id"]]
    assert any(chosen is None for chosen, _ in got)  # an edit pair's chosen side has no response


@pytest.mark.slow
def test_a_model_or_column_the_warehouse_lacks_is_one_red_line(
    data_dir: Path, tmp_path: Path
) -> None:
    for extra, fragment in [
        ('{ model = "quick_copies", columns = ["quick_copy"] }', "model quick_copies is not in"),
        ('{ model = "rewards", columns = ["nope"] }', "model rewards has no column nope"),
    ]:
        datasets = tmp_path / "datasets.toml"
        datasets.write_text(f'[datasets.d]\nevaluate = "off"\nextra_columns = [{extra}]\n')
        result = flywheel(
            "export", "run", "--dataset", "d",
            env=env(data_dir, FLYWHEEL_EXPORT__DATASETS_FILE=str(datasets)),
        )  # fmt: skip
        assert_one_line_error(result, fragment, code=3)
    assert not (data_dir / "datasets" / "d" / "v1").exists()


def test_the_example_policy_loads_and_a_policy_without_extra_columns_keeps_its_digest() -> None:
    quick = load_datasets(DATASETS).dataset("quick")
    assert quick.extra_names("dpo") == ["chosen_quick_copy", "rejected_quick_copy"]
    assert quick.extra_names("kto") == ["quick_copy"]
    assert "extra_columns" not in DatasetPolicy().record("default")
    assert DatasetPolicy(extra_columns=[]).digest("d") == DatasetPolicy().digest("d")
    assert quick.digest("quick") != quick.model_copy(update={"extra_columns": []}).digest("quick")


@pytest.mark.parametrize(
    ("policy", "fragment"),
    [
        ('kinds = ["kto"]\nextra_columns = [{ model = "m", columns = ["label"] }]',
         "'label' of the kto config is already a column"),
        ('extra_columns = [{ model = "m", key = "pair_id", columns = ["confidence"] }]',
         "'confidence' of the dpo config is already a column"),
        ('kinds = ["kto"]\nextra_columns = [{ model = "m", key = "pair_id", columns = ["x"] }]',
         "no config of the dataset has pairs"),
        ('extra_columns = [{ model = "M; DROP", columns = ["x"] }]', "extra_columns.0.model"),
        ('extra_columns = [{ model = "m", columns = ["x", "x"] }]', "lists a column twice"),
        ('extra_columns = [{ model = "m", columns = [] }]', "extra_columns.0.columns"),
    ],
)  # fmt: skip
def test_bad_extra_columns_are_refused_on_load(tmp_path: Path, policy: str, fragment: str) -> None:
    path = tmp_path / "datasets.toml"
    path.write_text(f"[datasets.d]\n{policy}\n")

    with pytest.raises(ConfigError, match=fragment.replace("(", r"\(")):
        load_datasets(path)


def test_the_walk_through_shows_the_files_the_test_runs() -> None:
    page = (EXAMPLES.parent / "transforms.md").read_text()
    for path in (MODELS / "quick_copies.sql", DATASETS):
        assert path.read_text() in page, path
