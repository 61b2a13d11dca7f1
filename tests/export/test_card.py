"""The dataset card's YAML header: what the Hugging Face Hub shows (license, language, task and
size categories, tags, pretty name) and the configs' files by split, parsed as YAML."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from export.card import SIZE_CATEGORIES, render_card, size_category
from export.manifest import ConfigCounts, Manifest, SplitCounts

FIXTURES = Path(__file__).with_name("fixtures")
HUB_TASKS = {"text-generation", "text-classification", "reinforcement-learning"}
"""The Hub's task categories the card may name (of its list of tasks)."""


def manifest(rows: dict[str, int], **policy: Any) -> Manifest:
    """The fixture's manifest with these rows per config (all in ``train``) and policy keys."""
    data = json.loads((FIXTURES / "manifest-1-published.json").read_text())
    counts = {
        kind: ConfigCounts(rows=n, splits={"train": SplitCounts(rows=n, signals={}),
                                           "test": SplitCounts(rows=0, signals={})})
        for kind, n in rows.items()
    }  # fmt: skip
    found = Manifest.model_validate(data)
    record = {**found.policy, "kinds": list(rows), **policy}
    return found.model_copy(update={"counts": counts, "policy": record})


def front_matter(card: str) -> dict[str, Any]:
    assert card.startswith("---\n")
    header, _, _ = card[4:].partition("\n---\n")
    parsed = yaml.safe_load(header)
    assert isinstance(parsed, dict)
    return parsed


@pytest.mark.parametrize(
    ("rows", "bucket"),
    [
        (0, "n<1K"),
        (999, "n<1K"),
        (1_000, "1K<n<10K"),
        (9_999, "1K<n<10K"),
        (10_000, "10K<n<100K"),
        (99_999, "10K<n<100K"),
        (100_000, "100K<n<1M"),
        (999_999, "100K<n<1M"),
        (1_000_000, "1M<n<10M"),
        (10**12 - 1, "100B<n<1T"),
        (10**12, "n>1T"),
    ],
)
def test_the_size_category_is_the_hubs_bucket_of_the_largest_config(rows: int, bucket: str) -> None:
    assert size_category(rows) == bucket
    # The largest config decides, whichever it is.
    card = render_card(manifest({"dpo": rows // 2, "kto": rows, "reward": rows // 2}))
    assert front_matter(card)["size_categories"] == [bucket]


def test_size_categories_are_the_hubs_in_order() -> None:
    # Each bucket's lower edge is the previous one's upper edge, by powers of ten from 1,000.
    edges = [0] + [10 ** (3 + i) for i in range(len(SIZE_CATEGORIES) - 1)]
    assert [size_category(edge) for edge in edges] == list(SIZE_CATEGORIES)
    assert [size_category(edge - 1) for edge in edges[1:]] == list(SIZE_CATEGORIES[:-1])


def test_the_header_has_what_the_hub_shows_and_the_configs_files() -> None:
    header = front_matter(render_card(manifest({"dpo": 1_759, "kto": 3_769, "reward": 1_759})))

    assert header["pretty_name"] == "default v1"
    assert header["license"] == "other" and header["language"] == ["en"]  # the defaults
    assert header["task_categories"] == sorted(HUB_TASKS)
    assert header["size_categories"] == ["1K<n<10K"]
    assert {"trl", "preference", "rlhf", "dpo", "kto", "reward-modeling"} <= set(header["tags"])
    assert header["configs"] == [
        {"config_name": kind, "data_files": [
            {"split": "train", "path": f"data/{kind}/train-*.parquet"},
            {"split": "test", "path": f"data/{kind}/test-*.parquet"},
        ]}
        for kind in ("dpo", "kto", "reward")
    ]  # fmt: skip


def test_license_and_language_come_from_the_policy_and_tasks_from_the_kinds() -> None:
    card = render_card(
        manifest({"kto": 12}, license="cc-by-4.0", language=["en", "fr"], kinds=["kto"])
    )
    header = front_matter(card)

    assert header["license"] == "cc-by-4.0" and header["language"] == ["en", "fr"]
    assert header["task_categories"] == ["reinforcement-learning", "text-generation"]
    assert "reward-modeling" not in header["tags"] and "kto" in header["tags"]
    assert [c["config_name"] for c in header["configs"]] == ["kto"]
