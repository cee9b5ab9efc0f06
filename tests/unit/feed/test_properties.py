"""Property tests (Hypothesis) of the feed's intake: arXiv Atom, Daily Papers JSON, Semantic Scholar records.

Generated documents (wrong types, deep nesting, odd Unicode, huge numbers, truncation) must give entries the
store accepts or a one-line ``ValueError`` / ``HeadatlasError``; what is written must match the parse, with the
store intact. The number of inputs each parser took is reported at the end of the run.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from headatlas.errors import HeadatlasError
from headatlas.literature.feed.model import Entry
from headatlas.literature.feed.sources.arxiv import parse_arxiv_feed
from headatlas.literature.feed.sources.daily import parse_daily_papers
from headatlas.literature.feed.sources.semantic_scholar import parse_paper
from headatlas.literature.feed.store import Annotation, write_page
from headatlas.literature.feed.synthetic import atom_page, make_entries
from headatlas.store import connect
from headatlas.testing.robustness import tried

SETTINGS = settings(
    max_examples=150, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow]
)  # derandomized: CI tries the same inputs on every run

odd_text = st.text(max_size=40) | st.sampled_from(
    ["", " ", "\ud800", "2024-13-45", "yesterday", "x" * 5000, "注意力头", "\u202e", "\x00"]
)
huge = st.integers(min_value=-(2**70), max_value=2**70)
scalars = st.none() | st.booleans() | huge | st.floats(allow_nan=True) | odd_text
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(odd_text, inner, max_size=4), max_leaves=12
)


def _note(_: Entry) -> Annotation:
    return Annotation(True, 0.9, ("generated",), ("induction",), (), ("ICI",), (), {"innovation": "i"})


def _annotate(entries: list[Entry]) -> list[Annotation]:
    return [_note(e) for e in entries]


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> sqlite3.Connection:
    return connect(tmp_path_factory.mktemp("props") / "store.sqlite3")


def _store_and_check(conn: sqlite3.Connection, entries: list[Entry], source: str) -> None:
    before = conn.execute("SELECT COUNT(*) FROM feed_entries").fetchone()[0]
    result = write_page(conn, entries, _annotate, source=source)
    after = conn.execute("SELECT COUNT(*) FROM feed_entries").fetchone()[0]
    assert after == before + result.added
    assert result.added + result.updated + result.unchanged == len(entries)
    for entry_id in result.added_ids:  # a stored row reads back with a real date or none
        row = conn.execute("SELECT published FROM feed_entries WHERE id = ?", (entry_id,)).fetchone()
        assert row[0] is None or len(row[0]) == 10


daily_item = st.fixed_dictionaries(
    {"id": st.sampled_from(["2410.12345", "2410.12346v2", "bad", 5, None]) | odd_text},
    optional={
        "title": odd_text | json_values,
        "summary": odd_text | json_values,
        "authors": json_values | st.lists(st.fixed_dictionaries({"name": odd_text | json_values}), max_size=3),
        "ai_keywords": json_values,
        "publishedAt": st.sampled_from(["2024-10-14T00:00:00Z", "2024-13-45", "yesterday", "", 5]) | json_values,
        "upvotes": huge,
    },
)


@SETTINGS
@given(st.lists(st.fixed_dictionaries({"paper": daily_item}) | json_values, max_size=5) | json_values)
def test_daily_papers_documents(store, doc: Any) -> None:
    try:
        answer = parse_daily_papers(doc)
    except ValueError as exc:
        assert "\n" not in str(exc)
    else:
        assert len(answer.entries) + len(answer.skipped) == len(doc)
        _store_and_check(store, answer.entries, "daily")
    tried("Daily Papers JSON")


BASE_ATOM = atom_page(make_entries(3), total=3, start=0)


@SETTINGS
@given(
    st.integers(min_value=0, max_value=len(BASE_ATOM)),
    st.lists(st.tuples(st.sampled_from([b"Heads", b"2024-11-01", b"3", b"2411.00000"]), odd_text), max_size=4),
)
def test_arxiv_atom_documents(store, cut: int, swaps: list[tuple[bytes, str]]) -> None:
    doc = BASE_ATOM
    for old, new in swaps:  # put generated text (escaped, so the XML stays well-formed) where fields were
        safe = new.encode("utf-8", "replace").replace(b"&", b"&amp;").replace(b"<", b"&lt;")
        doc = doc.replace(old, safe, 1)
    doc = doc[:cut] if cut < len(doc) else doc  # truncation
    try:
        page = parse_arxiv_feed(doc)
    except (ValueError, HeadatlasError) as exc:
        assert "\n" not in str(exc).strip()
    else:
        _store_and_check(store, page.entries, "arxiv")
    tried("arXiv Atom")


@SETTINGS
@given(json_values | st.fixed_dictionaries({"paperId": odd_text, "title": odd_text}, optional={
    "venue": json_values, "citationCount": huge | json_values, "year": huge, "externalIds": json_values,
    "publicationVenue": json_values}))  # fmt: skip
def test_semantic_scholar_records(store, doc: Any) -> None:
    found = parse_paper(doc)
    if found is not None:
        # everything that can reach an UPDATE is storable
        store.execute("SELECT ?, ?, ?, ?", (found.venue, found.citation_count, found.arxiv_id, found.doi)).fetchone()
        for text in (found.venue, found.arxiv_id, found.doi):
            assert text is None or text.encode("utf-8")
    tried("Semantic Scholar record")


def test_store_is_intact_after_the_properties(store) -> None:
    assert store.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
