from __future__ import annotations

import sqlite3

import pytest

from headatlas.census import ScanSettings, run_census
from headatlas.errors import StoreError
from headatlas.headmap import HEAD_SCORE
from headatlas.probes import ProbeSettings
from headatlas.store import connect, heads_of_type, list_scans, load_scan, migrate, save_scan, transaction
from headatlas.testing.tiny import tiny_llama

SMALL = ProbeSettings(n_repeat=2, repeat_len=8, n_text=2, text_len=32, needle_contexts=(256,), needle_per_context=1)


@pytest.fixture(scope="module")
def headmap():
    return run_census(tiny_llama("gqa"), ScanSettings(probes=SMALL, head_types=("induction", "sink")))


def dump(path):
    conn = sqlite3.connect(path)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


def test_the_head_scores_table_holds_the_declared_row(db_path):
    """The migrated table matches HEAD_SCORE: a field added there without its migration fails here."""
    conn = connect(db_path)
    sql_type = {int: "INTEGER", bool: "INTEGER", float: "REAL", str: "TEXT"}
    columns = [(r[1], r[2], not r[3]) for r in conn.execute("PRAGMA table_info(head_scores)")]
    assert columns == [("scan_id", "INTEGER", False), *((f.name, sql_type[f.kind], f.nullable) for f in HEAD_SCORE)]


def test_migrations_run_once_and_wal_is_on(db_path):
    conn = connect(db_path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert migrate(conn) == []  # already applied
    names = {r[1] for r in conn.execute("SELECT component, name FROM migrations")}
    assert "0001_create" in names


def test_save_list_load_round_trip(db_path, headmap):
    conn = connect(db_path)
    scan_id = save_scan(conn, headmap, out_dir="/tmp/x")
    assert [s["id"] for s in list_scans(conn)] == [scan_id]
    assert load_scan(conn, scan_id).json_text() == headmap.json_text()
    n_rows = conn.execute("SELECT count(*) FROM head_scores WHERE scan_id = ?", (scan_id,)).fetchone()[0]
    assert n_rows == len(headmap.rows)
    members = heads_of_type(conn, "sink")
    assert all(m["member"] == 1 for m in members)


def test_failed_write_leaves_store_unchanged(db_path, headmap):
    conn = connect(db_path)
    save_scan(conn, headmap)
    before = dump(db_path)
    broken = type(headmap)(headmap.facts, [*headmap.rows, dict(headmap.rows[0])], headmap.settings, headmap.head_types)
    with pytest.raises(sqlite3.IntegrityError):
        save_scan(conn, broken)  # duplicate head row -> the whole scan is rolled back
    assert dump(db_path) == before
    with pytest.raises(RuntimeError), transaction(conn):
        conn.execute("DELETE FROM head_scores")
        raise RuntimeError("boom")
    assert dump(db_path) == before


def test_unusable_store_paths(tmp_path):
    not_a_db = tmp_path / "junk.sqlite3"
    not_a_db.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="not a usable headatlas store"):
        connect(not_a_db)
    with pytest.raises(StoreError, match="cannot open the store"):
        connect(tmp_path / "junk.sqlite3" / "inside.db")
    with pytest.raises(StoreError):
        load_scan(connect(tmp_path / "fresh.db"), 42)
