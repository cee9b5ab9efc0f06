"""Evidence for the feed's tags and the proposed-type flow.

``feed_evidence`` keeps, per feed entry, the sentence behind each head type (``head_type``), each proposed new
type (``proposed``: a coined "X heads" the vocabulary does not know) and each candidate reported head
(``reported_head``, name ``L9H9``, detail: the model). ``headatlas heads accept-proposed NAME`` adds a proposed
name to the store's vocabulary and moves it, on every entry that proposed it, from the proposals to the head
types, keeping its sentence as the evidence.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer

from ...errors import InvalidSettingError
from ...store.db import transaction
from .. import store as paper_store
from ..schema import STAGES
from ..vocabulary import HeadTerm, new_term
from .store import (
    Evidence,
    adopt_proposed,
    evidence_for,
    full_text_read,
    full_text_sentences,
    list_entries,
    record_full_text,
)

__all__ = [
    "Evidence",
    "accept_proposed",
    "accept_proposed_command",
    "describe",
    "evidence_for",
    "evidence_rows",
    "full_text_read",
    "full_text_sentences",
    "record_full_text",
]


def describe(conn: sqlite3.Connection, entry_id: int) -> list[str]:
    """Lines for ``papers review``: each tag, proposal and candidate reported head with its sentence."""
    label = {"head_type": "head type", "proposed": "proposed type", "reported_head": "reported head (candidate)"}
    out = []
    for e in evidence_for(conn, entry_id):
        what = f"{e.name} ({e.detail})" if e.detail else e.name
        out.append(f'{label[e.kind]} {what}: "{e.sentence}"')
    return out


def accept_proposed(conn: sqlite3.Connection, name: str, *, stage: str = "ICI") -> tuple[HeadTerm, list[int]]:
    """Add proposed type ``name`` ("evaluator head") to the vocabulary; the entries that proposed it carry it.

    One transaction: the new head type and every entry's move commit together."""
    if stage not in STAGES:
        raise InvalidSettingError(f"unknown stage {stage!r}; valid are {', '.join(STAGES)}")
    paper_store.ensure_seeded(conn)
    vocab = paper_store.store_vocabulary(conn)
    wanted = new_term(name, stage).id
    entries = sorted(
        (e for e in list_entries(conn) if any(new_term(c).id == wanted for c in e.candidates)), key=lambda e: e.id
    )
    existing = vocab.find(name)
    if existing is None and not entries:
        raise InvalidSettingError(f"{name!r} is not a proposed head type; see `headatlas feed candidates`")
    term = vocab.get(existing) if existing else new_term(name, stage)
    with transaction(conn):
        if existing is None:
            paper_store.add_head_term_locked(conn, term)
        for e in entries:
            adopt_proposed(
                conn,
                e.id,
                head_types=list(dict.fromkeys([*e.head_types, term.id])),
                candidates=[c for c in e.candidates if new_term(c).id != wanted],
                proposed_names=(name, f"{wanted.replace('_', ' ')} head"),
                term_id=term.id,
            )
    return term, [e.id for e in entries]


def accept_proposed_command(
    names: Annotated[
        list[str], typer.Argument(help='Proposed names, as `feed candidates` lists them ("evaluator head").')
    ],
    stage: Annotated[str, typer.Option("--stage", help=f"Survey stage of the new type: {', '.join(STAGES)}.")] = "ICI",
    db: Annotated[Path | None, typer.Option("--db", help="SQLite store (default: user data dir).")] = None,
) -> None:
    """Accept proposed head types into the vocabulary; the papers that proposed them then carry them."""
    from ...store import connect

    conn = connect(db)
    for name in names:
        term, entries = accept_proposed(conn, name, stage=stage)
        typer.echo(f"{term.id}\t{term.name}\t{len(entries)} paper(s): {', '.join(f'#{i}' for i in entries) or '-'}")


def evidence_rows(tags: object, mentions: Sequence[object]) -> tuple[Evidence, ...]:
    """Evidence of one entry from its :class:`~.tagging.Tags` and :class:`~.reported.HeadMention` list."""
    from .reported import HeadMention
    from .tagging import Tags

    assert isinstance(tags, Tags)
    rows = [
        Evidence("head_type" if key in tags.head_types else "proposed", key, sentence)
        for key, sentence in tags.evidence
    ]
    rows += [Evidence("reported_head", m.head, m.sentence, m.model) for m in mentions if isinstance(m, HeadMention)]
    return tuple(rows)
