"""What an export records of the light reward model trained on the version it publishes
(``evaluate``, handed to it as the shell does): in the manifest and the card as the policy's
``evaluate`` asks, and nothing, with the reason in the progress, when it cannot be made."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import duckdb
import pytest

from evaluate.utility import evaluate_files
from export.catalog import read_manifest
from export.erasure import erase_from_datasets
from export.manifest import ConfigCounts, SplitCounts
from export.policy import DatasetPolicy, DatasetsFile
from export.publish import evaluate_attempt, export_dataset
from tests.helpers.datasets import KEYRING

SECTION = "## What the data teaches"
ADDS = "What each signal adds"


def policies(**settings: object) -> DatasetsFile:
    return DatasetsFile(datasets={"default": DatasetPolicy.model_validate(settings)})


@pytest.mark.slow
def test_an_export_records_the_evaluation_in_the_manifest_and_the_card_the_same_each_time(
    data_dir: Path, tmp_path: Path
) -> None:
    # Six fits (one per signal left out, and all): about 80 s on a loaded 2-core machine.
    steps: list[str] = []
    result = export_dataset(data_dir, "default", KEYRING, evaluator=evaluate_files,
                            on_progress=steps.append)  # fmt: skip

    assert result.path is not None
    evaluation = result.manifest.evaluation
    assert evaluation is not None
    assert read_manifest(data_dir, "default", "v1").evaluation == evaluation
    assert any(step.startswith("evaluating") for step in steps)
    dpo = result.manifest.counts["dpo"].splits
    assert evaluation.train_pairs == dpo["train"].rows
    by_name = {a.name: a for a in evaluation.accuracies}
    assert set(by_name) == {"test", "ab_choice"}
    assert by_name["test"].pairs == dpo["test"].rows
    assert by_name["ab_choice"].pairs == dpo["test"].signals["ab_choice"] > 0
    for a in evaluation.accuracies:
        assert a.accuracy is not None and a.wilson_low is not None and a.wilson_high is not None
        assert 0 <= a.wilson_low <= a.accuracy <= a.wilson_high <= 1, a
    assert by_name["test"].wilson_low > 0.5  # the simulated users' choices teach something
    train_signals = dpo["train"].signals
    assert [a.signal for a in evaluation.ablations] == sorted(train_signals)
    for ablation in evaluation.ablations:
        assert ablation.train_pairs == evaluation.train_pairs - train_signals[ablation.signal]

    card = (result.path / "README.md").read_text()
    assert SECTION in card and "0.5 is chance" in card and "docs/evaluate.md" in card
    test = by_name["test"]
    assert (f"| test | {test.pairs:,} | {test.accuracy:.3f} "
            f"| {test.wilson_low:.3f} to {test.wilson_high:.3f} |") in card  # fmt: skip
    for ablation in evaluation.ablations:
        change = evaluation.change(ablation)
        assert change is not None
        assert (f"| {ablation.signal} | {ablation.train_pairs:,} "
                f"| {ablation.accuracy('test'):.3f} | {change:+.3f} |") in card  # fmt: skip

    aside = tmp_path / "first"
    shutil.move(result.path, aside)
    again = export_dataset(data_dir, "default", KEYRING, evaluator=evaluate_files)
    assert again.path is not None and again.manifest.evaluation == evaluation
    assert (again.path / "README.md").read_bytes() == (aside / "README.md").read_bytes()


@pytest.mark.slow
def test_off_records_nothing_and_turning_it_on_alone_publishes_nothing_new(
    data_dir: Path,
) -> None:
    off = export_dataset(data_dir, "default", KEYRING, datasets=policies(evaluate="off"),
                         evaluator=evaluate_files)  # fmt: skip
    assert off.path is not None and off.manifest.evaluation is None
    assert SECTION not in (off.path / "README.md").read_text()
    assert "evaluate" not in off.manifest.policy

    on = export_dataset(data_dir, "default", KEYRING, datasets=policies(evaluate="ablations"),
                        evaluator=evaluate_files)  # fmt: skip
    assert not on.published and on.manifest.version == "v1"


@pytest.mark.slow
def test_accuracy_records_one_model_and_no_ablations(data_dir: Path) -> None:
    result = export_dataset(data_dir, "default", KEYRING, datasets=policies(evaluate="accuracy"),
                            evaluator=evaluate_files)  # fmt: skip

    assert result.path is not None and result.manifest.evaluation is not None
    assert result.manifest.evaluation.ablations == []
    assert {a.name for a in result.manifest.evaluation.accuracies} == {"test", "ab_choice"}
    card = (result.path / "README.md").read_text()
    assert SECTION in card and ADDS not in card


@pytest.mark.slow
def test_the_version_an_erasure_publishes_has_no_evaluation(data_dir: Path) -> None:
    export_dataset(data_dir, "default", KEYRING, datasets=policies(evaluate="accuracy"),
                   evaluator=evaluate_files)  # fmt: skip
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as db:
        found = db.execute("SELECT user_pseudonym FROM events GROUP BY ALL "
                           "ORDER BY count(*) DESC, 1 LIMIT 1").fetchone()  # fmt: skip
    assert found is not None

    [erased] = erase_from_datasets(data_dir, [found[0]], KEYRING, request_id="req-evaluation")

    assert erased.published == "v2"
    assert read_manifest(data_dir, "default", "v1").evaluation is not None
    replacement = read_manifest(data_dir, "default", "v2")
    assert replacement.erasure is not None and replacement.evaluation is None
    card = (data_dir / "datasets" / "default" / "v2" / "README.md").read_text()
    assert SECTION not in card


def counts(train: int, test: int) -> dict[str, ConfigCounts]:
    splits = {"train": SplitCounts(rows=train, signals={}),
              "test": SplitCounts(rows=test, signals={})}  # fmt: skip
    return {"dpo": ConfigCounts(rows=train + test, splits=splits)}


def unexpected(files: object, *, ablations: bool) -> None:
    raise AssertionError("evaluated a version that cannot be")


@pytest.mark.parametrize(
    ("train", "test", "evaluator", "reason"),
    [
        (500, 50, None, "no reward model was handed to the export"),
        (19, 50, unexpected, "19 dpo train pairs, fewer than 20"),
        (500, 0, unexpected, "no held-out dpo pairs to measure on"),
    ],
)
def test_a_version_that_cannot_be_evaluated_records_nothing_and_says_why(
    tmp_path: Path, train: int, test: int, evaluator: object, reason: str
) -> None:
    steps: list[str] = []
    found = evaluate_attempt(tmp_path, counts(train, test), DatasetPolicy(), evaluator,  # type: ignore[arg-type]
                             steps.append)  # fmt: skip
    assert found is None and steps == [f"not evaluated: {reason}"]


def test_without_scipy_nothing_is_recorded_and_the_extra_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "scipy", None)  # as if the export extra were not installed
    steps: list[str] = []
    found = evaluate_attempt(tmp_path, counts(500, 50), DatasetPolicy(), evaluate_files,
                             steps.append)  # fmt: skip
    assert found is None
    assert steps == ["not evaluated: the reward model needs SciPy "
                     "(pip install 'feedback-flywheel[export]')"]  # fmt: skip


def test_a_version_without_dpo_pairs_records_nothing() -> None:
    steps: list[str] = []
    kto_only = {"kto": counts(500, 50)["dpo"]}
    assert evaluate_attempt(Path("."), kto_only, DatasetPolicy(kinds=["kto"]), evaluate_files,
                            steps.append) is None  # fmt: skip
    assert steps == ["not evaluated: 0 dpo train pairs, fewer than 20"]
