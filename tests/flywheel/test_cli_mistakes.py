"""User mistakes and a refusing file system, each met with one red line (or a usage error)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.cli import assert_one_line_error, flywheel


def test_a_file_system_refusal_is_one_line_naming_the_path(tmp_path: Path) -> None:
    """A folder that cannot be created (a file is in the way) is the machine's state, not a
    bug: no traceback."""
    blocker = tmp_path / "afile"
    blocker.write_text("")

    keys = flywheel("keys", "create", str(blocker / "keys.json"))
    upgrade = flywheel("db", "upgrade", env={"FLYWHEEL_DATA_DIR": str(blocker / "data")})

    for result in (keys, upgrade):  # the path mkdir or open stopped at, and the system's reason
        assert_one_line_error(result, f"error: {blocker}")


def test_dead_letter_replay_of_an_unknown_error_type_is_refused() -> None:
    result = flywheel("dead-letters", "replay", "--error-type", "not-json",
                      env={"FLYWHEEL_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:9"})  # fmt: skip
    assert_one_line_error(result, "no error type 'not-json'; dead letters have not_json,", code=3)


def test_out_of_range_numbers_are_one_line() -> None:
    assert_one_line_error(
        flywheel("schedule", "--max-runs", "0"), "--max-runs must be at least 1", code=3
    )
    assert_one_line_error(flywheel("serve", "--port", "99999"), "--port must be a TCP port", code=3)


def test_demo_without_its_dataset_refuses_before_sending_anything(tmp_path: Path) -> None:
    datasets = tmp_path / "datasets.toml"
    datasets.write_text('[datasets.other]\ndescription = "not the demo\'s"\n')
    data_dir = tmp_path / "data"

    result = flywheel("demo", "--events", "500", env={
        "FLYWHEEL_DATA_DIR": str(data_dir), "FLYWHEEL_EXPORT__DATASETS_FILE": str(datasets),
    })  # fmt: skip

    assert_one_line_error(result, "no dataset called 'default' (the policy defines: other)", code=3)
    assert not (data_dir / "lake").exists()


@pytest.mark.slow
def test_an_unreachable_broker_is_one_line_naming_the_setting() -> None:
    from flywheel.net import free_port

    address = f"127.0.0.1:{free_port()}"
    result = flywheel("kafka", "init", env={"FLYWHEEL_KAFKA__BOOTSTRAP_SERVERS": address})

    assert_one_line_error(result, address, code=4)
    assert "is FLYWHEEL_KAFKA__BOOTSTRAP_SERVERS right, and the broker up?" in result.stderr
