"""The browser tracker package (clients/js): its own tests, its types against the contract the
API serves, and the package posting to the real API over HTTP."""

from __future__ import annotations

import difflib
import json
import re
import uuid
from pathlib import Path

from api.server import running_api
from api.sink import MemorySink
from flywheel.settings import load_settings
from tests.factories import WRITE_KEY
from tests.helpers import jsclient

HERE = Path(__file__).parent


def test_the_packages_own_tests_pass(js_package: Path) -> None:
    output = jsclient.run("npm", "test")
    passed = re.search(r"^ℹ pass (\d+)$", output, re.MULTILINE)
    assert passed and int(passed.group(1)) > 50, output[-2000:]
    assert re.search(r"^ℹ fail 0$", output, re.MULTILINE), output[-2000:]


def test_the_checked_in_event_types_match_the_contract_the_api_serves(
    js_package: Path, tmp_path: Path
) -> None:
    generated = tmp_path / "contract.ts"
    with running_api(load_settings(api={"write_keys": [WRITE_KEY]}), MemorySink()) as url:
        jsclient.run(
            "node", "scripts/generate-types.mjs", f"{url}/v1/schema", "--out", str(generated)
        )
    checked_in = (js_package / "src" / "contract.ts").read_text()
    diff = "".join(
        difflib.unified_diff(
            checked_in.splitlines(keepends=True),
            generated.read_text().splitlines(keepends=True),
            "clients/js/src/contract.ts",
            "generated from GET /v1/schema",
        )
    )
    assert not diff, f"the contract changed: run `npm run generate:types` in clients/js\n{diff}"


def test_a_backend_sends_every_event_type_and_learns_which_event_was_refused(
    js_package: Path,
) -> None:
    sink = MemorySink()
    with running_api(load_settings(api={"write_keys": [WRITE_KEY]}), sink) as url:
        output = jsclient.run(
            "node", str(HERE / "send_events.mjs"), str(js_package), url, WRITE_KEY
        )
    result = json.loads(output)
    stored = [json.loads(event.value) for event in sink.events]
    assert [event["event_id"] for event in stored] == result["ids"]
    assert [event["type"] for event in stored] == [
        "generation", "copy", "edit", "regenerate", "ab_choice", "rating",
    ]  # fmt: skip
    assert all(uuid.UUID(event_id).version == 4 for event_id in result["ids"])
    assert stored[1]["span"] == {"start": 4, "end": 16} and stored[1]["code_block"] is True
    assert stored[0]["consent"] == {"training": True, "policy_version": "2026-01"}
    assert result["pending"] == 0
    [dropped] = result["dropped"]
    assert dropped["reason"] == "rejected"
    assert dropped["events"][0]["event_id"] == result["refused"]
    assert [error["path"] for error in dropped["events"][0]["errors"]] == ["value"]
