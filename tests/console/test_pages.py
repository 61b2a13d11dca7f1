"""The web console in-process (FastAPI's TestClient): who gets in, what every page shows against
the warehouse and the published versions, and what never reaches a page or a log."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.sink import MemorySink
from console.sessions import COOKIE
from export.catalog import open_catalog
from flywheel.settings import Settings
from tests.factories import WRITE_KEY
from tests.helpers.console import ADMIN_KEY, EXTERNAL, PAGES, RAW_USER_ID, first_pair_link

# The session's data dir publishes two versions once (about 20 s); the tests after are fast.
pytestmark = pytest.mark.slow


def settings_for(data_dir: Path, *, admin: bool = True) -> Settings:
    return Settings(
        data_dir=data_dir,
        api={"write_keys": [WRITE_KEY], "admin_keys": [ADMIN_KEY] if admin else []},
    )


@pytest.fixture
def client(console_data: Path) -> Iterator[TestClient]:
    with TestClient(create_app(settings_for(console_data), MemorySink())) as test_client:
        yield test_client


@pytest.fixture
def admin(client: TestClient) -> TestClient:
    answer = client.post("/console/login", data={"key": ADMIN_KEY}, follow_redirects=False)
    assert answer.status_code == 303
    return client


def query(data_dir: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as db:
        return db.execute(sql).fetchall()


def text_of(html: str) -> str:
    """A page's text, without tags, blanks collapsed."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


@pytest.mark.parametrize("path", [*PAGES, "/console/pairs/0123abcd"])
def test_every_page_sends_a_visitor_without_a_session_to_the_login_page(
    client: TestClient, path: str
) -> None:
    answer = client.get(path, follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/console/login?next=%2Fconsole%2F")


def test_data_without_a_session_is_401_and_the_login_page_and_styles_are_open(
    client: TestClient,
) -> None:
    assert client.get("/console/data/overview.json").status_code == 401
    assert client.get("/console/login").status_code == 200
    assert client.get("/console/static/console.css").status_code == 200


@pytest.mark.parametrize("key", ["", "not-a-configured-key-0123", WRITE_KEY])
def test_a_key_that_is_not_an_admin_key_gets_no_session(client: TestClient, key: str) -> None:
    answer = client.post("/console/login", data={"key": key}, follow_redirects=False)
    assert answer.status_code == 401
    assert "set-cookie" not in answer.headers
    assert "That is not an admin key." in answer.text
    assert client.get("/console/", follow_redirects=False).status_code == 303


def test_the_session_cookie_is_httponly_strict_signed_and_ends_at_logout(
    client: TestClient,
) -> None:
    answer = client.post(
        "/console/login", data={"key": ADMIN_KEY, "next": "/console/pairs"},
        follow_redirects=False,
    )  # fmt: skip
    assert answer.status_code == 303 and answer.headers["location"] == "/console/pairs"
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/console" in cookie
    assert ADMIN_KEY not in cookie
    assert client.get("/console/pairs", follow_redirects=False).status_code == 200
    # The same value sent by hand is the session; changed, it is none.
    value = client.cookies[COOKIE]
    client.cookies.clear()
    for sent, status in ((value, 200), (value[:-4] + "AAAA", 303), (ADMIN_KEY, 303)):
        answer = client.get(
            "/console/pairs", headers={"Cookie": f"{COOKIE}={sent}"}, follow_redirects=False
        )
        assert answer.status_code == status
    out = client.post(
        "/console/logout", headers={"Cookie": f"{COOKIE}={value}"}, follow_redirects=False
    )
    assert out.status_code == 303 and out.headers["location"] == "/console/login"
    assert 'flywheel_console=""' in out.headers["set-cookie"]
    assert "Max-Age=0" in out.headers["set-cookie"]


@pytest.mark.parametrize(
    "target", ["https://elsewhere.example/", "//elsewhere.example/x", "/v1/x", "/console/../v1/x"]
)
def test_login_goes_back_only_to_a_console_page(client: TestClient, target: str) -> None:
    answer = client.post(
        "/console/login", data={"key": ADMIN_KEY, "next": target}, follow_redirects=False
    )
    assert answer.headers["location"] == "/console/"


def test_no_console_without_admin_keys(console_data: Path) -> None:
    with TestClient(create_app(settings_for(console_data, admin=False), MemorySink())) as plain:
        assert plain.get("/console/login").status_code == 404
        assert plain.get("/console/", follow_redirects=False).status_code == 404


def test_every_page_renders_and_loads_nothing_from_another_origin(admin: TestClient) -> None:
    pair = first_pair_link(admin.get("/console/pairs").text)
    for path in [*PAGES, pair]:
        answer = admin.get(path)
        assert answer.status_code == 200, (path, answer.text[:500])
        assert answer.headers["content-type"].startswith("text/html")
        assert answer.headers["cache-control"] == "no-store"
        policy = answer.headers["content-security-policy"]
        assert "default-src 'none'" in policy and "script-src 'self'" in policy
        assert EXTERNAL.findall(answer.text) == [], path
        assert "http://" not in answer.text and "https://" not in answer.text, path
        assert RAW_USER_ID.search(answer.text) is None, path
    css = admin.get("/console/static/console.css").text
    assert "url(" not in css and "@import" not in css


def test_the_overview_counts_what_the_warehouse_holds(
    admin: TestClient, console_data: Path
) -> None:
    [(events, files, rows)] = query(
        console_data,
        "SELECT (SELECT count(*) FROM events), count(*), sum(rows) FROM lake_files",
    )
    page = text_of(admin.get("/console/").text)
    assert f"events in the warehouse {events:,}" in page
    assert f"{files:,}" in page
    assert "flywheel_ingest_dead_letters_total" in page  # named, not invented
    data = admin.get("/console/data/overview.json").json()
    assert data["events"] == events and data["lake_files"] == files and data["rows_read"] == rows
    assert sum(row["events"] for row in data["events_by_day"]) == events


def test_the_signals_page_draws_pairs_labels_and_calibration(
    admin: TestClient, console_data: Path
) -> None:
    html = admin.get("/console/signals").text
    assert html.count("<svg") >= 3
    calibration = query(console_data, "SELECT signal, explicit, n FROM signal_calibration")
    assert calibration, "the simulated warehouse has calibration rows"
    for signal, explicit, n in calibration:
        assert f'<td>{signal}</td><td>{explicit}</td><td class="n">' in html
        assert f'<td class="n">{n:,}</td>' in html
    [(copy_pairs,)] = query(
        console_data, "SELECT count(*) FROM preference_pairs WHERE list_contains(signals, 'copy')"
    )
    assert f'signal=copy">copy</a></td><td class="n">{copy_pairs:,}</td>' in html


def test_pairs_are_filtered_and_paged_on_the_server(admin: TestClient, console_data: Path) -> None:
    [(total,)] = query(console_data, "SELECT count(*) FROM preference_pairs")
    first = admin.get("/console/pairs").text
    assert f"{total:,} pairs" in text_of(first)
    second = admin.get("/console/pairs?page=2").text
    ids = lambda html: re.findall(r'<a href="/console/pairs/([0-9a-f]+)"', html)  # noqa: E731
    assert len(ids(first)) == 50 and len(ids(second)) == 50
    assert not set(ids(first)) & set(ids(second))
    [(expected,)] = query(
        console_data,
        "SELECT count(*) FROM preference_pairs WHERE list_contains(signals, 'regenerate') "
        "AND confidence >= 0.5 AND confidence <= 0.9 AND disagreement > 0",
    )
    filtered = admin.get(
        "/console/pairs?signal=regenerate&min_confidence=0.5&max_confidence=0.9&disagreement=some"
    ).text
    assert f"{expected:,} pairs" in text_of(filtered)
    [(model,)] = query(console_data, "SELECT min(m) FROM preference_pairs, unnest(models) AS t(m)")
    [(by_model,)] = query(
        console_data,
        f"SELECT count(*) FROM preference_pairs WHERE list_contains(models, '{model}')",
    )
    assert f"{by_model:,} pairs" in text_of(
        admin.get("/console/pairs", params={"model": model}).text
    )
    # Past the last page: the last page; junk numbers: no filter.
    assert admin.get("/console/pairs?page=99999").status_code == 200
    assert f"{total:,} pairs" in text_of(admin.get("/console/pairs?min_confidence=x").text)


def test_a_pair_shows_its_texts_evidence_and_lineage(admin: TestClient, console_data: Path) -> None:
    [(pair_id, event_ids, chosen)] = query(
        console_data,
        "SELECT pair_id, event_ids, chosen_response_id FROM preference_pairs "
        "WHERE chosen_response_id IS NOT NULL ORDER BY pair_id LIMIT 1",
    )
    html = admin.get(f"/console/pairs/{pair_id}").text
    for event_id in event_ids:
        assert f"<code>{event_id}</code>" in html
    assert f"<code>{chosen}</code>" in html
    assert "Not readable here" not in html and "The prompt is not readable" not in html
    assert html.count('<pre class="text">') == 2
    assert admin.get("/console/pairs/not-a-pair").status_code == 404


def test_datasets_list_versions_gate_results_and_their_difference(admin: TestClient) -> None:
    listing = text_of(admin.get("/console/datasets").text)
    assert "v1" in listing and "v2" in listing and "passed" in listing
    version = admin.get("/console/datasets/default/versions/v2").text
    assert "expect_" in version and "what changed" in version
    plain = admin.get("/console/datasets/default/diff?a=v1&b=v2").text
    assert '<th class="n">in both</th>' in plain and '<th class="n">changed</th>' not in plain
    diff = admin.get("/console/datasets/default/diff?a=v1&b=v2&changes=true").text
    rows = re.findall(
        r"<tr><td>(\w+)</td><td>(\w+)</td>" + r'<td class="n">([\d,]*)</td>' * 6, diff
    )
    assert {(config, split) for config, split, *_ in rows} >= {("dpo", "train"), ("kto", "test")}
    for _, _, rows_a, rows_b, added, removed, changed, kept in rows:
        a, b, add, rem, chg, keep = (int(v.replace(",", "")) for v in
                                     (rows_a, rows_b, added, removed, changed, kept))  # fmt: skip
        assert a == rem + chg + keep and b == add + chg + keep
    assert sum(int(r[4].replace(",", "")) for r in rows) > 0  # v2 added rows
    assert admin.get("/console/datasets/nope/diff").status_code == 404
    assert admin.get("/console/datasets/default/versions/v9").status_code == 404


def test_a_version_page_shows_what_the_data_teaches_from_its_manifest(
    admin: TestClient, console_data: Path
) -> None:
    catalog = open_catalog(Settings(data_dir=console_data), check=False)
    evaluation = catalog.read_manifest("default", "v2").evaluation
    assert evaluation is not None and evaluation.ablations

    page = text_of(admin.get("/console/datasets/default/versions/v2").text)

    assert "What the data teaches" in page
    for a in evaluation.accuracies:
        assert f"{a.name} {a.pairs:,} {a.accuracy:.3f} {a.wilson_low:.3f} to " in page
    for ablation in evaluation.ablations:
        change = evaluation.change(ablation)
        assert change is not None
        assert f"{ablation.signal} {ablation.train_pairs:,} " in page and f"{change:+.3f}" in page
    # A version published without an evaluation shows none.
    assert "What the data teaches" not in admin.get("/console/datasets/default/versions/v1").text


def test_keys_never_reach_a_log_or_a_page(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "a-wrong-key-typed-by-someone-0123"
    client.post("/console/login", data={"key": wrong})
    client.post("/console/login", data={"key": ADMIN_KEY})
    bodies = [client.get(path).text for path in PAGES]
    logged = "\n".join(r.getMessage() + str(getattr(r, "fields", "")) for r in caplog.records)
    assert "console login refused" in logged
    for secret in (wrong, ADMIN_KEY):
        assert secret not in logged
        assert all(secret not in body for body in bodies)


def test_a_busy_warehouse_is_503_and_a_page_leaves_the_file_to_writers(
    admin: TestClient, console_data: Path
) -> None:
    path = console_data / "warehouse.duckdb"
    assert admin.get("/console/pairs").status_code == 200
    # After a page, another process can open the warehouse for writing at once.
    subprocess.run(
        [sys.executable, "-c", f"import duckdb; duckdb.connect({str(path)!r}).close()"], check=True
    )
    with subprocess.Popen(
        [sys.executable, "-c",
         f"import duckdb, sys; c = duckdb.connect({str(path)!r}); print('held', flush=True); "
         "sys.stdin.readline()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    ) as holder:  # fmt: skip
        assert holder.stdout is not None and holder.stdin is not None
        assert holder.stdout.readline().strip() == "held"
        busy = admin.get("/console/signals")
        holder.stdin.write("\n")
        holder.stdin.flush()
        holder.wait(timeout=30)
    assert busy.status_code == 503 and busy.headers["retry-after"] == "5"
    assert "being written" in busy.text
    deadline = time.monotonic() + 10
    while admin.get("/console/signals").status_code != 200:
        assert time.monotonic() < deadline
        time.sleep(0.1)


def test_a_writer_in_the_same_process_and_a_page_see_each_other_as_busy(
    admin: TestClient, console_data: Path
) -> None:
    # An erasure the API process finishes opens the warehouse for writing from this process:
    # while a page reads, it is told "busy" (and the erasure queue tries again), not an error.
    from console.reader import reading
    from flywheel.errors import WarehouseBusyError
    from warehouse.db import connected

    with reading(console_data), pytest.raises(WarehouseBusyError):
        with connected(console_data, action="erase users from"):
            pass
    with connected(console_data, action="erase users from"):
        busy = admin.get("/console/pairs")
    assert busy.status_code == 503
    assert admin.get("/console/pairs").status_code == 200


def test_a_warehouse_built_before_signal_days_says_to_run_a_transform(
    console_data: Path, tmp_path: Path
) -> None:
    """A warehouse whose last transform run predates a model the pages read (``signal_days``)
    gets a page naming the command, not an error; the next run builds the model."""
    import shutil

    from transforms.runner import run_transforms

    data_dir = tmp_path / "data"
    shutil.copytree(console_data, data_dir, ignore=shutil.ignore_patterns("lake-catalog.db"))
    with duckdb.connect(str(data_dir / "warehouse.duckdb")) as db:
        db.execute("DROP TABLE signal_days")
        db.execute("DELETE FROM model_state WHERE model = 'signal_days'")
    with TestClient(create_app(settings_for(data_dir), MemorySink())) as client:
        assert client.post("/console/login", data={"key": ADMIN_KEY}).status_code == 200
        before = client.get("/console/signals")
        assert before.status_code == 200
        assert "no signal_days yet: run `flywheel transform run`" in before.text
        run_transforms(data_dir)
        after = client.get("/console/signals")
    assert after.status_code == 200 and after.text.count("<svg") >= 3
    assert query(data_dir, "SELECT model FROM model_state WHERE model = 'signal_days'")
