"""Eight writer processes on one store at once: every write lands exactly once, the store stays intact.

Before WAL + busy waiting + short write transactions, `feed update` held the write lock while it scored a whole
file and the other writers died with `database is locked` (one lost its entire file)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

from headatlas.literature.catalogue import load_catalogue
from headatlas.literature.feed.ingest import Annotator, ingest_files
from headatlas.literature.feed.store import write_page
from headatlas.literature.feed.synthetic import atom_page, make_entries
from headatlas.literature.store import ensure_seeded
from headatlas.store import connect

SRC = Path(__file__).resolve().parents[3] / "src"
PER_FILE = 150

FORM = """Title: {title}
Head: Induction Head
Published: arXiv
Date: 2025-03-04
Summary:
- Innovation: Scores every head.
- Tasks: Copying.
- Significant Result: Two heads do most of it.
"""


def _entries(seed: int, n: int):
    return [replace(e, title=f"{e.title} (set {seed})") for e in make_entries(n, seed=seed)]


def _daily_json(entries) -> str:
    items = [
        {
            "paper": {
                "id": e.arxiv_id,
                "title": e.title,
                "summary": e.abstract,
                "publishedAt": f"{e.published}T00:00:00Z",
            }
        }
        for e in entries
    ]
    return json.dumps(items)


def test_eight_writer_processes_all_land_exactly_once(tmp_path) -> None:
    db = tmp_path / "store.sqlite3"
    conn = connect(db)
    ensure_seeded(conn)
    queued = _entries(4, 2)
    (tmp_path / "queued.xml").write_bytes(atom_page(queued, total=2, start=0))
    ingest_files(conn, [tmp_path / "queued.xml"], annotate=Annotator())
    queue_ids = [
        conn.execute("SELECT id FROM feed_entries WHERE arxiv_id = ?", (e.arxiv_id,)).fetchone()[0] for e in queued
    ]
    papers_before = conn.execute("SELECT COUNT(*) FROM papers").fetchone()[0]
    conn.close()

    files = {}
    for seed, suffix in ((1, "xml"), (2, "xml"), (3, "json")):
        entries = _entries(seed, PER_FILE)
        path = tmp_path / f"feed{seed}.{suffix}"
        if suffix == "xml":
            path.write_bytes(atom_page(entries, total=len(entries), start=0))
        else:
            path.write_text(_daily_json(entries))
        files[path] = {e.arxiv_id for e in entries}
    forms = []
    for k, title in enumerate(("Induction heads under load", "Индукционные головы под нагрузкой")):
        form = tmp_path / f"form{k}.txt"
        form.write_text(FORM.format(title=title), encoding="utf-8")
        forms.append((form, title))

    commands = [["feed", "update", "--file", str(p)] for p in files]
    commands += [["papers", "add", "--from-issue", str(f)] for f, _ in forms]
    commands += [["papers", "review", "--accept", str(i), "--head-type", "induction"] for i in queue_ids]
    commands += [["digest", "subscribe", "reader@example.org", "--head-type", "induction"]]
    assert len(commands) == 8
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "headatlas.cli", *c, "--db", str(db)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for c in commands
    ]
    # meanwhile a reader (what `serve` does) keeps reading: WAL never makes it wait for the writers
    seen = [0]
    while any(p.poll() is None for p in procs):
        reader = connect(db, read_only=True)
        seen.append(reader.execute("SELECT COUNT(*) FROM feed_entries").fetchone()[0])
        reader.close()
        time.sleep(0.2)
    assert seen == sorted(seen) and len(seen) > 2  # counts only grow: whole pages appear at once
    results = [(c, p.wait(timeout=600), p.stdout.read(), p.stderr.read()) for c, p in zip(commands, procs, strict=True)]  # type: ignore[union-attr]
    for command, code, _, err in results:
        assert code == 0, (command, err)
        assert "Traceback" not in err and "database is locked" not in err, (command, err)

    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    stored = [r[0] for r in conn.execute("SELECT arxiv_id FROM feed_entries")]
    assert len(stored) == len(set(stored)) == 2 + 3 * PER_FILE  # every entry of every file, once
    for ids in files.values():
        assert ids <= set(stored)
    for _, title in forms:
        assert conn.execute("SELECT COUNT(*) FROM papers WHERE title = ?", (title,)).fetchone()[0] == 1
    for entry_id, entry in zip(queue_ids, queued, strict=True):
        status, catalogue_id = conn.execute(
            "SELECT status, catalogue_id FROM feed_entries WHERE id = ?", (entry_id,)
        ).fetchone()
        assert (status, catalogue_id) == ("accepted", entry.arxiv_id)
        assert conn.execute("SELECT COUNT(*) FROM papers WHERE id = ?", (catalogue_id,)).fetchone()[0] == 1
    assert conn.execute("SELECT COUNT(*) FROM papers").fetchone()[0] == papers_before + 4
    assert conn.execute("SELECT email FROM digest_subscribers").fetchall() == [("reader@example.org",)]


def test_processes_opening_a_new_store_at_once_migrate_and_seed_it_once(tmp_path) -> None:
    db = tmp_path / "fresh.sqlite3"
    code = "import sys; from headatlas.literature.store import ensure_seeded; from headatlas.store import connect; "
    code += "ensure_seeded(connect(sys.argv[1]))"
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(db)], env=env, stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    errors = [p.stderr.read() for p in procs]  # type: ignore[union-attr]
    assert [p.wait(timeout=600) for p in procs] == [0] * 4, errors
    conn = sqlite3.connect(db)
    rows = conn.execute("SELECT component, name, COUNT(*) FROM migrations GROUP BY 1, 2").fetchall()
    assert rows and all(n == 1 for _, _, n in rows)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("SELECT COUNT(*) FROM papers").fetchone()[0] == len(load_catalogue())


def test_scoring_happens_outside_the_write_lock(tmp_path) -> None:
    """While a page is being scored, another connection can write: the lock is held only for the short write."""
    db = tmp_path / "store.sqlite3"
    conn = connect(db)
    other = sqlite3.connect(db, timeout=0)
    real = Annotator()
    took_lock = []

    def annotate(entries):
        other.execute("BEGIN IMMEDIATE")  # fails at once ('database is locked') if the writer holds the lock
        other.execute("INSERT INTO feed_cursors (source, position, updated_at) VALUES ('probe', 'x', 'now')")
        other.commit()
        took_lock.append(len(entries))
        return real(entries)

    result = write_page(conn, _entries(5, 6), annotate, source="arxiv", cursor="2024-11-01")
    assert result.added == 6 and took_lock == [6]
    assert conn.execute("SELECT position FROM feed_cursors WHERE source = 'arxiv'").fetchone()[0] == "2024-11-01"
