"""The local broker's state file, without a broker: which process ``stop`` may signal.

Starting a real broker is tested under tests/integration/; here a plain Python process stands in
for one, launched with the arguments ``start`` gives the broker, or with others.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest

from flywheel.dev import localkafka
from flywheel.errors import LocalKafkaError
from tests.helpers.processes import process


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path.resolve()


@pytest.fixture(params=["proc", "ps"])
def source(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Read command lines from /proc, or (as where there is no /proc) from ps."""
    if request.param == "ps":
        monkeypatch.setattr(localkafka, "PROC", Path("/no/proc"))
    elif not localkafka.PROC.is_dir():
        pytest.skip("no /proc here")
    return str(request.param)


def record(home: Path, pid: int) -> localkafka.BrokerState:
    state = localkafka.BrokerState(pid=pid, port=1, controller_port=2, home=str(home))
    (home / "state.json").write_text(json.dumps(asdict(state)))
    return state


def test_a_process_that_took_the_recorded_pid_is_not_the_broker(home: Path, source: str) -> None:
    for args in [(), ("kafka.Kafka", "/elsewhere/server.properties"), ("kafka.Kafka",)]:
        stranger = process(*args)
        try:
            state = record(home, stranger.pid)
            assert not localkafka.is_running(state)
            assert localkafka.stop(home) is False
            assert stranger.poll() is None  # not signalled
        finally:
            stranger.communicate(b"")


def test_the_homes_broker_is_recognised_and_stopped(home: Path, source: str) -> None:
    broker = process("kafka.Kafka", str(home / "server.properties"))
    try:
        state = record(home, broker.pid)
        assert localkafka.is_running(state)
        assert localkafka.stop(home) is True
        assert broker.poll() is not None
        assert not localkafka.is_running(state)
    finally:
        broker.communicate(b"")


@pytest.mark.parametrize("text", ['{"pid": 12', "[1, 2]", '{"pid": 1}', "\xff"])
def test_a_corrupt_state_file_is_unreadable(home: Path, text: str) -> None:
    (home / "state.json").write_text(text, encoding="latin-1")
    with pytest.raises(LocalKafkaError, match=f"^{home / 'state.json'} is unreadable"):
        localkafka.read_state(home)
    with pytest.raises(LocalKafkaError, match="is unreadable"):
        localkafka.stop(home)
