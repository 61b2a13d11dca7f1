"""The warehouse file: migrations to head, an old warehouse with data, one head, one writer."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine

from flywheel.errors import WarehouseBusyError, WarehouseError
from tests.factories import generation
from tests.helpers.lake import land
from transforms.history import recent_runs
from transforms.runner import run_transforms
from warehouse.db import (
    alembic_config,
    current_revision,
    head_revision,
    open_warehouse,
    raw,
    warehouse_path,
    warehouse_url,
)
from warehouse.lake import Lake


def tables(data_dir: Path) -> set[str]:
    engine = open_warehouse(data_dir, migrate=False)
    with engine.connect() as connection:
        names = raw(connection).execute("SELECT table_name FROM information_schema.tables")
        found = {row[0] for row in names.fetchall()}
    engine.dispose()
    return found


def test_the_migrations_have_exactly_one_head() -> None:
    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    assert heads == [head_revision()]


def test_a_new_warehouse_is_migrated_to_head(tmp_path: Path) -> None:
    engine = open_warehouse(tmp_path)
    with engine.connect() as connection:
        assert current_revision(connection) == head_revision()
    engine.dispose()
    assert {"events", "lake_files", "transform_runs"} <= tables(tmp_path)


def test_without_migrating_an_old_warehouse_is_refused_with_what_to_run(tmp_path: Path) -> None:
    command.upgrade(alembic_config(url=warehouse_url(tmp_path)), "0001")
    with pytest.raises(WarehouseError, match="flywheel db upgrade"):
        open_warehouse(tmp_path, migrate=False)


def test_an_old_warehouse_with_data_is_upgraded_keeping_its_data(tmp_path: Path) -> None:
    command.upgrade(alembic_config(url=warehouse_url(tmp_path)), "0001")
    engine = create_engine(warehouse_url(tmp_path))
    now = datetime(2026, 1, 5, tzinfo=UTC)
    with engine.begin() as connection:
        db = raw(connection)
        db.execute(
            "INSERT INTO lake_files VALUES ('landed_date=2026-01-05/t+0+1+2.parquet', 't', 0, 1, 2,"
            " 2, 'old-run', $now)",
            {"now": now},
        )
        db.execute(
            "INSERT INTO events (event_id, type, occurred_at, conversation_id, schema_version, "
            "source_topic, source_partition, source_offset, landed_at, lake_file, prompt, "
            "consent_training) "
            "VALUES ('e-1', 'generation', $now, 'c-1', 1, 't', 0, 1, $now, 'f', $prompt, true)",
            {"now": now, "prompt": '[{"role": "user", "content": "hi"}]'},
        )
    engine.dispose()

    engine = open_warehouse(tmp_path)
    with engine.connect() as connection:
        db = raw(connection)
        assert current_revision(connection) == head_revision()
        # Texts stay in the lake from 0004 on: the event is kept, its prompt copy is not.
        kept = db.execute("SELECT event_id, type, conversation_id, lake_file FROM events")
        assert kept.fetchall() == [("e-1", "generation", "c-1", "f")]
        columns = {c for (c,) in db.execute(
            "SELECT column_name FROM duckdb_columns() WHERE table_name = 'events'"
        ).fetchall()}  # fmt: skip
        assert "prompt" not in columns
        assert db.execute("SELECT path, rows, new_events FROM lake_files").fetchall() == [
            ("landed_date=2026-01-05/t+0+1+2.parquet", 2, None)
        ]
        assert db.execute("SELECT count(*) FROM transform_runs").fetchall() == [(0,)]
    engine.dispose()


def test_downgrade_to_base_and_upgrade_again(tmp_path: Path) -> None:
    config = alembic_config(url=warehouse_url(tmp_path))
    command.upgrade(config, "head")
    command.downgrade(config, "base")
    assert "events" not in tables_without_migrating(tmp_path)
    command.upgrade(config, "head")
    assert {"events", "lake_files", "transform_runs"} <= tables(tmp_path)


def tables_without_migrating(data_dir: Path) -> set[str]:
    engine = create_engine(warehouse_url(data_dir))
    with engine.connect() as connection:
        rows = raw(connection).execute("SELECT table_name FROM information_schema.tables")
        found = {row[0] for row in rows.fetchall()}
    engine.dispose()
    return found


@contextmanager
def held(data_dir: Path, seconds: float) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the warehouse file for ``seconds``, then letting it go."""
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
         "print('ready', flush=True); time.sleep(float(sys.argv[2])); c.close()",
         str(warehouse_path(data_dir)), str(seconds)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        yield holder
    finally:
        holder.kill()
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()


def test_a_warehouse_held_by_another_process_is_busy_not_a_crash(tmp_path: Path) -> None:
    open_warehouse(tmp_path).dispose()
    with held(tmp_path, 60):
        started = time.monotonic()
        with pytest.raises(WarehouseBusyError, match="in use by another process"):
            open_warehouse(tmp_path, busy_wait_s=1.0)
        # It waited for the file about as long as it was told to, then gave up.
        assert 0.5 < time.monotonic() - started < 10


def test_opening_waits_for_a_holder_that_lets_go_within_the_wait(tmp_path: Path) -> None:
    """A page read or a review written holds the file for milliseconds: a run that starts then
    waits for it instead of stopping busy."""
    open_warehouse(tmp_path).dispose()
    with held(tmp_path, 1) as holder:
        started = time.monotonic()
        engine = open_warehouse(tmp_path, busy_wait_s=30)
        waited = time.monotonic() - started
        with engine.connect() as connection:
            assert raw(connection).execute("SELECT count(*) FROM transform_runs").fetchall()
        engine.dispose()
        assert holder.wait(timeout=30) == 0
        assert 0.3 < waited < 30


def test_upgrading_from_0002_numbers_the_loaded_files_and_reads_prompt_references(
    tmp_path: Path,
) -> None:
    command.upgrade(alembic_config(url=warehouse_url(tmp_path)), "0002")
    engine = create_engine(warehouse_url(tmp_path))
    with engine.begin() as connection:
        db = raw(connection)
        for i, day in enumerate(["2026-01-06", "2026-01-05"]):
            db.execute(
                "INSERT INTO lake_files VALUES ($path, 't', 0, $i, $i, 1, 'old-run', $now, 1)",
                {"path": f"landed_date={day}/f{i}", "i": i,
                 "now": datetime(2026, 1, 5 + i, tzinfo=UTC)},
            )  # fmt: skip
        prompt = '[{"role": "user", "content": "hi", "response_id": null}, ' \
                 '{"role": "assistant", "content": "yo", "response_id": "r-7"}]'  # fmt: skip
        db.execute(
            "INSERT INTO events (event_id, type, occurred_at, conversation_id, schema_version, "
            "source_topic, source_partition, source_offset, landed_at, lake_file, prompt, "
            "consent_training) "
            "VALUES ('e-1', 'generation', $now, 'c-1', 1, 't', 0, 1, $now, 'f', $prompt, true), "
            "('e-2', 'copy', $now, 'c-1', 1, 't', 0, 2, $now, 'f', NULL, true)",
            {"now": datetime(2026, 1, 5, tzinfo=UTC), "prompt": prompt},
        )
    engine.dispose()

    engine = open_warehouse(tmp_path)
    with engine.begin() as connection:
        db = raw(connection)
        assert db.execute("SELECT path, seq FROM lake_files ORDER BY seq").fetchall() == [
            ("landed_date=2026-01-06/f0", 1),
            ("landed_date=2026-01-05/f1", 2),
        ]
        assert db.execute("SELECT nextval('lake_file_seq')").fetchall() == [(3,)]
        assert db.execute(
            "SELECT event_id, prompt_response_ids FROM events ORDER BY event_id"
        ).fetchall() == [("e-1", ["r-7"]), ("e-2", None)]
        assert db.execute("SELECT count(*) FROM model_state").fetchall() == [(0,)]
    engine.dispose()


def test_duckdb_draws_no_progress_bar_into_the_commands_output(tmp_path: Path) -> None:
    from warehouse.db import connected

    with connected(tmp_path, action="test") as db:
        assert db.execute("SELECT current_setting('enable_progress_bar')").fetchall() == [(False,)]


def test_downgrading_0004_restores_the_whole_events_table_to_be_loaded_again(
    tmp_path: Path,
) -> None:
    from tests.factories import make_event
    from tests.helpers.lake import land
    from transforms.runner import run_transforms
    from warehouse.lake import Lake

    land(Lake.in_data_dir(tmp_path), [make_event("generation"), make_event("copy")])
    run_transforms(tmp_path)
    command.downgrade(alembic_config(url=warehouse_url(tmp_path)), "0003")
    engine = create_engine(warehouse_url(tmp_path))
    with engine.connect() as connection:
        db = raw(connection)
        columns = [c for (c,) in db.execute(
            "SELECT column_name FROM duckdb_columns() WHERE table_name = 'events' "
            "ORDER BY column_index").fetchall()]  # fmt: skip
        # 0003's loader inserts by position: the lake's columns, in the lake's order.
        assert columns[:4] == ["event_id", "type", "occurred_at", "user_pseudonym"]
        assert {"prompt", "response", "edited_text", "scrubbed", "landed_at"} <= set(columns)
        assert columns[-2:] == ["lake_file", "prompt_response_ids"]
        assert db.execute("SELECT count(*) FROM events").fetchall() == [(0,)]
        assert db.execute("SELECT count(*) FROM lake_files").fetchall() == [(0,)]
    engine.dispose()
    assert run_transforms(tmp_path).events_loaded == 2  # upgraded again, loaded again


def test_upgrading_to_0005_withholds_the_unconsented_events_already_loaded(
    tmp_path: Path,
) -> None:
    command.upgrade(alembic_config(url=warehouse_url(tmp_path)), "0004")
    engine = create_engine(warehouse_url(tmp_path))
    with engine.begin() as connection:
        db = raw(connection)
        for event_id, consent in (("e-yes", True), ("e-no", False), ("e-unknown", None)):
            db.execute(
                "INSERT INTO events (event_id, type, occurred_at, conversation_id, "
                "consent_training, source_offset, lake_file) VALUES ($id, 'copy', $at, 'c', "
                "$consent, 0, 'landed_date=2026-01-01/t+0+0-2.parquet')",
                {"id": event_id, "at": datetime(2026, 1, 1, tzinfo=UTC), "consent": consent},
            )
        db.execute(
            "INSERT INTO model_state VALUES ('labels', 'f', 1, 'r', $at, true)",
            {"at": datetime(2026, 1, 1, tzinfo=UTC)},
        )
    engine.dispose()

    command.upgrade(alembic_config(url=warehouse_url(tmp_path)), "head")

    engine = create_engine(warehouse_url(tmp_path))
    with engine.connect() as connection:
        db = raw(connection)
        assert db.execute("SELECT event_id FROM events").fetchall() == [("e-yes",)]
        withheld = db.execute("SELECT event_id FROM withheld_events ORDER BY 1").fetchall()
        assert withheld == [("e-no",), ("e-unknown",)]
        # Every model is built again in full, without them.
        assert db.execute("SELECT count(*) FROM model_state").fetchall() == [(0,)]
    engine.dispose()


def test_upgrading_to_0006_gives_events_a_metadata_column_and_keeps_their_rows(
    tmp_path: Path,
) -> None:
    command.upgrade(alembic_config(url=warehouse_url(tmp_path)), "0005")
    engine = create_engine(warehouse_url(tmp_path))
    with engine.begin() as connection:
        raw(connection).execute(
            "INSERT INTO events (event_id, type, occurred_at, conversation_id, consent_training, "
            "source_offset, lake_file) VALUES ('e1', 'copy', $at, 'c', true, 0, 'f.parquet')",
            {"at": datetime(2026, 1, 1, tzinfo=UTC)},
        )
    engine.dispose()

    command.upgrade(alembic_config(url=warehouse_url(tmp_path)), "head")

    engine = create_engine(warehouse_url(tmp_path))
    with engine.connect() as connection:
        db = raw(connection)
        assert db.execute("SELECT event_id, metadata FROM events").fetchall() == [("e1", None)]
        [(kind,)] = db.execute(
            "SELECT data_type FROM information_schema.columns "
            "WHERE table_name = 'events' AND column_name = 'metadata'"
        ).fetchall()
        assert kind == "VARCHAR"
    engine.dispose()
    command.downgrade(alembic_config(url=warehouse_url(tmp_path)), "0005")
    engine = create_engine(warehouse_url(tmp_path))
    with engine.connect() as connection:
        db = raw(connection)
        names = db.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'events'"
        ).fetchall()
        assert ("metadata",) not in names and ("event_id",) in names
        assert db.execute("SELECT count(*) FROM events").fetchall() == [(1,)]
    engine.dispose()


def test_upgrading_to_0007_adds_the_review_tables_and_downgrading_drops_them(
    tmp_path: Path,
) -> None:
    review_tables = {"review_queues", "review_items", "reviews"}

    def columns() -> dict[str, set[str]]:
        engine = create_engine(warehouse_url(tmp_path))
        with engine.connect() as connection:
            rows = (
                raw(connection)
                .execute("SELECT table_name, column_name FROM information_schema.columns")
                .fetchall()
            )
        engine.dispose()
        found: dict[str, set[str]] = {}
        for table, column in rows:
            found.setdefault(table, set()).add(column)
        return found

    command.upgrade(alembic_config(url=warehouse_url(tmp_path)), "0006")
    assert not review_tables & columns().keys()
    command.upgrade(alembic_config(url=warehouse_url(tmp_path)), "head")
    found = columns()
    assert review_tables <= found.keys()
    # Erasure finds a review by these (docs/privacy.md); no raw reviewer id is ever a column.
    assert {"reviewer_pseudonym", "conversation_id", "chosen_event_id", "rejected_event_id",
            "chosen_response_id", "rejected_response_id"} <= found["reviews"]  # fmt: skip
    command.downgrade(alembic_config(url=warehouse_url(tmp_path)), "0006")
    assert not review_tables & columns().keys()


def test_0008_lets_an_item_have_no_rejected_side_and_downgrading_drops_label_queues(
    tmp_path: Path,
) -> None:
    url = warehouse_url(tmp_path)
    command.upgrade(alembic_config(url=url), "head")
    engine = create_engine(url)
    with engine.begin() as connection:
        db = raw(connection)
        db.execute("INSERT INTO review_queues VALUES ('p', now(), 'pair', 1, '{}', 'x'), "
                   "('l', now(), 'label', 1, '{}', 'x')")  # fmt: skip
        db.execute(
            "INSERT INTO review_items (item_id, queue_id, position, stratum, wanted_reviews, "
            "pair_id, conversation_id, prompt_event_id, chosen_event_id, rejected_event_id, "
            "signals, confidence, disagreement, event_ids, label) VALUES "
            "('i1', 'p', 0, 's', 1, 'p1', 'c', 'e0', 'e1', 'e2', ['copy'], 0.5, 0, ['e1'], NULL),"
            "('i2', 'l', 0, 's', 1, 'r1', 'c', 'e1', 'e1', NULL, ['copy'], 0.5, 0, ['e1'], true)"
        )
        db.execute(
            "INSERT INTO reviews VALUES ('v2', 'l', 'i2', 'u', 1, 'chosen', 'good', '{}', '{}', "
            "'x', now(), 'c', 'e1', NULL, 'r1', NULL)"
        )
    engine.dispose()
    command.downgrade(alembic_config(url=url), "0007")
    engine = create_engine(url)
    with engine.connect() as connection:
        db = raw(connection)
        assert db.execute("SELECT queue_id FROM review_queues").fetchall() == [("p",)]
        assert db.execute("SELECT item_id FROM review_items").fetchall() == [("i1",)]
        assert db.execute("SELECT count(*) FROM reviews").fetchall() == [(0,)]
        with pytest.raises(duckdb.ConstraintException):
            db.execute("UPDATE review_items SET rejected_event_id = NULL")
    engine.dispose()
    command.upgrade(alembic_config(url=url), "head")


def test_0011_adds_the_runs_model_changes_and_keeps_the_runs_before_it(tmp_path: Path) -> None:
    url = warehouse_url(tmp_path)
    # The revision before it (another branch may be chained in between).
    before = ScriptDirectory.from_config(alembic_config()).get_revision("0011").down_revision
    assert isinstance(before, str)
    command.upgrade(alembic_config(url=url), before)
    assert "transform_run_models" not in tables_without_migrating(tmp_path)
    engine = create_engine(url)
    with engine.begin() as connection:
        raw(connection).execute(
            "INSERT INTO transform_runs (run_id, started_at, finished_at, full_refresh, status) "
            "VALUES ('old', $at, $at, false, 'succeeded')",
            {"at": datetime(2026, 12, 1, tzinfo=UTC)},
        )
    engine.dispose()
    assert [(r.run_id, r.models) for r in recent_runs(tmp_path)] == [("old", None)]

    land(Lake.in_data_dir(tmp_path), [generation("r1")])
    run = run_transforms(tmp_path)  # migrates to head first

    newest, old = recent_runs(tmp_path)
    assert (old.run_id, old.models) == ("old", None)
    assert newest.run_id == run.run_id and newest.models is not None
    assert [(m.model, m.added, m.removed) for m in newest.models] == [
        (s.name, s.added, s.removed) for s in run.steps[1:]
    ]
    command.downgrade(alembic_config(url=url), before)
    assert "transform_run_models" not in tables_without_migrating(tmp_path)
    assert [r.run_id for r in recent_runs(tmp_path)] == [run.run_id, "old"]
