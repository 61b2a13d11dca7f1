"""The browser tracker in a real headless Chromium against the real API: a chat page served from an
origin of its own loads the built bundle with a publishable key bound to that origin, a user
copies, edits, regenerates, chooses and rates, the network goes away and comes back across a
reload, and the page closes right after a last copy. ``flywheel serve`` (embedded mode) lands
every event in a real lake, which the test reads back."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import polars as pl
import pytest
from playwright.sync_api import Browser, Page, Request

from ingest.embedded import EMBEDDED_TOPIC
from privacy.keys import create_keyring
from tests.factories import WRITE_KEY, make_event
from tests.helpers import jsclient
from tests.helpers.browser import static_site
from tests.helpers.metrics import samples
from tests.helpers.proxy import CuttableProxy
from tests.helpers.server import served
from warehouse.lake import Lake

PAGE = Path(__file__).parent / "browser" / "chat.html"
PUBLISHABLE_KEY = "pk_test_browser_0123456789"
USER = "user-browser-1"
"""The page's user: raw in the browser, never in the lake."""
CONVERSATION = "conv-browser-1"

RESPONSES = {
    "resp-1": "Use a slice that steps backwards:\n\n```python\nreversed_xs = xs[::-1]\n```\n\n"
    "It returns a new list and leaves xs as it was.",
    "resp-2": "Call `xs.reverse()` to reverse the list in place.",
}
"""The backend's two answers to one question (Markdown; the page shows them rendered)."""

EXPERIMENT = {"experiment": "exp-7"}
"""The metadata the page gives the tracker for every event."""


@dataclass(frozen=True)
class Stack:
    """The API as the backend reaches it, and the page's URL, whose API is behind ``proxy``."""

    api: str
    page: str
    proxy: CuttableProxy
    data_dir: Path


@pytest.fixture
def stack(js_package: Path, tmp_path: Path) -> Iterator[Stack]:
    """``flywheel serve`` in embedded mode on a data dir of its own, with a write key for the
    backend and a publishable key bound to the chat page's origin; the page on another origin."""
    data_dir, key_file = tmp_path / "data", tmp_path / "keys.json"
    create_keyring(key_file)
    with static_site({"chat.html": PAGE, "tracker.min.js": jsclient.BUNDLE}) as site:
        env = {
            "FLYWHEEL_DATA_DIR": str(data_dir),
            "FLYWHEEL_PRIVACY__HMAC_KEY_FILE": str(key_file),
            "FLYWHEEL_API__WRITE_KEYS": json.dumps([WRITE_KEY]),
            "FLYWHEEL_API__PUBLISHABLE_KEYS": json.dumps(
                [{"key": PUBLISHABLE_KEY, "origins": [site]}]
            ),
        }
        with served(tmp_path / "serve.log", env) as api:
            port = int(api.rsplit(":", 1)[1])
            with closing(CuttableProxy(("127.0.0.1", port))) as proxy:
                query = urlencode({"endpoint": proxy.url, "key": PUBLISHABLE_KEY})
                yield Stack(api, f"{site}/chat.html?{query}", proxy, data_dir)


def landed(data_dir: Path) -> pl.DataFrame:
    """Every event in the lake, as landed (one row per landed event)."""
    lake = Lake.in_data_dir(data_dir)
    frames = [lake.read_frame(f) for f in lake.partition_files(EMBEDDED_TOPIC, 0)]
    return pl.concat(frames) if frames else pl.DataFrame()


def wait_landed(data_dir: Path, count: int, timeout: float = 30) -> pl.DataFrame:
    """The lake once it holds ``count`` events; fails after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while len(frame := landed(data_dir)) < count:
        assert time.monotonic() < deadline, f"{len(frame)} events landed, not {count}"
        time.sleep(0.1)
    return frame


def select_and_copy(page: Page, response_id: str, text: str) -> None:
    """Selects ``text`` in a response, as a user drags over it, and presses Ctrl+C: the browser
    copies the selection and fires its ``copy`` event."""
    page.evaluate(
        """([responseId, text]) => {
            const response = document.querySelector(`[data-flywheel-response="${responseId}"]`);
            const walker = document.createTreeWalker(response, NodeFilter.SHOW_TEXT);
            while (walker.nextNode() && !walker.currentNode.data.includes(text));
            const node = walker.currentNode, start = node.data.indexOf(text);
            const range = document.createRange();
            range.setStart(node, start);
            range.setEnd(node, start + text.length);
            getSelection().removeAllRanges();
            getSelection().addRange(range);
        }""",
        [response_id, text],
    )
    page.keyboard.press("Control+C")


def open_chat(page: Page, url: str) -> None:
    """Opens the chat page and waits for its tracker."""
    page.goto(url)
    page.wait_for_function("window.tracker !== undefined")


def failed_send(request: Request) -> bool:
    """A send of events that got no answer (the network is down)."""
    return "/v1/events" in request.url


def test_every_event_of_a_chat_page_lands_once_across_going_offline_a_reload_and_its_closing(
    browser: Browser, stack: Stack
) -> None:
    # The backend shows two answers to one message (regenerations are siblings) and posts them
    # with its write key: they carry the prompt, which a page's key may not post.
    generations = [
        make_event(
            "generation",
            response_id=response_id,
            parent_id="msg-1",
            response=text,
            conversation_id=CONVERSATION,
            user_id=USER,
            consent={"training": True, "policy_version": "2026-01"},
            prompt=[{"role": "user", "content": "How do I reverse a list in Python?"}],
            metadata={**EXPERIMENT, "prompt_version": "v3"},
        )
        for response_id, text in RESPONSES.items()
    ]
    answer = httpx.post(
        f"{stack.api}/v1/events", json={"events": generations},
        headers={"Authorization": f"Bearer {WRITE_KEY}"},
    )  # fmt: skip
    assert answer.status_code == 202, answer.text

    context = browser.new_context()
    page = context.new_page()
    open_chat(page, stack.page)
    rendered = {
        response_id: page.locator(f'[data-flywheel-response="{response_id}"]').text_content()
        for response_id in RESPONSES
    }

    # Online: one of each kind, auto-captured but the edit, which its widget records.
    select_and_copy(page, "resp-1", "xs[::-1]")
    resp_1 = page.locator('[data-flywheel-response="resp-1"]')
    resp_1.locator("textarea").fill("Use xs[::-1]; it returns a new list.")
    resp_1.get_by_role("button", name="Save edit").click()
    resp_1.get_by_role("button", name="Regenerate").click()
    page.get_by_role("button", name="Right is better").click()
    page.locator('[data-flywheel-response="resp-2"] [data-flywheel-rating="up"]').click()
    wait_landed(stack.data_dir, 7)

    # Offline. Chromium's offline emulation holds back the page's requests but not the
    # keepalive request of a page being unloaded, so the API is cut off as well, as a real
    # network loss would cut it: nothing sent from here on reaches it.
    stack.proxy.cut()
    context.set_offline(True)
    with page.expect_event("requestfailed", failed_send):
        resp_1.locator('[data-flywheel-rating="down"]').click()
        select_and_copy(page, "resp-2", "reverse the list in place")
    assert page.evaluate("window.dropped") == []
    # The page again, still offline: it comes from the browser's cache (page.reload() would ask
    # the server again). It takes over the events the last one left stored, and tries them.
    with page.expect_event("requestfailed", failed_send):
        open_chat(page, stack.page)
    assert len(landed(stack.data_dir)) == 7
    stack.proxy.restore()
    context.set_offline(False)  # the page's `online` event: it sends at once
    wait_landed(stack.data_dir, 9)

    # A last copy, and the page closes before its batch was due: its pagehide send carries it.
    select_and_copy(page, "resp-1", "returns a new list")
    assert page.evaluate("window.dropped") == []
    page.close()
    frame = wait_landed(stack.data_dir, 10)
    context.close()

    rows = frame.to_dicts()
    assert frame["event_id"].n_unique() == len(rows) == 10
    assert sorted(_summary(row) for row in rows) == sorted([
        ("generation", "resp-1", RESPONSES["resp-1"]),
        ("generation", "resp-2", RESPONSES["resp-2"]),
        ("copy", "resp-1", "xs[::-1]"),
        ("edit", "resp-1", "Use xs[::-1]; it returns a new list."),
        ("regenerate", "resp-1", None),
        ("ab_choice", None, "b"),
        ("rating", "resp-2", "up"),
        ("rating", "resp-1", "down"),
        ("copy", "resp-2", "reverse the list in place"),
        ("copy", "resp-1", "returns a new list"),
    ])  # fmt: skip

    copies = [row for row in rows if row["type"] == "copy"]
    for row in copies:  # the span locates the copied text in the response as rendered
        shown = rendered[row["response_id"]]
        assert shown[row["copy_span_start"] : row["copy_span_end"]] == row["copy_text"]
        assert row["copy_text"] in RESPONSES[row["response_id"]]
    assert {row["copy_text"]: row["code_block"] for row in copies} == {
        "xs[::-1]": True, "reverse the list in place": False, "returns a new list": False,
    }  # fmt: skip
    [choice] = [row for row in rows if row["type"] == "ab_choice"]
    assert (choice["response_a_id"], choice["response_b_id"]) == ("resp-1", "resp-2")

    from_page = [row for row in rows if row["type"] != "generation"]
    assert {row["app_name"] for row in from_page} == {"web"}
    assert {row["conversation_id"] for row in rows} == {CONVERSATION}
    assert {row["consent_policy_version"] for row in rows} == {"2026-01"}
    assert {
        row["type"]: json.loads(row["metadata"]) for row in from_page if row["type"] != "copy"
    } | {"copy": json.loads(copies[0]["metadata"])} == {
        "copy": EXPERIMENT, "regenerate": EXPERIMENT, "ab_choice": EXPERIMENT,
        "rating": EXPERIMENT, "edit": {**EXPERIMENT, "prompt_version": "v3"},
    }  # fmt: skip
    # Pseudonymised: one user, never by the raw id the page knew.
    assert len({row["user_pseudonym"] for row in rows}) == 1
    assert USER not in json.dumps(rows, default=str)

    # The closing page's send went to the beacon route, and nothing of the offline spell did.
    metrics = samples(httpx.get(f"{stack.api}/metrics").text)
    beacon = ("method", "POST"), ("route", "/v1/beacon"), ("status", "202")
    assert metrics.get(("flywheel_api_requests_total", beacon)) == 1


def _summary(row: dict[str, Any]) -> tuple[str, str | None, str | None]:
    """An event as (type, response, what the user did)."""
    what: dict[str, Callable[[dict[str, Any]], str | None]] = {
        "generation": lambda r: r["response"],
        "copy": lambda r: r["copy_text"],
        "edit": lambda r: r["edited_text"],
        "regenerate": lambda r: r["new_response_id"],
        "ab_choice": lambda r: r["choice"],
        "rating": lambda r: r["rating_value"],
    }
    return row["type"], row["response_id"], what[row["type"]](row)
