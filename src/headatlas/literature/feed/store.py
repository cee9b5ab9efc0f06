"""The feed's tables: ingested entries (one row per work), per-source cursors, skipped-input log, digest state,
and the evidence behind each entry's tags (``feed_evidence``). All the feed's SQL is here.

One row per work: an entry is matched to an existing row by versionless arXiv id, else by normalised title
(a preprint and its venue version, v1 and v2, a Daily Papers and an arXiv report are one row). Each source page
is written in one transaction together with that source's cursor, so a killed run leaves whole pages only and a
rerun re-reads from the last committed cursor; matching makes the rerun add nothing twice.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from ...errors import InvalidSettingError
from ...store.db import execute_script, migration, transaction
from .. import store as paper_store
from ..identity import title_key
from .model import Entry

if TYPE_CHECKING:
    from .sources.semantic_scholar import Enrichment

STATUSES = ("pending", "irrelevant", "accepted", "rejected", "catalogued")
"""``pending``: relevant, awaiting review; ``irrelevant``: scored below the threshold; ``accepted`` / ``rejected``:
reviewed; ``catalogued``: already in this store's paper catalogue when it arrived (see ``catalogued_as``)."""


@migration("feed", "0001_entries")
def _create(conn: sqlite3.Connection) -> None:
    execute_script(
        conn,
        """
        CREATE TABLE feed_entries (
            id INTEGER PRIMARY KEY,
            arxiv_id TEXT UNIQUE,
            norm_title TEXT NOT NULL UNIQUE,
            title TEXT NOT NULL,
            abstract TEXT NOT NULL,
            version INTEGER,
            authors_json TEXT NOT NULL,
            published TEXT,
            updated TEXT,
            categories_json TEXT NOT NULL,
            url TEXT,
            venue TEXT,
            journal_ref TEXT,
            doi TEXT,
            keywords_json TEXT NOT NULL,
            citation_count INTEGER,
            sources_json TEXT NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('pending','irrelevant','accepted','rejected','catalogued')),
            score REAL NOT NULL CHECK (score >= 0 AND score <= 1),
            why_json TEXT NOT NULL,
            head_types_json TEXT NOT NULL,
            candidates_json TEXT NOT NULL,
            stages_json TEXT NOT NULL,
            models_json TEXT NOT NULL,
            summary_json TEXT NOT NULL,
            catalogue_id TEXT,
            first_seen TEXT NOT NULL,
            reviewed_at TEXT
        );
        CREATE INDEX feed_entries_status ON feed_entries (status, published);
        CREATE TABLE feed_cursors (
            source TEXT PRIMARY KEY,
            position TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE TABLE feed_skipped (
            id INTEGER PRIMARY KEY,
            source TEXT NOT NULL,
            reason TEXT NOT NULL,
            at TEXT NOT NULL
        );
        CREATE TABLE digest_subscribers (
            id INTEGER PRIMARY KEY,
            email TEXT NOT NULL UNIQUE,
            head_types_json TEXT NOT NULL,
            keywords_json TEXT NOT NULL,
            exclude_json TEXT NOT NULL,
            created_at TEXT NOT NULL
        );
        CREATE TABLE digest_sent (
            subscriber_id INTEGER NOT NULL REFERENCES digest_subscribers (id) ON DELETE CASCADE,
            entry_id INTEGER NOT NULL REFERENCES feed_entries (id),
            sent_at TEXT NOT NULL,
            PRIMARY KEY (subscriber_id, entry_id)
        );
        """,
    )


@migration("feed", "0002_identity")
def _identity(conn: sqlite3.Connection) -> None:
    """Re-key titles with the Unicode-aware :func:`~headatlas.literature.identity.title_key` (the old key kept only
    ASCII words, so every non-Latin title shared one key) and index DOIs, the second id after arXiv's. Rows whose
    new keys coincide all stay (a later one's key gets its row id), so nothing is lost."""
    rows = conn.execute("SELECT id, title FROM feed_entries ORDER BY id").fetchall()
    conn.execute("UPDATE feed_entries SET norm_title = '#migrating ' || id")
    used: set[str] = set()
    for row_id, title in rows:
        key = title_key(title)
        key = key if key not in used else f"{key}#{row_id}"
        used.add(key)
        conn.execute("UPDATE feed_entries SET norm_title = ? WHERE id = ?", (key, row_id))
    conn.execute("CREATE INDEX feed_entries_doi ON feed_entries (lower(doi)) WHERE doi IS NOT NULL")


@migration("feed_tags", "0001_evidence")
def _evidence(conn: sqlite3.Connection) -> None:
    """The sentence behind each head type, proposed type and candidate reported head of an entry."""
    execute_script(
        conn,
        """
        CREATE TABLE feed_evidence (
            entry_id INTEGER NOT NULL REFERENCES feed_entries (id) ON DELETE CASCADE,
            kind TEXT NOT NULL CHECK (kind IN ('head_type', 'proposed', 'reported_head')),
            name TEXT NOT NULL,
            detail TEXT NOT NULL DEFAULT '',
            sentence TEXT NOT NULL,
            PRIMARY KEY (entry_id, kind, name, detail)
        );
        """,
    )


@migration("feed_tags", "0002_full_text")
def _full_text(conn: sqlite3.Connection) -> None:
    """What was read of a paper's HTML rendering: its head-related sentences only (status 'missing': no rendering)."""
    execute_script(
        conn,
        """
        CREATE TABLE feed_full_text (
            entry_id INTEGER PRIMARY KEY REFERENCES feed_entries (id) ON DELETE CASCADE,
            url TEXT NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('read', 'missing')),
            fetched_at TEXT NOT NULL,
            sentences_json TEXT NOT NULL DEFAULT '[]'
        );
        """,
    )


EVIDENCE_KINDS = ("head_type", "proposed", "reported_head")


@dataclass(frozen=True)
class Evidence:
    """One ``feed_evidence`` row: why an entry carries a head type (``head_type``), a coined name the vocabulary
    lacks (``proposed``) or a candidate reported head (``reported_head``, name ``L9H9``, detail: the model)."""

    kind: str
    name: str
    sentence: str
    detail: str = ""

    def __post_init__(self) -> None:
        if self.kind not in EVIDENCE_KINDS:
            raise ValueError(f"evidence kind must be one of {', '.join(EVIDENCE_KINDS)}, got {self.kind!r}")


def write_evidence(conn: sqlite3.Connection, entry_id: int, rows: Iterable[Evidence]) -> None:
    """Inside the caller's transaction."""
    conn.executemany(
        "INSERT OR IGNORE INTO feed_evidence (entry_id, kind, name, detail, sentence) VALUES (?, ?, ?, ?, ?)",
        [(entry_id, r.kind, r.name, r.detail, r.sentence) for r in rows],
    )


def evidence_for(conn: sqlite3.Connection, entry_id: int) -> list[Evidence]:
    rows = conn.execute(
        "SELECT kind, name, detail, sentence FROM feed_evidence WHERE entry_id = ? ORDER BY kind, name, detail",
        (entry_id,),
    ).fetchall()
    return [Evidence(r["kind"], r["name"], r["sentence"], r["detail"]) for r in rows]


def adopt_proposed(
    conn: sqlite3.Connection,
    entry_id: int,
    *,
    head_types: Sequence[str],
    candidates: Sequence[str],
    proposed_names: Sequence[str],
    term_id: str,
) -> None:
    """Inside the caller's transaction: the entry now carries ``head_types`` and ``candidates``, and its evidence
    for the proposed ``proposed_names`` becomes evidence for head type ``term_id``."""
    conn.execute(
        "UPDATE feed_entries SET head_types_json = ?, candidates_json = ? WHERE id = ?",
        (json.dumps(list(head_types)), json.dumps(list(candidates)), entry_id),
    )
    marks = ", ".join("?" * len(proposed_names))
    where = f"entry_id = ? AND kind = 'proposed' AND name IN ({marks})"
    sentences = conn.execute(f"SELECT sentence FROM feed_evidence WHERE {where}", (entry_id, *proposed_names))
    write_evidence(conn, entry_id, [Evidence("head_type", term_id, s) for (s,) in sentences.fetchall()])
    conn.execute(f"DELETE FROM feed_evidence WHERE {where}", (entry_id, *proposed_names))


def now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Annotation:
    """What relevance, tagging and summary concluded about one entry (see :func:`annotate`)."""

    relevant: bool
    score: float
    why: tuple[str, ...]
    head_types: tuple[str, ...]
    candidates: tuple[str, ...]
    stages: tuple[str, ...]
    models: tuple[str, ...]
    summary: dict[str, str]
    catalogue_id: str | None = None
    evidence: tuple[Evidence, ...] = ()  # the sentences behind tags and reported heads


@dataclass
class IngestResult:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: list[str] = field(default_factory=list)
    added_ids: list[int] = field(default_factory=list)
    merged: list[str] = field(default_factory=list)  # title-only matches, both titles named

    def merge(self, other: IngestResult) -> None:
        self.added += other.added
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.skipped += other.skipped
        self.added_ids += other.added_ids
        self.merged += other.merged


def _find(conn: sqlite3.Connection, entry: Entry) -> tuple[sqlite3.Row | None, str]:
    """The stored row of the same work and how it matched: by arXiv id, else DOI, else title key."""
    if entry.arxiv_id:
        row = conn.execute("SELECT * FROM feed_entries WHERE arxiv_id = ?", (entry.arxiv_id,)).fetchone()
        if row is not None:
            return row, "arxiv"
    if entry.doi_key:
        row = conn.execute(
            "SELECT * FROM feed_entries WHERE lower(doi) = ? AND doi IS NOT NULL ORDER BY id LIMIT 1", (entry.doi_key,)
        ).fetchone()
        if row is not None:
            return row, "doi"
    # same title key: one work (preprint and venue version, or a re-submission under a new id)
    found: sqlite3.Row | None = conn.execute(
        "SELECT * FROM feed_entries WHERE norm_title = ?", (entry.norm_title,)
    ).fetchone()
    return found, "title"


def _title_merge_note(row: sqlite3.Row, entry: Entry) -> str:
    ident = f"arXiv {entry.arxiv_id}" if entry.arxiv_id else f"from {entry.source}"
    return f"{entry.title!r} ({ident}) matched #{row['id']} {row['title']!r} by title; merged"


def _union(old_json: str, new: Iterable[str]) -> str:
    old = json.loads(old_json)
    return json.dumps(list(dict.fromkeys([*old, *new])))


def _merge(conn: sqlite3.Connection, row: sqlite3.Row, entry: Entry) -> bool:
    """Fold ``entry`` into ``row``; True if anything changed. A newer version replaces title and abstract."""
    changes: dict[str, Any] = {}
    newer = entry.version is not None and (row["version"] is None or entry.version > row["version"])
    if newer and entry.source == "arxiv":
        changes.update(version=entry.version, title=entry.title, updated=entry.updated)
        if entry.abstract:
            changes["abstract"] = entry.abstract
    elif entry.version is not None and row["version"] is None:
        changes["version"] = entry.version
    if not row["abstract"] and entry.abstract:
        changes["abstract"] = entry.abstract
    if row["arxiv_id"] is None and entry.arxiv_id:
        clash = conn.execute("SELECT 1 FROM feed_entries WHERE arxiv_id = ?", (entry.arxiv_id,)).fetchone()
        if clash is None:
            changes["arxiv_id"] = entry.arxiv_id
    for column, value in (
        ("venue", entry.venue),
        ("journal_ref", entry.journal_ref),
        ("doi", entry.doi),
        ("published", entry.published),
        ("url", entry.url if entry.source == "arxiv" else None),
    ):
        if value and row[column] != value and (row[column] is None or column in ("venue", "journal_ref", "doi")):
            changes[column] = value
    if entry.citation_count is not None and entry.citation_count != row["citation_count"]:
        changes["citation_count"] = entry.citation_count
    for column, values in (
        ("sources_json", [entry.source]),
        ("keywords_json", entry.keywords),
        ("categories_json", entry.categories),
    ):
        merged = _union(row[column], values)
        if merged != row[column]:
            changes[column] = merged
    if not json.loads(row["authors_json"]) and entry.authors:
        changes["authors_json"] = json.dumps(list(entry.authors))
    if not changes:
        return False
    sets = ", ".join(f"{c} = ?" for c in changes)
    conn.execute(f"UPDATE feed_entries SET {sets} WHERE id = ?", [*changes.values(), row["id"]])
    return True


def _insert(conn: sqlite3.Connection, entry: Entry, note: Annotation) -> int:
    status = "pending" if note.relevant else "irrelevant"
    if note.catalogue_id is not None:
        status = "catalogued"
    cur = conn.execute(
        "INSERT INTO feed_entries (arxiv_id, norm_title, title, abstract, version, authors_json, published, updated,"
        " categories_json, url, venue, journal_ref, doi, keywords_json, citation_count, sources_json, status, score,"
        " why_json, head_types_json, candidates_json, stages_json, models_json, summary_json, catalogue_id,"
        " first_seen) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            entry.arxiv_id,
            entry.norm_title,
            entry.title,
            entry.abstract,
            entry.version,
            json.dumps(list(entry.authors)),
            entry.published,
            entry.updated,
            json.dumps(list(entry.categories)),
            entry.url,
            entry.venue,
            entry.journal_ref,
            entry.doi,
            json.dumps(list(entry.keywords)),
            entry.citation_count,
            json.dumps([entry.source]),
            status,
            round(note.score, 6),
            json.dumps(list(note.why)),
            json.dumps(list(note.head_types)),
            json.dumps(list(note.candidates)),
            json.dumps(list(note.stages)),
            json.dumps(list(note.models)),
            json.dumps(note.summary, sort_keys=True),
            note.catalogue_id,
            now_iso(),
        ),
    )
    return int(cur.lastrowid or 0)


def write_page(
    conn: sqlite3.Connection,
    entries: Sequence[Entry],
    annotate: Any,
    *,
    source: str,
    cursor: str | None = None,
    skipped: Sequence[str] = (),
) -> IngestResult:
    """Write one page of entries and (optionally) the source's new cursor in a single transaction.

    ``annotate(list_of_entries) -> list[Annotation]`` is called only for entries that are new to the store, and
    *before* the write lock is taken (scoring a file takes seconds; other writers must not wait for it). The write
    then re-matches every entry, so a work another process stored meanwhile is merged, not duplicated.
    """
    result = IngestResult(skipped=list(skipped))
    # annotate (in one batch, no lock held) only the first entry of each work the store does not hold yet
    firsts: list[Entry] = []
    keys_seen: set[str] = set()
    for entry in entries:
        if _find(conn, entry)[0] is None:
            keys = {entry.norm_title} | ({entry.arxiv_id} if entry.arxiv_id else set())
            keys |= {f"doi:{entry.doi_key}"} if entry.doi_key else set()
            if not keys & keys_seen:
                firsts.append(entry)
            keys_seen |= keys
    if firsts:  # new works are checked against the store's paper catalogue: the shipped papers must be in it
        paper_store.ensure_seeded(conn)
    notes = dict(zip([id(e) for e in firsts], annotate(firsts) if firsts else [], strict=True))
    with transaction(conn):
        for entry in entries:
            row, how = _find(conn, entry)
            if row is not None:
                if how == "title":
                    result.merged.append(_title_merge_note(row, entry))
                if _merge(conn, row, entry):
                    result.updated += 1
                else:
                    result.unchanged += 1
                continue
            note = notes.get(id(entry)) or annotate([entry])[0]
            if note.catalogue_id is None:  # read under the lock: a paper accepted a moment ago counts
                known = paper_store.catalogued_as(conn, entry.title, entry.arxiv_id, entry.doi)
                note = replace(note, catalogue_id=known) if known is not None else note
            result.added_ids.append(_insert(conn, entry, note))
            write_evidence(conn, result.added_ids[-1], note.evidence)
            result.added += 1
        for reason in skipped:
            conn.execute("INSERT INTO feed_skipped (source, reason, at) VALUES (?, ?, ?)", (source, reason, now_iso()))
        if cursor is not None:
            conn.execute(
                "INSERT INTO feed_cursors (source, position, updated_at) VALUES (?, ?, ?)"
                " ON CONFLICT (source) DO UPDATE SET position = excluded.position, updated_at = excluded.updated_at",
                (source, cursor, now_iso()),
            )
    return result


def entries_to_enrich(conn: sqlite3.Connection, limit: int) -> list[FeedEntry]:
    """Pending and accepted entries, oldest first, at most ``limit``."""
    rows = conn.execute(
        "SELECT * FROM feed_entries WHERE status IN ('pending', 'accepted') ORDER BY id LIMIT ?", (limit,)
    ).fetchall()
    return [FeedEntry.from_row(r) for r in rows]


def write_enrichments(conn: sqlite3.Connection, updates: Iterable[tuple[int, Enrichment]]) -> int:
    """Apply venue and citation counts (and an arXiv id no other entry holds) by entry id, in one transaction;
    returns the rows changed."""
    changed = 0
    with transaction(conn):
        for entry_id, info in updates:
            cur = conn.execute(
                "UPDATE feed_entries SET venue = COALESCE(?, venue), citation_count = ? WHERE id = ?"
                " AND (venue IS NOT COALESCE(?, venue) OR citation_count IS NOT ?)",
                (info.venue, info.citation_count, entry_id, info.venue, info.citation_count),
            )
            changed += cur.rowcount
            if info.arxiv_id:
                conn.execute(
                    "UPDATE feed_entries SET arxiv_id = ? WHERE id = ? AND arxiv_id IS NULL"
                    " AND NOT EXISTS (SELECT 1 FROM feed_entries WHERE arxiv_id = ?)",
                    (info.arxiv_id, entry_id, info.arxiv_id),
                )
    return changed


def count_entries(conn: sqlite3.Connection, status: str) -> int:
    return int(conn.execute("SELECT COUNT(*) FROM feed_entries WHERE status = ?", (status,)).fetchone()[0])


def mark_accepted(conn: sqlite3.Connection, entry_id: int, catalogue_id: str, head_types: Sequence[str]) -> None:
    """Record a review's acceptance, inside the caller's transaction (with the catalogue write)."""
    conn.execute(
        "UPDATE feed_entries SET status = 'accepted', catalogue_id = ?, reviewed_at = ?, head_types_json = json(?)"
        " WHERE id = ?",
        (catalogue_id, now_iso(), json.dumps(list(head_types)), entry_id),
    )


def mark_rejected(conn: sqlite3.Connection, entry_id: int) -> None:
    with transaction(conn):
        conn.execute("UPDATE feed_entries SET status = 'rejected', reviewed_at = ? WHERE id = ?", (now_iso(), entry_id))


def get_cursor(conn: sqlite3.Connection, source: str) -> str | None:
    row = conn.execute("SELECT position FROM feed_cursors WHERE source = ?", (source,)).fetchone()
    return str(row[0]) if row is not None else None


def set_cursor(conn: sqlite3.Connection, source: str, position: str) -> None:
    with transaction(conn):
        conn.execute(
            "INSERT INTO feed_cursors (source, position, updated_at) VALUES (?, ?, ?)"
            " ON CONFLICT (source) DO UPDATE SET position = excluded.position, updated_at = excluded.updated_at",
            (source, position, now_iso()),
        )


@dataclass(frozen=True)
class FeedEntry:
    """One stored work with its annotations (a read-only view of a ``feed_entries`` row)."""

    id: int
    arxiv_id: str | None
    title: str
    abstract: str
    version: int | None
    authors: tuple[str, ...]
    published: str | None
    updated: str | None
    url: str | None
    venue: str | None
    citation_count: int | None
    sources: tuple[str, ...]
    keywords: tuple[str, ...]
    status: str
    score: float
    why: tuple[str, ...]
    head_types: tuple[str, ...]
    candidates: tuple[str, ...]
    stages: tuple[str, ...]
    models: tuple[str, ...]
    summary: dict[str, str]
    catalogue_id: str | None
    first_seen: str
    reviewed_at: str | None

    @classmethod
    def from_row(cls, r: sqlite3.Row) -> FeedEntry:
        def seq(col: str) -> tuple[str, ...]:
            return tuple(json.loads(r[col]))

        return cls(
            id=r["id"],
            arxiv_id=r["arxiv_id"],
            title=r["title"],
            abstract=r["abstract"],
            version=r["version"],
            authors=seq("authors_json"),
            published=r["published"],
            updated=r["updated"],
            url=r["url"],
            venue=r["venue"],
            citation_count=r["citation_count"],
            sources=seq("sources_json"),
            keywords=seq("keywords_json"),
            status=r["status"],
            score=r["score"],
            why=seq("why_json"),
            head_types=seq("head_types_json"),
            candidates=seq("candidates_json"),
            stages=seq("stages_json"),
            models=seq("models_json"),
            summary=json.loads(r["summary_json"]),
            catalogue_id=r["catalogue_id"],
            first_seen=r["first_seen"],
            reviewed_at=r["reviewed_at"],
        )

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}


def list_entries(conn: sqlite3.Connection, status: str | None = None) -> list[FeedEntry]:
    """Stored entries (optionally of one status), newest first, ties by id."""
    sql = "SELECT * FROM feed_entries"
    params: list[object] = []
    if status is not None:
        sql += " WHERE status = ?"
        params.append(status)
    sql += " ORDER BY COALESCE(published, '') DESC, id"
    return [FeedEntry.from_row(r) for r in conn.execute(sql, params).fetchall()]


def get_entry(conn: sqlite3.Connection, entry_id: int) -> FeedEntry | None:
    row = conn.execute("SELECT * FROM feed_entries WHERE id = ?", (entry_id,)).fetchone()
    return FeedEntry.from_row(row) if row is not None else None


def dump_feed(conn: sqlite3.Connection) -> str:
    """Every row of the feed tables, sorted (timestamps included): equal dumps prove nothing was written."""
    parts = []
    for table in ("feed_entries", "feed_cursors", "feed_skipped", "digest_subscribers", "digest_sent"):
        rows = conn.execute(f"SELECT * FROM {table} ORDER BY 1, 2").fetchall()
        parts.append(table + "\n" + "\n".join(json.dumps(list(r)) for r in rows))
    return "\n".join(parts)


# ----- full text -----


def full_text_read(conn: sqlite3.Connection) -> set[int]:
    """Entries whose HTML rendering was already looked for (read or found missing)."""
    return {int(r[0]) for r in conn.execute("SELECT entry_id FROM feed_full_text").fetchall()}


def full_text_sentences(conn: sqlite3.Connection, entry_id: int) -> list[str]:
    row = conn.execute("SELECT sentences_json FROM feed_full_text WHERE entry_id = ?", (entry_id,)).fetchone()
    return list(json.loads(row[0])) if row else []


def record_full_text(
    conn: sqlite3.Connection,
    entry_id: int,
    *,
    url: str,
    fetched_at: str,
    sentences: Sequence[str] | None,
    head_types: Sequence[str] = (),
    candidates: Sequence[str] = (),
    stages: Sequence[str] = (),
    models: Sequence[str] = (),
    evidence: Iterable[Evidence] = (),
) -> None:
    """Keep what the full text gave an entry, in one transaction: its head-related sentences (``None``: no HTML
    rendering), head types, proposed types, stages and models added to the entry's own, and their evidence."""
    with transaction(conn):
        conn.execute(
            "INSERT OR REPLACE INTO feed_full_text (entry_id, url, status, fetched_at, sentences_json)"
            " VALUES (?, ?, ?, ?, ?)",
            (entry_id, url, "missing" if sentences is None else "read", fetched_at, json.dumps(list(sentences or []))),
        )
        columns = {"head_types_json": head_types, "candidates_json": candidates, "stages_json": stages,
                   "models_json": models}  # fmt: skip
        found = conn.execute(f"SELECT {', '.join(columns)} FROM feed_entries WHERE id = ?", (entry_id,)).fetchone()
        if found is None:
            raise InvalidSettingError(f"no feed entry #{entry_id}")
        merged = [json.dumps(list(dict.fromkeys([*json.loads(found[c]), *new]))) for c, new in columns.items()]
        conn.execute(
            f"UPDATE feed_entries SET {', '.join(f'{c} = ?' for c in columns)} WHERE id = ?", (*merged, entry_id)
        )
        write_evidence(conn, entry_id, evidence)


# ----- digest subscriptions -----


@dataclass(frozen=True)
class Subscriber:
    id: int
    email: str
    head_types: tuple[str, ...]
    keywords: tuple[str, ...]
    exclude: tuple[str, ...]

    def wants(self, entry: FeedEntry) -> bool:
        """Head types: any of them (OR); keywords: any of them; negative keywords: none of them (case-insensitive,
        in title, abstract or the source's keywords)."""
        text = " ".join([entry.title, entry.abstract, *entry.keywords]).lower()
        if self.head_types and not set(self.head_types) & set(entry.head_types):
            return False
        if self.keywords and not any(k.lower() in text for k in self.keywords):
            return False
        return not any(x.lower() in text for x in self.exclude)


def save_subscriber(
    conn: sqlite3.Connection,
    email: str,
    *,
    head_types: Sequence[str],
    keywords: Sequence[str],
    exclude: Sequence[str],
) -> Subscriber:
    """Create or replace the subscription of ``email`` (checked by the caller); its id and creation time stay."""
    with transaction(conn):
        conn.execute(
            "INSERT INTO digest_subscribers (email, head_types_json, keywords_json, exclude_json, created_at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (email) DO UPDATE SET head_types_json = excluded.head_types_json,"
            " keywords_json = excluded.keywords_json, exclude_json = excluded.exclude_json",
            (email, json.dumps(list(head_types)), json.dumps(list(keywords)), json.dumps(list(exclude)), now_iso()),
        )
    found = get_subscriber(conn, email)
    assert found is not None
    return found


def delete_subscriber(conn: sqlite3.Connection, email: str) -> bool:
    """Remove a subscription (and, by cascade, its sent records); False if there was none."""
    with transaction(conn):
        cur = conn.execute("DELETE FROM digest_subscribers WHERE email = ?", (email,))
    return cur.rowcount > 0


def _subscriber(r: sqlite3.Row) -> Subscriber:
    return Subscriber(
        id=r["id"],
        email=r["email"],
        head_types=tuple(json.loads(r["head_types_json"])),
        keywords=tuple(json.loads(r["keywords_json"])),
        exclude=tuple(json.loads(r["exclude_json"])),
    )


def get_subscriber(conn: sqlite3.Connection, email: str) -> Subscriber | None:
    row = conn.execute("SELECT * FROM digest_subscribers WHERE email = ?", (email,)).fetchone()
    return _subscriber(row) if row is not None else None


def subscribers(conn: sqlite3.Connection) -> list[Subscriber]:
    return [_subscriber(r) for r in conn.execute("SELECT * FROM digest_subscribers ORDER BY id").fetchall()]


def sent_entry_ids(conn: sqlite3.Connection, subscriber_id: int) -> set[int]:
    """Entries already sent to this subscriber."""
    rows = conn.execute("SELECT entry_id FROM digest_sent WHERE subscriber_id = ?", (subscriber_id,))
    return {int(r[0]) for r in rows}


def record_sent(conn: sqlite3.Connection, subscriber_id: int, entry_ids: Sequence[int]) -> None:
    """Record, in one transaction, that the server accepted a message carrying ``entry_ids``."""
    with transaction(conn):
        conn.executemany(
            "INSERT OR IGNORE INTO digest_sent (subscriber_id, entry_id, sent_at) VALUES (?, ?, ?)",
            [(subscriber_id, entry_id, now_iso()) for entry_id in entry_ids],
        )
