"""Evidence for the feed's tags and the proposed-type flow.

``feed_evidence`` keeps, per feed entry, the sentence behind each head type (``head_type``), each proposed new
type (``proposed``: a coined "X heads" the vocabulary does not know) and each candidate reported head
(``reported_head``, name ``L9H9``, detail: the model). ``headatlas heads accept-proposed NAME`` adds a proposed
name to the store's vocabulary and moves it, on every entry that proposed it, from the proposals to the head
types, keeping its sentence as the evidence.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from ...errors import InvalidSettingError
from ...store.db import migration, transaction
from ..schema import STAGES
from ..vocabulary import HeadTerm, new_term

KINDS = ("head_type", "proposed", "reported_head")


@migration("feed_tags", "0001_evidence")
def _create(conn: sqlite3.Connection) -> None:
    conn.executescript(
        """
        CREATE TABLE feed_evidence (
            entry_id INTEGER NOT NULL REFERENCES feed_entries (id) ON DELETE CASCADE,
            kind TEXT NOT NULL CHECK (kind IN ('head_type', 'proposed', 'reported_head')),
            name TEXT NOT NULL,
            detail TEXT NOT NULL DEFAULT '',
            sentence TEXT NOT NULL,
            PRIMARY KEY (entry_id, kind, name, detail)
        );
        """
    )


@dataclass(frozen=True)
class Evidence:
    kind: str
    name: str
    sentence: str
    detail: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"evidence kind must be one of {', '.join(KINDS)}, got {self.kind!r}")


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


def describe(conn: sqlite3.Connection, entry_id: int) -> list[str]:
    """Lines for ``papers review``: each tag, proposal and candidate reported head with its sentence."""
    label = {"head_type": "head type", "proposed": "proposed type", "reported_head": "reported head (candidate)"}
    out = []
    for e in evidence_for(conn, entry_id):
        what = f"{e.name} ({e.detail})" if e.detail else e.name
        out.append(f'{label[e.kind]} {what}: "{e.sentence}"')
    return out


def accept_proposed(conn: sqlite3.Connection, name: str, *, stage: str = "ICI") -> tuple[HeadTerm, list[int]]:
    """Add proposed type ``name`` ("evaluator head") to the vocabulary; the entries that proposed it carry it."""
    from .. import store as paper_store

    paper_store.ensure_seeded(conn)
    if stage not in STAGES:
        raise InvalidSettingError(f"unknown stage {stage!r}; valid are {', '.join(STAGES)}")
    vocab = paper_store.store_vocabulary(conn)
    wanted = new_term(name, stage).id
    rows = [
        r
        for r in conn.execute("SELECT id, head_types_json, candidates_json FROM feed_entries ORDER BY id").fetchall()
        if any(new_term(c).id == wanted for c in json.loads(r["candidates_json"]))
    ]
    existing = vocab.find(name)
    if existing is None and not rows:
        raise InvalidSettingError(f"{name!r} is not a proposed head type; see `headatlas feed candidates`")
    term = vocab.get(existing) if existing else new_term(name, stage)
    if existing is None:
        paper_store.add_head_term(conn, term)
    with transaction(conn):
        for r in rows:
            heads = list(dict.fromkeys([*json.loads(r["head_types_json"]), term.id]))
            left = [c for c in json.loads(r["candidates_json"]) if new_term(c).id != wanted]
            conn.execute(
                "UPDATE feed_entries SET head_types_json = ?, candidates_json = ? WHERE id = ?",
                (json.dumps(heads), json.dumps(left), r["id"]),
            )
            for (sentence,) in conn.execute(
                "SELECT sentence FROM feed_evidence WHERE entry_id = ? AND kind = 'proposed' AND name IN (?, ?)",
                (r["id"], name, f"{wanted.replace('_', ' ')} head"),
            ).fetchall():
                write_evidence(conn, r["id"], [Evidence("head_type", term.id, sentence)])
            conn.execute(
                "DELETE FROM feed_evidence WHERE entry_id = ? AND kind = 'proposed' AND name IN (?, ?)",
                (r["id"], name, f"{wanted.replace('_', ' ')} head"),
            )
    return term, [int(r["id"]) for r in rows]


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
