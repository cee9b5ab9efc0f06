"""Crash safety, broader: `papers import`, `papers review --accept` and `digest send` killed at random points.

A forked child runs the operation and dies (``os._exit``, no cleanup, as under SIGKILL) just before its k-th SQL
statement, k drawn per seed. Afterwards the store's integrity holds, no record is half-applied, and a rerun
completes with nothing duplicated.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import socket
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from headatlas.literature.catalogue import load_catalogue
from headatlas.literature.feed.digest import send_digest, subscribe
from headatlas.literature.feed.review import accept
from headatlas.literature.feed.store import get_entry, write_page
from headatlas.literature.feed.synthetic import make_entries
from headatlas.literature.store import ensure_seeded, import_papers
from headatlas.store import connect

SEEDS = range(6)
CRASHED = 99


def _crash_at(db: Path, k: int, op: Callable) -> int:
    """Exit code of a forked child running ``op(conn)`` that dies before its ``k``-th statement."""

    def child() -> None:
        conn = connect(db)
        count = 0

        def trace(_: str) -> None:
            nonlocal count
            count += 1
            if count == k:
                os._exit(CRASHED)

        conn.set_trace_callback(trace)
        op(conn)
        os._exit(0)

    proc = multiprocessing.get_context("fork").Process(target=child)
    proc.start()
    proc.join(120)
    return int(proc.exitcode if proc.exitcode is not None else -1)


def _integrity(conn) -> None:
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []


def _papers(count: int) -> list:
    base = load_catalogue().papers[0]
    return [replace(base, id=f"2501.{i:05d}", title=f"Crash-safe heads {i}") for i in range(count)]


@pytest.fixture()
def seeded(tmp_path) -> Path:
    db = tmp_path / "store.sqlite3"
    ensure_seeded(connect(db))
    return db


@pytest.mark.parametrize("seed", SEEDS)
def test_papers_import_killed_anywhere_is_all_or_nothing(seeded, seed) -> None:
    papers = _papers(25)
    conn = connect(seeded)
    before = conn.execute("SELECT COUNT(*) FROM papers").fetchone()[0]
    k = random.Random(seed).randint(1, 250)
    code = _crash_at(seeded, k, lambda c: import_papers(c, papers))
    conn = connect(seeded)
    _integrity(conn)
    after = conn.execute("SELECT COUNT(*) FROM papers").fetchone()[0]
    assert code in (0, CRASHED)
    assert after == (before + 25 if code == 0 else before)  # all or nothing
    # no half-applied record: every paper has its index rows and search entry
    assert conn.execute("SELECT COUNT(*) FROM papers_fts_docsize").fetchone()[0] == after
    assert (
        conn.execute(
            "SELECT COUNT(*) FROM papers WHERE rowid NOT IN (SELECT paper_rowid FROM paper_head_types)"
        ).fetchone()[0]
        == 0
    )
    assert import_papers(conn, papers) == 25  # the rerun completes
    assert conn.execute("SELECT COUNT(*) FROM papers").fetchone()[0] == before + 25
    _integrity(conn)


@pytest.mark.parametrize("seed", SEEDS)
def test_review_accept_killed_anywhere_leaves_both_halves_or_neither(seeded, seed) -> None:
    from headatlas.literature.feed.store import Annotation

    conn = connect(seeded)
    note = Annotation(True, 0.9, ("x",), ("induction",), (), ("ICI",), (), {"innovation": "i", "tasks": "t",
                      "result": "r"})  # fmt: skip
    entry = make_entries(1, seed=7)[0]
    (entry_id,) = write_page(conn, [entry], lambda es: [note] * len(es), source="arxiv").added_ids
    before = conn.execute("SELECT COUNT(*) FROM papers").fetchone()[0]
    k = random.Random(seed).randint(1, 30)  # an accept runs ~27 statements
    _crash_at(seeded, k, lambda c: accept(c, entry_id))
    conn = connect(seeded)
    _integrity(conn)
    stored = conn.execute("SELECT COUNT(*) FROM papers WHERE id = ?", (entry.arxiv_id,)).fetchone()[0]
    status = get_entry(conn, entry_id).status  # type: ignore[union-attr]
    assert (stored == 1) == (status == "accepted")  # never a paper without its accepted entry, or the reverse
    accept(conn, entry_id)  # the rerun completes
    assert get_entry(conn, entry_id).status == "accepted"  # type: ignore[union-attr]
    assert conn.execute("SELECT COUNT(*) FROM papers").fetchone()[0] == before + 1


class _Inbox:
    def __init__(self) -> None:
        self.rcpts: list[str] = []

    async def handle_DATA(self, server, session, envelope):  # aiosmtpd handler hook
        self.rcpts.extend(envelope.rcpt_tos)
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("seed", SEEDS)
def test_digest_send_killed_anywhere_records_each_delivery_once(seeded, seed) -> None:
    conn = connect(seeded)
    for address in ("a@example.org", "b@example.org", "c@example.org"):
        subscribe(conn, address)
    conn.execute("INSERT INTO feed_entries (norm_title, title, abstract, authors_json, categories_json, keywords_json,"
                 " sources_json, status, score, why_json, head_types_json, candidates_json, stages_json, models_json,"
                 " summary_json, first_seen) VALUES ('x', 'X', '', '[]', '[]', '[]', '[]', 'accepted', 1, '[]', '[]',"
                 " '[]', '[]', '[]', '{}', 'now')")  # fmt: skip
    conn.commit()
    inbox = _Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=_free_port())
    controller.start()
    try:
        address = f"127.0.0.1:{controller.port}"
        k = random.Random(seed).randint(1, 20)
        _crash_at(seeded, k, lambda c: send_digest(c, address))
        conn = connect(seeded)
        _integrity(conn)
        recorded_before = {r[0] for r in conn.execute("SELECT s.email FROM digest_sent d JOIN digest_subscribers s"
                                                      " ON s.id = d.subscriber_id")}  # fmt: skip
        assert recorded_before <= set(inbox.rcpts)  # recorded only after the server accepted
        report = send_digest(conn, address)  # the rerun completes
        assert not report.failed and set(report.sent) == {"a@example.org", "b@example.org", "c@example.org"} - (
            recorded_before
        )
    finally:
        controller.stop()
    rows = conn.execute("SELECT subscriber_id, entry_id FROM digest_sent").fetchall()
    assert len(rows) == len(set(rows)) == 3
    assert set(inbox.rcpts) == {"a@example.org", "b@example.org", "c@example.org"}
    # at most the one message in flight at the crash goes out twice (SMTP has no two-phase commit)
    assert len(inbox.rcpts) <= 4
