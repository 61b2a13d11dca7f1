"""The traffic simulator: contract-valid, deterministic, realistic, and honest about its truth."""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import threading
import tomllib
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from difflib import SequenceMatcher
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import httpx
import pytest

from flywheel.dev.simulator import (
    PostSummary,
    Simulation,
    SimulationConfig,
    SimulatorPostError,
    SimulatorWriteError,
    check_writable,
    hidden_quality,
    iter_batches,
    post_events,
    simulate,
    write_jsonl,
    write_truth,
)
from flywheel.errors import FlywheelError
from flywheel.files import packaged
from ingest.contract import EVENT_TYPES, parse_event

Event = dict[str, Any]
FEEDBACK = ("copy", "rating", "edit")


@pytest.fixture(scope="module")
def run() -> tuple[list[Event], list[dict[str, Any]]]:
    """10,000 events of the default configuration and their truth, shared by the tests."""
    simulation = simulate(SimulationConfig(events=10_000, seed=11))
    events = list(simulation)
    return events, simulation.truth


@pytest.fixture(scope="module")
def quality(run: tuple[list[Event], list[dict[str, Any]]]) -> dict[str, float]:
    """Hidden quality by response id, from the sibling-set truth."""
    return hidden_quality(run[1])


def _originals(events: list[Event]) -> list[Event]:
    seen: set[str] = set()
    unique = []
    for event in events:
        if event["event_id"] not in seen:
            seen.add(event["event_id"])
            unique.append(event)
    return unique


def _field(event: Event, path: str) -> str:
    match = re.fullmatch(r"prompt\[(\d+)\]\.content", path)
    if match:
        return str(event["prompt"][int(match.group(1))]["content"])
    return str(event[path])


def _luhn_ok(number: str) -> bool:
    digits = [int(ch) for ch in number if ch.isdigit()]
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2:
            d *= 2
            d = d - 9 if d > 9 else d
        total += d
    return total % 10 == 0


# --- The contract, determinism, counts ---------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_every_event_satisfies_the_contract(seed: int) -> None:
    for index, event in enumerate(simulate(SimulationConfig(events=1000, seed=seed))):
        parse_event(event, index=index)


def test_events_round_trip_through_json_and_still_validate(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    assert write_jsonl(simulate(SimulationConfig(events=500, seed=5)), path) == 500
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 500
    for index, line in enumerate(lines):
        parse_event(json.loads(line), index=index)


def test_same_config_gives_byte_identical_events_and_truth(tmp_path: Path) -> None:
    outputs = []
    for name in ("one", "two"):
        simulation = simulate(SimulationConfig(events=2000, seed=7))
        write_jsonl(simulation, tmp_path / f"{name}.jsonl")
        write_truth(simulation, tmp_path / f"{name}.truth.jsonl")
        outputs.append(
            (
                (tmp_path / f"{name}.jsonl").read_bytes(),
                (tmp_path / f"{name}.truth.jsonl").read_bytes(),
            )
        )
    assert outputs[0] == outputs[1]

    other = simulate(SimulationConfig(events=2000, seed=8))
    write_jsonl(other, tmp_path / "other.jsonl")
    assert (tmp_path / "other.jsonl").read_bytes() != outputs[0][0]


# The bytes of one configuration, pinned: moving code or corpus text around must not change what
# a seed produces (tests and benchmarks compare runs across versions). A deliberate change to the
# traffic model or the corpus changes them; then update both digests in the same commit.
SEED_7_EVENTS = "3cb2dafa4f752cffbef7d8ee9cf918301d781cf21a2fb6dfc41b5ce98f7a4915"
SEED_7_TRUTH = "20a761dc5563efd1f55bac821f10784f6ef684eedf085f3e4ab61f4652e18ac1"


def test_a_seed_gives_the_pinned_events_and_truth(tmp_path: Path) -> None:
    simulation = simulate(SimulationConfig(events=2000, seed=7))
    write_jsonl(simulation, tmp_path / "events.jsonl")
    write_truth(simulation, tmp_path / "truth.jsonl")
    assert hashlib.sha256((tmp_path / "events.jsonl").read_bytes()).hexdigest() == SEED_7_EVENTS
    assert hashlib.sha256((tmp_path / "truth.jsonl").read_bytes()).hexdigest() == SEED_7_TRUTH


def test_every_corpus_file_ships_in_the_wheel() -> None:
    """The corpus is read as package data, so pyproject's package-data must name each file."""
    pyproject = tomllib.loads((Path(__file__).parents[3] / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["flywheel.dev.simulator"]
    package = packaged("flywheel.dev.simulator", "")
    corpus = sorted((package / "corpus").iterdir())
    assert corpus
    for path in corpus:
        assert any(fnmatch(str(path.relative_to(package)), pattern) for pattern in patterns), path


def test_iterating_twice_gives_the_same_events_and_truth() -> None:
    simulation = simulate(SimulationConfig(events=300, seed=3))
    first, first_truth = list(simulation), list(simulation.truth)
    assert list(simulation) == first
    assert simulation.truth == first_truth
    assert simulation.finished


@pytest.mark.parametrize("count", [0, 1, 17, 1234])
def test_emits_exactly_the_configured_number_of_events(count: int) -> None:
    assert sum(1 for _ in simulate(SimulationConfig(events=count, seed=2))) == count


def test_write_truth_runs_a_simulation_that_was_not_iterated(tmp_path: Path) -> None:
    simulation = simulate(SimulationConfig(events=400, seed=4))
    written = write_truth(simulation, tmp_path / "truth.jsonl")
    records = [json.loads(line) for line in (tmp_path / "truth.jsonl").read_text().splitlines()]
    assert written == len(records) > 0
    assert {record["record"] for record in records} <= {"sibling_set", "planted"}


def test_an_interrupted_write_leaves_no_partial_file(tmp_path: Path) -> None:
    def interrupted() -> Iterator[Event]:
        for index, event in enumerate(simulate(SimulationConfig(events=500, seed=5))):
            if index == 300:
                raise KeyboardInterrupt
            yield event

    fresh, older = tmp_path / "fresh.jsonl", tmp_path / "older.jsonl"
    older.write_text("a complete earlier file\n")
    for path in (fresh, older):
        with pytest.raises(KeyboardInterrupt):
            write_jsonl(interrupted(), path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["older.jsonl"]  # no temporary file left
    assert older.read_text() == "a complete earlier file\n"


def test_a_file_that_cannot_be_written_is_named(tmp_path: Path) -> None:
    for path, reason in [
        (tmp_path / "nodir" / "e.jsonl", "No such file or directory"),
        (tmp_path, "Is a directory"),
    ]:
        with pytest.raises(SimulatorWriteError, match=f"^cannot write {path}: {reason}"):
            check_writable(path)
        with pytest.raises(SimulatorWriteError, match=f"^cannot write {path}: "):
            write_jsonl(simulate(SimulationConfig(events=5, seed=5)), path)
    assert list(tmp_path.iterdir()) == []


def test_a_pipe_is_written_in_place(tmp_path: Path) -> None:
    # Like /dev/stdout: a path that is no regular file cannot be replaced by a renamed file.
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    received: list[str] = []
    reader = threading.Thread(target=lambda: received.append(pipe.read_text()), daemon=True)
    reader.start()
    check_writable(pipe)
    assert write_jsonl(simulate(SimulationConfig(events=20, seed=5)), pipe) == 20
    reader.join(timeout=30)
    assert stat.S_ISFIFO(pipe.stat().st_mode)
    assert len(received) == 1 and len(received[0].splitlines()) == 20


def test_time_starts_at_the_configured_start_and_carries_a_timezone() -> None:
    start = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    events = list(simulate(SimulationConfig(events=300, seed=1, start=start)))
    times = [datetime.fromisoformat(event["occurred_at"]) for event in events]
    assert all(t.tzinfo is not None and t >= start for t in times)
    assert all(event["occurred_at"].endswith("Z") for event in events)


# --- What the traffic looks like ------------------------------------------------------------------


def test_all_event_types_appear(run: tuple[list[Event], list[dict[str, Any]]]) -> None:
    events, _ = run
    assert set(Counter(event["type"] for event in events[:3000])) == set(EVENT_TYPES)


def test_users_apps_and_consent_vary(run: tuple[list[Event], list[dict[str, Any]]]) -> None:
    events, _ = run
    users = {event["user_id"] for event in events}
    assert len(users) > 50
    assert {event["app"]["name"] for event in events} == {"web", "vscode-extension"}
    consent = Counter(
        "missing" if "consent" not in event else str(event["consent"]["training"])
        for event in events
    )
    assert consent["True"] > 0.7 * len(events)
    assert consent["False"] > 0
    assert consent["missing"] > 0


def test_conversations_interleave(run: tuple[list[Event], list[dict[str, Any]]]) -> None:
    events, _ = run
    switches = sum(
        a["conversation_id"] != b["conversation_id"]
        for a, b in zip(events, events[1:], strict=False)
    )
    assert switches > 0.5 * len(events)
    per_conversation = Counter(event["conversation_id"] for event in events)
    assert max(per_conversation.values()) > 5  # conversations are multi-turn


def test_average_event_size_is_in_the_target_range(
    run: tuple[list[Event], list[dict[str, Any]]],
) -> None:
    events, _ = run
    sizes = [len(json.dumps(event, separators=(",", ":")).encode()) for event in events]
    assert 512 <= sum(sizes) / len(sizes) <= 1536


def test_responses_mix_prose_and_fenced_code_in_six_languages(
    run: tuple[list[Event], list[dict[str, Any]]],
) -> None:
    generations = [event for event in run[0] if event["type"] == "generation"]
    languages = Counter(
        lang for event in generations for lang in re.findall(r"```(\w+)\n", event["response"])
    )
    assert set(languages) == {"python", "javascript", "go", "sql", "json", "shell"}
    prose = [event for event in generations if "```" not in event["response"]]
    assert len(prose) > 0.2 * len(generations)
    models = Counter((e["model"]["id"], e["model"]["version"]) for e in generations)
    assert set(models) == {
        ("chat-small", "2026-06"),
        ("chat-small", "2026-09"),
        ("chat-large", "2026-09"),
    }


def test_poor_code_sometimes_does_not_parse(
    run: tuple[list[Event], list[dict[str, Any]]], quality: dict[str, float]
) -> None:
    parses: dict[bool, list[float]] = {True: [], False: []}
    for event in _originals(run[0]):
        if event["type"] != "generation":
            continue
        for code in re.findall(r"```python\n(.*?)\n```", event["response"], re.S):
            try:
                compile(code, "<simulated>", "exec")
                parses[True].append(quality[event["response_id"]])
            except SyntaxError:
                parses[False].append(quality[event["response_id"]])
    assert parses[False], "no broken code to find"
    assert len(parses[False]) < len(parses[True])
    assert max(parses[False]) < 0.4 < sum(parses[True]) / len(parses[True])


def test_prompts_carry_a_bounded_history_linked_to_kept_responses(
    run: tuple[list[Event], list[dict[str, Any]]],
) -> None:
    generations = [event for event in run[0] if event["type"] == "generation"]
    owner = {event["response_id"]: event["conversation_id"] for event in generations}
    linked = 0
    for event in generations:
        assert len(event["prompt"]) <= 7  # system message + 6
        assert event["prompt"][-1]["role"] == "user"
        for message in event["prompt"]:
            if message["role"] == "assistant":
                assert (
                    owner.get(message["response_id"], event["conversation_id"])
                    == (event["conversation_id"])
                )
                linked += 1
    assert linked > 0.3 * len(generations)


def test_copies_are_spans_of_the_response(run: tuple[list[Event], list[dict[str, Any]]]) -> None:
    events = run[0]
    responses = {e["response_id"]: e["response"] for e in events if e["type"] == "generation"}
    copies = [e for e in events if e["type"] == "copy" and e["response_id"] in responses]
    assert any(e["code_block"] for e in copies) and not all(e["code_block"] for e in copies)
    for copy in copies:
        response = responses[copy["response_id"]]
        assert copy["text"] in response
        if copy["code_block"]:
            assert f"\n{copy['text']}\n```" in response
        if "span" in copy:
            assert response[copy["span"]["start"] : copy["span"]["end"]] == copy["text"]


def test_edits_are_mostly_small_improvements(run: tuple[list[Event], list[dict[str, Any]]]) -> None:
    events = run[0]
    responses = {e["response_id"]: e["response"] for e in events if e["type"] == "generation"}
    edits = [e for e in _originals(events) if e["type"] == "edit" and e["response_id"] in responses]
    assert len(edits) > 100
    ratios = [
        SequenceMatcher(None, responses[e["response_id"]], e["edited_text"]).ratio() for e in edits
    ]
    assert all(edit["edited_text"] != responses[edit["response_id"]] for edit in edits)
    assert sum(r > 0.8 for r in ratios) > 0.7 * len(ratios)  # mostly small
    assert any(r < 0.6 for r in ratios)  # sometimes larger


def test_regenerations_produce_siblings_under_the_same_parent(
    run: tuple[list[Event], list[dict[str, Any]]],
) -> None:
    events = _originals(run[0])
    parent = {e["response_id"]: e["parent_id"] for e in events if e["type"] == "generation"}
    regenerations = [e for e in events if e["type"] == "regenerate"]
    with_new = [e for e in regenerations if "new_response_id" in e]
    assert 0.7 * len(regenerations) < len(with_new) < len(regenerations)
    checked = 0
    for event in with_new:
        if event["response_id"] in parent and event["new_response_id"] in parent:
            assert parent[event["response_id"]] == parent[event["new_response_id"]]
            checked += 1
    assert checked > 0.9 * len(with_new)
    per_replaced_parent = Counter(parent.get(e["response_id"]) for e in regenerations)
    assert max(per_replaced_parent.values()) <= 3


# --- Client misbehaviour ------------------------------------------------------------------------


def _out_of_order(events: list[Event]) -> int:
    first_generation: dict[str, int] = {}
    for index, event in enumerate(events):
        if event["type"] == "generation":
            first_generation.setdefault(event["response_id"], index)
    return sum(
        1
        for index, event in enumerate(events)
        if event["type"] in FEEDBACK and first_generation.get(event["response_id"], -1) > index
    )


def test_duplicates_and_out_of_order_events_at_roughly_the_configured_rates(
    run: tuple[list[Event], list[dict[str, Any]]],
) -> None:
    events = run[0]
    by_id: dict[str, list[Event]] = {}
    for event in events:
        by_id.setdefault(event["event_id"], []).append(event)
    duplicates = [copies for copies in by_id.values() if len(copies) > 1]
    assert 0.005 < len(duplicates) / len(events) < 0.02
    assert all(copies[0] == copies[1] for copies in duplicates)  # exact re-sends
    assert 0.01 < _out_of_order(events) / len(events) < 0.035


def test_misbehaviour_can_be_switched_off() -> None:
    config = SimulationConfig(events=3000, seed=9, duplicate_rate=0.0, out_of_order_rate=0.0)
    events = list(simulate(config))
    assert len({event["event_id"] for event in events}) == len(events)
    assert _out_of_order(events) == 0


# --- The truth ----------------------------------------------------------------------------------


def test_sibling_sets_name_the_best_response_and_cover_every_generation(
    run: tuple[list[Event], list[dict[str, Any]]],
) -> None:
    events, truth = run
    sets = [record for record in truth if record["record"] == "sibling_set"]
    for record in sets:
        best = max(record["responses"], key=lambda response: response["quality"])
        assert record["best_response_id"] == best["response_id"]
        assert all(0.0 <= response["quality"] <= 1.0 for response in record["responses"])
    in_truth = {(r["parent_id"], s["response_id"]) for r in sets for s in r["responses"]}
    emitted = {
        (event["parent_id"], event["response_id"])
        for event in events
        if event["type"] == "generation"
    }
    assert in_truth == emitted
    assert any(len(record["responses"]) > 1 for record in sets)


def test_newer_and_larger_models_are_better_on_average(
    run: tuple[list[Event], list[dict[str, Any]]],
) -> None:
    by_model: dict[tuple[str, str], list[float]] = {}
    for record in run[1]:
        if record["record"] == "sibling_set":
            for response in record["responses"]:
                model = (response["model"]["id"], response["model"]["version"])
                by_model.setdefault(model, []).append(response["quality"])
    mean = {model: sum(qs) / len(qs) for model, qs in by_model.items()}
    assert (
        mean[("chat-small", "2026-06")]
        < mean[("chat-small", "2026-09")]
        < mean[("chat-large", "2026-09")]
    )


def test_users_mostly_prefer_the_better_response(
    run: tuple[list[Event], list[dict[str, Any]]], quality: dict[str, float]
) -> None:
    choices = [e for e in _originals(run[0]) if e["type"] == "ab_choice"]
    assert {e["choice"] for e in choices} == {"a", "b", "tie", "both_bad"}
    right = total = 0
    for event in choices:
        if event["choice"] not in ("a", "b"):
            continue
        qa, qb = quality.get(event["response_a_id"]), quality.get(event["response_b_id"])
        if qa is None or qb is None:
            continue
        total += 1
        right += (qa > qb) == (event["choice"] == "a")
    assert total > 100
    assert right / total > 0.75


def test_implicit_signals_follow_quality(
    run: tuple[list[Event], list[dict[str, Any]]], quality: dict[str, float]
) -> None:
    def mean_quality(kind: str, **match: str) -> float:
        qs = [
            quality[e["response_id"]]
            for e in run[0]
            if e["type"] == kind
            and e["response_id"] in quality
            and all(e.get(k) == v for k, v in match.items())
        ]
        return sum(qs) / len(qs)

    assert mean_quality("regenerate") < mean_quality("edit") < mean_quality("copy")
    assert mean_quality("rating", value="down") < mean_quality("rating", value="up")


def test_planted_values_appear_at_the_recorded_field(
    run: tuple[list[Event], list[dict[str, Any]]],
) -> None:
    events, truth = run
    by_id = {event["event_id"]: event for event in events}
    planted = [record for record in truth if record["record"] == "planted"]
    for record in planted:
        event = by_id[record["event_id"]]
        assert record["value"] in _field(event, record["field"])
        assert record["conversation_id"] == event["conversation_id"]
    kinds = {record["kind"] for record in planted}
    assert kinds == {
        "email", "phone", "ipv4", "credit_card", "aws_access_key", "github_token",
        "slack_token", "password_in_url", "api_key",
    }  # fmt: skip
    assert any(r["field"] == "response" for r in planted)
    assert any(r["field"].startswith("prompt[") for r in planted)
    share = len({record["event_id"] for record in planted}) / len(events)
    assert 0.015 < share < 0.08


def test_planted_values_have_realistic_shapes(
    run: tuple[list[Event], list[dict[str, Any]]],
) -> None:
    shapes = {
        "aws_access_key": r"AKIA[A-Z0-9]{16}",
        "github_token": r"ghp_[A-Za-z0-9]{36}",
        "slack_token": r"xoxb-\d+-\d+-[A-Za-z0-9]+",
        "email": r"[\w.]+@[\w.-]+\.\w+",
        "ipv4": r"(\d{1,3}\.){3}\d{1,3}",
        "api_key": r"[A-Za-z0-9]{32}",
    }
    for record in run[1]:
        if record["record"] != "planted":
            continue
        if record["kind"] in shapes:
            assert re.fullmatch(shapes[record["kind"]], record["value"]), record["kind"]
        if record["kind"] == "credit_card":
            assert _luhn_ok(record["value"])
        if record["kind"] == "password_in_url":
            event_texts = json.dumps([e for e in run[0] if e["event_id"] == record["event_id"]])
            assert re.search(r"postgres://\w+:" + re.escape(record["value"]) + "@", event_texts)


def test_no_pii_when_the_rate_is_zero() -> None:
    simulation = simulate(SimulationConfig(events=2000, seed=3, pii_rate=0.0))
    list(simulation)
    assert not [record for record in simulation.truth if record["record"] == "planted"]


# --- Batches and posting --------------------------------------------------------------------------


def test_iter_batches_groups_and_keeps_the_remainder() -> None:
    events = [{"n": i} for i in range(7)]
    assert [len(batch) for batch in iter_batches(events, 3)] == [3, 3, 1]
    assert [event for batch in iter_batches(events, 3) for event in batch] == events
    with pytest.raises(ValueError):
        list(iter_batches(events, 0))


def _client(handler: Any) -> httpx.Client:
    return httpx.Client(transport=httpx.MockTransport(handler))


def test_post_events_sends_authorised_batches() -> None:
    seen: list[list[Event]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.method == "POST"
        assert str(request.url) == "http://api.test/v1/events?partial=true"
        assert request.headers["Authorization"] == "Bearer write-key-0123456789"
        seen.append(json.loads(request.content)["events"])
        return httpx.Response(202, json={"accepted": len(seen[-1])})

    progress: list[int] = []
    events = list(simulate(SimulationConfig(events=250, seed=1)))
    with _client(handler) as client:
        summary = post_events(
            events, url="http://api.test/v1/events", key="write-key-0123456789",
            client=client, on_batch=progress.append,
        )  # fmt: skip
    assert [len(batch) for batch in seen] == [100, 100, 50]
    assert [event for batch in seen for event in batch] == events
    assert progress == [100, 100, 50]
    assert isinstance(summary, PostSummary)
    assert (summary.batches, summary.events, summary.accepted, summary.retries) == (3, 250, 250, 0)
    assert summary.seconds >= 0


def test_post_events_resends_a_batch_after_503() -> None:
    attempts: list[list[str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        attempts.append([event["event_id"] for event in json.loads(request.content)["events"]])
        if len(attempts) == 1:
            return httpx.Response(503, headers={"Retry-After": "0"})
        return httpx.Response(202)

    with _client(handler) as client:
        summary = post_events(
            simulate(SimulationConfig(events=30, seed=2)), url="http://api.test/v1/events",
            key="k" * 20, batch_size=10, client=client,
        )  # fmt: skip
    assert attempts[0] == attempts[1]  # the same batch again
    assert len(attempts) == 4
    assert (summary.batches, summary.accepted, summary.retries) == (3, 30, 1)


def test_post_events_gives_up_after_max_retries() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, headers={"Retry-After": "0"})

    with _client(handler) as client, pytest.raises(SimulatorPostError) as caught:
        post_events(
            simulate(SimulationConfig(events=5, seed=2)), url="http://api.test/v1/events",
            key="k" * 20, client=client, max_retries=2,
        )  # fmt: skip
    assert "503" in str(caught.value)
    assert caught.value.status_code == 503


def test_post_events_raises_on_a_refused_batch_without_echoing_event_text() -> None:
    events = list(simulate(SimulationConfig(events=25, seed=6)))
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls == 2:
            return httpx.Response(422, json={"detail": [{"path": "prompt[0].content"}]})
        return httpx.Response(202)

    with _client(handler) as client, pytest.raises(SimulatorPostError) as caught:
        post_events(events, url="http://api.test/v1/events", key="k" * 20, batch_size=10,
                    client=client)  # fmt: skip
    error = caught.value
    assert isinstance(error, FlywheelError)
    assert (error.status_code, error.batch_index) == (422, 1)
    message = str(error)
    assert "422" in message and "batch 1" in message
    texts = [e.get("response") or e.get("text") or e.get("edited_text") for e in events]
    assert not any(text and text[:40] in message for text in texts)
    assert calls == 2  # nothing after the refused batch


def test_post_events_treats_other_success_codes_as_a_wrong_url() -> None:
    with _client(lambda request: httpx.Response(200, text="<html>")) as client:
        with pytest.raises(SimulatorPostError, match="HTTP 200"):
            post_events([{"n": 1}], url="http://api.test/", key="k" * 20, client=client)


def test_post_events_retries_network_errors_then_names_the_url() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        raise httpx.ConnectError("connection refused", request=request)

    with _client(handler) as client, pytest.raises(SimulatorPostError) as caught:
        post_events(
            [{"n": 1}], url="http://api.test/v1/events", key="k" * 20, client=client, max_retries=1
        )
    assert calls == 2
    assert caught.value.status_code is None
    assert "http://api.test/v1/events" in str(caught.value)


def test_simulation_is_an_iterable_of_dicts() -> None:
    simulation = Simulation(SimulationConfig(events=3))
    assert all(isinstance(event, dict) for event in simulation)
