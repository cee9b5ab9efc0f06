"""An Atom 1.0 feed (RFC 4287) of accepted papers, newest first, and a JSON export of the feed tables."""

from __future__ import annotations

import json
import sqlite3
import xml.etree.ElementTree as ET
from datetime import datetime, timezone

from .store import list_entries

ATOM = "http://www.w3.org/2005/Atom"
FEED_ID = "tag:headatlas,2024:feed/accepted"


def _stamp(day: str | None, fallback: str) -> str:
    if day and len(day) == 10:
        return f"{day}T00:00:00Z"
    return day or fallback


def render_atom(
    conn: sqlite3.Connection,
    *,
    title: str = "headatlas: new attention-head papers",
    link: str = "https://github.com/headatlas/headatlas",
    limit: int = 200,
    now: datetime | None = None,
) -> bytes:
    """The feed document. ``updated`` is the newest entry's review time (stable across reruns)."""
    entries = [e for e in list_entries(conn, "accepted")][:limit]
    stamp = (now or datetime.now(timezone.utc)).strftime("%Y-%m-%dT%H:%M:%SZ")
    ET.register_namespace("", ATOM)
    feed = ET.Element(f"{{{ATOM}}}feed")
    ET.SubElement(feed, f"{{{ATOM}}}id").text = FEED_ID
    ET.SubElement(feed, f"{{{ATOM}}}title").text = title
    newest = max((e.reviewed_at or e.first_seen for e in entries), default=stamp)
    ET.SubElement(feed, f"{{{ATOM}}}updated").text = newest
    ET.SubElement(feed, f"{{{ATOM}}}link", href=link, rel="alternate")
    ET.SubElement(feed, f"{{{ATOM}}}generator").text = "headatlas"
    for e in entries:
        node = ET.SubElement(feed, f"{{{ATOM}}}entry")
        ident = f"https://arxiv.org/abs/{e.arxiv_id}" if e.arxiv_id else f"tag:headatlas,2024:entry/{e.id}"
        ET.SubElement(node, f"{{{ATOM}}}id").text = ident
        ET.SubElement(node, f"{{{ATOM}}}title").text = e.title
        ET.SubElement(node, f"{{{ATOM}}}updated").text = e.reviewed_at or e.first_seen
        if e.published:
            ET.SubElement(node, f"{{{ATOM}}}published").text = _stamp(e.published, stamp)
        for name in e.authors or ("unknown",):
            author = ET.SubElement(node, f"{{{ATOM}}}author")
            ET.SubElement(author, f"{{{ATOM}}}name").text = name
        url = e.url or (f"https://arxiv.org/abs/{e.arxiv_id}" if e.arxiv_id else None)
        if url:
            ET.SubElement(node, f"{{{ATOM}}}link", href=url, rel="alternate")
        for head in e.head_types:
            ET.SubElement(node, f"{{{ATOM}}}category", term=head, label=head.replace("_", " "))
        s = e.summary
        summary = (
            f"Innovation: {s.get('innovation', '')}\nTasks: {s.get('tasks', '')}\n"
            f"Significant result: {s.get('result', '')}"
        )
        ET.SubElement(node, f"{{{ATOM}}}summary", type="text").text = summary
    return b'<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(feed, encoding="utf-8") + b"\n"


def export_json(conn: sqlite3.Connection, status: str | None = None) -> str:
    """Every feed entry (or those of one status) as a JSON list, sorted newest first."""
    return json.dumps([e.to_dict() for e in list_entries(conn, status)], ensure_ascii=False, indent=2) + "\n"
