"""Full text when online: the arXiv HTML rendering of a paper (``https://arxiv.org/html/<id>``, LaTeXML), read
down to its head-related sentences and its tables of heads, then tagged and searched for reported heads like the
abstract.

Kept: sentences that mention heads (or name a head such as ``L9H9``), at most :data:`MAX_SENTENCES`, and tables
with a heads column (caption, header, the rows that list heads) — never the whole paper. A paper without an HTML
rendering (HTTP 404, or a page without a LaTeXML document, as for papers older than the HTML service) keeps what
its abstract gave. Fetching goes through the feed's polite :class:`~.sources.http.Fetcher` (3 s between calls by
default, as arXiv asks; retries with backoff; ``Retry-After`` honoured).
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from html.parser import HTMLParser

from ...errors import SourceError
from .proposals import evidence_rows, full_text_read, record_full_text
from .reported import HeadMention, extract_heads, extract_table_heads, mentions_in, mentions_in_table
from .sources.http import Fetcher, HTTPStatusError
from .store import list_entries, now_iso
from .summary import split_sentences
from .tagging import Tagger, Tags

MAX_SENTENCES = 300
MAX_SENTENCE_CHARS = 600
DEFAULT_HTML_URL = "https://arxiv.org"

_HEAD_WORD = re.compile(r"\bheads?\b", re.IGNORECASE)
_SKIP = frozenset({"script", "style", "math", "annotation", "annotation-xml", "svg", "nav", "header", "footer"})
_BLOCKS = frozenset({"p", "li", "figcaption", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "dd", "dt"})


@dataclass(frozen=True)
class Table:
    caption: str
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class FullText:
    """What is kept of a paper's HTML: its head-related sentences and its tables of heads."""

    sentences: tuple[str, ...]
    tables: tuple[Table, ...] = ()


@dataclass
class _Figure:
    caption: list[str] = field(default_factory=list)
    tables: list[list[list[str]]] = field(default_factory=list)


class _Reader(HTMLParser):
    """Text blocks (paragraphs, list items, captions, headings) and tables (rows of cell texts) of a LaTeXML page;
    math, scripts, navigation and page furniture are left out."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[str] = []
        self.tables: list[Table] = []
        self.is_document = False
        self._skip = 0
        self._block: list[str] | None = None
        self._figures: list[_Figure] = []
        self._table: list[list[str]] | None = None
        self._cell: list[str] | None = None
        self._depth_table = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        classes = (dict(attrs).get("class") or "").split()
        if "ltx_document" in classes or "ltx_page_main" in classes:
            self.is_document = True
        if tag in _SKIP:
            self._skip += 1
            return
        if tag == "figure":
            self._figures.append(_Figure())
        elif tag == "table":
            self._depth_table += 1
            if self._depth_table == 1:
                self._table = []
        elif tag == "tr" and self._table is not None:
            self._table.append([])
        elif tag in ("td", "th") and self._table is not None:
            self._cell = []
        elif tag in _BLOCKS and self._table is None and self._block is None:
            self._block = []
        elif tag == "br" and self._block is not None:
            self._block.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self._skip = max(0, self._skip - 1)
            return
        if tag in ("td", "th") and self._cell is not None and self._table is not None:
            if not self._table:
                self._table.append([])
            self._table[-1].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "table" and self._depth_table:
            self._depth_table -= 1
            if self._depth_table == 0 and self._table is not None:
                rows = [r for r in self._table if any(c for c in r)]
                if self._figures:
                    self._figures[-1].tables.append(rows)
                else:
                    self._add_table("", rows)
                self._table = None
        elif tag in _BLOCKS and self._block is not None:
            text = " ".join("".join(self._block).split())
            if text:
                if tag == "figcaption" and self._figures:
                    self._figures[-1].caption.append(text)
                self.blocks.append(text)
            self._block = None
        elif tag == "figure" and self._figures:
            figure = self._figures.pop()
            for rows in figure.tables:
                self._add_table(" ".join(figure.caption), rows)

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        if self._cell is not None:
            self._cell.append(data)
        elif self._block is not None:
            self._block.append(data)

    def _add_table(self, caption: str, rows: list[list[str]]) -> None:
        if len(rows) >= 2:
            self.tables.append(Table(caption, tuple(rows[0]), tuple(tuple(r) for r in rows[1:])))


def read_html(html: str) -> FullText | None:
    """The head-related sentences and tables of heads of an arXiv HTML page; None when the page holds no LaTeXML
    document (no HTML rendering)."""
    reader = _Reader()
    reader.feed(html)
    reader.close()
    if not reader.is_document:
        return None
    sentences: list[str] = []
    for block in reader.blocks:
        for sentence in split_sentences(block):
            about_heads = _HEAD_WORD.search(sentence) or mentions_in(sentence)
            if about_heads and len(sentence) <= MAX_SENTENCE_CHARS and sentence not in sentences:
                sentences.append(sentence)
    tables = []
    for table in reader.tables:
        rows = tuple(r for r in table.rows if mentions_in_table(table.header, [r]))
        if rows:
            tables.append(Table(table.caption, table.header, rows))
    return FullText(tuple(sentences[:MAX_SENTENCES]), tuple(tables))


def html_path(arxiv_id: str) -> str:
    """Path of the HTML rendering below the arXiv base URL (the newest version when ``arxiv_id`` has none)."""
    if not re.fullmatch(r"\d{4}\.\d{4,5}(v\d+)?|[a-z-]+(\.[A-Z]{2})?/\d{7}(v\d+)?", arxiv_id):
        raise ValueError(f"not an arXiv id: {arxiv_id!r}")
    return f"/html/{arxiv_id}"


@dataclass(frozen=True)
class Findings:
    """Tags and head mentions of title + abstract + full text (:class:`FullText`)."""

    tags: Tags
    mentions: tuple[HeadMention, ...]


def analyse(tagger: Tagger, title: str, abstract: str, text: FullText | None) -> Findings:
    """Run the tagger and the head-mention extraction on the abstract and, when there is one, the full text's
    head-related sentences and tables of heads."""
    sentences: Sequence[str] = text.sentences if text is not None else ()
    tags = tagger.tag(title, abstract, extra_terms=sentences)
    mentions = extract_heads(title, " ".join([abstract, *sentences]))
    seen = {(m.head, m.model) for m in mentions}
    for table in text.tables if text is not None else ():
        for m in extract_table_heads(table.caption, table.header, table.rows):
            if (m.head, m.model) not in seen:
                seen.add((m.head, m.model))
                mentions.append(m)
    return Findings(tags, tuple(mentions))


@dataclass
class FullTextRun:
    """What one ``feed fulltext`` run did."""

    read: int = 0
    missing: int = 0
    failed: list[str] = field(default_factory=list)
    new_head_types: int = 0
    new_reported: int = 0


def read_full_texts(
    conn: sqlite3.Connection,
    fetcher: Fetcher,
    tagger: Tagger,
    *,
    statuses: Sequence[str] = ("pending", "accepted"),
    limit: int | None = None,
    again: bool = False,
) -> FullTextRun:
    """Fetch the HTML rendering of every entry of ``statuses`` with an arXiv id (not yet looked for, unless
    ``again``), keep its head-related sentences and add what they and its tables of heads say to the entry: head
    types, proposed types and candidate reported heads, each with its sentence. A missing rendering is recorded
    (the entry keeps its abstract's tags); any other fetch failure is reported and the entry is tried next run."""
    done = set() if again else full_text_read(conn)
    entries = [e for s in statuses for e in list_entries(conn, s) if e.arxiv_id and e.id not in done]
    entries.sort(key=lambda e: e.id)
    run = FullTextRun()
    for entry in entries[:limit] if limit is not None else entries:
        assert entry.arxiv_id is not None
        path = html_path(entry.arxiv_id)
        url = f"{fetcher.base_url}{path}"
        try:
            response = fetcher.request("GET", path)
            text = read_html(response.text)
        except HTTPStatusError as exc:
            if exc.status not in (404, 410):
                run.failed.append(f"#{entry.id} {entry.arxiv_id}: {exc}")
                continue
            text = None
        except SourceError as exc:
            run.failed.append(f"#{entry.id} {entry.arxiv_id}: {exc}")
            continue
        if text is None:
            record_full_text(conn, entry.id, url=url, fetched_at=now_iso(), sentences=None)
            run.missing += 1
            continue
        found = analyse(tagger, entry.title, entry.abstract, text)
        new_types = [t for t in found.tags.head_types if t not in entry.head_types]
        record_full_text(
            conn, entry.id, url=url, fetched_at=now_iso(), sentences=text.sentences,
            head_types=found.tags.head_types, candidates=found.tags.candidates, stages=found.tags.stages,
            models=found.tags.models, evidence=evidence_rows(found.tags, found.mentions),
        )  # fmt: skip
        run.read += 1
        run.new_head_types += len(new_types)
        run.new_reported += len(found.mentions)
    return run


__all__ = [
    "DEFAULT_HTML_URL", "Findings", "FullText", "FullTextRun", "Table", "analyse", "html_path", "read_full_texts",
    "read_html",
]  # fmt: skip
