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


@migration("feed_tags", "0002_full_text")
def _create_full_text(conn: sqlite3.Connection) -> None:
    # what was read of a paper's HTML rendering: its head-related sentences only (status 'missing': no rendering)
    conn.executescript(
        """
        CREATE TABLE feed_full_text (
            entry_id INTEGER PRIMARY KEY REFERENCES feed_entries (id) ON DELETE CASCADE,
            url TEXT NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('read', 'missing')),
            fetched_at TEXT NOT NULL,
            sentences_json TEXT NOT NULL DEFAULT '[]'
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
