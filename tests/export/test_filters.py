"""Dataset policy filters (``models``, ``apps``, ``since``, ``until``, with ``metadata_filter``):
the rows a filtered dataset keeps are exactly those of the unfiltered dataset whose responses'
generations pass, worked out here from the lake's events rather than the warehouse's tables;
and a bad filter is one line, exit 3."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from export.build import Rekeyer
from export.catalog import read_manifest
from export.policy import DatasetPolicy, DatasetsFile
from export.publish import export_dataset
from tests.helpers.cli import assert_one_line_error, env, flywheel
from tests.helpers.datasets import KEYRING
from warehouse.lake import Lake

# No caps, no gate threshold: a filtered dataset's rows are then exactly the unfiltered one's
# that pass the filter.
OPEN = {"max_rows_per_user": 1_000_000, "max_rows_per_prompt": 0, "min_rows": 1}

Generation = dict[str, Any]


def export(data_dir: Path, name: str, **policy: Any) -> Path:
    datasets = DatasetsFile(datasets={name: DatasetPolicy(**OPEN, **policy)})
    result = export_dataset(data_dir, name, KEYRING, datasets=datasets)
    assert result.path is not None
    return result.path


def rows(version: Path, kind: str) -> list[dict[str, Any]]:
    frames = [pl.read_parquet(f) for f in sorted((version / "data" / kind).glob("*.parquet"))]
    return pl.concat(frames).to_dicts()


def texts(row: dict[str, Any]) -> str:
    """A row's TRL columns as one comparable text (its ids are re-keyed per dataset)."""
    keys = ("prompt", "chosen", "rejected", "completion", "label")
    return json.dumps({k: row[k] for k in keys if k in row}, sort_keys=True)


def generations(data_dir: Path) -> pl.DataFrame:
    """Every generation event as it landed in the lake: the response, its model, app and time."""
    columns = ["event_id", "type", "conversation_id", "response_id", "response", "model_id",
               "model_version", "app_name", "occurred_at"]  # fmt: skip
    frames = [pl.read_parquet(f.path, columns=columns) for f in Lake.in_data_dir(data_dir).files()]
    return pl.concat(frames).filter(pl.col("type") == "generation")


class Responses:
    """The responses behind the rows of the unfiltered dataset ``everything``, from the lake:
    a kto row by its id (the response), a pair by its texts within its conversation."""

    def __init__(self, data_dir: Path) -> None:
        rekey = Rekeyer(KEYRING.keys[KEYRING.current], "everything")
        self.by_id: dict[str, list[Generation]] = {}
        self.by_text: dict[tuple[str, str], list[Generation]] = {}
        for event in generations(data_dir).to_dicts():
            self.by_id.setdefault(rekey.lineage(event["response_id"]), []).append(event)
            key = (rekey(event["conversation_id"]), event["response"])
            self.by_text.setdefault(key, []).append(event)

    def of(self, kind: str, row: dict[str, Any]) -> list[list[Generation]]:
        """The generation events of each response of the row (resends: several)."""
        if kind == "kto":
            return [self.by_id[row["id"]]]
        # An edit pair's chosen text is the user's edit, no generation's: only its rejected
        # response was generated.
        found = [
            self.by_text.get((row["conversation"], row[side])) for side in ("chosen", "rejected")
        ]
        responses = [events for events in found if events]
        assert responses, row["id"]
        return responses


def expected(
    everything: Path, responses: Responses, kind: str, passes: Callable[[Generation], bool]
) -> set[str]:
    """The rows of ``everything`` whose every response's generation passes."""
    return {
        texts(row)
        for row in rows(everything, kind)
        if all(all(passes(e) for e in events) for events in responses.of(kind, row))
    }


@pytest.mark.slow
def test_filters_keep_exactly_the_rows_whose_responses_pass(data_dir: Path) -> None:
    everything = export(data_dir, "everything")
    responses = Responses(data_dir)
    times = sorted(generations(data_dir)["occurred_at"].to_list())
    since, until = times[len(times) // 4], times[len(times) // 2]
    cases: list[tuple[dict[str, Any], Callable[[Generation], bool]]] = [
        ({"models": ["chat-large"]}, lambda e: e["model_id"] == "chat-large"),
        (
            {"models": ["chat-small@2026-09", "chat-large@2026-06"]},
            lambda e: (e["model_id"], e["model_version"]) == ("chat-small", "2026-09"),
        ),
        ({"apps": ["vscode-extension"]}, lambda e: e["app_name"] == "vscode-extension"),
        ({"since": since, "until": until}, lambda e: since <= e["occurred_at"] < until),
        (
            {"apps": ["web"], "since": since, "models": ["chat-small"]},
            lambda e: (
                e["app_name"] == "web"
                and e["occurred_at"] >= since
                and e["model_id"] == "chat-small"
            ),
        ),
    ]
    for n, (selection, passes) in enumerate(cases):
        filtered = export(data_dir, f"filtered-{n}", **selection)
        for kind in ("dpo", "kto"):
            kept = {texts(row) for row in rows(filtered, kind)}
            wanted = expected(everything, responses, kind, passes)
            assert kept == wanted, (selection, kind)
            assert 0 < len(kept) < len(rows(everything, kind)), (selection, kind)
        # Recorded in the manifest (and so in the digest) and in the card.
        manifest = read_manifest(data_dir, f"filtered-{n}", "v1")
        recorded = DatasetPolicy.from_record(manifest.policy)
        assert {key: getattr(recorded, key) for key in selection} == selection
        card = (filtered / "README.md").read_text()
        assert "Only the rows whose every response was" in card
    assert "Only the rows whose every response was" not in (everything / "README.md").read_text()


def test_a_filter_is_part_of_the_digest_and_unset_filters_change_nothing() -> None:
    unset = {"models", "apps", "since", "until", "language", "license", "keep_versions"}
    assert set(DatasetPolicy().record("d")).isdisjoint(unset)
    digests = {
        DatasetPolicy(**selection).digest("d")
        for selection in (
            {},
            {"models": ["chat-large"]},
            {"apps": ["web"]},
            {"since": datetime(2026, 1, 1, tzinfo=UTC)},
            {"until": datetime(2026, 1, 1, tzinfo=UTC)},
        )
    }
    assert len(digests) == 5
    # Retention is not what a version holds: out of the digest, like the schedule.
    assert DatasetPolicy(keep_versions=3).digest("d") == DatasetPolicy().digest("d")
    # One instant, whatever its offset: one digest (times are recorded in UTC).
    paris = datetime(2026, 1, 1, 2, tzinfo=timezone(timedelta(hours=1)))
    assert DatasetPolicy(since=paris).digest("d") == DatasetPolicy(
        since=datetime(2026, 1, 1, 1, tzinfo=UTC)
    ).digest("d")


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ("models = []", "datasets.bad.models: Value error, lists no value"),
        ('apps = ["web", "web"]', "datasets.bad.apps: Value error, lists a value twice"),
        (
            "since = 2026-11-01T00:00:00",
            "datasets.bad.since: Value error, 2026-11-01T00:00:00 has no time zone",
        ),
        (
            "since = 2026-11-02T00:00:00Z\nuntil = 2026-11-01",
            "must be before until",
        ),
        ('language = ["English"]', "'English' is not a language code"),
        ('license = "Apache 2"', "'Apache 2' is not a license identifier"),
        ("keep_versions = 0", "datasets.bad.keep_versions"),
    ],
)
def test_a_bad_filter_is_one_line_and_exit_3(tmp_path: Path, line: str, fragment: str) -> None:
    datasets = tmp_path / "datasets.toml"
    datasets.write_text(f"[datasets.bad]\n{line}\n")
    data_dir = tmp_path / "data"
    data_dir.mkdir()

    result = flywheel(
        "export", "run", "--dataset", "bad",
        env=env(data_dir, FLYWHEEL_EXPORT__DATASETS_FILE=str(datasets)),
    )  # fmt: skip

    assert_one_line_error(result, fragment, code=3)


def test_a_toml_date_is_midnight_utc() -> None:
    import tomllib

    loaded = tomllib.loads("since = 2026-11-01\nuntil = 2026-11-02T12:00:00+02:00")
    policy = DatasetPolicy(**loaded)
    assert policy.since == datetime(2026, 11, 1, tzinfo=UTC)
    assert policy.until == datetime(2026, 11, 2, 10, tzinfo=UTC)
    assert policy.record("d")["until"] == "2026-11-02T10:00:00Z"
