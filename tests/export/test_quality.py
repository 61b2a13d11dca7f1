"""The quality gate on small hand-made frames: each critical expectation catches its case."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pytest

from export.policy import DatasetPolicy
from export.quality import run_gate

POLICY = DatasetPolicy(min_rows=4, min_confidence=0.2)


def dpo_rows(n: int = 8) -> list[dict[str, Any]]:
    return [
        {
            "prompt": f"How do I sort list number {i}?",
            "chosen": f"Use sorted(items) for list {i}; it returns a new list.",
            "rejected": f"Lists cannot be sorted ({i}).",
            "id": f"pair-{i}",
            "confidence": 0.8,
            "signals": ["ab_choice"],
            "event_ids": [f"e{i}"],
            "models": ["m@1"],
            "user": f"user-{i % 4}",
            "conversation": f"conv-{i}",
            "split": "train" if i % 2 else "test",
            "chosen_shown_first": i % 2 == 0,
        }
        for i in range(n)
    ]


def gate(rows: list[dict[str, Any]], tmp_path: Path, policy: DatasetPolicy = POLICY) -> Any:
    return run_gate({"dpo": pl.DataFrame(rows)}, policy, tmp_path / "quality")


def failed(result: Any) -> set[tuple[str, str | None]]:
    return {(o.expectation, o.column) for o in result.failed("critical")}


def test_clean_rows_pass_and_write_the_report(tmp_path: Path) -> None:
    result = gate(dpo_rows(), tmp_path)
    assert result.success, result.summary()["critical_failed"]
    assert result.report.is_file() and result.report.name == "index.html"
    assert len(result.outcomes) > 10


def test_the_report_shows_every_config_validated(tmp_path: Path) -> None:
    rows = dpo_rows()
    reward = [
        {**{k: v for k, v in row.items() if k != "prompt"}, "margin": row["confidence"],
         "chosen": f"User: {row['prompt']}\n\nAssistant: {row['chosen']}",
         "rejected": f"User: {row['prompt']}\n\nAssistant: {row['rejected']}"}
        for row in rows
    ]  # fmt: skip
    frames = {"dpo": pl.DataFrame(rows), "reward": pl.DataFrame(reward)}
    result = run_gate(frames, POLICY, tmp_path / "quality")
    assert result.success, result.summary()["critical_failed"]
    index = result.report.read_text()
    for kind in frames:
        pages = list((tmp_path / "quality" / "validations" / kind).rglob("*.html"))
        assert len(pages) == 1
        assert pages[0].relative_to(tmp_path / "quality").as_posix() in index


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"chosen": None}, ("expect_column_values_to_not_be_null", "chosen")),
        ({"id": "pair-0"}, ("expect_column_values_to_be_unique", "id")),
        ({"confidence": 1.5}, ("expect_column_values_to_be_between", "confidence")),
        ({"confidence": 0.1}, ("expect_column_values_to_be_between", "confidence")),
        ({"rejected": "Use sorted(items) for list 3; it returns a new list."},
         ("expect_column_values_to_be_in_set", "_same")),
        ({"chosen": "<EMAIL> <SECRET:github_token>"},
         ("expect_column_values_to_not_match_regex", "_text_chosen")),
        ({"prompt": "mail me at jane.doe@example.org"},
         ("expect_column_values_to_not_match_regex_list", "_text_prompt")),
        ({"rejected": "key = 'AKIAIOSFODNN7EXAMPLE'"},
         ("expect_column_values_to_not_match_regex_list", "_text_rejected")),
        ({"chosen": "token ghp_abcdefghijklmnopqrstuvwxyz0123456789"},
         ("expect_column_values_to_not_match_regex_list", "_text_chosen")),
        ({"chosen": "-----BEGIN RSA PRIVATE KEY-----\nMIIE"},
         ("expect_column_values_to_not_match_regex_list", "_text_chosen")),
        ({"conversation": "conv-0"},  # conv-0 is in test, row 3 in train
         ("expect_column_values_to_be_between", "_conversation_splits")),
    ],
)  # fmt: skip
def test_each_critical_expectation_catches_its_case(
    tmp_path: Path, change: dict[str, Any], expected: tuple[str, str]
) -> None:
    rows = dpo_rows()
    rows[3].update(change)
    result = gate(rows, tmp_path)
    assert not result.success
    assert expected in failed(result)


def test_too_few_rows_fail(tmp_path: Path) -> None:
    result = gate(dpo_rows(3), tmp_path)
    assert ("expect_table_row_count_to_be_between", None) in failed(result)


def test_biases_are_warnings_not_failures(tmp_path: Path) -> None:
    rows = dpo_rows()
    for row in rows:
        row["user"] = "one-user"
        row["chosen_shown_first"] = True
    result = gate(rows, tmp_path)
    assert result.success
    warned = {o.column for o in result.failed("warning")}
    assert {"_user_share", "_chosen_shown_first", "_chosen_longer"} <= warned


def test_conversational_messages_are_checked_as_text(tmp_path: Path) -> None:
    rows = dpo_rows()
    for row in rows:
        row["prompt"] = [{"role": "user", "content": row["prompt"]}]
        row["chosen"] = [{"role": "assistant", "content": row["chosen"]}]
        row["rejected"] = [{"role": "assistant", "content": row["rejected"]}]
    rows[2]["chosen"] = [{"role": "assistant", "content": "write to bob@example.com"}]
    result = gate(rows, tmp_path)
    assert ("expect_column_values_to_not_match_regex_list", "_text_chosen") in failed(result)


def test_the_validation_frame_shares_a_text_column_with_its_text_copy() -> None:
    """Standard format: each _text_ column holds the text column's values (converted once);
    conversational: the messages' contents joined."""
    from export.quality import validation_frame

    standard = pl.DataFrame(dpo_rows())
    conversational = standard.with_columns(
        prompt=pl.col("prompt").map_elements(
            lambda p: [{"role": "user", "content": p}, {"role": "user", "content": "and?"}],
            return_dtype=pl.List(pl.Struct({"role": pl.String, "content": pl.String})),
        )
    )

    plain, messages = validation_frame(standard, "dpo"), validation_frame(conversational, "dpo")

    assert list(plain.columns) == list(messages.columns)
    assert list(plain.columns).index("_text_prompt") > list(plain.columns).index("split")
    for column in ("prompt", "chosen", "rejected"):
        assert plain[f"_text_{column}"].tolist() == standard[column].to_list()
    assert messages["_text_prompt"].tolist() == [f"{p}\nand?" for p in standard["prompt"]]
    assert plain["_same"].tolist() == [False] * standard.height


def test_great_expectations_lets_go_of_a_validated_frame(tmp_path: Path) -> None:
    """Its pandas engine keeps every batch it was given for as long as the context lives."""
    import great_expectations as gx

    from export.quality import _forget_batches

    context = gx.get_context(mode="ephemeral")
    source = context.data_sources.add_pandas("rows")
    batch = source.add_dataframe_asset("rows").add_batch_definition_whole_dataframe("all")
    suite = context.suites.add(gx.ExpectationSuite(name="rows"))
    suite.add_expectation(gx.expectations.ExpectColumnValuesToNotBeNull(column="id"))
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name="rows", data=batch, suite=suite)
    )
    definition.run(batch_parameters={"dataframe": pl.DataFrame(dpo_rows()).to_pandas()})
    cache = source.get_execution_engine().batch_manager.batch_data_cache
    assert len(cache) == 1

    _forget_batches(source)

    assert len(source.get_execution_engine().batch_manager.batch_data_cache) == 0
