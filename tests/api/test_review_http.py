"""The review routes over real HTTP, against ``flywheel serve`` as users run it: an admin creates
a queue, two reviewers answer its items, the admin reads the calibration; wrong keys are
refused; the server's log never holds a reviewer's id."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.factories import WRITE_KEY
from tests.helpers.review import (
    ADMIN_KEY,
    ANA_KEY,
    BO_KEY,
    REVIEWERS,
    build_warehouse,
    review_settings,
    scores,
)
from tests.helpers.server import served

# Starts `flywheel serve` and reviews a queue twice over (about 20 s).
pytestmark = pytest.mark.slow


def test_reviewers_answer_a_queue_over_http(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    build_warehouse(data_dir)
    settings = review_settings(data_dir)
    env = {
        "FLYWHEEL_DATA_DIR": str(data_dir),
        "FLYWHEEL_PRIVACY__HMAC_KEY_FILE": str(settings.privacy.hmac_key_file),
        "FLYWHEEL_API__WRITE_KEYS": json.dumps([WRITE_KEY]),
        "FLYWHEEL_API__ADMIN_KEYS": json.dumps([ADMIN_KEY]),
        "FLYWHEEL_API__REVIEWER_KEYS": json.dumps(
            [{"key": k, "reviewer": r} for k, r in REVIEWERS.items()]
        ),
    }
    log = tmp_path / "serve.log"
    with served(log, env) as url, httpx.Client(base_url=url, timeout=30) as client:
        admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
        created = client.post("/v1/review/queues", headers=admin,
                              json={"queue_id": "live", "seed": 9, "per_stratum": 5,
                                    "overlap": 1.0})  # fmt: skip
        assert created.status_code == 201, created.text
        assert created.json()["items"] == 7
        for key in (ANA_KEY, BO_KEY):
            reviewer = {"Authorization": f"Bearer {key}"}
            while item := client.get("/v1/review/queues/live/next", headers=reviewer).json()[
                "item"
            ]:
                answer = {"item_id": item["item_id"], "verdict": "left", "scores": scores()}
                posted = client.post("/v1/review/queues/live/reviews", headers=reviewer,
                                     json=answer)  # fmt: skip
                assert posted.status_code == 201, posted.text
        assert client.get("/v1/review/calibration", headers=reviewer).status_code == 403
        assert client.get("/v1/review/queues/live/next", headers=admin).status_code == 403
        assert client.get("/v1/review/queues").status_code == 401
        writer = {"Authorization": f"Bearer {WRITE_KEY}"}
        assert client.get("/v1/review/queues", headers=writer).status_code == 403
        calibration = client.get("/v1/review/calibration", headers=admin).json()
        assert calibration["reviews"] == 14 and calibration["reviewers"] == 2
        assert calibration["agreement"]["items"] == 7
        shown = client.get("/v1/review/queues/live", headers=admin).json()
        assert (shown["items_done"], shown["reviews"]) == (7, 14)
    logged = log.read_text()
    assert all(reviewer not in logged for reviewer in REVIEWERS.values())
