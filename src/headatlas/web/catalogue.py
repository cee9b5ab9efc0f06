"""The web layer's one door to the paper catalogue (:mod:`headatlas.literature`).

Pages and the report get papers as plain dicts shaped like ``Paper.to_dict()`` plus ``year`` and ``url``.
Source, in order: papers imported into the store (:mod:`headatlas.literature.store`, FTS5 search), else
the catalogue shipped with the package (``load_catalogue()``), else the head-type registry's titles of
defining papers, so every head type always links to its papers.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..errors import HeadatlasError
from ..literature.identity import title_slug

if TYPE_CHECKING:
    from ..heads import HeadType

PaperDict = dict[str, Any]
SEARCH_LIMIT = 500


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
    data["url"] = url if isinstance(url, str) and url.startswith(("https://", "http://")) else None
    for key in ("head_types", "stages", "reported_heads", "authors", "tags"):
        data[key] = list(data.get(key) or [])
    data.setdefault("summary", None)
    data.setdefault("venue", "")
    return data


def _registry_papers() -> list[PaperDict]:
    """Papers the head-type registry names (titles only), one entry per distinct title."""
    by_title: dict[str, PaperDict] = {}
    for t in registry_types().values():
        for title in t.papers:
            entry = by_title.setdefault(
                title,
                normalise({"id": title_slug(title), "title": title, "provenance": {"source": "registry"}}),
            )
            entry["head_types"].append(t.id)
            if t.stage not in entry["stages"]:
                entry["stages"].append(t.stage)
    return list(by_title.values())


def _lit_store() -> Any | None:
    try:
        from ..literature import store as lit_store
    except ImportError:
        return None
    return lit_store


def _store_has_papers(conn: sqlite3.Connection | None) -> bool:
    lit = _lit_store()
    return conn is not None and lit is not None and bool(lit.has_papers(conn))


def _shipped_papers() -> list[PaperDict] | None:
    """The catalogue shipped with headatlas (``literature/data/papers.yaml``)."""
    try:
        from ..literature.catalogue import load_catalogue

        return [normalise(p) for p in load_catalogue().papers]
    except (ImportError, HeadatlasError):
        return None


def all_papers(conn: sqlite3.Connection | None) -> list[PaperDict]:
    """The catalogue's papers, newest first: the store's, else the shipped catalogue, else registry titles."""
    lit = _lit_store()
    papers: list[PaperDict] | None = None
    if lit is not None and _store_has_papers(conn):
        with contextlib.suppress(sqlite3.Error, HeadatlasError):
            papers = [normalise(p) for p in lit.list_papers(conn)]
    papers = papers or _shipped_papers() or _registry_papers()
    return sorted(papers, key=lambda p: str(p.get("date") or ""), reverse=True)


def _summary_text(p: PaperDict) -> str:
    summary = p["summary"]
    if isinstance(summary, Mapping):
        return " ".join(str(v) for v in summary.values())
    return str(summary) if summary else ""


TITLE_WEIGHT = 4.0
"""bm25 weight of a title match relative to the summary and the rest (venue, tags, head types, authors)."""


def rank_by_relevance(papers: list[PaperDict], words: list[str], defining: set[str] | None = None) -> list[PaperDict]:
    """The papers every word matches, best first: papers defining the head type the query names, then FTS5 bm25
    (porter-stemmed; titles weighted :data:`TITLE_WEIGHT` times), ties by newest.

    Used where the store does not hold the catalogue (the shipped list, read-only).
    """
    lit = _lit_store()
    if not words or not papers or lit is None:
        return []
    documents = [
        (p["title"], _summary_text(p),
         " ".join([p.get("venue") or "", *p["tags"], *p["head_types"], *map(str, p["authors"])]))
        for p in papers
    ]  # fmt: skip
    hits = lit.rank_in_memory(documents, words, title_weight=TITLE_WEIGHT)
    first = defining or set()
    hits.sort(key=lambda h: (papers[h[0]]["id"] not in first, h[1], _neg_date(papers[h[0]]), papers[h[0]]["id"]))
    return [papers[i] for i, _ in hits]


def _neg_date(p: PaperDict) -> str:
    date = str(p.get("date") or "0000-00-00")
    return "".join(chr(ord("9") - ord(c) + ord("0")) if c.isdigit() else c for c in date)


def search_papers(
    conn: sqlite3.Connection | None,
    q: str | None = None,
    head_type: str | None = None,
    year: int | None = None,
    stage: str | None = None,
) -> list[PaperDict]:
    """Papers matching every given filter; with ``q``, ranked by relevance (newest first without it).

    ``q`` uses the store's ranked full-text search (FTS5 over title and summary) when the store holds the
    catalogue, otherwise :func:`rank_by_relevance` over the shipped catalogue: every word must match.
    """
    words = re.findall(r"\w+", (q or "").lower())
    lit = _lit_store()
    if words and lit is not None and _store_has_papers(conn):
        try:
            hits = lit.search_papers(conn, q, head_type=head_type, stage=stage, year=year, limit=SEARCH_LIMIT)
            return [normalise(h.paper) for h in hits]
        except (sqlite3.Error, HeadatlasError):
            pass  # fall back to plain matching below
    out = []
    for p in all_papers(conn):
        if head_type and head_type not in p["head_types"]:
            continue
        if year and p.get("year") != year:
            continue
        if stage and stage not in p["stages"]:
            continue
        out.append(p)
    if not words:
        return out
    return rank_by_relevance(out, words, _defining_for_query(conn, q or ""))


def _defining_for_query(conn: sqlite3.Connection | None, q: str) -> set[str]:
    """Ids of the papers defining the head type a whole query names (``"retrieval head"`` -> retrieval)."""
    with contextlib.suppress(ImportError, HeadatlasError, sqlite3.Error):
        vocab = _lit_vocabulary(conn)
        if vocab is None:
            return set()
        named = vocab.find(q)
        if named is not None:
            return set(vocab.get(named).papers)
    return set()


def get_paper(conn: sqlite3.Connection | None, paper_id: str) -> PaperDict | None:
    for p in all_papers(conn):
        if p["id"] == paper_id:
            return p
    return None


def defining_ids(conn: sqlite3.Connection | None, head_type: str) -> set[str]:
    with contextlib.suppress(ImportError, HeadatlasError, sqlite3.Error):
        vocab = _lit_vocabulary(conn)
        if vocab is not None and head_type in vocab:
            return set(vocab.get(head_type).papers)
    return set()


def papers_for_head_type(conn: sqlite3.Connection | None, head_type: str) -> list[PaperDict]:
    """Papers that define or study ``head_type``: its defining papers first, then those tagged with it, newest first."""
    defining = defining_ids(conn, head_type)
    found = [p for p in all_papers(conn) if head_type in p["head_types"] or p["id"] in defining]
    found.sort(key=lambda p: p["id"] not in defining)  # stable: newest first within each group
    return found or [p for p in _registry_papers() if head_type in p["head_types"]]


def _lit_vocabulary(conn: sqlite3.Connection | None) -> Any | None:
    """The catalogue vocabulary (with head types added to this store), or ``None`` without the literature package."""
    try:
        from ..literature.vocabulary import vocabulary as shipped_vocabulary
    except ImportError:
        return None
    lit = _lit_store()
    if conn is not None and lit is not None:
        with contextlib.suppress(sqlite3.Error):
            return lit.store_vocabulary(conn)
    return shipped_vocabulary()


def vocabulary(conn: sqlite3.Connection | None) -> dict[str, dict[str, Any]]:
    """Head types by id: name, stage, definition, aliases, and whether headatlas scores them.

    Scored types (the census registry) come first, then catalogue-only types, each group by name.
    """
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
    with contextlib.suppress(HeadatlasError):
        vocab = _lit_vocabulary(conn)
        for term in vocab.terms.values() if vocab is not None else ():
            entry = out.setdefault(
                term.id,
                {"id": term.id, "name": term.name, "stage": term.stage, "definition": term.definition,
                 "scored": False, "threshold": None, "probe": None},
            )  # fmt: skip
            entry["aliases"] = list(term.aliases)
            entry["in_survey"] = bool(term.in_survey)
    return dict(sorted(out.items(), key=lambda kv: (not kv[1]["scored"], kv[1]["name"].lower())))


def paper_links(paper: PaperDict) -> list[tuple[str, str]]:
    """``(kind, url)`` pairs, http(s) only (a ``javascript:`` URL never becomes a link)."""
    links = [(k, v) for k, v in paper.get("links", {}).items() if isinstance(v, str)]
    if paper.get("url") and not any(v == paper["url"] for _, v in links):
        links.insert(0, ("paper", paper["url"]))
    return [(k, v) for k, v in links if v.startswith(("https://", "http://"))]


_BIB_ESCAPES = {"\\": r"\textbackslash{}", "{": r"\{", "}": r"\}", "&": r"\&", "%": r"\%", "$": r"\$",
                "#": r"\#", "_": r"\_", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}  # fmt: skip
_ARXIV_RE = re.compile(r"^\d{4}\.\d{4,5}$")


def _bib_text(value: Any) -> str:
    """A field value for BibTeX: LaTeX specials escaped, so braces always balance; one line."""
    text = " ".join(str(value).split())
    return "".join(_BIB_ESCAPES.get(c, c) for c in text)


def _bib_key(p: PaperDict) -> str:
    authors = p["authors"]
    first = re.findall(r"[A-Za-z]+", str(authors[0]).split(",")[0].split()[-1]) if authors else []
    lead = first[0].lower() if first else "anon"
    words = [w for w in re.findall(r"[a-z0-9]+", str(p["title"]).lower()) if w not in {"a", "an", "the", "on", "of"}]
    return f"{lead}{p.get('year') or ''}{words[0] if words else 'paper'}"


def bibtex(papers: list[PaperDict]) -> str:
    """BibTeX entries for ``papers`` (keys made unique with a, b, … suffixes): ``@inproceedings`` for conference
    venues, ``@misc`` otherwise, the arXiv eprint where the id is one; title case kept by double braces."""
    seen: dict[str, int] = {}
    out = []
    for p in papers:
        key = _bib_key(p)
        n = seen.get(key, 0)
        seen[key] = n + 1
        if n:
            key += chr(ord("a") + min(n, 25))
        pid = str(p["id"])
        venue = str(p.get("venue") or "")
        fields: list[tuple[str, str]] = [("title", "{" + _bib_text(p["title"]) + "}")]
        if p["authors"]:
            fields.append(("author", " and ".join(_bib_text(a) for a in p["authors"])))
        if p.get("year"):
            fields.append(("year", str(p["year"])))
        kind = "misc"
        if venue and not re.search(r"blog|anthropic|arxiv", venue, re.I):
            kind = "inproceedings"
            fields.append(("booktitle", _bib_text(venue)))
        elif venue and venue != "arXiv":
            fields.append(("howpublished", _bib_text(venue)))
        if _ARXIV_RE.match(pid):
            fields += [("eprint", pid), ("archivePrefix", "arXiv")]
        if p.get("url"):
            fields.append(("url", _bib_text(p["url"])))
        body = ",\n".join(f"  {name} = {{{value}}}" for name, value in fields)
        out.append(f"@{kind}{{{key},\n{body}\n}}\n")
    return "\n".join(out)


def registry_types() -> dict[str, HeadType]:
    """The registered head types (metadata only: registering them imports no torch, scoring them would)."""
    from ..heads import head_types

    return head_types()
