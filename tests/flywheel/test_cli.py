"""The CLI as a user runs it: a real subprocess, exit codes, one red line for mistakes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers.cli import assert_one_line_error, flywheel
from tests.helpers.processes import process


def test_help_lists_the_commands() -> None:
    result = flywheel("--help")
    assert result.returncode == 0
    for command in ("serve", "simulate", "kafka", "demo"):
        assert command in result.stdout


def test_serve_without_write_keys_says_which_setting() -> None:
    assert_one_line_error(flywheel("serve"), "FLYWHEEL_API__WRITE_KEYS", code=3)


def test_placeholder_write_key_is_refused() -> None:
    result = flywheel("serve", env={"FLYWHEEL_API__WRITE_KEYS": '["changeme"]'})
    assert_one_line_error(result, "placeholder", code=3)


def test_write_keys_that_are_not_json() -> None:
    result = flywheel("serve", env={"FLYWHEEL_API__WRITE_KEYS": "abc"})
    assert_one_line_error(result, "JSON", code=3)


def test_kafka_init_without_kafka() -> None:
    assert_one_line_error(flywheel("kafka", "init"), "FLYWHEEL_KAFKA__BOOTSTRAP_SERVERS", code=3)


def test_kafka_init_with_unreachable_broker() -> None:
    env = {
        "FLYWHEEL_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:1",
        "FLYWHEEL_KAFKA__MAX_BLOCK_MS": "500",
    }
    assert_one_line_error(flywheel("kafka", "init", env=env), "Kafka", code=4)


def test_simulate_needs_exactly_one_destination(tmp_path: Path) -> None:
    assert_one_line_error(flywheel("simulate"), "--out", code=3)
    both = flywheel("simulate", "--out", str(tmp_path / "e.jsonl"), "--post", "http://x/v1/events")
    assert_one_line_error(both, "exactly one", code=3)


def test_simulate_post_needs_a_key() -> None:
    assert_one_line_error(flywheel("simulate", "--post", "http://x/v1/events"), "--key", code=3)


def test_simulate_writes_events_and_truth(tmp_path: Path) -> None:
    out, truth = tmp_path / "events.jsonl", tmp_path / "truth.jsonl"
    result = flywheel("simulate", "--events", "300", "--seed", "3", "--out", str(out),
                      "--truth", str(truth))  # fmt: skip
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(events) == 300
    assert truth.read_text().strip()
    assert "300 events written" in result.stdout


def test_local_kafka_status_without_a_broker(tmp_path: Path) -> None:
    result = flywheel("kafka", "local", "status", "--home", str(tmp_path / "none"))
    assert result.returncode == 1
    assert "not running" in result.stderr


def test_simulate_checks_both_outputs_before_generating(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    missing = flywheel("simulate", "--events", "50", "--out", str(tmp_path / "nodir" / "e.jsonl"))
    assert_one_line_error(missing, "nodir/e.jsonl: No such file or directory")
    assert_one_line_error(flywheel("simulate", "--out", str(tmp_path)), "Is a directory")
    no_truth = flywheel("simulate", "--events", "50", "--out", str(events),
                        "--truth", str(tmp_path / "nodir" / "t.jsonl"))  # fmt: skip
    assert_one_line_error(no_truth, "nodir/t.jsonl: No such file or directory")
    assert list(tmp_path.iterdir()) == []  # not even the events file


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_simulate_names_the_file_a_write_failed_on() -> None:
    result = flywheel("simulate", "--events", "50", "--out", "/dev/full")
    assert_one_line_error(result, "/dev/full: No space left on device")
    assert Path("/dev/full").is_char_device()


@pytest.mark.parametrize("problem", ["a directory", "not UTF-8"])
def test_transform_run_with_an_unreadable_policy_file(tmp_path: Path, problem: str) -> None:
    policy = tmp_path / "policy.toml"
    if problem == "a directory":
        policy.mkdir()
    else:
        policy.write_bytes(b"# caf\xe9\n")
    result = flywheel("transform", "run", "--policy", str(policy),
                      env={"FLYWHEEL_DATA_DIR": str(tmp_path / "data")})  # fmt: skip
    assert_one_line_error(result, f"the policy file {policy} ", code=3)


def test_local_kafka_with_a_corrupt_state_file(tmp_path: Path) -> None:
    (tmp_path / "state.json").write_text('{"pid": 12')
    for command in ("status", "stop"):
        result = flywheel("kafka", "local", command, "--home", str(tmp_path))
        assert_one_line_error(result, f"{tmp_path / 'state.json'} is unreadable")


def test_local_kafka_stop_leaves_a_process_that_took_the_recorded_pid(tmp_path: Path) -> None:
    # After a reboot the pid in state.json can belong to anything: here, another session leader.
    stranger = process()
    try:
        state = {"pid": stranger.pid, "port": 1, "controller_port": 2, "home": str(tmp_path)}
        (tmp_path / "state.json").write_text(json.dumps(state))
        result = flywheel("kafka", "local", "stop", "--home", str(tmp_path))
        assert result.returncode == 0, result.stderr
        assert f"pid {stranger.pid}" in result.stderr and "stale" in result.stderr
        assert "no broker was running" in result.stderr
        assert stranger.poll() is None
    finally:
        stranger.communicate(b"")


COMMANDS = ["serve", "simulate", "demo", "ingest", "schedule", "export run", "export list",
            "export trace",
            "transform run", "db upgrade", "keys create", "dead-letters list",
            "dead-letters replay", "kafka init", "kafka local start", "kafka local stop",
            "kafka local status"]  # fmt: skip


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_an_example(command: str) -> None:
    result = flywheel(*command.split(), "--help")
    assert result.returncode == 0
    assert "Example" in result.stdout


def test_serve_with_several_workers_needs_kafka() -> None:
    env = {"FLYWHEEL_API__WRITE_KEYS": '["0123456789abcdef-key"]'}
    assert_one_line_error(
        flywheel("serve", "--workers", "2", env=env), "--workers needs Kafka", code=3
    )


@pytest.mark.slow
def test_demo_lands_simulated_traffic_and_loads_the_warehouse(tmp_path: Path) -> None:
    import duckdb

    result = flywheel("demo", "--events", "600", env={"FLYWHEEL_DATA_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert "600 events accepted over real HTTP" in result.stdout
    assert list((tmp_path / "lake" / "events").glob("landed_date=*/embedded+0+*.parquet"))
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as db:
        [(events, pseudonymous)] = db.execute(
            "SELECT count(*), count(user_pseudonym) FROM events"
        ).fetchall()
    assert 0 < events <= 600
    assert pseudonymous == events
    assert f"{events:,} new events loaded" in result.stdout.replace("\n", " ")


def test_version_names_the_installed_distribution() -> None:
    from importlib.metadata import version

    result = flywheel("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"flywheel {version('feedback-flywheel')}"


def test_exit_codes_say_what_kind_of_failure_it_was() -> None:
    from flywheel.errors import (
        ConfigError,
        ExportBusyError,
        FlywheelError,
        QualityGateError,
        SinkUnavailableError,
        VersionNotFoundError,
        WarehouseBusyError,
        WarehouseError,
    )
    from flywheel.shell.cli import exit_code

    assert exit_code(ConfigError("x")) == 3
    assert exit_code(WarehouseBusyError("x")) == exit_code(ExportBusyError("x")) == 4
    assert exit_code(SinkUnavailableError("x")) == 4
    assert exit_code(QualityGateError("x", report="r")) == 5
    assert exit_code(VersionNotFoundError("x")) == 6
    assert exit_code(WarehouseError("x")) == exit_code(FlywheelError("x")) == 1
