"""The review routes in process: who may call which (401 without a key, 403 with a key of
another kind, per route), a reviewer's round trip, bad bodies named by path, a busy warehouse."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from api.main import create_app
from api.sink import MemorySink
from flywheel.settings import Settings
from tests.factories import WRITE_KEY, api_client, warehouse_held
from tests.helpers.review import (
    ADMIN_KEY,
    ANA_KEY,
    BO_KEY,
    KEYRING,
    READER_KEY,
    REVIEWERS,
    review_settings,
    scores,
)

pytestmark = pytest.mark.anyio

KEYS = {"write": WRITE_KEY, "reader": READER_KEY, "admin": ADMIN_KEY, "reviewer": ANA_KEY}
QUEUE_BODY = {"queue_id": "week-1", "seed": 5, "per_stratum": 3, "overlap": 1.0}
"""Every item wants two reviews."""
ROUTES = [
    # (method, path, body, scopes that may call it)
    ("GET", "/v1/review/rubric", None, {"reviewer", "admin"}),
    ("GET", "/v1/review/queues", None, {"reviewer", "admin"}),
    ("GET", "/v1/review/queues/week-1", None, {"reviewer", "admin"}),
    ("POST", "/v1/review/queues", {**QUEUE_BODY, "queue_id": "week-2"}, {"admin"}),
    ("GET", "/v1/review/queues/week-1/next", None, {"reviewer"}),
    ("POST", "/v1/review/queues/week-1/reviews",
     {"item_id": "x", "verdict": "tie", "scores": scores()}, {"reviewer"}),
    ("GET", "/v1/review/calibration", None, {"admin"}),
    ("GET", "/v1/review/policy-suggestion", None, {"admin"}),
]  # fmt: skip


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def settings(review_data_dir: Path) -> Settings:
    return review_settings(review_data_dir)


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(create_app(settings, MemorySink())) as client:
        del client.headers["Authorization"]
        response = await client.post("/v1/review/queues", json=QUEUE_BODY,
                                     headers=bearer(ADMIN_KEY))  # fmt: skip
        assert response.status_code == 201, response.text
        yield client


@pytest.mark.parametrize(("method", "path", "body", "allowed"), ROUTES,
                         ids=[f"{m} {p}" for m, p, _, _ in ROUTES])  # fmt: skip
async def test_every_route_refuses_a_missing_key_and_keys_of_other_kinds(
    client: httpx.AsyncClient, method: str, path: str, body: object, allowed: set[str]
) -> None:
    response = await client.request(method, path, json=body)
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"
    for scope, key in KEYS.items():
        response = await client.request(method, path, json=body, headers=bearer(key))
        if scope in allowed:
            assert response.status_code not in (401, 403), (scope, response.text)
        else:
            assert response.status_code == 403, (scope, response.text)
            assert response.json()["error"] == "forbidden"
    response = await client.request(method, path, json=body, headers=bearer("x" * 24))
    assert response.status_code == 403


async def test_a_reviewer_fetches_and_answers_items(client: httpx.AsyncClient) -> None:
    rubric = await client.get("/v1/review/rubric", headers=bearer(ANA_KEY))
    assert list(rubric.json()["dimensions"]) == ["correctness", "readability", "security",
                                                 "efficiency"]  # fmt: skip
    queues = (await client.get("/v1/review/queues", headers=bearer(ANA_KEY))).json()["queues"]
    assert [q["queue_id"] for q in queues] == ["week-1"] and queues[0]["items"] == 6
    fetched = await client.get("/v1/review/queues/week-1/next", headers=bearer(ANA_KEY))
    assert fetched.status_code == 200
    item = fetched.json()["item"]
    assert set(item) == {"queue_id", "item_id", "kind", "prompt", "left", "right", "answer",
                         "remaining"}  # fmt: skip
    assert item["kind"] == "pair" and item["answer"] is None
    assert set(item["left"]) == set(item["right"]) == {"text"}
    assert "signal" not in fetched.text and "confidence" not in fetched.text
    answer = {"item_id": item["item_id"], "verdict": "left", "scores": scores()}
    posted = await client.post("/v1/review/queues/week-1/reviews", json=answer,
                               headers=bearer(ANA_KEY))  # fmt: skip
    assert posted.status_code == 201, posted.text
    review = posted.json()
    # The answer as given: nothing says which side the signals chose.
    assert review["verdict"] == "left" and "left_side" not in review
    assert "chosen" not in posted.text and "rejected" not in posted.text
    assert "ana@example.com" not in posted.text
    again = await client.post("/v1/review/queues/week-1/reviews", json=answer,
                              headers=bearer(ANA_KEY))  # fmt: skip
    assert again.status_code == 409 and again.json()["error"] == "conflict"
    # Bo may answer the same item.
    bo = await client.post("/v1/review/queues/week-1/reviews", json=answer, headers=bearer(BO_KEY))
    assert bo.status_code == 201
    shown = await client.get("/v1/review/queues/week-1", headers=bearer(ADMIN_KEY))
    assert shown.json()["reviews"] == 2
    calibration = await client.get("/v1/review/calibration", headers=bearer(ADMIN_KEY))
    assert calibration.status_code == 200 and calibration.json()["reviews"] == 2
    assert calibration.json()["agreement"]["items"] == 1
    one = await client.get("/v1/review/calibration?queue_id=week-1", headers=bearer(ADMIN_KEY))
    assert one.json()["queue_id"] == "week-1"
    suggestion = await client.get("/v1/review/policy-suggestion?min_reviews=1",
                                  headers=bearer(ADMIN_KEY))  # fmt: skip
    assert suggestion.status_code == 200
    assert {w["signal"] for w in suggestion.json()["weights"]} >= {"copy", "ab_choice"}


async def test_a_queue_with_nothing_left_answers_a_null_item(client: httpx.AsyncClient) -> None:
    for _ in range(6):
        item = (await client.get("/v1/review/queues/week-1/next", headers=bearer(ANA_KEY))).json()
        answer = {"item_id": item["item"]["item_id"], "verdict": "tie", "scores": scores()}
        posted = await client.post("/v1/review/queues/week-1/reviews", json=answer,
                                   headers=bearer(ANA_KEY))  # fmt: skip
        assert posted.status_code == 201
    done = await client.get("/v1/review/queues/week-1/next", headers=bearer(ANA_KEY))
    assert done.status_code == 200 and done.json() == {"item": None}


@pytest.mark.parametrize(
    ("body", "paths"),
    [
        ({"item_id": "x", "verdict": "better", "scores": scores()}, ["verdict"]),
        ({"item_id": "x", "verdict": "left"}, ["scores"]),
        ({"item_id": "x", "verdict": "left", "scores": {"left": {"correctness": "high"}}},
         ["scores.left.correctness"]),
        ({"item_id": "x", "verdict": "left", "scores": scores(), "note": "hi"}, ["note"]),
    ],
)  # fmt: skip
async def test_a_bad_review_body_is_422_naming_the_paths(
    client: httpx.AsyncClient, body: dict[str, object], paths: list[str]
) -> None:
    response = await client.post("/v1/review/queues/week-1/reviews", json=body,
                                 headers=bearer(ANA_KEY))  # fmt: skip
    assert response.status_code == 422, response.text
    assert [e["path"] for e in response.json()["errors"]] == paths


async def test_scores_off_the_rubric_are_422_naming_each_dimension(
    client: httpx.AsyncClient,
) -> None:
    item = (await client.get("/v1/review/queues/week-1/next", headers=bearer(ANA_KEY))).json()
    bad = scores()
    bad["left"]["security"] = 0
    del bad["right"]["efficiency"]
    body = {"item_id": item["item"]["item_id"], "verdict": "left", "scores": bad}
    response = await client.post("/v1/review/queues/week-1/reviews", json=body,
                                 headers=bearer(ANA_KEY))  # fmt: skip
    assert response.status_code == 422
    assert [e["path"] for e in response.json()["errors"]] == [
        "scores.left.security", "scores.right.efficiency"
    ]  # fmt: skip


async def test_other_bad_requests(client: httpx.AsyncClient) -> None:
    admin, ana = bearer(ADMIN_KEY), bearer(ANA_KEY)
    not_json = await client.post("/v1/review/queues", content=b"{", headers=admin)
    assert not_json.status_code == 400
    bad_queue = await client.post("/v1/review/queues", json={**QUEUE_BODY, "seed": -1},
                                  headers=admin)  # fmt: skip
    assert bad_queue.status_code == 422 and bad_queue.json()["errors"][0]["path"] == "seed"
    taken = await client.post("/v1/review/queues", json=QUEUE_BODY, headers=admin)
    assert taken.status_code == 409
    missing = await client.get("/v1/review/queues/nope/next", headers=ana)
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    unknown_item = await client.post("/v1/review/queues/week-1/reviews",
                                     json={"item_id": "nope", "verdict": "tie",
                                           "scores": scores()}, headers=ana)  # fmt: skip
    assert unknown_item.status_code == 404
    bad_name = await client.get("/v1/review/queues/Bad%20Name", headers=ana)
    assert bad_name.status_code == 422


async def test_a_busy_warehouse_is_409_with_retry_after(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    with warehouse_held(settings.data_dir / "warehouse.duckdb"):
        response = await client.get("/v1/review/queues/week-1/next", headers=bearer(ANA_KEY))
    assert response.status_code == 409
    assert response.json()["error"] == "busy" and response.headers["Retry-After"] == "30"
    assert str(settings.data_dir) not in response.text  # no server path for a reviewer


async def test_the_openapi_document_states_the_rubric_of_the_review_body(
    client: httpx.AsyncClient,
) -> None:
    document = (await client.get("/openapi.json")).json()
    body = document["paths"]["/v1/review/queues/{queue_id}/reviews"]["post"]["requestBody"]
    side = body["content"]["application/json"]["schema"]["properties"]["scores"]["properties"][
        "left"
    ]
    assert side["required"] == ["correctness", "readability", "security", "efficiency"]
    assert side["properties"]["security"] | {"description": ""} == {
        "type": "integer", "minimum": 1, "maximum": 5, "description": ""
    }  # fmt: skip
    assert side["additionalProperties"] is False
    schemes = document["components"]["securitySchemes"]
    assert schemes["ReviewerKey"] == {
        "type": "http", "scheme": "bearer", "description": "A reviewer key (review queues)."
    }  # fmt: skip


async def test_a_reviewer_sees_a_queues_progress_not_its_sampling(
    client: httpx.AsyncClient,
) -> None:
    """With the strata's counts, an item's place in the queue would tell its stratum."""
    for path in ("/v1/review/queues", "/v1/review/queues/week-1"):
        as_reviewer = (await client.get(path, headers=bearer(ANA_KEY))).json()
        as_admin = (await client.get(path, headers=bearer(ADMIN_KEY))).json()
        mine, theirs = (as_reviewer["queues"][0], as_admin["queues"][0]) if "queues" in \
            as_reviewer else (as_reviewer, as_admin)  # fmt: skip
        assert (mine["seed"], mine["per_stratum"], mine["strata"], mine["candidates"]) == (
            None, None, [], None)  # fmt: skip
        assert theirs["seed"] == 5 and theirs["strata"]
        assert mine["items"] == theirs["items"] and mine["reviews"] == theirs["reviews"]


async def test_a_label_queue_over_http(client: httpx.AsyncClient) -> None:
    admin, ana = bearer(ADMIN_KEY), bearer(ANA_KEY)
    created = await client.post("/v1/review/queues", headers=admin, json={
        "queue_id": "labels-1", "kind": "label", "seed": 1, "per_stratum": 2})  # fmt: skip
    assert created.status_code == 201, created.text
    assert created.json()["kind"] == "label"
    item = (await client.get("/v1/review/queues/labels-1/next", headers=ana)).json()["item"]
    assert item["kind"] == "label" and item["left"] is None and set(item["answer"]) == {"text"}
    pair_answer = {"item_id": item["item_id"], "verdict": "left", "scores": scores()}
    refused = await client.post("/v1/review/queues/labels-1/reviews", json=pair_answer,
                                headers=ana)  # fmt: skip
    assert refused.status_code == 422
    wrong = {e["path"] for e in refused.json()["errors"]}
    assert wrong == {"verdict", "scores.left", "scores.right", "scores.answer"}
    good = {"item_id": item["item_id"], "verdict": "good", "scores": {"answer": scores()["left"]}}
    posted = await client.post("/v1/review/queues/labels-1/reviews", json=good, headers=ana)
    assert posted.status_code == 201, posted.text
    assert posted.json()["verdict"] == "good"


async def test_a_string_seed_and_an_empty_strata_list_are_refused(
    client: httpx.AsyncClient,
) -> None:
    admin = bearer(ADMIN_KEY)
    for body, path in (({"seed": "1"}, "seed"), ({"per_stratum": "3"}, "per_stratum"),
                       ({"strata": []}, "strata"), ({"kind": "pairs"}, "kind")):  # fmt: skip
        answer = await client.post("/v1/review/queues", headers=admin,
                                   json={**QUEUE_BODY, "queue_id": "w2", **body})  # fmt: skip
        assert answer.status_code == 422, (body, answer.text)
        assert answer.json()["errors"][0]["path"] == path
    assert (await client.get("/v1/review/queues/w2", headers=admin)).status_code == 404


async def test_an_erased_reviewer_is_refused(client: httpx.AsyncClient, settings: Settings) -> None:
    from privacy.suppression import add_suppressed, suppression_file

    add_suppressed(suppression_file(settings.data_dir), [KEYRING.pseudonym(REVIEWERS[BO_KEY])])
    refused = await client.get("/v1/review/queues/week-1/next", headers=bearer(BO_KEY))
    assert refused.status_code == 403 and refused.json()["error"] == "reviewer_erased"
    assert (await client.get("/v1/review/queues/week-1/next", headers=bearer(ANA_KEY))).is_success


async def test_review_requests_are_counted_by_route_template(client: httpx.AsyncClient) -> None:
    await client.get("/v1/review/queues/week-1/next", headers=bearer(ANA_KEY))
    await client.get("/v1/review/queues/nope/next", headers=bearer(ANA_KEY))
    await client.get("/v1/no-such-route")
    counted = [line for line in (await client.get("/metrics")).text.splitlines()
               if line.startswith("flywheel_api_requests_total{")]  # fmt: skip
    template = 'route="/v1/review/queues/{queue_id}/next"'
    assert any(template in line and 'status="200"' in line for line in counted), counted
    assert any(template in line and 'status="404"' in line for line in counted), counted
    assert any('route="other",status="404"' in line for line in counted), counted
    assert not any("week-1" in line or "nope" in line for line in counted)
