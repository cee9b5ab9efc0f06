"""Stores written by older versions open, upgrade through the migrations, lose nothing and keep working.

The fixtures were written by ``data/make_old_store.py`` run with older checkouts: ``store_5d6f1fc`` by the version
before the storage layer was reshaped (issue 12 part 4; it lacks only the full-text table), ``store_before_identity``
by d0448fc, before the Unicode title keys and the evidence and full-text tables (four migrations run on it).
"""

from __future__ import annotations

import gzip
import sqlite3
from pathlib import Path

import pytest

from headatlas.literature.feed.digest import due, subscribers
from headatlas.literature.feed.review import accept
from headatlas.literature.feed.store import evidence_for, list_entries
from headatlas.literature.identity import title_key
from headatlas.literature.store import ensure_seeded, get_paper, search_papers, store_vocabulary
from headatlas.store import connect, delete_scan, heads_of_type, list_scans, load_scan, save_scan

DATA = Path(__file__).parent / "data"
OLD_STORES = {
    "store_5d6f1fc": {"feed_tags/0002_full_text"},
    "store_before_identity": {
        "papers/0003_identity",
        "feed/0002_identity",
        "feed_tags/0001_evidence",
        "feed_tags/0002_full_text",
    },
}


def _migrations(db: Path) -> set[str]:
    conn = sqlite3.connect(db)
    try:
        return {f"{c}/{n}" for c, n in conn.execute("SELECT component, name FROM migrations")}
    finally:
        conn.close()


@pytest.mark.parametrize("name", sorted(OLD_STORES))
def test_an_old_store_opens_upgrades_and_keeps_working(tmp_path: Path, name: str) -> None:
    db = tmp_path / "old.sqlite3"
    db.write_bytes(gzip.decompress((DATA / f"{name}.sqlite3.gz").read_bytes()))
    before = _migrations(db)
    conn = connect(db)
    assert _migrations(db) - before == OLD_STORES[name]
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []

    # everything the old version wrote reads back
    (scan,) = list_scans(conn)
    assert (scan["model"], scan["out_dir"]) == ("tiny/old-store", "scans/old")
    headmap = load_scan(conn, scan["id"])
    assert len(headmap.rows) == 8 and set(headmap.head_types) == {"induction", "previous_token"}
    assert [(h["layer"], h["head"]) for h in heads_of_type(conn, "previous_token")] == [(1, 1)]  # the member
    ranked = heads_of_type(conn, "induction", members_only=False)
    assert [(h["layer"], h["head"]) for h in ranked] == [(1, 1), (0, 1), (1, 0), (0, 0)]
    assert "old_store" in store_vocabulary(conn)
    paper = get_paper(conn, "old-store-paper-2024")
    assert paper.title == "注意力头的因果分析" and paper.head_types == ("old_store",)
    stored_key = conn.execute("SELECT norm_title FROM papers WHERE id = 'old-store-paper-2024'").fetchone()[0]
    assert stored_key == title_key(paper.title)  # re-keyed by the migration where the old key was empty
    assert [h.paper.id for h in search_papers(conn, "copy heads tiny models")] == ["2501.00001"]
    entries = {e.arxiv_id: e for e in list_entries(conn)}
    assert entries["2501.00001"].status == "accepted" and entries["2501.00001"].catalogue_id == "2501.00001"
    assert evidence_for(conn, entries["2501.00001"].id) == []  # the evidence table exists, empty for old rows
    (reader,) = subscribers(conn)
    assert reader.email == "reader@example.org" and due(conn, reader) == []  # already sent

    # and the upgraded store takes new writes
    ensure_seeded(conn)
    pending = next(e for e in entries.values() if e.status == "pending")
    assert accept(conn, pending.id).paper.id == pending.arxiv_id
    again = save_scan(conn, headmap, out_dir="scans/again")
    assert load_scan(conn, again).csv_text() == headmap.csv_text()
    assert delete_scan(conn, again) and not delete_scan(conn, again)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
