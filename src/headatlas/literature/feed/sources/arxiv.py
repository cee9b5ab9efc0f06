"""arXiv API client: the Atom 1.0 answer of ``/api/query``, paged, parsed with defusedxml.

defusedxml refuses DTDs, entity declarations and external references, so an entity-expansion ("billion
laughs") or external-entity document raises :class:`SourceError` instead of being expanded.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date

import defusedxml
import defusedxml.ElementTree as SafeET
import httpx

from ....errors import SourceError
from ..model import Entry, clean_space, parse_arxiv_id
from .http import Fetcher

DEFAULT_ARXIV_URL = "http://export.arxiv.org/api/query"
RECALL_QUERY = '(abs:"attention head" OR abs:"attention heads" OR ti:head) AND (cat:cs.CL OR cat:cs.LG OR cat:cs.AI)'
NS = {
    "atom": "http://www.w3.org/2005/Atom",
    "opensearch": "http://a9.com/-/spec/opensearch/1.1/",
    "arxiv": "http://arxiv.org/schemas/atom",
}


@dataclass(frozen=True)
class ArxivPage:
    """One page of an answer: its entries, the total the query matches, and the page's start index."""

    entries: list[Entry]
    total: int
    start: int
    skipped: list[str]


def _text(node: ET.Element, path: str) -> str | None:
    found = node.find(path, NS)
    if found is None or found.text is None:
        return None
    return clean_space(found.text) or None


def _parse_root(text: str | bytes) -> ET.Element:
    try:
        return SafeET.fromstring(text, forbid_dtd=True)
    except defusedxml.DefusedXmlException as exc:
        raise SourceError(f"arXiv: refused hostile XML ({type(exc).__name__})") from None
    except ET.ParseError as exc:
        raise ValueError(f"broken XML: {exc}") from None


def _count(text: str | None, what: str) -> int:
    if text is None:
        return 0
    if not text.isdigit() or len(text) > 12:
        raise ValueError(f"opensearch:{what} is not a count: {text[:40]!r}")
    return int(text)


def parse_arxiv_feed(text: str | bytes) -> ArxivPage:
    """Parse one Atom answer. Entries lacking an id or title are skipped with a reason; a broken document
    raises ``ValueError``; hostile XML or an arXiv error entry raise :class:`SourceError`."""
    root = _parse_root(text)
    if root.tag != f"{{{NS['atom']}}}feed":
        raise ValueError(f"not an Atom feed (root {root.tag})")
    total = _count(_text(root, "opensearch:totalResults"), "totalResults")
    start = _count(_text(root, "opensearch:startIndex"), "startIndex")
    entries: list[Entry] = []
    skipped: list[str] = []
    for node in root.findall("atom:entry", NS):
        raw_id = _text(node, "atom:id") or ""
        if "/api/errors" in raw_id:
            raise SourceError(f"arXiv: query refused: {_text(node, 'atom:summary') or 'no reason given'}")
        parsed = parse_arxiv_id(raw_id)
        title = _text(node, "atom:title")
        if parsed is None or not title:
            skipped.append(f"entry {raw_id or '?'}: missing {'id' if parsed is None else 'title'}")
            continue
        arxiv_id, version = parsed
        published = _text(node, "atom:published")
        updated = _text(node, "atom:updated")
        primary = node.find("arxiv:primary_category", NS)
        categories = [primary.get("term", "")] if primary is not None else []
        categories += [c.get("term", "") for c in node.findall("atom:category", NS)]
        abs_url = next(
            (link.get("href") for link in node.findall("atom:link", NS) if link.get("rel") == "alternate"),
            f"https://arxiv.org/abs/{arxiv_id}",
        )
        try:
            entry = Entry(
                source="arxiv",
                title=title,
                abstract=_text(node, "atom:summary") or "",
                arxiv_id=arxiv_id,
                version=version,
                authors=tuple(
                    clean_space(a.text) for a in node.findall("atom:author/atom:name", NS) if a.text and a.text.strip()
                ),
                published=published[:10] if published else None,
                updated=updated[:10] if updated else None,
                categories=tuple(dict.fromkeys(c for c in categories if c)),
                url=abs_url,
                journal_ref=_text(node, "arxiv:journal_ref"),
                doi=_text(node, "arxiv:doi"),
                comment=_text(node, "arxiv:comment"),
            )
        except ValueError as exc:
            skipped.append(f"entry {raw_id}: {exc}")
            continue
        entries.append(entry)
    return ArxivPage(entries=entries, total=total, start=start, skipped=skipped)


def date_window(since: date | None, until: date | None) -> str | None:
    """The ``submittedDate:[… TO …]`` clause for a day range (inclusive), or None for no bound."""
    if since is None and until is None:
        return None
    low = (since or date(1991, 1, 1)).strftime("%Y%m%d") + "0000"
    high = (until or date(2999, 12, 31)).strftime("%Y%m%d") + "2359"
    return f"submittedDate:[{low} TO {high}]"


class ArxivClient:
    """Pages through ``/api/query`` newest first. ``delay`` seconds between calls (arXiv asks for 3)."""

    def __init__(
        self,
        base_url: str = DEFAULT_ARXIV_URL,
        *,
        delay: float = 3.0,
        retries: int = 4,
        backoff: float = 3.0,
        timeout: float = 30.0,
        fetcher: Fetcher | None = None,
    ) -> None:
        self.fetcher = fetcher or Fetcher(
            base_url, name="arXiv", min_interval=delay, retries=retries, backoff=backoff, timeout=timeout
        )

    def close(self) -> None:
        self.fetcher.close()

    def page(self, search_query: str, start: int, size: int) -> ArxivPage:
        params = {
            "search_query": search_query,
            "start": start,
            "max_results": size,
            "sortBy": "submittedDate",
            "sortOrder": "descending",
        }

        def validate(response: httpx.Response) -> ArxivPage:
            page = parse_arxiv_feed(response.content)
            # arXiv sometimes answers an empty page mid-query; that is a transient fault, retry it
            if not page.entries and not page.skipped and start < page.total:
                raise ValueError(f"empty page at {start} of {page.total}")
            return page

        result: ArxivPage = self.fetcher.request("GET", "", params=params, validate=validate)
        return result

    def search(
        self,
        query: str = RECALL_QUERY,
        *,
        since: date | None = None,
        until: date | None = None,
        page_size: int = 100,
        max_results: int = 2000,
    ) -> Iterator[ArxivPage]:
        """Yield pages of the query restricted to ``[since, until]`` until exhausted or ``max_results``."""
        if not 1 <= page_size <= 2000:
            raise ValueError("page_size must be within 1..2000 (arXiv's slice limit)")
        window = date_window(since, until)
        full = f"({query}) AND {window}" if window else query
        start = 0
        while start < max_results:
            page = self.page(full, start, min(page_size, max_results - start))
            yield page
            got = len(page.entries) + len(page.skipped)
            start += got
            if got == 0 or start >= page.total:
                return
