"""Embedded mode with real processes over real HTTP: two ``flywheel serve`` on one data dir;
events with metadata, content parts and tool calls under a configured text limit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import polars as pl

from flywheel.net import free_port
from ingest.embedded import EMBEDDED_TOPIC
from privacy.keys import create_keyring
from tests.factories import WRITE_KEY, make_event
from warehouse.lake import Lake


def serve(data_dir: Path, key_file: Path, **settings: str) -> tuple[subprocess.Popen[str], str]:
    """``flywheel serve`` on a free port, with ``settings`` as more environment variables."""
    port = free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FLYWHEEL_")}
    env = {
        **clean, "COLUMNS": "200", "FLYWHEEL_DATA_DIR": str(data_dir),
        "FLYWHEEL_API__WRITE_KEYS": json.dumps([WRITE_KEY]),
        "FLYWHEEL_PRIVACY__HMAC_KEY_FILE": str(key_file), **settings,
    }  # fmt: skip
    process = subprocess.Popen(
        [sys.executable, "-m", "flywheel", "serve", "--port", str(port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    return process, f"http://127.0.0.1:{port}"


def serving_or_exited(process: subprocess.Popen[str], url: str) -> bool:
    """Wait until the server answers /healthz (True) or its process ended (False)."""
    deadline = time.monotonic() + 60
    while process.poll() is None:
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return True
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "the server neither served nor exited in 60 s"
        time.sleep(0.1)
    return False


def test_a_second_embedded_server_on_one_data_dir_is_refused_and_nothing_acknowledged_is_lost(
    tmp_path: Path,
) -> None:
    data_dir, key_file = tmp_path / "data", tmp_path / "keys.json"
    create_keyring(key_file)
    first, first_url = serve(data_dir, key_file)
    second = None
    stderr: dict[int, str] = {}
    try:
        assert serving_or_exited(first, first_url)
        second, second_url = serve(data_dir, key_file)
        live = [url for p, url in [(second, second_url)] if serving_or_exited(p, url)]
        acknowledged: list[str] = []

        def client(url: str) -> None:
            headers = {"Authorization": f"Bearer {WRITE_KEY}"}
            with httpx.Client(base_url=url, headers=headers, timeout=60) as http:
                for _ in range(20):
                    event = make_event()
                    if http.post("/v1/events", json=event).status_code == 202:
                        acknowledged.append(event["event_id"])

        # Concurrent clients on every server that serves: with two, both number files from
        # the same sequence and overwrite each other's.
        threads = [
            threading.Thread(target=client, args=(url,))
            for url in [first_url, *live]
            for _ in range(6)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        for process in (first, second):
            if process is not None:
                process.terminate()
                stderr[process.pid] = process.communicate(timeout=30)[1]

    assert len(acknowledged) == 120 * (1 + len(live))
    lake = Lake.in_data_dir(data_dir)
    paths = [f.path for f in lake.partition_files(EMBEDDED_TOPIC, 0)]
    stored = pl.read_parquet(paths)["event_id"].to_list()
    assert sorted(stored) == sorted(acknowledged)  # every acknowledged event, once
    assert len(paths) < len(acknowledged)  # concurrent requests shared files

    assert second is not None and second.returncode == 3  # a configuration error
    lines = [line for line in stderr[second.pid].splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), lines
    assert "already served in embedded mode" in lines[0]


def test_metadata_content_parts_and_tool_calls_over_http_under_a_configured_text_limit(
    tmp_path: Path,
) -> None:
    data_dir, key_file = tmp_path / "data", tmp_path / "keys.json"
    create_keyring(key_file)
    server, url = serve(data_dir, key_file, FLYWHEEL_CONTRACT__MAX_TEXT_CHARS="2000")
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "send_mail", "arguments": '{"to": "jane.doe@example.com"}'},
    }
    prompt = [
        {"role": "user", "content": [
            {"type": "text", "text": "Mail her"},
            {"type": "image_url", "image_url": {"url": "https://a.example/b.png"}},
        ]},
        {"role": "assistant", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sent"},
    ]  # fmt: skip
    metadata = {"experiment": "exp-7", "owner": "jane.doe@example.com"}
    dressed = make_event("generation", metadata=metadata, prompt=prompt)
    try:
        assert serving_or_exited(server, url)
        headers = {"Authorization": f"Bearer {WRITE_KEY}"}
        with httpx.Client(base_url=url, headers=headers, timeout=60) as http:
            schema = http.get("/v1/schema").json()
            assert schema["$defs"]["EditEvent"]["properties"]["edited_text"]["maxLength"] == 2000
            assert "metadata" in schema["$defs"]["RatingEvent"]["properties"]
            assert http.post("/v1/events", json=dressed).status_code == 202
            refused = [
                (make_event("edit", edited_text="x" * 2001), "edited_text", "string_too_long"),
                (make_event("rating", metadata={"ab": {"arm": "b"}}), "metadata.ab",
                 "metadata_value_type"),
                (make_event("generation", prompt=[{"role": "user", "content": [{"type": "file"}]}]),
                 "prompt[0].content[0]", "content_part_type"),
            ]  # fmt: skip
            for event, path, kind in refused:
                answer = http.post("/v1/events", json=event)
                assert answer.status_code == 422
                [error] = answer.json()["errors"]
                assert (error["path"], error["type"]) == (path, kind)
            assert (
                http.post("/v1/events", json=make_event("edit", edited_text="x" * 2000)).status_code
                == 202
            )
    finally:
        server.terminate()
        server.communicate(timeout=30)

    lake = Lake.in_data_dir(data_dir)
    landed = pl.read_parquet([f.path for f in lake.partition_files(EMBEDDED_TOPIC, 0)])
    row = landed.filter(pl.col("event_id") == dressed["event_id"]).to_dicts()[0]
    assert json.loads(row["metadata"]) == {"experiment": "exp-7", "owner": "<EMAIL>"}
    user, assistant, _ = row["prompt_structure"]
    assert user["parts"][1]["image_url"] == "https://a.example/b.png"
    assert assistant["tool_calls"][0]["arguments"] == '{"to": "<EMAIL>"}'
    assert landed.height == 2
