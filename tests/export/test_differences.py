"""The difference of two dataset versions: every split counted in one query gives the counts
the split-by-split queries gave, and a difference kept on disk is read back instead of the
versions' files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pytest

from export.differences import TEXT_COLUMNS, SplitDiff, _compare

Files = dict[str, dict[str, list[str]]]


def reference(item: SplitDiff, paths_a: list[str], paths_b: list[str], changes: bool) -> tuple:
    """One split as the page counted it before: a query per split, each side's own columns."""

    def side(db: Any, name: str, paths: list[str]) -> tuple[str, dict[str, Any]]:
        if not paths:
            return "SELECT NULL::VARCHAR AS id, NULL::UBIGINT AS h WHERE false", {}
        if not changes:
            return f"SELECT id, 0::UBIGINT AS h FROM read_parquet(${name})", {name: paths}
        described = db.execute("DESCRIBE SELECT * FROM read_parquet($f)", {"f": paths}).fetchall()
        kept = ", ".join(f'"{c}"' for (c, *_) in described if c not in TEXT_COLUMNS)
        return (
            f"SELECT id, hash(t) AS h FROM (SELECT {kept} FROM read_parquet(${name})) AS t",
            {name: paths},
        )

    with duckdb.connect(":memory:") as db:
        (a, pa), (b, pb) = side(db, "a", paths_a), side(db, "b", paths_b)
        added, removed, changed, kept = db.execute(
            f"""
            WITH a AS ({a}), b AS ({b})
            SELECT count(*) FILTER (WHERE a.id IS NULL), count(*) FILTER (WHERE b.id IS NULL),
                   count(*) FILTER (WHERE a.id IS NOT NULL AND b.id IS NOT NULL AND a.h <> b.h),
                   count(*) FILTER (WHERE a.id IS NOT NULL AND b.id IS NOT NULL AND a.h = b.h)
            FROM a FULL JOIN b USING (id)
            """,
            pa | pb,
        ).fetchone()
    return added, removed, changed, kept


def write(path: Path, rows: list[tuple[Any, ...]], *, extra: bool = False) -> str:
    """A Parquet file of rows (id, prompt, chosen, confidence, signals, event_ids[, note])."""
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = "id, prompt, chosen, confidence, signals, event_ids" + (", note" if extra else "")
    with duckdb.connect(":memory:") as db:
        db.execute(
            "CREATE TABLE t (id VARCHAR, prompt VARCHAR, chosen VARCHAR, confidence DOUBLE, "
            "signals VARCHAR[], event_ids VARCHAR[]" + (", note VARCHAR" if extra else "") + ")"
        )
        for row in rows:
            db.execute(f"INSERT INTO t ({columns}) VALUES ({', '.join('?' * len(row))})", row)
        db.execute(f"COPY t TO '{path}' (FORMAT parquet)")
    return str(path)


def row(i: int, confidence: float = 0.5, text: str = "t", lineage: int = 2) -> tuple[Any, ...]:
    return (f"id{i}", f"prompt {text}", f"chosen {text}", confidence, ["copy"],
            [f"e{i}-{n}" for n in range(lineage)])  # fmt: skip


@pytest.fixture
def versions(tmp_path: Path) -> tuple[list[SplitDiff], Files, Files]:
    a, b = tmp_path / "a", tmp_path / "b"
    files_a: Files = {
        "dpo": {
            "train": [
                write(a / "dpo-train-0.parquet", [row(i) for i in range(0, 6)]),
                write(a / "dpo-train-1.parquet", [row(i) for i in range(6, 10)]),
            ],
            "test": [write(a / "dpo-test.parquet", [row(i) for i in range(10, 13)])],
        },
        "kto": {"train": [write(a / "kto-train.parquet", [row(i) for i in range(20, 24)])]},
    }
    files_b: Files = {
        "dpo": {
            "train": [
                write(
                    b / "dpo-train-0.parquet",
                    [
                        row(0),  # unchanged
                        row(1, confidence=0.9),  # changed
                        row(2, lineage=3),  # more lineage: changed
                        row(3, text="other"),  # texts are not compared: unchanged
                        row(4),
                        row(11),  # moved from test: removed there, added here
                        row(30),  # added
                    ],
                )
            ],  # 5 to 9 removed
            "test": [write(b / "dpo-test.parquet", [row(10), row(12)])],
        },
        # Another column in b's kto: every row in both counts as changed.
        "kto": {"train": [write(b / "kto-train.parquet", [(*row(20), "n")], extra=True)]},
        "reward": {"train": [write(b / "reward-train.parquet", [row(40), row(41)])]},
    }
    splits = [
        SplitDiff(config, split, 0, 0)
        for config, split in [
            ("dpo", "test"),
            ("dpo", "train"),
            ("kto", "test"),
            ("kto", "train"),
            ("reward", "train"),
        ]  # fmt: skip
    ]
    return splits, files_a, files_b


@pytest.mark.parametrize("changes", [False, True])
def test_every_split_in_one_query_counts_what_each_split_alone_counted(
    versions: tuple[list[SplitDiff], Files, Files], changes: bool
) -> None:
    splits, files_a, files_b = versions

    found = _compare(splits, files_a, files_b, changes=changes)

    for item in splits:
        paths_a = files_a.get(item.config, {}).get(item.split, [])
        paths_b = files_b.get(item.config, {}).get(item.split, [])
        expected = reference(item, paths_a, paths_b, changes)
        got = found.get((item.config, item.split), (0, 0, 0, 0))
        if not changes:
            assert expected[2] == 0  # every row in both is "kept" without the hash
        assert got == expected, (item.config, item.split)
    if changes:
        assert found[("dpo", "train")] == (2, 5, 2, 3)
        assert found[("kto", "train")] == (0, 3, 1, 0)
    assert ("kto", "test") not in found  # no files on either side: zeros
    assert found[("reward", "train")][:2] == (2, 0)
