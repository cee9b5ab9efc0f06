"""Review of pending entries: accept (the paper joins the catalogue) or reject.

An accepted entry becomes a catalogue :class:`~headatlas.literature.schema.Paper` with provenance ``ingest``: the
versionless arXiv id (else a title slug), the extracted three-part summary, the tagged head types (or the ones
the curator names), stages and models. One transaction writes it (merging with a stored duplicate, as
:func:`headatlas.literature.store.add_paper` does) and marks the entry ``accepted``, seeding a fresh store's
catalogue in the same transaction. Re-accepting is harmless (the merge is idempotent).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import date

from ...errors import CatalogueError, InvalidSettingError
from ...store.db import transaction
from .. import store as paper_store
from ..catalogue import load_catalogue
from ..schema import Paper, Provenance, Summary, slugify
from ..vocabulary import HeadTerm, Vocabulary, new_term
from .store import FeedEntry, get_entry, mark_accepted, mark_rejected


def _require(conn: sqlite3.Connection, entry_id: int, allowed: Sequence[str]) -> FeedEntry:
    entry = get_entry(conn, entry_id)
    if entry is None:
        raise InvalidSettingError(f"no feed entry {entry_id}; see `headatlas feed list --status pending`")
    if entry.status not in allowed:
        raise InvalidSettingError(f"feed entry {entry_id} is {entry.status}, not {' or '.join(allowed)}")
    return entry


def to_paper(
    entry: FeedEntry, head_types: Sequence[str], *, today: date | None = None, tags: Sequence[str] = ()
) -> Paper:
    """The catalogue record of an accepted entry."""
    day = today or date.today()
    try:
        published = date.fromisoformat(entry.published) if entry.published else day
    except ValueError:  # a row stored before dates were checked at intake
        raise CatalogueError(f"feed entry {entry.id} has an invalid date {entry.published!r}") from None
    pid = entry.arxiv_id or slugify(entry.title, published.year)
    links = {"paper": f"https://arxiv.org/abs/{entry.arxiv_id}"} if entry.arxiv_id else {}
    if not links and entry.url:
        links = {"paper": entry.url}
    assigned = ["head_types"] if tuple(head_types) != entry.head_types else []
    return Paper(
        id=pid,
        title=entry.title,
        date=min(published, day),
        venue=entry.venue or "arXiv",
        summary=Summary(**entry.summary),
        tags=tuple(tags) or tuple(head_types),
        head_types=tuple(head_types),
        provenance=Provenance(
            source="ingest",
            added=day,
            assigned=tuple(assigned),
            note=f"Ingested from {', '.join(entry.sources)}; relevance score {entry.score:.2f}; summary extracted.",
        ),
        authors=entry.authors,
        links=links,
        stages=entry.stages,
        models=entry.models,
    )


def accept(
    conn: sqlite3.Connection,
    entry_id: int,
    *,
    head_types: Sequence[str] = (),
    new_heads: Sequence[str] = (),
    today: date | None = None,
) -> paper_store.AddResult:
    """Move a pending (or rejected) entry into the catalogue.

    ``head_types`` (ids or aliases) replace the tagged ones; ``new_heads`` adds names the vocabulary lacks
    (e.g. a candidate the tagger proposed) as new head types. An entry with no head type at all is refused.
    """
    entry = _require(conn, entry_id, ("pending", "rejected", "irrelevant", "accepted"))
    known = paper_store.store_vocabulary(conn)
    terms: list[HeadTerm] = []
    for name in new_heads:
        if known.find(name) is None and all(t.id != new_term(name).id for t in terms):
            terms.append(new_term(name))
    vocab = Vocabulary([*known.terms.values(), *terms])  # a copy: the store's vocabulary may be shared
    ids = [vocab.resolve(h) for h in head_types] if head_types else list(entry.head_types)
    ids += [t.id for t in terms]
    ids += [vocab.resolve(n) for n in new_heads if vocab.find(n) not in ids]
    ids = list(dict.fromkeys(ids))
    if not ids:
        hint = f" (candidates: {', '.join(entry.candidates)})" if entry.candidates else ""
        raise CatalogueError(f"feed entry {entry_id} has no head type; pass --head-type ID or --new-head NAME{hint}")
    paper = to_paper(entry, ids, today=today)
    load_catalogue()  # parsed before the lock, in case this store still needs the seed
    with transaction(conn):  # one transaction: seed (a fresh store), paper and the entry's status; a crash leaves none
        paper_store.seed_locked(conn)
        result = paper_store.add_paper_locked(conn, paper, vocab=vocab, new_terms=terms)
        mark_accepted(conn, entry_id, result.paper.id, ids)
    return result


def reject(conn: sqlite3.Connection, entry_id: int) -> None:
    """Mark a pending entry rejected (it stays in the store, so it is never proposed again)."""
    _require(conn, entry_id, ("pending", "irrelevant"))
    mark_rejected(conn, entry_id)
