"""The quality gate on small hand-made frames: each critical expectation catches its case."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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
    assert result.success, result.summary().critical_failed
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
    assert result.success, result.summary().critical_failed
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
         ("expect_column_values_to_be_in_set", "_placeholder_only_chosen")),
        ({"prompt": "mail me at jane.doe@example.org"},
         ("expect_column_values_to_be_in_set", "_raw_secret_prompt")),
        ({"rejected": "key = 'AKIAIOSFODNN7EXAMPLE'"},
         ("expect_column_values_to_be_in_set", "_raw_secret_rejected")),
        ({"chosen": "token ghp_abcdefghijklmnopqrstuvwxyz0123456789"},
         ("expect_column_values_to_be_in_set", "_raw_secret_chosen")),
        ({"chosen": "-----BEGIN RSA PRIVATE KEY-----\nMIIE"},
         ("expect_column_values_to_be_in_set", "_raw_secret_chosen")),
        ({"chosen": "my card is 4111 1111 1111 1111"},
         ("expect_column_values_to_be_in_set", "_raw_card_chosen")),
        ({"prompt": "charge 5500-0000-0000-0004 please"},
         ("expect_column_values_to_be_in_set", "_raw_card_prompt")),
        ({"rejected": "Amex 378282246310005, exp 04/29"},
         ("expect_column_values_to_be_in_set", "_raw_card_rejected")),
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
    assert ("expect_column_values_to_be_in_set", "_raw_secret_chosen") in failed(result)


def test_a_failed_gates_report_does_not_quote_the_secret(tmp_path: Path) -> None:
    """The texts are searched before Great Expectations sees them: its report of the failure
    counts the rows, and never copies the raw value into the HTML."""
    rows = dpo_rows()
    rows[3]["prompt"] = "mail me at jane.doe@example.org"
    rows[5]["chosen"] = "token ghp_abcdefghijklmnopqrstuvwxyz0123456789"
    rows[6]["rejected"] = "card 4111 1111 1111 1111"

    result = gate(rows, tmp_path)

    assert not result.success
    pages = list((tmp_path / "quality" / "validations").rglob("*.html"))
    assert pages  # the failed validation's page was written
    report = "".join(p.read_text() for p in (tmp_path / "quality").rglob("*.html"))
    assert "_raw_secret_prompt" in report and "_raw_card_rejected" in report
    assert "jane.doe" not in report and "ghp_abcdef" not in report
    assert "4111" not in report


@pytest.mark.parametrize(
    ("text", "placeholder_only", "raw_secret"),
    [
        ("Use sorted(items).", False, False),
        ("  <EMAIL>\n<SECRET:github_token> ", True, False),
        ("write to <EMAIL> please", False, False),
        ("write to bob@example.com", False, True),
        ("AKIAIOSFODNN7EXAMPLE", False, True),
        ("xAKIAIOSFODNN7EXAMPLEx", False, False),  # not on a word boundary
        ("-----BEGIN OPENSSH PRIVATE KEY-----", False, True),
    ],
)
def test_the_text_flags_follow_the_patterns_as_python_reads_them(
    text: str, placeholder_only: bool, raw_secret: bool
) -> None:
    """polars' regex engine flags what Python's re (Great Expectations' engine before) found."""
    import re

    from export.quality import PLACEHOLDER_ONLY, RAW_SECRETS, validation_frame

    rows = dpo_rows()
    rows[0]["chosen"] = text
    flags = validation_frame(pl.DataFrame(rows), "dpo").iloc[0]

    assert flags["_placeholder_only_chosen"] == placeholder_only
    assert flags["_raw_secret_chosen"] == raw_secret
    assert bool(re.search(PLACEHOLDER_ONLY, text)) == placeholder_only
    assert any(re.search(p, text) for p in RAW_SECRETS) == raw_secret


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


SECRET_ALPHABET = "abcXYZ09_-.@<>: \n"
FRAGMENTS = ["<EMAIL>", "<SECRET:aws_key>", "a@b.cd", "AKIA", "ghp_", "sk-", "eyJ", "-----BEGIN "]


BODY = "Zq7Xp2Lm9Rt4Wv8Kc3Nh6Jd1Bs5Fy0Ga7Ue2Ix9Oo4"
"""A random-looking token body (the scrubber wants some tokens to look random)."""


@pytest.mark.parametrize(
    ("kind", "token"),
    [
        ("private_key", "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIB\n-----END EC PRIVATE KEY-----"),
        ("jwt", f"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.{BODY}"),
        ("aws_access_key", "ASIAIOSFODNN7EXAMPLE"),
        ("github_token", f"ghs_{BODY[:36]}"),
        ("github_token", f"github_pat_{BODY}{BODY[:10]}"),
        ("gitlab_token", f"glpat-{BODY[:20]}"),
        ("slack_webhook", f"https://hooks.slack.com/services/T0123/B0456/{BODY[:24]}"),
        ("slack_token", f"xoxb-1234567890-{BODY[:24]}"),
        ("stripe_key", f"sk_test_{BODY[:24]}"),
        ("stripe_key", f"whsec_{BODY[:32]}"),
        ("anthropic_key", f"sk-ant-api03-{BODY}"),
        ("openai_key", f"sk-proj-{BODY}"),
        ("google_api_key", f"AIza{BODY[:35]}"),
    ],
)  # fmt: skip
def test_the_gate_flags_every_vendor_token_the_scrubber_removes(kind: str, token: str) -> None:
    """One table of vendor formats (``privacy.detectors.secrets.TOKEN_RULES``) serves the
    scrubber and the gate: a token the scrubber would remove is caught if it is published."""
    import re

    from export.quality import RAW_SECRETS, validation_frame
    from privacy.detectors import Scrubber

    text = f"here it is: {token} (do not share)"
    assert Scrubber().scrub(text)[1] == {kind: 1}
    rows = dpo_rows()
    rows[0]["chosen"] = text
    assert validation_frame(pl.DataFrame(rows), "dpo").iloc[0]["_raw_secret_chosen"]
    assert any(re.search(p, text) for p in RAW_SECRETS)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.text(alphabet=SECRET_ALPHABET, max_size=12),
                          st.sampled_from(FRAGMENTS)), max_size=8))  # fmt: skip
def test_the_flags_agree_with_pythons_re_on_any_text(parts: list[str]) -> None:
    import re

    from export.quality import PLACEHOLDER_ONLY, RAW_SECRETS, validation_frame

    text = "".join(parts)
    rows = dpo_rows(1)
    rows[0]["rejected"] = text
    flags = validation_frame(pl.DataFrame(rows), "dpo").iloc[0]
    assert flags["_placeholder_only_rejected"] == bool(re.search(PLACEHOLDER_ONLY, text))
    assert flags["_raw_secret_rejected"] == any(re.search(p, text) for p in RAW_SECRETS)


@pytest.mark.parametrize(
    ("text", "card"),
    [
        ("my card is 4111 1111 1111 1111", True),
        ("4111111111111111", True),
        ("Amex 3782 822463 10005.", True),
        ("test card 4111 1111 1111 1112 fails Luhn", False),
        ("order 1767600000000003 shipped", False),  # no card network starts with 1
        ("x = 0.4111111111111111", False),  # the tail of a decimal
        ("id 4111111111111111a", False),  # part of a word
        ("a <CARD> was removed", False),
    ],
)
def test_the_card_flag_needs_a_network_prefix_and_the_luhn_check(text: str, card: bool) -> None:
    from export.quality import validation_frame

    rows = dpo_rows()
    rows[0]["chosen"] = text
    assert bool(validation_frame(pl.DataFrame(rows), "dpo").iloc[0]["_raw_card_chosen"]) == card


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.text(alphabet="0123456789 -.,a", max_size=8),
                          st.sampled_from(["4111", "1111", "5500", "0004", "3782"])),
                max_size=10))  # fmt: skip
def test_polars_finds_every_text_the_card_check_flags(parts: list[str]) -> None:
    """The native search decides which texts Python checks: it must not lose one."""
    from export.quality import CARD_CANDIDATE, has_card_number

    text = "".join(parts)
    if has_card_number(text):
        assert pl.Series([text]).str.contains(CARD_CANDIDATE).item()
