"""The console's extension point, where the review queues plug in: a page with an entry in the
navigation, shown only once given, and reviewer keys that see only the pages for reviewers."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.testclient import TestClient

from api.main import create_app
from api.sink import MemorySink
from console.app import REVIEW, ConsoleExtension, create_console, require_session
from flywheel.settings import Settings
from tests.factories import WRITE_KEY
from tests.helpers.console import ADMIN_KEY

REVIEWER_KEY = "console-reviewer-key-0123456789"


def review_extension() -> ConsoleExtension:
    router = APIRouter()

    @router.get("/review", response_class=HTMLResponse)
    async def review(request: Request) -> str:
        require_session(request, roles=("admin", "reviewer"))
        return "<!doctype html><title>Review</title><h1>Review</h1>"

    return ConsoleExtension(nav=REVIEW, router=router)


def console_client(tmp_path: Path, *extensions: ConsoleExtension) -> TestClient:
    settings = Settings(data_dir=tmp_path / "data", api={"admin_keys": [ADMIN_KEY]})
    app = FastAPI()
    console = create_console(
        settings, extensions=extensions, reviewer_keys={REVIEWER_KEY: "ana@example.com"}
    )
    app.mount("/console", console)
    return TestClient(app)


def nav_labels(html: str) -> list[str]:
    nav = html.split('<nav aria-label="Console">', 1)[1].split("</nav>", 1)[0]
    return [part.split(">", 1)[1].split("<", 1)[0] for part in nav.split("<a ")[1:]]


def test_the_api_mounts_the_review_pages_with_the_console(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path / "data", api={"write_keys": [WRITE_KEY], "admin_keys": [ADMIN_KEY]}
    )
    with TestClient(create_app(settings, MemorySink())) as client:
        client.post("/console/login", data={"key": ADMIN_KEY})
        page = client.get("/console/datasets")  # no warehouse needed
        assert page.status_code == 200
        labels = nav_labels(page.text)
        assert labels == ["Overview", "Signals", "Pairs", "Datasets", "Review", "Calibration"]


def test_an_extension_adds_its_page_and_its_entry(tmp_path: Path) -> None:
    with console_client(tmp_path, review_extension()) as client:
        assert client.get("/console/review", follow_redirects=False).status_code == 303
        client.post("/console/login", data={"key": ADMIN_KEY})
        assert client.get("/console/review").text.endswith("<h1>Review</h1>")
        labels = nav_labels(client.get("/console/datasets").text)
        assert labels == ["Overview", "Signals", "Pairs", "Datasets", "Review"]


def test_a_reviewer_sees_only_the_pages_for_reviewers(tmp_path: Path) -> None:
    with console_client(tmp_path, review_extension()) as client:
        login = client.post("/console/login", data={"key": REVIEWER_KEY}, follow_redirects=False)
        assert login.status_code == 303 and login.headers["location"] == "/console/review"
        assert client.get("/console/review").status_code == 200
        refused = client.get("/console/datasets")
        assert refused.status_code == 403 and "may not see this page" in refused.text
        assert client.get("/console/data/overview.json").status_code == 403
