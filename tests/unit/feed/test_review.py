"""Accepting is one transaction: the paper, the entry's status and (on a fresh store) the seed commit together."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from headatlas.literature.catalogue import load_catalogue
from headatlas.literature.feed.proposals import accept_proposed, evidence_for
from headatlas.literature.feed.review import accept
from headatlas.literature.feed.store import Annotation, Evidence, get_entry, write_page
from headatlas.literature.feed.synthetic import make_entries
from headatlas.literature.store import ensure_seeded, store_vocabulary
from headatlas.store import connect

SUMMARY = {"innovation": "i", "tasks": "t", "result": "r"}


def _pending(conn: sqlite3.Connection, *, candidates: tuple[str, ...] = (), evidence: tuple = ()) -> int:
    note = Annotation(True, 0.9, ("x",), ("induction",), candidates, ("ICI",), (), SUMMARY, evidence=evidence)
    entry = make_entries(1, seed=11)[0]
    (entry_id,) = write_page(conn, [entry], lambda es: [note] * len(es), source="arxiv").added_ids
    return int(entry_id)


def _statements(conn: sqlite3.Connection) -> list[str]:
    seen: list[str] = []
    conn.set_trace_callback(seen.append)
    return seen


@pytest.mark.parametrize("seeded", [False, True])
def test_accept_is_one_transaction_and_seeds_the_store_in_it(tmp_path: Path, seeded: bool) -> None:
    """Unseeded: the store holds the seed of an older headatlas (its digest differs from the shipped one's)."""
    conn = connect(tmp_path / "s.sqlite3")
    entry_id = _pending(conn)
    if not seeded:
        with conn:
            conn.execute("UPDATE papers_meta SET value = 'an older shipped catalogue' WHERE key = 'seed_digest'")
    seen = _statements(conn)
    result = accept(conn, entry_id)
    conn.set_trace_callback(None)
    assert [s for s in seen if s.startswith("BEGIN")] == ["BEGIN IMMEDIATE"]
    assert sum(s.startswith("COMMIT") for s in seen) <= 1  # sqlite3 commits without a traced statement
    writes_seed = any("papers_meta" in s and s.startswith("INSERT") for s in seen)
    assert writes_seed is not seeded  # the seed is written once: by this accept when it is due, else never
    assert get_entry(conn, entry_id).status == "accepted"  # type: ignore[union-attr]
    stored = {r[0] for r in conn.execute("SELECT id FROM papers")}
    assert result.paper.id in stored and len(stored) == len(load_catalogue()) + 1


def test_accept_proposed_is_one_transaction(tmp_path: Path) -> None:
    conn = connect(tmp_path / "s.sqlite3")
    ensure_seeded(conn)
    sentence = "Evaluator heads decide the verdict."
    entry_id = _pending(
        conn, candidates=("evaluator head",), evidence=(Evidence("proposed", "evaluator head", sentence),)
    )
    seen = _statements(conn)
    term, entries = accept_proposed(conn, "evaluator head")
    conn.set_trace_callback(None)
    assert [s for s in seen if s.startswith("BEGIN")] == ["BEGIN IMMEDIATE"]
    assert entries == [entry_id] and term.id in store_vocabulary(conn)
    assert get_entry(conn, entry_id).head_types == ("induction", "evaluator")  # type: ignore[union-attr]
    assert [(e.kind, e.name, e.sentence) for e in evidence_for(conn, entry_id)] == [
        ("head_type", "evaluator", sentence)
    ]
