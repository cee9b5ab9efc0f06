"""The paper catalogue in the shared SQLite store: papers, their head types, the vocabulary, and FTS5 search.

Each paper keeps its full canonical record (``record_json``) so export -> import is lossless; the other tables are
indexes over it (head types, stages, authors, links) for filtering, and ``papers_fts`` (FTS5, porter stemming) over
title and summary for ranked search. The shipped catalogue is imported by :func:`ensure_seeded`, idempotently: it
re-imports only when the shipped file changed. All writes go through :func:`headatlas.store.db.transaction`.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date

from ..errors import CatalogueError
from ..fileio import has_surrogates
from ..store.db import execute_script, migration, transaction
from .catalogue import load_catalogue, shipped_text, sort_papers
from .identity import identity_keys, title_key
from .schema import STAGES, Paper, Provenance
from .vocabulary import HeadTerm, Vocabulary, shipped_terms, vocabulary

TITLE_WEIGHT = 10.0  # bm25 column weights: a title hit counts ten times a summary hit
SUMMARY_WEIGHT = 1.0


@migration("papers", "0001_create")
def _create(conn: sqlite3.Connection) -> None:
    execute_script(
        conn,
        """
        CREATE TABLE papers (
            rowid INTEGER PRIMARY KEY,
            id TEXT NOT NULL UNIQUE,
            title TEXT NOT NULL,
            norm_title TEXT NOT NULL UNIQUE,
            date TEXT NOT NULL,
            year INTEGER NOT NULL,
            venue TEXT NOT NULL,
            source TEXT NOT NULL,
            added TEXT NOT NULL,
            record_json TEXT NOT NULL
        );
        CREATE INDEX papers_year ON papers(year);
        CREATE TABLE paper_head_types (
            paper_rowid INTEGER NOT NULL REFERENCES papers(rowid) ON DELETE CASCADE,
            head_type_id TEXT NOT NULL,
            PRIMARY KEY (paper_rowid, head_type_id)
        );
        CREATE INDEX paper_head_types_type ON paper_head_types(head_type_id, paper_rowid);
        CREATE TABLE paper_stages (
            paper_rowid INTEGER NOT NULL REFERENCES papers(rowid) ON DELETE CASCADE,
            stage TEXT NOT NULL,
            PRIMARY KEY (paper_rowid, stage)
        );
        CREATE INDEX paper_stages_stage ON paper_stages(stage, paper_rowid);
        CREATE TABLE paper_authors (
            paper_rowid INTEGER NOT NULL REFERENCES papers(rowid) ON DELETE CASCADE,
            position INTEGER NOT NULL,
            name TEXT NOT NULL,
            PRIMARY KEY (paper_rowid, position)
        );
        CREATE TABLE paper_links (
            paper_rowid INTEGER NOT NULL REFERENCES papers(rowid) ON DELETE CASCADE,
            kind TEXT NOT NULL,
            url TEXT NOT NULL,
            PRIMARY KEY (paper_rowid, kind)
        );
        CREATE TABLE head_types (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            stage TEXT NOT NULL,
            definition TEXT NOT NULL,
            in_survey INTEGER NOT NULL,
            aliases_json TEXT NOT NULL,
            papers_json TEXT NOT NULL,
            shipped INTEGER NOT NULL
        );
        CREATE TABLE papers_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE VIRTUAL TABLE papers_fts USING fts5(title, summary, tokenize = 'porter unicode61');
        """,
    )


FTS_TOKENIZER = "porter unicode61 tokenchars '_'"


def facet_text(p: Paper) -> str:
    """Filter values as index tokens (``ht_induction stage_lr year_2024``), so FTS5 intersects them with the words."""
    return " ".join([*(f"ht_{h}" for h in p.head_types), *(f"stage_{s.lower()}" for s in p.stages), f"year_{p.year}"])


def _fts_values(p: Paper) -> tuple[str, str, str]:
    return p.title, p.summary.text(), facet_text(p)


@migration("papers", "0002_fts_facets")
def _fts_facets(conn: sqlite3.Connection) -> None:
    """Contentless index (the text lives in ``record_json``; a smaller index ranks ~3x faster) with a facets column.

    Head type, stage and year are tokens of ``facets``, so a filtered search is one FTS5 query that intersects
    doclists instead of joining every match to the filter tables.
    """
    conn.execute("DROP TABLE papers_fts")
    columns = f"title, summary, facets, content = '', tokenize = \"{FTS_TOKENIZER}\""
    conn.execute(f"CREATE VIRTUAL TABLE papers_fts USING fts5({columns})")
    rows = conn.execute("SELECT rowid, record_json FROM papers").fetchall()
    conn.executemany(
        "INSERT INTO papers_fts (rowid, title, summary, facets) VALUES (?, ?, ?, ?)",
        [(r[0], *_fts_values(Paper.from_dict(json.loads(r[1])))) for r in rows],
    )


def _paper_keys(p: Paper) -> list[str]:
    return identity_keys(p.id, *p.links.values())


@migration("papers", "0003_identity")
def _identity(conn: sqlite3.Connection) -> None:
    """Ids first: a table of each paper's arXiv / DOI / OpenReview keys; titles re-keyed by the Unicode-aware
    :func:`~headatlas.literature.identity.title_key` (the old key kept only ``a-z0-9``). Two rows whose new keys
    coincide both stay, the later one's key suffixed with its rowid, so the migration never loses a paper."""
    conn.execute(
        "CREATE TABLE paper_keys (paper_rowid INTEGER NOT NULL REFERENCES papers(rowid) ON DELETE CASCADE,"
        " key TEXT NOT NULL, PRIMARY KEY (paper_rowid, key))"
    )
    conn.execute("CREATE INDEX paper_keys_key ON paper_keys(key)")
    rows = [(r[0], Paper.from_dict(json.loads(r[1]))) for r in conn.execute("SELECT rowid, record_json FROM papers")]
    conn.execute("UPDATE papers SET norm_title = '#migrating ' || rowid")
    used: set[str] = set()
    for rowid, p in rows:
        key = title_key(p.title)
        key = key if key not in used else f"{key}#{rowid}"
        used.add(key)
        conn.execute("UPDATE papers SET norm_title = ? WHERE rowid = ?", (key, rowid))
        conn.executemany(
            "INSERT OR IGNORE INTO paper_keys (paper_rowid, key) VALUES (?, ?)", [(rowid, k) for k in _paper_keys(p)]
        )


# ----- vocabulary -----


def added_terms(conn: sqlite3.Connection) -> list[HeadTerm]:
    """Head types added to this store (``papers add --new-head``), beyond the shipped vocabulary."""
    rows = conn.execute("SELECT * FROM head_types WHERE shipped = 0 ORDER BY id").fetchall()
    return [
        HeadTerm(
            id=r["id"],
            name=r["name"],
            stage=r["stage"],
            definition=r["definition"],
            aliases=tuple(json.loads(r["aliases_json"])),
            papers=tuple(json.loads(r["papers_json"])),
            in_survey=bool(r["in_survey"]),
        )
        for r in rows
    ]


def store_vocabulary(conn: sqlite3.Connection) -> Vocabulary:
    """The shipped vocabulary plus this store's added head types. Treat as read-only (it may be shared)."""
    extra = added_terms(conn)
    return vocabulary(extra) if extra else _shipped_vocabulary()


@functools.cache
def _shipped_vocabulary() -> Vocabulary:
    return vocabulary()


def _write_terms(conn: sqlite3.Connection, terms: Iterable[HeadTerm], *, shipped: bool) -> None:
    conn.executemany(
        "INSERT OR REPLACE INTO head_types (id, name, stage, definition, in_survey, aliases_json, papers_json, shipped)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                t.id,
                t.name,
                t.stage,
                t.definition,
                int(t.in_survey),
                json.dumps(list(t.aliases)),
                json.dumps(list(t.papers)),
                int(shipped),
            )
            for t in terms
        ],
    )


def add_head_term(conn: sqlite3.Connection, term: HeadTerm) -> None:
    """Record a new head type; refuses an id or alias the vocabulary already has."""
    with transaction(conn):
        add_head_term_locked(conn, term)


def add_head_term_locked(conn: sqlite3.Connection, term: HeadTerm) -> None:
    """:func:`add_head_term` inside the caller's transaction (the check reads the vocabulary under the lock)."""
    Vocabulary([*store_vocabulary(conn).terms.values(), term])  # raises on id or alias clashes
    _write_terms(conn, [term], shipped=False)


# ----- writing papers -----


def _insert_papers(conn: sqlite3.Connection, papers: Sequence[Paper]) -> None:
    """Upsert inside the caller's transaction. Index rows of a replaced paper are rebuilt."""
    head_rows: list[tuple[int, str]] = []
    stage_rows: list[tuple[int, str]] = []
    author_rows: list[tuple[int, int, str]] = []
    link_rows: list[tuple[int, str, str]] = []
    fts_rows: list[tuple[int, str, str, str]] = []
    key_rows: list[tuple[int, str]] = []
    for p in papers:
        old = conn.execute("SELECT rowid FROM papers WHERE id = ?", (p.id,)).fetchone()
        if old is not None:
            _delete_rowid(conn, old[0])
        record = json.dumps(p.to_dict(), ensure_ascii=False, sort_keys=False)
        cur = conn.execute(
            "INSERT INTO papers (id, title, norm_title, date, year, venue, source, added, record_json)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                p.id,
                p.title,
                title_key(p.title),
                p.date.isoformat(),
                p.year,
                p.venue,
                p.provenance.source,
                p.provenance.added.isoformat(),
                record,
            ),
        )
        rowid = cur.lastrowid
        assert rowid is not None
        head_rows.extend((rowid, ht) for ht in p.head_types)
        stage_rows.extend((rowid, s) for s in p.stages)
        author_rows.extend((rowid, i, a) for i, a in enumerate(p.authors))
        link_rows.extend((rowid, k, u) for k, u in p.links.items())
        key_rows.extend((rowid, k) for k in _paper_keys(p))
        fts_rows.append((rowid, *_fts_values(p)))
    conn.executemany("INSERT INTO paper_head_types (paper_rowid, head_type_id) VALUES (?, ?)", head_rows)
    conn.executemany("INSERT INTO paper_stages (paper_rowid, stage) VALUES (?, ?)", stage_rows)
    conn.executemany("INSERT INTO paper_authors (paper_rowid, position, name) VALUES (?, ?, ?)", author_rows)
    conn.executemany("INSERT INTO paper_links (paper_rowid, kind, url) VALUES (?, ?, ?)", link_rows)
    conn.executemany("INSERT INTO papers_fts (rowid, title, summary, facets) VALUES (?, ?, ?, ?)", fts_rows)
    conn.executemany("INSERT OR IGNORE INTO paper_keys (paper_rowid, key) VALUES (?, ?)", key_rows)


def _delete_rowid(conn: sqlite3.Connection, rowid: int) -> None:
    # a contentless FTS5 table forgets a row through the 'delete' command, given the text it indexed
    record = conn.execute("SELECT record_json FROM papers WHERE rowid = ?", (rowid,)).fetchone()
    old = Paper.from_dict(json.loads(record[0]))
    conn.execute(
        "INSERT INTO papers_fts (papers_fts, rowid, title, summary, facets) VALUES ('delete', ?, ?, ?, ?)",
        (rowid, *_fts_values(old)),
    )
    conn.execute("DELETE FROM papers WHERE rowid = ?", (rowid,))  # index tables cascade


def validate_for_store(conn: sqlite3.Connection, papers: Sequence[Paper], *, vocab: Vocabulary | None = None) -> None:
    """Everything an import checks before writing anything: unique ids and titles, known head types."""
    vocab = vocab or store_vocabulary(conn)
    seen: set[str] = set()
    titles: dict[str, str] = {}
    for p in papers:
        if p.id in seen:
            raise CatalogueError(f"paper id {p.id!r} appears twice in the import")
        seen.add(p.id)
        key = title_key(p.title)
        if key in titles:
            raise CatalogueError(f"papers {titles[key]!r} and {p.id!r} in the import have the same title")
        titles[key] = p.id
        for ht in p.head_types:
            if ht not in vocab:
                raise CatalogueError(
                    f"paper {p.id!r}: head type {ht!r} is not in the vocabulary; close matches: "
                    f"{', '.join(vocab.close_matches(ht)) or 'none'}"
                )
        clash = conn.execute("SELECT id FROM papers WHERE norm_title = ? AND id != ?", (key, p.id)).fetchone()
        if clash is not None:
            raise CatalogueError(f"paper {p.id!r} has the same title as stored paper {clash[0]!r}")


def import_papers(conn: sqlite3.Connection, papers: Sequence[Paper], terms: Sequence[HeadTerm] = ()) -> int:
    """Validate all, then upsert all in one transaction (all or nothing). Returns the number written.

    ``terms`` are head types the papers use beyond this store's vocabulary (exported with them); one that is
    already known must be identical.
    """
    ensure_seeded(conn)  # before validating: a title may clash with a seed paper
    known = store_vocabulary(conn)
    new_terms = []
    for term in terms:
        if term.id in known:
            if known.get(term.id) != term:
                raise CatalogueError(f"head type {term.id!r} in the import differs from the one in this store")
        else:
            new_terms.append(term)
    vocab = Vocabulary([*known.terms.values(), *new_terms]) if new_terms else known  # raises on alias clashes
    validate_for_store(conn, papers, vocab=vocab)
    with transaction(conn):
        if new_terms:
            _write_terms(conn, new_terms, shipped=False)
        _insert_papers(conn, papers)
    return len(papers)


@functools.cache
def _catalogue_digest() -> str:
    vocab_text = json.dumps([t.to_dict() for t in shipped_terms()], sort_keys=True)
    return hashlib.sha256((shipped_text() + vocab_text).encode("utf-8")).hexdigest()


def _is_seeded(conn: sqlite3.Connection) -> bool:
    row = conn.execute("SELECT value FROM papers_meta WHERE key = 'seed_digest'").fetchone()
    return row is not None and row[0] == _catalogue_digest()


def ensure_seeded(conn: sqlite3.Connection) -> bool:
    """Import the shipped vocabulary and catalogue unless this exact version is already in. True if it wrote."""
    if _is_seeded(conn):
        return False
    load_catalogue()  # parse and validate before taking the write lock
    with transaction(conn):
        return seed_locked(conn)


def seed_locked(conn: sqlite3.Connection) -> bool:
    """:func:`ensure_seeded` inside the caller's transaction, so a write can seed a fresh store and commit with it."""
    if _is_seeded(conn):  # seeded already, or by another process while this one waited for the lock
        return False
    _write_terms(conn, shipped_terms(), shipped=True)
    # seed entries belong to the package: a new shipped version overwrites them (and a stored paper that
    # a new seed entry now duplicates by title gives way to it)
    catalogue = load_catalogue()
    for p in catalogue.papers:
        clash = conn.execute(
            "SELECT id FROM papers WHERE norm_title = ? AND id != ?", (title_key(p.title), p.id)
        ).fetchone()
        if clash is not None:
            _delete_rowid(conn, conn.execute("SELECT rowid FROM papers WHERE id = ?", clash).fetchone()[0])
    _insert_papers(conn, catalogue.papers)
    conn.execute("INSERT OR REPLACE INTO papers_meta (key, value) VALUES ('seed_digest', ?)", (_catalogue_digest(),))
    return True


# ----- merging contributions -----


@dataclass(frozen=True)
class Duplicate:
    """A stored paper that is the same work as a new one, and why (``id``, ``arxiv:…``/``doi:…`` or ``title``)."""

    paper: Paper
    matched_by: str


def find_duplicate(conn: sqlite3.Connection, paper: Paper) -> Duplicate | None:
    """The stored paper that is the same work: same id, else a shared arXiv id / DOI / OpenReview id, else the same
    :func:`~headatlas.literature.identity.title_key`."""
    row = conn.execute("SELECT record_json FROM papers WHERE id = ?", (paper.id,)).fetchone()
    if row is not None:
        return Duplicate(Paper.from_dict(json.loads(row[0])), "id")
    found = _same_work(conn, _paper_keys(paper), paper.title)
    return Duplicate(Paper.from_dict(json.loads(found[0]["record_json"])), found[1]) if found is not None else None


def _same_work(conn: sqlite3.Connection, keys: Sequence[str], title: str) -> tuple[sqlite3.Row, str] | None:
    """The stored paper sharing one of the typed id ``keys`` (first match wins), else the title key; and how."""
    for key in keys:
        row = conn.execute(
            "SELECT p.id, p.record_json FROM paper_keys k JOIN papers p ON p.rowid = k.paper_rowid WHERE k.key = ?"
            " ORDER BY p.rowid LIMIT 1",
            (key,),
        ).fetchone()
        if row is not None:
            return row, key
    row = conn.execute("SELECT id, record_json FROM papers WHERE norm_title = ?", (title_key(title),)).fetchone()
    return (row, "title") if row is not None else None


def catalogued_as(conn: sqlite3.Connection, title: str, *ids: str | None) -> str | None:
    """The id of the stored paper that is this work (``ids``: arXiv ids, DOIs or URLs naming it), else None.

    Papers accepted into this store count, not only the shipped catalogue (the feed marks such entries
    ``catalogued``)."""
    found = _same_work(conn, identity_keys(*ids), title)
    return str(found[0]["id"]) if found is not None else None


def _union(a: Sequence[str], b: Sequence[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys([*a, *b]))


def merge_papers(old: Paper, new: Paper, *, today: date | None = None) -> Paper:
    """``old`` enriched by ``new``: lists are unioned, missing links and authors filled; old text is kept."""
    day = today or date.today()
    note = f"{old.provenance.note} Merged a {new.provenance.source} on {day.isoformat()}.".strip()
    return replace(
        old,
        tags=_union(old.tags, new.tags),
        head_types=_union(old.head_types, new.head_types),
        stages=tuple(s for s in STAGES if s in set(old.stages) | set(new.stages)),
        methods=_union(old.methods, new.methods),
        models=_union(old.models, new.models),
        tasks=_union(old.tasks, new.tasks),
        authors=old.authors or new.authors,
        links={**new.links, **old.links},
        reported_heads=tuple(dict.fromkeys([*old.reported_heads, *new.reported_heads])),
        provenance=Provenance(
            source=old.provenance.source, added=old.provenance.added, assigned=old.provenance.assigned, note=note
        ),
    )


@dataclass(frozen=True)
class AddResult:
    paper: Paper
    merged_into: str | None  # id of the stored paper the contribution was merged into, if any
    merged_title: str | None = None  # that stored paper's title
    matched_by: str | None = None  # "id", "arxiv:…", "doi:…", "openreview:…" or "title"

    def merge_note(self, new_title: str) -> str:
        """``merged into 2404.15574 'stored' (same title) from 'new'``: both titles, so a wrong merge is visible."""
        how = "same id" if self.matched_by == "id" else "same title" if self.matched_by == "title" else self.matched_by
        return f"merged into {self.merged_into} {self.merged_title!r} ({how}) from {new_title!r}"


def add_paper(conn: sqlite3.Connection, paper: Paper, *, new_terms: Sequence[HeadTerm] = ()) -> AddResult:
    """Add a contribution, merging with a duplicate (see :func:`find_duplicate`) instead of duplicating.

    Reading and validating happen first; the write is one short transaction (seeding a fresh store in it) that
    re-checks the match, so a concurrent writer adding the same paper in between is merged with, not duplicated
    or clobbered.
    """
    load_catalogue()  # parsed before the lock
    vocab = Vocabulary([*store_vocabulary(conn).terms.values(), *new_terms])  # raises on clashes
    with transaction(conn):
        seed_locked(conn)
        return add_paper_locked(conn, paper, vocab=vocab, new_terms=new_terms)


def add_paper_locked(
    conn: sqlite3.Connection, paper: Paper, *, vocab: Vocabulary, new_terms: Sequence[HeadTerm] = ()
) -> AddResult:
    """:func:`add_paper`'s write, inside the caller's transaction (so it can commit together with other rows)."""
    existing = find_duplicate(conn, paper)
    result = merge_papers(existing.paper, paper) if existing is not None else paper
    validate_for_store(conn, [result], vocab=vocab)
    if new_terms:
        _write_terms(conn, new_terms, shipped=False)
    _insert_papers(conn, [result])
    if existing is None:
        return AddResult(result, None)
    return AddResult(result, existing.paper.id, existing.paper.title, existing.matched_by)


# ----- reading -----


def _papers(rows: Iterable[sqlite3.Row]) -> list[Paper]:
    return [Paper.from_dict(json.loads(r["record_json"])) for r in rows]


def _filters(head_type: str | None, stage: str | None, year: int | None) -> tuple[str, list[object]]:
    clauses: list[str] = []
    params: list[object] = []
    if head_type is not None:
        clauses.append("p.rowid IN (SELECT paper_rowid FROM paper_head_types WHERE head_type_id = ?)")
        params.append(head_type)
    if stage is not None:
        clauses.append("p.rowid IN (SELECT paper_rowid FROM paper_stages WHERE stage = ?)")
        params.append(stage)
    if year is not None:
        clauses.append("p.year = ?")
        params.append(year)
    return ("".join(f" AND {c}" for c in clauses), params)


def check_filters(conn: sqlite3.Connection, head_type: str | None, stage: str | None) -> str | None:
    """Validate filter values; a head-type name is resolved to its id (``"S-inhibition head"`` -> ``s_inhibition``)."""
    if stage is not None and stage not in STAGES:
        raise CatalogueError(f"unknown stage {stage!r}; valid stages are {', '.join(STAGES)}")
    if head_type is None:
        return None
    return store_vocabulary(conn).resolve(head_type)


def list_papers(
    conn: sqlite3.Connection,
    *,
    head_type: str | None = None,
    stage: str | None = None,
    year: int | None = None,
    limit: int | None = None,
) -> list[Paper]:
    """Stored papers, newest first, filtered by head-type id, stage and year; at most ``limit`` (None: all)."""
    where, params = _filters(head_type, stage, year)
    rows = conn.execute(
        f"SELECT p.record_json FROM papers p WHERE 1 = 1{where} ORDER BY p.date DESC, p.id LIMIT ?",
        [*params, -1 if limit is None else limit],
    ).fetchall()
    return _papers(rows)


def get_paper(conn: sqlite3.Connection, paper_id: str) -> Paper:
    row = conn.execute("SELECT record_json FROM papers WHERE id = ?", (paper_id.strip(),)).fetchone()
    if row is None:
        close = [
            r[0]
            for r in conn.execute(
                "SELECT id FROM papers WHERE id LIKE ? ORDER BY id LIMIT 5", (f"%{paper_id.strip()[:12]}%",)
            )
        ]
        hint = f"; similar ids: {', '.join(close)}" if close else ""
        raise CatalogueError(f"no paper with id {paper_id!r}{hint}")
    return Paper.from_dict(json.loads(row[0]))


def papers_for_head_type(conn: sqlite3.Connection, head_type_id: str) -> list[Paper]:
    """Stored papers tagged with ``head_type_id`` plus its defining papers, newest first."""
    vocab = store_vocabulary(conn)
    term = vocab.get(head_type_id)
    marks = ",".join("?" * len(term.papers))
    defining = f" OR p.id IN ({marks})" if term.papers else ""
    rows = conn.execute(
        "SELECT p.record_json FROM papers p WHERE p.rowid IN"
        f" (SELECT paper_rowid FROM paper_head_types WHERE head_type_id = ?){defining} ORDER BY p.date DESC, p.id",
        [head_type_id, *term.papers],
    ).fetchall()
    return _papers(rows)


def fts_query(text: str) -> str:
    """User text -> an FTS5 query: every word must match (quoted, so FTS syntax in the input is inert)."""
    if has_surrogates(text):
        raise CatalogueError("search query holds a lone surrogate (not valid Unicode text)")
    words = re.findall(r"\w+", text.lower())
    if not words:
        raise CatalogueError(f"search query {text!r} has no words")
    return " ".join(f'"{w}"' for w in words)


MAX_RANKED = 1000
"""Matches bm25 ranks per query. Beyond it, the most recently added MAX_RANKED matches are ranked (plus the papers
defining the head type the query names): ranking costs ~10 µs a match, so this bounds latency on a large store."""


@dataclass(frozen=True)
class Hit:
    paper: Paper
    rank: float  # bm25 (lower is better)


def search_papers(
    conn: sqlite3.Connection,
    query: str,
    *,
    head_type: str | None = None,
    stage: str | None = None,
    year: int | None = None,
    limit: int = 20,
) -> list[Hit]:
    """FTS5 search over title and summary, best first; every word must match (porter-stemmed).

    Order: papers that *define* the head type the whole query names (``"retrieval head"`` -> the Retrieval Head
    paper), then papers whose title contains the query as a phrase, then bm25 with titles weighted
    ``TITLE_WEIGHT`` times summaries; ties by newest, then id. Ranking is exact up to ``MAX_RANKED`` matches.
    """
    if limit < 1:
        raise CatalogueError(f"--limit must be at least 1, got {limit}")
    words = fts_query(query)
    vocab = store_vocabulary(conn)
    named = vocab.find(query)
    defining = list(vocab.get(named).papers) if named is not None else []
    facets = [f'"ht_{head_type}"'] if head_type is not None else []
    facets += [f'"stage_{stage.lower()}"'] if stage is not None else []
    facets += [f'"year_{year}"'] if year is not None else []
    facet_match = "".join(f" AND facets : {f}" for f in facets)
    match = f"{{title summary}} : ({words}){facet_match}"
    in_title = f'title : "{" ".join(w.strip(chr(34)) for w in words.split())}"{facet_match}'
    weights = (TITLE_WEIGHT, SUMMARY_WEIGHT, 0.0)
    cutoff_row = conn.execute(
        "SELECT rowid FROM papers_fts WHERE papers_fts MATCH ? ORDER BY rowid DESC LIMIT 1 OFFSET ?",
        (match, MAX_RANKED - 1),
    ).fetchone()
    window, bound = (" AND rowid >= ?", [cutoff_row[0]]) if cutoff_row is not None else ("", [])
    ranked = "SELECT rowid, bm25(papers_fts, ?, ?, ?) AS score FROM papers_fts WHERE papers_fts MATCH ?"
    found: dict[int, tuple[int, float]] = {}  # rowid -> (tier, bm25); tier 0 defines, 1 phrase in title, 2 other
    passes = [(2, match)] + ([(1, in_title)] if len(words.split()) > 1 else [])  # one word: bm25's title weight
    for tier, text in passes:
        for r in conn.execute(f"{ranked}{window} ORDER BY score LIMIT ?", [*weights, text, *bound, limit]):
            found[r[0]] = (tier, r[1])
    for paper_id in defining:  # always considered, whatever the window
        row = conn.execute(
            f"{ranked} AND rowid = (SELECT rowid FROM papers WHERE id = ?)", [*weights, match, paper_id]
        ).fetchone()
        if row is not None:
            found[row[0]] = (0, row[1])
    if not found:
        return []
    meta = {
        r[0]: (r[1], r[2], r[3])
        for r in conn.execute(
            f"SELECT rowid, id, date, record_json FROM papers WHERE rowid IN ({','.join('?' * len(found))})",
            list(found),
        )
    }
    order = sorted(found, key=lambda rid: (*found[rid], _neg_date(meta[rid][1]), meta[rid][0]))[:limit]
    return [Hit(Paper.from_dict(json.loads(meta[rid][2])), float(found[rid][1])) for rid in order]


def substring_search(
    conn: sqlite3.Connection, query: str, head_type: str | None, stage: str | None, year: int | None
) -> list[Paper]:
    """The unindexed baseline ``bench papers`` times :func:`search_papers` against: every word a case-insensitive
    substring of the stored record, same filters, newest first, at most 20."""
    where, params = _filters(head_type, stage, year)
    words = query.split()
    likes = "".join(" AND p.record_json LIKE ?" for _ in words)
    sql = f"SELECT p.record_json FROM papers p WHERE 1 = 1{likes}{where} ORDER BY p.date DESC LIMIT 20"
    return _papers(conn.execute(sql, [*(f"%{w}%" for w in words), *params]).fetchall())


def rank_in_memory(
    documents: Sequence[tuple[str, str, str]], words: Sequence[str], *, title_weight: float
) -> list[tuple[int, float]]:
    """``(index, bm25)`` of the ``(title, summary, rest)`` documents every word matches (porter-stemmed; lower bm25
    is better; titles weigh ``title_weight`` times the other columns), unordered.

    For papers outside a store (the shipped list, read-only): a throwaway in-memory FTS5 index over a few hundred
    documents takes a millisecond or two to build.
    """
    if not words or not documents:
        return []
    mem = sqlite3.connect(":memory:")
    try:
        mem.execute(f'CREATE VIRTUAL TABLE f USING fts5(title, summary, rest, tokenize = "{FTS_TOKENIZER}")')
        rows = [(i, *doc) for i, doc in enumerate(documents)]
        mem.executemany("INSERT INTO f (rowid, title, summary, rest) VALUES (?, ?, ?, ?)", rows)
        match = " ".join(f'"{w}"' for w in words)
        hits = mem.execute("SELECT rowid, bm25(f, ?, 1.0, 1.0) FROM f WHERE f MATCH ?", (title_weight, match))
        return [(int(i), float(score)) for i, score in hits.fetchall()]
    finally:
        mem.close()


def has_papers(conn: sqlite3.Connection) -> bool:
    """True when the store holds any paper; False for an empty catalogue or a store without the papers tables
    (one opened read-only before they were created)."""
    try:
        return conn.execute("SELECT 1 FROM papers LIMIT 1").fetchone() is not None
    except sqlite3.Error:
        return False


def _neg_date(iso: str) -> int:
    return -date.fromisoformat(iso).toordinal()


def all_papers(conn: sqlite3.Connection) -> list[Paper]:
    return sort_papers(_papers(conn.execute("SELECT record_json FROM papers").fetchall()))


def dump_store(conn: sqlite3.Connection) -> str:
    """Every row of the catalogue tables, sorted: compare two dumps to prove a failed command wrote nothing."""
    parts = []
    for table, order in (
        ("papers", "id"),
        ("paper_head_types", "paper_rowid, head_type_id"),
        ("paper_stages", "paper_rowid, stage"),
        ("paper_authors", "paper_rowid, position"),
        ("paper_links", "paper_rowid, kind"),
        ("head_types", "id"),
        ("papers_meta", "key"),
    ):
        for row in conn.execute(f"SELECT * FROM {table} ORDER BY {order}"):
            parts.append(f"{table}\t" + "\t".join(str(v) for v in tuple(row)))
    parts.extend(f"fts\t{r[0]}\t{r[1]}" for r in conn.execute("SELECT id, sz FROM papers_fts_docsize ORDER BY id"))
    parts.extend(
        f"fts_data\t{r[0]}\t{r[1].hex()}" for r in conn.execute("SELECT id, block FROM papers_fts_data ORDER BY id")
    )
    return "\n".join(parts)
