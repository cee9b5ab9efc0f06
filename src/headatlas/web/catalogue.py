"""The web layer's one door to the paper catalogue (:mod:`headatlas.literature`).

Pages and the report ask this module for papers and head-type vocabulary as plain dicts shaped like
``Paper.to_dict()`` plus ``year`` and ``url``. When the catalogue is not in the store (or the literature
package lacks a function), it falls back to what the head-type registry knows: the defining papers'
titles, so every head type still links to its papers.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
from collections.abc import Mapping
from typing import Any

from ..errors import HeadatlasError
from ..heads import head_types as registry_types

PaperDict = dict[str, Any]


def _slug(title: str) -> str:
    return "-".join(re.findall(r"[a-z0-9]+", title.lower())[:8]) or "paper"


def normalise(paper: Any) -> PaperDict:
    """A catalogue ``Paper`` (object or its dict form) as the dict pages render."""
    data: dict[str, Any] = dict(paper.to_dict()) if hasattr(paper, "to_dict") else dict(paper)
    date = str(data.get("date") or "")
    data["year"] = int(date[:4]) if date[:4].isdigit() else data.get("year")
    links = data.get("links") or {}
    data["links"] = dict(links) if isinstance(links, Mapping) else {}
    pid = str(data.get("id", ""))
    url = data["links"].get("paper")
    if not url and re.match(r"^\d{4}\.\d{4,5}$", pid):
        url = f"https://arxiv.org/abs/{pid}"
    data["url"] = url
    data.setdefault("head_types", [])
    data.setdefault("stages", [])
    data.setdefault("reported_heads", [])
    data.setdefault("summary", None)
    data.setdefault("venue", "")
    data.setdefault("authors", [])
    data.setdefault("tags", [])
    return data


def _registry_papers() -> list[PaperDict]:
    """Papers the head-type registry names (titles only), one entry per distinct title."""
    by_title: dict[str, PaperDict] = {}
    for t in registry_types().values():
        for title in t.papers:
            entry = by_title.setdefault(
                title,
                {
                    "id": _slug(title),
                    "title": title,
                    "date": None,
                    "year": None,
                    "venue": "",
                    "links": {},
                    "url": None,
                    "tags": [],
                    "head_types": [],
                    "stages": [],
                    "summary": None,
                    "reported_heads": [],
                    "provenance": {"source": "registry"},
                },
            )
            entry["head_types"].append(t.id)
            if t.stage not in entry["stages"]:
                entry["stages"].append(t.stage)
    return list(by_title.values())


def _store_papers(conn: sqlite3.Connection | None) -> list[PaperDict] | None:
    """Papers imported into the store's catalogue, or ``None`` when the store holds none."""
    if conn is None:
        return None
    try:
        from ..literature import store as lit_store
    except ImportError:
        return None
    lister = getattr(lit_store, "list_papers", None) or getattr(lit_store, "all_papers", None)
    if lister is None:
        return None
    try:
        papers = lister(conn)
    except (sqlite3.Error, HeadatlasError):
        return None
    return [normalise(p) for p in papers] or None


def _shipped_papers() -> list[PaperDict] | None:
    """The catalogue shipped with headatlas (``literature/data/papers.yaml``)."""
    try:
        from ..literature.catalogue import load_catalogue

        return [normalise(p) for p in load_catalogue().papers]
    except (ImportError, HeadatlasError):
        return None


def all_papers(conn: sqlite3.Connection | None) -> list[PaperDict]:
    """The catalogue's papers, newest first: the store's, else the shipped catalogue, else registry titles."""
    papers = _store_papers(conn) or _shipped_papers() or _registry_papers()
    return sorted(papers, key=lambda p: str(p.get("date") or ""), reverse=True)


def search_papers(
    conn: sqlite3.Connection | None,
    q: str | None = None,
    head_type: str | None = None,
    year: int | None = None,
    stage: str | None = None,
) -> list[PaperDict]:
    """Papers matching every given filter; ``q`` matches title, summary, venue, tags (case-insensitive words)."""
    words = [w for w in (q or "").lower().split() if w]
    out = []
    for p in all_papers(conn):
        if head_type and head_type not in p["head_types"]:
            continue
        if year and p.get("year") != year:
            continue
        if stage and stage not in p["stages"]:
            continue
        if words:
            hay = " ".join(
                [p["title"], p.get("venue") or "", " ".join(p.get("tags") or []), " ".join(p["head_types"])]
                + ([" ".join(str(v) for v in p["summary"].values())] if isinstance(p["summary"], Mapping) else [])
            ).lower()
            if not all(w in hay for w in words):
                continue
        out.append(p)
    return out


def get_paper(conn: sqlite3.Connection | None, paper_id: str) -> PaperDict | None:
    for p in all_papers(conn):
        if p["id"] == paper_id:
            return p
    return None


def papers_for_head_type(conn: sqlite3.Connection | None, head_type: str) -> list[PaperDict]:
    """Papers that define or study ``head_type``: tagged with it, or named as its defining papers."""
    papers = all_papers(conn)
    defining: set[str] = set()
    with contextlib.suppress(ImportError, HeadatlasError):
        from ..literature.vocabulary import vocabulary as lit_vocabulary

        vocab = lit_vocabulary()
        if head_type in vocab:
            defining = set(vocab.get(head_type).papers)
    found = [p for p in papers if head_type in p["head_types"] or p["id"] in defining]
    if found:
        return found
    return [p for p in _registry_papers() if head_type in p["head_types"]]


def vocabulary(conn: sqlite3.Connection | None) -> dict[str, dict[str, Any]]:
    """Head types by id: name, stage, definition, aliases, and whether headatlas scores them."""
    out: dict[str, dict[str, Any]] = {}
    for t in registry_types().values():
        out[t.id] = {
            "id": t.id,
            "name": t.name,
            "stage": t.stage,
            "definition": t.definition,
            "aliases": [],
            "scored": True,
            "threshold": t.threshold,
            "probe": t.probe,
        }
    with contextlib.suppress(ImportError, HeadatlasError):
        from ..literature.vocabulary import vocabulary as lit_vocabulary

        for term in lit_vocabulary().terms.values():
            entry = out.setdefault(
                term.id,
                {"id": term.id, "name": term.name, "stage": term.stage, "definition": term.definition,
                 "scored": False, "threshold": None, "probe": None},
            )  # fmt: skip
            entry["aliases"] = list(term.aliases)
            entry["catalogue_definition"] = term.definition
    return dict(sorted(out.items(), key=lambda kv: (not kv[1]["scored"], kv[1]["name"].lower())))


def paper_links(paper: PaperDict) -> list[tuple[str, str]]:
    """``(kind, url)`` pairs, http(s) only (a ``javascript:`` URL never becomes a link)."""
    links = [(k, v) for k, v in paper.get("links", {}).items() if isinstance(v, str)]
    if paper.get("url") and not any(v == paper["url"] for _, v in links):
        links.insert(0, ("paper", paper["url"]))
    return [(k, v) for k, v in links if v.startswith(("https://", "http://"))]
