"""The web console in a real headless Chromium against ``flywheel serve`` (a process of its own) on
a data dir with simulated traffic, its warehouse and two published versions: an admin logs in,
visits every page, filters the pairs, opens a pair from its row, compares the versions and logs
out; no page logs a console error, no request fails, nothing is asked of another origin. Without
the key, nothing but the login page is reached."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, Request, Response

from tests.factories import WRITE_KEY
from tests.helpers.console import ADMIN_KEY, PAGES
from tests.helpers.server import served


@pytest.fixture(scope="module")
def console_url(console_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``flywheel serve`` (embedded mode) on the console's data dir, with an admin key."""
    env = {
        "FLYWHEEL_DATA_DIR": str(console_data),
        "FLYWHEEL_PRIVACY__HMAC_KEY_FILE": str(console_data.parent / "keys.json"),
        "FLYWHEEL_API__WRITE_KEYS": json.dumps([WRITE_KEY]),
        "FLYWHEEL_API__ADMIN_KEYS": json.dumps([ADMIN_KEY]),
    }
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    with served(log, env) as url:
        yield url
    assert ADMIN_KEY not in log.read_text()


@dataclass
class Watched:
    """What went wrong in a browser context: console errors, uncaught exceptions, failed
    requests, answers of 400 and more, and requests to another origin."""

    origin: str
    errors: list[str] = field(default_factory=list)

    def console(self, message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            self.errors.append(f"console {message.type}: {message.text}")

    def failed(self, request: Request) -> None:
        # A load the browser itself cancelled because the page navigated on (the icon, say) is
        # not a failure of the server's.
        if request.failure != "net::ERR_ABORTED":
            self.errors.append(f"failed: {request.url} {request.failure}")

    def answered(self, response: Response) -> None:
        if response.status >= 400:
            self.errors.append(f"{response.status}: {response.url}")

    def requested(self, request: Request) -> None:
        if not request.url.startswith(self.origin + "/"):
            self.errors.append(f"another origin: {request.url}")


def watched(context: BrowserContext, origin: str) -> tuple[Page, Watched]:
    found = Watched(origin)
    page = context.new_page()
    page.on("console", found.console)
    page.on("pageerror", lambda error: found.errors.append(f"uncaught: {error}"))
    page.on("requestfailed", found.failed)
    page.on("response", found.answered)
    page.on("request", found.requested)
    return page, found


def log_in(page: Page, url: str) -> None:
    page.goto(f"{url}/console/")
    assert page.url.startswith(f"{url}/console/login?next=")
    page.fill("#key", ADMIN_KEY)
    page.click("button[type=submit]")
    page.wait_for_url(f"{url}/console/")


def test_an_admin_visits_every_page_without_a_console_error_or_a_failed_request(
    browser: Browser, console_url: str
) -> None:
    context = browser.new_context()
    page, found = watched(context, console_url)
    log_in(page, console_url)
    assert page.locator("h1").inner_text() == "Overview"
    assert page.locator("svg.chart").count() >= 2

    for path in PAGES:
        page.goto(console_url + path)
        assert page.locator("h1").count() == 1, path
        assert "Busy" not in page.title() and "No warehouse" not in page.title(), path

    # The navigation's entries, the review queues and the calibration among them.
    labels = page.locator("header nav a").all_inner_texts()
    assert labels == ["Overview", "Signals", "Pairs", "Datasets", "Review", "Calibration"]

    # A filter chosen from a list applies at once (console.js); a row opens its pair.
    page.goto(f"{console_url}/console/pairs")
    with page.expect_navigation():
        page.select_option("select[name=signal]", "copy")
    assert "signal=copy" in page.url
    first_row = page.locator("tr[data-href]").first
    with page.expect_navigation():
        first_row.locator("td").nth(2).click()
    assert "/console/pairs/" in page.url
    assert page.locator("pre.text").count() == 2
    assert page.locator("h2", has_text="Lineage").count() == 1

    page.goto(f"{console_url}/console/datasets")
    with page.expect_navigation():
        page.click("text=compare the last two versions")
    assert page.locator("table.data tbody tr").count() >= 4

    with page.expect_navigation():
        page.click("text=Log out")
    assert page.url.startswith(f"{console_url}/console/login")
    page.goto(f"{console_url}/console/signals")
    assert page.url.startswith(f"{console_url}/console/login?next=")
    context.close()
    assert found.errors == []


def test_without_the_key_only_the_login_page_is_reached(browser: Browser, console_url: str) -> None:
    context = browser.new_context()
    page, found = watched(context, console_url)
    for path in PAGES:
        page.goto(console_url + path)
        assert page.url.startswith(f"{console_url}/console/login?next="), path
        assert page.locator("#key").count() == 1
    assert found.errors == []
    data = context.request.get(f"{console_url}/console/data/overview.json")
    assert data.status == 401

    page.fill("#key", "not-the-admin-key-0123456789")
    page.click("button[type=submit]")
    page.wait_for_load_state()
    assert page.locator(".error").inner_text() == "That is not an admin key."
    assert context.cookies() == []
    # A write key is no admin key either.
    page.fill("#key", WRITE_KEY)
    page.click("button[type=submit]")
    page.wait_for_load_state()
    assert context.cookies() == []
    page.goto(f"{console_url}/console/pairs")
    assert page.url.startswith(f"{console_url}/console/login?next=")
    context.close()


@pytest.fixture(scope="module")
def review_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``flywheel serve`` on a warehouse with pairs and a review queue, with an admin key and
    two reviewer keys."""
    from review import service
    from tests.helpers.review import REVIEWERS, build_warehouse, review_settings

    data_dir = tmp_path_factory.mktemp("review") / "data"
    build_warehouse(data_dir)
    settings = review_settings(data_dir)
    service.create_queue(settings, queue_id="week-1", seed=5, per_stratum=3)
    env = {
        "FLYWHEEL_DATA_DIR": str(data_dir),
        "FLYWHEEL_PRIVACY__HMAC_KEY_FILE": str(settings.privacy.hmac_key_file),
        "FLYWHEEL_API__WRITE_KEYS": json.dumps([WRITE_KEY]),
        "FLYWHEEL_API__ADMIN_KEYS": json.dumps([ADMIN_KEY]),
        "FLYWHEEL_API__REVIEWER_KEYS": json.dumps(
            [{"key": k, "reviewer": r} for k, r in REVIEWERS.items()]
        ),
    }
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    with served(log, env) as url:
        yield url
    logged = log.read_text()
    assert all(key not in logged and who not in logged for key, who in REVIEWERS.items())


def log_in_with(page: Page, url: str, key: str, landing: str) -> None:
    page.goto(f"{url}/console/login")
    page.fill("#key", key)
    page.click("button[type=submit]")
    page.wait_for_url(f"{url}/console{landing}")


def calibration(page: Page, url: str) -> tuple[str, str]:
    """The calibration page's precision table and suggested weights with their diff."""
    page.goto(f"{url}/console/calibration")
    weights = page.locator("#weights").inner_text() + page.locator("#policy-diff").inner_text()
    return page.locator("#precision").inner_text(), weights


def test_a_reviewer_judges_pairs_by_keyboard_and_mouse_and_the_calibration_follows(
    browser: Browser, review_url: str
) -> None:
    from tests.helpers.review import ANA_KEY

    admin_context = browser.new_context()
    admin, admin_found = watched(admin_context, review_url)
    admin.goto(f"{review_url}/console/")
    admin.fill("#key", ADMIN_KEY)
    admin.click("button[type=submit]")
    admin.wait_for_url(f"{review_url}/console/")
    for path in ("/", "/signals", "/pairs", "/datasets", "/review"):
        admin.goto(f"{review_url}/console{path}")
        assert admin.locator("h1").count() == 1, path
    precision_before, weights_before = calibration(admin, review_url)
    assert "No review yet." in precision_before
    # The admin samples a second queue with the queues page's form, by mouse.
    admin.goto(f"{review_url}/console/review")
    admin.fill("#new-queue input[name=queue_id]", "week-2")
    admin.select_option("#new-queue select[name=kind]", "label")
    admin.fill("#new-queue input[name=per_stratum]", "1")
    with admin.expect_navigation():
        admin.click("#new-queue button[type=submit]")
    assert admin.locator("#queue-created").inner_text() == "Queue week-2 sampled."
    assert "week-2\tlabels" in admin.locator("#queues").inner_text()

    context = browser.new_context()
    page, found = watched(context, review_url)
    log_in_with(page, review_url, ANA_KEY, "/review")
    assert page.locator("header nav a").all_inner_texts() == ["Review"]
    with page.expect_navigation():
        page.click("text=week-1")
    assert page.locator("form[data-review]").count() == 1, page.locator("main").inner_text()
    judged = 0
    while page.locator("#queue-done").count() == 0:
        item = page.locator("input[name=item_id]").get_attribute("value")
        if judged % 2 == 0:
            # By keyboard: the verdict, then to the scores, a digit and Tab each, Enter.
            page.keyboard.press("ArrowRight" if judged % 4 == 0 else "2")
            assert page.locator("input[data-verdict=right]").is_checked()
            page.keyboard.press("s")
            scores = page.locator("input[data-score]")
            for i in range(scores.count()):
                page.keyboard.press("2" if i < scores.count() // 2 else "5")
                if i < scores.count() - 1:
                    page.keyboard.press("Tab")
            with page.expect_navigation():
                page.keyboard.press("Enter")
        else:
            # By mouse: a click on the verdict, the scores typed in, a click on submit.
            page.click("label:has(input[data-verdict=left])")
            for score in page.locator("input[data-score]").all():
                score.click()
                score.fill("3")
            with page.expect_navigation():
                page.click("form[data-review] button[type=submit]")
        assert page.locator("#review-errors").count() == 0, page.locator("main").inner_text()
        assert page.locator(".saved").count() == 1
        if page.locator("#queue-done").count() == 0:
            assert page.locator("input[name=item_id]").get_attribute("value") != item
        judged += 1
        assert judged <= 20
    assert judged >= 4

    precision_after, weights_after = calibration(admin, review_url)
    assert "No review yet." not in precision_after
    assert admin.locator("svg.chart").count() == 1
    assert precision_after != precision_before
    assert weights_after != weights_before
    # One queue's calibration: week-1 holds every review, week-2 none.
    for queue, expected in (("week-1", precision_after), ("week-2", precision_before)):
        admin.select_option("#queue-filter select[name=queue]", queue)
        with admin.expect_navigation():
            admin.click("#queue-filter button[type=submit]")
        assert admin.locator("#precision").inner_text() == expected, queue

    # A label of week-2 by keyboard: good, then the answer's scores, Enter.
    page.goto(f"{review_url}/console/review/week-2")
    assert page.locator("form[data-review=label] pre.text").count() == 1
    page.keyboard.press("g")
    assert page.locator("input[data-verdict=good]").is_checked()
    page.keyboard.press("s")
    scores = page.locator("input[data-score]")
    for i in range(scores.count()):
        page.keyboard.press("4")
        if i < scores.count() - 1:
            page.keyboard.press("Tab")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.locator(".saved").count() == 1, page.locator("main").inner_text()

    # A reviewer may not open the calibration; without a session, only the login page.
    assert context.request.get(f"{review_url}/console/calibration").status == 403
    stranger, _ = watched(browser.new_context(), review_url)
    stranger.goto(f"{review_url}/console/review/week-1")
    assert stranger.url.startswith(f"{review_url}/console/login?next=")
    context.close()
    admin_context.close()
    assert found.errors == []
    assert admin_found.errors == []
