"""``flywheel ingest`` as a batch job (``--idle-exit``) when it cannot do its work: no broker."""

from __future__ import annotations

from pathlib import Path

from flywheel.net import free_port
from privacy.keys import create_keyring
from tests.helpers.cli import assert_one_line_error, flywheel


def test_a_batch_run_that_never_reached_kafka_fails(tmp_path: Path) -> None:
    """Nothing listens on the port: the run used to report 'landed 0 events' and exit 0, which a
    scheduler counts as success."""
    create_keyring(tmp_path / "keys.json")
    address = f"127.0.0.1:{free_port()}"
    result = flywheel("ingest", "--idle-exit", "1", env={
        "FLYWHEEL_DATA_DIR": str(tmp_path / "data"),
        "FLYWHEEL_PRIVACY__HMAC_KEY_FILE": str(tmp_path / "keys.json"),
        "FLYWHEEL_KAFKA__BOOTSTRAP_SERVERS": address,
    })  # fmt: skip

    # Unreachable is "try again later" (4), as for `flywheel kafka init`.
    assert_one_line_error(result, f"is Kafka reachable at {address}", code=4)
    assert "landed" not in result.stdout


def test_idle_exit_must_be_positive(tmp_path: Path) -> None:
    for value in ("0", "-3"):
        result = flywheel("ingest", "--idle-exit", value,
                          env={"FLYWHEEL_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:9"})  # fmt: skip
        assert_one_line_error(result, "--idle-exit must be a number of seconds above 0", code=3)
