"""The console's review pages in process: who may open which, a reviewer's round trip by the
form (POST, redirect), bad forms refused with nothing stored, the CSRF token, the calibration
and the suggested policy's diff for admins, and the reviewer's id never on a page."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.sink import MemorySink
from review import service
from tests.helpers.review import ADMIN_KEY, ANA_KEY, BO_KEY, review_settings

DIMENSIONS = ("correctness", "readability", "security", "efficiency")


@pytest.fixture
def client(review_data_dir: Path) -> Iterator[TestClient]:
    settings = review_settings(review_data_dir)
    service.create_queue(settings, queue_id="week-1", seed=5, per_stratum=3)
    with TestClient(create_app(settings, MemorySink())) as test_client:
        yield test_client


def log_in(client: TestClient, key: str) -> TestClient:
    answer = client.post("/console/login", data={"key": key}, follow_redirects=False)
    assert answer.status_code == 303
    return client


def form_of(html: str) -> dict[str, str]:
    """The hidden fields of the review form."""
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', html))


def answer(html: str, verdict: str = "left", score: int = 4, **more: str) -> dict[str, str]:
    fields = form_of(html) | {"verdict": verdict}
    fields |= {f"{side}.{d}": str(score) for side in ("left", "right") for d in DIMENSIONS}
    return fields | more


def reviews(client: TestClient) -> int:
    settings = client.app.state.settings  # type: ignore[attr-defined]
    with duckdb.connect(str(settings.data_dir / "warehouse.duckdb"), read_only=True) as db:
        [(count,)] = db.execute("SELECT count(*) FROM reviews").fetchall()
    return int(count)


@pytest.mark.parametrize(
    "path", ["/console/review", "/console/review/week-1", "/console/calibration"]
)
def test_without_a_session_every_review_page_sends_to_the_login_page(
    client: TestClient, path: str
) -> None:
    answer = client.get(path, follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/console/login?next=")
    posted = client.post("/console/review/week-1", data={"verdict": "tie"}, follow_redirects=False)
    assert posted.status_code == 303


def test_a_reviewer_lands_on_the_queues_and_may_not_open_admin_pages(client: TestClient) -> None:
    login = client.post("/console/login", data={"key": ANA_KEY}, follow_redirects=False)
    assert login.headers["location"] == "/console/review"
    queues = client.get("/console/review")
    assert queues.status_code == 200 and 'href="/console/review/week-1"' in queues.text
    assert "Calibration" not in queues.text
    for path in ("/console/calibration", "/console/", "/console/datasets"):
        assert client.get(path).status_code == 403


def test_an_admin_sees_the_queues_and_the_calibration_but_reviews_nothing(
    client: TestClient,
) -> None:
    log_in(client, ADMIN_KEY)
    queues = client.get("/console/review")
    assert queues.status_code == 200 and "week-1" in queues.text
    assert 'href="/console/calibration"' in queues.text
    assert client.get("/console/review/week-1").status_code == 403
    assert client.post("/console/review/week-1", data={}).status_code == 403
    page = client.get("/console/calibration")
    assert page.status_code == 200
    assert "Human precision per signal: nothing to draw yet." in page.text
    assert 'id="policy-diff"' in page.text


def test_a_reviewer_judges_an_item_and_gets_the_next(client: TestClient) -> None:
    log_in(client, ANA_KEY)
    page = client.get("/console/review/week-1")
    assert page.status_code == 200
    assert "ana@example.com" not in page.text
    # Nothing of the signals or the confidence behind the pair.
    for hidden in ("copy", "ab_choice", "confidence", "chosen", "rejected"):
        assert hidden not in page.text.split("<main>", 1)[1]
    first = form_of(page.text)["item_id"]
    sent = client.post("/console/review/week-1", data=answer(page.text), follow_redirects=False)
    assert sent.status_code == 303 and sent.headers["location"] == "/console/review/week-1?saved=1"
    assert reviews(client) == 1
    after = client.get(sent.headers["location"])
    assert "Review saved." in after.text and form_of(after.text)["item_id"] != first


def test_every_item_answered_says_the_queue_is_done(client: TestClient) -> None:
    log_in(client, BO_KEY)
    for _ in range(50):
        page = client.get("/console/review/week-1")
        if 'id="queue-done"' in page.text:
            break
        sent = client.post("/console/review/week-1", data=answer(page.text, "tie"))
        assert sent.status_code == 200
    else:
        pytest.fail("the queue never ran out")
    assert reviews(client) > 0


@pytest.mark.parametrize(
    ("change", "said"),
    [
        ({"verdict": "sideways"}, "the verdict"),
        ({"left.security": "9"}, "security of the left answer"),
        ({"right.correctness": "four"}, "correctness of the right answer"),
        ({"right.efficiency": ""}, "efficiency of the right answer"),
    ],
)
def test_a_bad_form_says_what_is_wrong_and_stores_nothing(
    client: TestClient, change: dict[str, str], said: str
) -> None:
    log_in(client, ANA_KEY)
    page = client.get("/console/review/week-1")
    sent = client.post("/console/review/week-1", data=answer(page.text) | change)
    assert sent.status_code == 422
    assert "Nothing was saved" in sent.text and said in sent.text
    assert reviews(client) == 0
    assert form_of(sent.text)["item_id"] == form_of(page.text)["item_id"]


@pytest.mark.parametrize("token", [None, "", "forged-token"])
def test_a_form_without_its_sessions_token_is_refused(
    client: TestClient, token: str | None
) -> None:
    log_in(client, ANA_KEY)
    fields = answer(client.get("/console/review/week-1").text)
    if token is None:
        del fields["csrf"]
    else:
        fields["csrf"] = token
    sent = client.post("/console/review/week-1", data=fields)
    assert sent.status_code == 403 and "Form expired" in sent.text
    assert reviews(client) == 0


def test_another_sessions_token_is_refused(client: TestClient) -> None:
    log_in(client, BO_KEY)
    stolen = form_of(client.get("/console/review/week-1").text)["csrf"]
    client.cookies.clear()
    log_in(client, ANA_KEY)
    fields = answer(client.get("/console/review/week-1").text, csrf=stolen)
    assert client.post("/console/review/week-1", data=fields).status_code == 403
    assert reviews(client) == 0


def test_an_unknown_queue_is_a_404(client: TestClient) -> None:
    log_in(client, ANA_KEY)
    assert client.get("/console/review/no-such-queue").status_code == 404


def test_the_calibration_shows_the_reviews_and_the_diff_changes(client: TestClient) -> None:
    log_in(client, ADMIN_KEY)
    before = client.get("/console/calibration").text
    assert "No review yet." in before
    client.cookies.clear()
    log_in(client, ANA_KEY)
    for _ in range(50):
        page = client.get("/console/review/week-1")
        if 'id="queue-done"' in page.text:
            break
        # Always the right side: against the pairs' choice about half the time.
        client.post("/console/review/week-1", data=answer(page.text, "right"))
    client.cookies.clear()
    log_in(client, ADMIN_KEY)
    after = client.get("/console/calibration").text
    assert "No review yet." not in after and "<svg" in after
    precision = after.split('id="precision"', 1)[1].split("</table>", 1)[0]
    assert re.search(r"<td>copy</td>", precision)
    assert before.split('id="weights"', 1)[1] != after.split('id="weights"', 1)[1]


def new_queue(client: TestClient, **fields: str) -> tuple[int, str]:
    """Post the queues page's new-queue form (with the session's token) and follow it."""
    page = client.get("/console/review").text
    form = page.split('id="new-queue"', 1)[1].split("</form>", 1)[0]
    posted = client.post("/console/review", data=form_of(form) | fields, follow_redirects=False)
    return posted.status_code, posted.headers.get("location", posted.text)


def queue_rows(client: TestClient, queue_id: str) -> list[tuple[str, str, int]]:
    settings = client.app.state.settings  # type: ignore[attr-defined]
    with duckdb.connect(str(settings.data_dir / "warehouse.duckdb"), read_only=True) as db:
        rows = db.execute(
            "SELECT pair_id, stratum, wanted_reviews FROM review_items WHERE queue_id = $q "
            "ORDER BY position",
            {"q": queue_id},
        ).fetchall()
    return [(r[0], r[1], r[2]) for r in rows]


def test_an_admin_samples_a_queue_with_the_form_as_the_cli_would(client: TestClient) -> None:
    log_in(client, ADMIN_KEY)
    fields = {"queue_id": "week-2", "seed": "77", "per_stratum": "2", "overlap": "0.5",
              "strata": "copy/mid/unanimous, multiple/high/contested"}  # fmt: skip
    status, location = new_queue(client, **fields)
    assert (status, location) == (303, "/console/review?created=week-2")
    page = client.get(location).text
    assert 'id="queue-created"' in page and "week-2" in page
    assert 'href="/console/calibration?queue=week-2"' in page
    # The same draw as the service's with the same parameters: the seed is what is recorded.
    settings = client.app.state.settings  # type: ignore[attr-defined]
    service.create_queue(settings, queue_id="week-2-again", seed=77, per_stratum=2, overlap=0.5,
                         strata=["copy/mid/unanimous", "multiple/high/contested"])  # fmt: skip
    drawn = queue_rows(client, "week-2")
    assert drawn and drawn == queue_rows(client, "week-2-again")
    assert {stratum for _, stratum, _ in drawn} <= {"copy/mid/unanimous", "multiple/high/contested"}


def test_a_bad_queue_form_names_each_field_and_creates_nothing(client: TestClient) -> None:
    log_in(client, ADMIN_KEY)
    page = client.get("/console/review").text
    form = form_of(page.split('id="new-queue"', 1)[1])
    answer = client.post("/console/review", data=form | {
        "queue_id": "week-9", "seed": "abc", "per_stratum": "2", "overlap": "lots"})  # fmt: skip
    assert answer.status_code == 422
    assert "seed: must be a whole number" in answer.text
    assert "overlap: must be a number" in answer.text
    answer = client.post("/console/review", data=form | {
        "queue_id": "Week 9!", "seed": "1", "per_stratum": "0", "overlap": "2",
        "strata": "copy/high"})  # fmt: skip
    assert answer.status_code == 422
    for field in ("queue_id", "per_stratum", "overlap", "strata[0]"):
        assert field in answer.text
    # What was typed stays in the form.
    assert 'value="Week 9!"' in answer.text
    taken = client.post("/console/review", data=form | {
        "queue_id": "week-1", "seed": "1", "per_stratum": "1", "overlap": "0"})  # fmt: skip
    assert taken.status_code == 409 and "exists already" in taken.text
    assert [q.queue_id for q in service.list_queues(client.app.state.settings)] == ["week-1"]  # type: ignore[attr-defined]


def test_only_an_admin_with_the_sessions_token_samples_a_queue(client: TestClient) -> None:
    fields = {"queue_id": "week-3", "seed": "1", "per_stratum": "1", "overlap": "0"}
    log_in(client, ANA_KEY)
    assert 'id="new-queue"' not in client.get("/console/review").text
    assert client.post("/console/review", data=fields).status_code == 403
    client.cookies.clear()
    log_in(client, ADMIN_KEY)
    refused = client.post("/console/review", data=fields | {"csrf": "forged"})
    assert refused.status_code == 403
    assert [q.queue_id for q in service.list_queues(client.app.state.settings)] == ["week-1"]  # type: ignore[attr-defined]


def test_the_calibration_of_one_queue(client: TestClient) -> None:
    settings = client.app.state.settings  # type: ignore[attr-defined]
    service.create_queue(settings, queue_id="week-2", seed=9, per_stratum=1)
    log_in(client, ANA_KEY)
    page = client.get("/console/review/week-1")
    client.post("/console/review/week-1", data=answer(page.text, "left"))
    client.cookies.clear()
    log_in(client, ADMIN_KEY)
    every = client.get("/console/calibration").text
    assert "1 reviews by 1 reviewers, over every queue" in every
    one = client.get("/console/calibration?queue=week-1").text
    assert "1 reviews by 1 reviewers, in queue week-1" in one
    assert '<option value="week-1" selected>' in one
    other = client.get("/console/calibration?queue=week-2").text
    assert "0 reviews by 0 reviewers, in queue week-2" in other and "No review yet." in other
    assert client.get("/console/calibration?queue=nope").status_code == 404


def test_a_label_queue_is_judged_good_or_bad_one_answer_at_a_time(client: TestClient) -> None:
    log_in(client, ADMIN_KEY)
    status, _ = new_queue(client, queue_id="labels-1", kind="label", seed="3", per_stratum="1",
                          overlap="0")  # fmt: skip
    assert status == 303
    client.cookies.clear()
    log_in(client, ANA_KEY)
    queues = client.get("/console/review").text
    assert "labels" in queues and "seed" not in queues  # a reviewer sees no sampling
    page = client.get("/console/review/labels-1")
    assert page.status_code == 200 and 'data-review="label"' in page.text
    assert "Is this answer good?" in page.text and "Left answer" not in page.text
    for hidden in ("desirable", "confidence", "chosen", "rejected"):
        assert hidden not in page.text
    fields = form_of(page.text) | {"verdict": "good"}
    fields |= {f"answer.{d}": "5" for d in DIMENSIONS}
    wrong = client.post("/console/review/labels-1", data=fields | {"verdict": "left"})
    assert wrong.status_code == 422 and "verdict" in wrong.text
    saved = client.post("/console/review/labels-1", data=fields, follow_redirects=False)
    assert saved.status_code == 303
    assert reviews(client) == 1


def test_a_login_posted_from_another_site_is_refused(client: TestClient) -> None:
    """Login CSRF: another site's form would log the browser in under the attacker's key."""
    refused = client.post("/console/login", data={"key": ANA_KEY}, follow_redirects=False,
                          headers={"Sec-Fetch-Site": "cross-site"})  # fmt: skip
    assert refused.status_code == 403 and "set-cookie" not in refused.headers
    same = client.post("/console/login", data={"key": ANA_KEY}, follow_redirects=False,
                       headers={"Sec-Fetch-Site": "same-origin"})  # fmt: skip
    assert same.status_code == 303 and "set-cookie" in same.headers


def test_an_invalid_rubric_is_a_503_page_without_the_files_path(
    review_data_dir: Path, tmp_path: Path
) -> None:
    rubric = tmp_path / "rubric.toml"
    rubric.write_text('[dimensions.speed]\ndescription = "fast?"\nmin = 5\nmax = 1\n')
    settings = review_settings(review_data_dir, review={"rubric_file": rubric})
    service.create_queue(settings.model_copy(update={"review": review_settings(
        review_data_dir).review}), queue_id="week-1", seed=5, per_stratum=3)  # fmt: skip
    with TestClient(create_app(settings, MemorySink())) as test_client:
        log_in(test_client, ANA_KEY)
        page = test_client.get("/console/review/week-1")
    assert page.status_code == 503 and "Not configured" in page.text
    assert str(tmp_path) not in page.text


def test_reviewer_keys_alone_mount_the_console(review_data_dir: Path) -> None:
    settings = review_settings(review_data_dir)
    settings = settings.model_copy(
        update={"api": settings.api.model_copy(update={"admin_keys": []})}
    )
    with TestClient(create_app(settings, MemorySink())) as test_client:
        log_in(test_client, ANA_KEY)
        assert test_client.get("/console/review").status_code == 200
