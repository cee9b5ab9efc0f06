"""Incremental, idempotent, crash-safe ingestion from the sources into the feed tables.

* arXiv: the recall query restricted to ``submittedDate`` from the day after the last completed run (or
  ``--since``); pages are written as they arrive, the cursor (last completed ``until`` date) only after the
  last page, so a crash re-reads the window and matching makes that add nothing twice.
* Daily Papers: one call per day; each day's entries and the cursor (that day) commit together.
* Files: an arXiv Atom answer (``.xml``) or a Daily Papers answer (``.json``), for offline use and tests.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from datetime import date, timedelta
from pathlib import Path

from ...errors import InvalidSettingError
from ...fileio import loads_json
from .model import Entry
from .proposals import evidence_rows
from .relevance import RelevanceModel, default_model
from .reported import extract_heads
from .sources.arxiv import RECALL_QUERY, ArxivClient, parse_arxiv_feed
from .sources.daily import DailyPapersClient, parse_daily_papers
from .sources.semantic_scholar import SemanticScholarClient
from .store import (
    Annotation,
    IngestResult,
    entries_to_enrich,
    get_cursor,
    write_enrichments,
    write_page,
)
from .summary import ExtractiveSummariser, Summariser, summary_dict
from .tagging import Tagger, default_tagger

log = logging.getLogger(__name__)

Progress = Callable[[str], None]


class Annotator:
    """Scores, tags and summarises new entries (whether one is already catalogued, the store says when it is
    written: :func:`~headatlas.literature.store.catalogued_as`)."""

    def __init__(
        self,
        model: RelevanceModel | None = None,
        tagger: Tagger | None = None,
        summariser: Summariser | None = None,
    ) -> None:
        self.model = model or default_model()
        self.tagger = tagger or default_tagger()
        self.summariser = summariser or ExtractiveSummariser()

    def __call__(self, entries: Sequence[Entry]) -> list[Annotation]:
        verdicts = self.model.judge([(e.title, e.abstract) for e in entries])
        notes = []
        for entry, verdict in zip(entries, verdicts, strict=True):
            tags = self.tagger.tag(entry.title, entry.abstract, entry.keywords)
            head_types, why = tags.head_types, verdict.why
            if not head_types and verdict.relevant:
                learned, neighbour = self.model.suggest(entry.title, entry.abstract)
                head_types = learned
                why = (*why, f"head types learned from the closest catalogue paper: {neighbour}") if learned else why
            notes.append(
                Annotation(
                    relevant=verdict.relevant,
                    score=verdict.score,
                    why=why,
                    head_types=head_types,
                    candidates=tags.candidates,
                    stages=tags.stages,
                    models=tags.models,
                    summary=summary_dict(self.summariser.summarise(entry.title, entry.abstract)),
                    evidence=evidence_rows(tags, extract_heads(entry.title, entry.abstract)),
                )
            )
        return notes


def _parse_day(value: str, what: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidSettingError(f"{what} must be a date YYYY-MM-DD, got {value!r}") from None


def window_start(conn: sqlite3.Connection, source: str, until: date, default_days: int) -> date:
    """First day a run of ``source`` should fetch: the day after its cursor, else ``default_days`` before ``until``."""
    cursor = get_cursor(conn, source)
    return date.fromisoformat(cursor) + timedelta(days=1) if cursor else until - timedelta(days=default_days)


def update_arxiv(
    conn: sqlite3.Connection,
    client: ArxivClient,
    *,
    since: date | None = None,
    until: date | None = None,
    query: str = RECALL_QUERY,
    page_size: int = 100,
    max_results: int = 2000,
    annotate: Annotator | None = None,
    default_days: int = 7,
    progress: Progress | None = None,
) -> IngestResult:
    """Fetch arXiv entries submitted in ``[since, until]``; ``since`` defaults to the day after the cursor."""
    annotate = annotate or Annotator()
    until = until or date.today()
    since = since or window_start(conn, "arxiv", until, default_days)
    if since > until:
        return IngestResult()
    total = IngestResult()
    seen, expected = 0, 0
    for page in client.search(query, since=since, until=until, page_size=page_size, max_results=max_results):
        total.merge(write_page(conn, page.entries, annotate, source="arxiv", skipped=page.skipped))
        seen += len(page.entries) + len(page.skipped)
        expected = page.total
        if progress:
            progress(f"arXiv: {seen} of {page.total}")
    if seen < expected:
        # cut off by max_results: keep the old cursor so the next run covers the rest of the window
        log.warning("arXiv: read %d of %d results (--max-results); the cursor stays where it was", seen, expected)
        total.skipped.append(f"arXiv: only {seen} of {expected} results read; rerun to continue")
        return total
    # the window is complete only now: record it
    write_page(conn, [], annotate, source="arxiv", cursor=until.isoformat())
    return total


def update_daily(
    conn: sqlite3.Connection,
    client: DailyPapersClient,
    *,
    since: date | None = None,
    until: date | None = None,
    annotate: Annotator | None = None,
    default_days: int = 7,
    progress: Progress | None = None,
) -> IngestResult:
    """Fetch Daily Papers day by day from ``since`` (default: the day after the cursor) to ``until``."""
    annotate = annotate or Annotator()
    until = until or date.today()
    since = since or window_start(conn, "daily", until, default_days)
    total = IngestResult()
    day = since
    while day <= until:
        answer = client.day(day)
        total.merge(
            write_page(conn, answer.entries, annotate, source="daily", cursor=day.isoformat(), skipped=answer.skipped)
        )
        if progress:
            progress(f"Daily Papers {day.isoformat()}: {len(answer.entries)} papers")
        day += timedelta(days=1)
    return total


def read_file(path: Path) -> tuple[str, list[Entry], list[str]]:
    """``(source, entries, skipped)`` from an arXiv Atom answer (.xml) or a Daily Papers answer (.json)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InvalidSettingError(f"cannot read {path}: {exc.strerror}") from None
    if path.suffix.lower() in (".xml", ".atom"):
        try:
            page = parse_arxiv_feed(data)
        except ValueError as exc:
            raise InvalidSettingError(f"{path}: {exc}") from None
        return "arxiv", page.entries, page.skipped
    if path.suffix.lower() == ".json":
        try:
            answer = parse_daily_papers(loads_json(data))
        except ValueError as exc:
            raise InvalidSettingError(f"{path}: not a Daily Papers answer ({exc})") from None
        return "daily", answer.entries, answer.skipped
    raise InvalidSettingError(f"{path}: expected an arXiv Atom .xml or a Daily Papers .json file")


def ingest_files(conn: sqlite3.Connection, paths: Iterable[Path], *, annotate: Annotator | None = None) -> IngestResult:
    """Ingest files; every file is parsed before anything is written, so one bad file writes nothing."""
    parsed = [read_file(Path(p)) for p in paths]
    annotate = annotate or Annotator()
    total = IngestResult()
    for source, entries, skipped in parsed:
        total.merge(write_page(conn, entries, annotate, source=source, skipped=skipped))
    return total


def enrich(conn: sqlite3.Connection, client: SemanticScholarClient, *, limit: int = 500) -> int:
    """Fill venue and citation count of pending / accepted entries from Semantic Scholar; returns rows changed.

    Entries with an arXiv id go in one batch call; entries without one (a venue-only record) are matched by
    title (exact normalised title only), which may also give them their arXiv id.
    """
    rows = entries_to_enrich(conn, limit)
    with_id = [r for r in rows if r.arxiv_id]
    found = client.batch([r.arxiv_id for r in with_id if r.arxiv_id]) if with_id else {}
    updates = [(r.id, found[r.arxiv_id]) for r in with_id if r.arxiv_id in found]
    for r in rows:
        if not r.arxiv_id:
            match = client.match_title(r.title)
            if match is not None:
                updates.append((r.id, match))
    return write_enrichments(conn, updates)  # all network calls are done: one short write
