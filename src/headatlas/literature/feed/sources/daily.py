"""Hugging Face Daily Papers client: ``/api/daily_papers?date=`` and ``/api/papers/search?q=``.

Both answer a JSON list of ``{"paper": {...}, "title", "summary", "publishedAt", ...}`` wrappers; the inner
``paper.id`` is the arXiv id. Items lacking an id or title are skipped with a reason, the rest kept.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

import httpx

from ....fileio import loads_json
from ..model import Entry, clean_space, parse_arxiv_id
from .http import Fetcher

DEFAULT_HF_URL = "https://huggingface.co"


@dataclass(frozen=True)
class DailyAnswer:
    entries: list[Entry]
    skipped: list[str]


def _entry(item: Mapping[str, Any]) -> Entry:
    paper = item.get("paper") if isinstance(item.get("paper"), Mapping) else item
    if not isinstance(paper, Mapping):
        raise ValueError("no paper object")
    raw_id = paper.get("id")
    parsed = parse_arxiv_id(raw_id) if isinstance(raw_id, str) and raw_id else None
    if parsed is None:
        raise ValueError(f"missing or malformed paper.id {raw_id!r}")
    title = paper.get("title") or item.get("title")
    if not isinstance(title, str) or not title.strip():
        raise ValueError("missing title")
    abstract = paper.get("summary") or item.get("summary") or ""
    if not isinstance(abstract, str):
        raise ValueError(f"summary must be text, got {type(abstract).__name__}")
    raw_authors = paper.get("authors") or []
    if not isinstance(raw_authors, list):
        raise ValueError("authors must be a list of names")
    authors = tuple(
        clean_space(a["name"])
        for a in raw_authors
        if isinstance(a, Mapping) and isinstance(a.get("name"), str) and a["name"].strip()
    )
    published = paper.get("publishedAt") or item.get("publishedAt")
    if published is not None and not isinstance(published, str):
        raise ValueError(f"publishedAt must be a date, got {type(published).__name__}")
    raw_keywords = paper.get("ai_keywords") or []
    if not isinstance(raw_keywords, list):
        raise ValueError("ai_keywords must be a list of text")
    keywords = tuple(k for k in raw_keywords if isinstance(k, str))
    arxiv_id, version = parsed
    extra: dict[str, object] = {
        k: paper[k] for k in ("upvotes", "githubRepo", "githubStars", "ai_summary") if paper.get(k) is not None
    }
    return Entry(
        source="daily",
        title=clean_space(title),
        abstract=clean_space(str(abstract)),
        arxiv_id=arxiv_id,
        version=version,
        authors=authors,
        published=published[:10] if published else None,
        url=f"https://huggingface.co/papers/{arxiv_id}",
        keywords=keywords,
        extra=extra,
    )


def parse_daily_papers(data: Any) -> DailyAnswer:
    """Entries from a decoded Daily Papers / papers-search answer; raises ``ValueError`` if not a list."""
    if not isinstance(data, list):
        raise ValueError(f"expected a JSON list, got {type(data).__name__}")
    entries: list[Entry] = []
    skipped: list[str] = []
    for i, item in enumerate(data):
        try:
            if not isinstance(item, Mapping):
                raise ValueError("not an object")
            entries.append(_entry(item))
        except ValueError as exc:
            skipped.append(f"item {i}: {exc}")
    return DailyAnswer(entries, skipped)


def _decode(response: httpx.Response) -> DailyAnswer:
    try:
        data = loads_json(response.content)
    except ValueError as exc:
        raise ValueError(f"broken JSON: {exc}") from None
    return parse_daily_papers(data)


class DailyPapersClient:
    """The Hub's paper endpoints. ``delay`` seconds between calls (the Hub allows 500 per 5 minutes)."""

    def __init__(
        self,
        base_url: str = DEFAULT_HF_URL,
        *,
        delay: float = 0.6,
        retries: int = 4,
        backoff: float = 2.0,
        timeout: float = 30.0,
        fetcher: Fetcher | None = None,
    ) -> None:
        self.fetcher = fetcher or Fetcher(
            base_url, name="Daily Papers", min_interval=delay, retries=retries, backoff=backoff, timeout=timeout
        )

    def close(self) -> None:
        self.fetcher.close()

    def day(self, day: date, *, limit: int = 100) -> DailyAnswer:
        """The papers submitted to Daily Papers on ``day``."""
        answer: DailyAnswer = self.fetcher.request(
            "GET", "/api/daily_papers", params={"date": day.isoformat(), "limit": limit}, validate=_decode
        )
        return answer

    def search(self, query: str, *, limit: int = 50) -> DailyAnswer:
        """Papers whose text matches ``query``."""
        answer: DailyAnswer = self.fetcher.request(
            "GET", "/api/papers/search", params={"q": query, "limit": limit}, validate=_decode
        )
        return answer
