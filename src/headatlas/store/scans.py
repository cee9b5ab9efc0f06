"""Scans in the store: one row per scan, one row per head x head type, and the full headmap JSON."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timezone
from typing import Any

from ..errors import StoreError
from ..headmap import HEAD_SCORE, HeadMap
from .db import execute_script, migration, transaction


@migration("scans", "0001_create")
def _create(conn: sqlite3.Connection) -> None:
    """History, never edited: ``head_scores`` holds :data:`~headatlas.headmap.HEAD_SCORE`'s columns as of this
    migration (a test holds the migrated table to the declaration; a new field comes with its own migration)."""
    execute_script(
        conn,
        """
        CREATE TABLE scans (
            id INTEGER PRIMARY KEY,
            model TEXT NOT NULL,
            architecture TEXT NOT NULL,
            n_layers INTEGER NOT NULL,
            n_heads INTEGER NOT NULL,
            n_kv_heads INTEGER NOT NULL,
            seed INTEGER NOT NULL,
            created_at TEXT NOT NULL,
            out_dir TEXT,
            headmap_json TEXT NOT NULL
        );
        CREATE TABLE head_scores (
            scan_id INTEGER NOT NULL REFERENCES scans(id) ON DELETE CASCADE,
            layer INTEGER NOT NULL,
            head INTEGER NOT NULL,
            head_type TEXT NOT NULL,
            score REAL,
            score_se REAL,
            n_samples INTEGER NOT NULL,
            threshold REAL NOT NULL,
            member INTEGER NOT NULL,
            attribution REAL,
            ablation_effect REAL,
            PRIMARY KEY (scan_id, head_type, layer, head)
        );
        CREATE INDEX head_scores_type ON head_scores (head_type, score);
        """,
    )


def save_scan(conn: sqlite3.Connection, headmap: HeadMap, out_dir: str | None = None) -> int:
    """Record a scan with all its head scores in one transaction; returns the scan id."""
    f = headmap.facts
    with transaction(conn):
        cursor = conn.execute(
            "INSERT INTO scans (model, architecture, n_layers, n_heads, n_kv_heads, seed, created_at, out_dir,"
            " headmap_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                f.name,
                f.architecture,
                f.n_layers,
                f.n_heads,
                f.n_kv_heads,
                headmap.settings["seed"],
                datetime.now(timezone.utc).isoformat(timespec="seconds"),
                out_dir,
                headmap.json_text(),
            ),
        )
        scan_id = int(cursor.lastrowid or 0)
        conn.executemany(_INSERT_SCORES, [(scan_id, *_score_values(r)) for r in headmap.rows])
    return scan_id


_INSERT_SCORES = (
    f"INSERT INTO head_scores (scan_id, {', '.join(f.name for f in HEAD_SCORE)})"
    f" VALUES ({', '.join('?' * (1 + len(HEAD_SCORE)))})"
)


def _score_values(row: dict[str, Any]) -> tuple[Any, ...]:
    """A head-score row as ``head_scores`` values (a bool as 0/1; a causal column the scan lacks as NULL)."""
    values = (row[f.name] if f.present else row.get(f.name) for f in HEAD_SCORE)
    return tuple(int(bool(v)) if f.kind is bool else v for f, v in zip(HEAD_SCORE, values, strict=True))


SCAN_INFO = "id, model, architecture, n_layers, n_heads, n_kv_heads, seed, created_at, out_dir"
"""The columns of a scan's summary (everything but the head map)."""


def list_scans(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Summaries of the stored scans, newest first."""
    return [dict(r) for r in conn.execute(f"SELECT {SCAN_INFO} FROM scans ORDER BY id DESC")]


def scan_info(conn: sqlite3.Connection, scan_id: int) -> dict[str, Any] | None:
    """The summary of scan ``scan_id``, or None if there is none."""
    row = conn.execute(f"SELECT {SCAN_INFO} FROM scans WHERE id = ?", (scan_id,)).fetchone()
    return dict(row) if row is not None else None


def delete_scan(conn: sqlite3.Connection, scan_id: int) -> bool:
    """Delete a scan and its head scores in one transaction; False if there was none."""
    with transaction(conn):
        cur = conn.execute("DELETE FROM scans WHERE id = ?", (scan_id,))
    return cur.rowcount > 0


def load_scan(conn: sqlite3.Connection, scan_id: int) -> HeadMap:
    row = conn.execute("SELECT headmap_json FROM scans WHERE id = ?", (scan_id,)).fetchone()
    if row is None:
        raise StoreError(f"no scan with id {scan_id}")
    return HeadMap.from_dict(json.loads(row["headmap_json"]))


def heads_of_type(conn: sqlite3.Connection, head_type: str, members_only: bool = True) -> list[dict[str, Any]]:
    """Heads of one type across every scanned model (the atlas view), strongest first."""
    query = (
        "SELECT s.id AS scan_id, s.model, h.layer, h.head, h.score, h.member FROM head_scores h"
        " JOIN scans s ON s.id = h.scan_id WHERE h.head_type = ?"
        + (" AND h.member = 1" if members_only else "")
        + " ORDER BY h.score DESC, s.id, h.layer, h.head"
    )
    return [dict(r) for r in conn.execute(query, (head_type,))]
