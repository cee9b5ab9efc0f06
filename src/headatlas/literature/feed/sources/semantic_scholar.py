"""Semantic Scholar Graph API enrichment: venue and citation count by arXiv id, and title → id matching."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeGuard

import httpx

from ....errors import SourceError
from ....fileio import has_surrogates, loads_json
from ...identity import title_key
from ..model import parse_arxiv_id
from .http import Fetcher

DEFAULT_S2_URL = "https://api.semanticscholar.org"
FIELDS = "title,venue,publicationVenue,year,citationCount,externalIds"


@dataclass(frozen=True)
class Enrichment:
    """What Semantic Scholar knows of one paper; ``venue`` None when it lists only arXiv."""

    paper_id: str
    title: str
    venue: str | None
    year: int | None
    citation_count: int | None
    arxiv_id: str | None
    doi: str | None


def _json(response: httpx.Response) -> Any:
    try:
        return loads_json(response.content)
    except ValueError as exc:
        raise ValueError(f"broken JSON: {exc}") from None


def parse_paper(data: Any) -> Enrichment | None:
    """An :class:`Enrichment` from a Graph API paper object; None if it lacks ``paperId`` or ``title``."""
    if not isinstance(data, Mapping) or not data.get("paperId") or not _text(data.get("title")):
        return None
    venue = _text(data.get("venue"))
    publication = data.get("publicationVenue")
    if not venue and isinstance(publication, Mapping):
        venue = _text(publication.get("name"))
    if isinstance(venue, str) and venue.lower() in {"arxiv", "arxiv.org"}:
        venue = None
    raw_ids = data.get("externalIds")
    ids: Mapping[str, Any] = raw_ids if isinstance(raw_ids, Mapping) else {}
    count = data.get("citationCount")
    year = data.get("year")
    arxiv = _text(ids.get("ArXiv"))
    parsed = parse_arxiv_id(arxiv) if arxiv else None
    return Enrichment(
        paper_id=str(data["paperId"])[:200],
        title=str(data["title"]),
        venue=venue,
        year=year if _is_int(year) and 0 < year < 10000 else None,
        citation_count=count if _is_int(count) and 0 <= count < 2**63 else None,
        arxiv_id=parsed[0] if parsed else None,
        doi=_text(ids.get("DOI")),
    )


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _text(value: Any) -> str | None:
    """Non-empty text without lone surrogates, else None: what may reach the store from an answer's field."""
    if not isinstance(value, str) or not value.strip() or has_surrogates(value):
        return None
    return value.strip()


class SemanticScholarClient:
    """About one request a second, with exponential backoff (as Semantic Scholar asks)."""

    def __init__(
        self,
        base_url: str = DEFAULT_S2_URL,
        *,
        delay: float = 1.0,
        retries: int = 5,
        backoff: float = 2.0,
        timeout: float = 30.0,
        api_key: str | None = None,
        fetcher: Fetcher | None = None,
    ) -> None:
        headers = {"x-api-key": api_key} if api_key else None
        self.fetcher = fetcher or Fetcher(
            base_url,
            name="Semantic Scholar",
            min_interval=delay,
            retries=retries,
            backoff=backoff,
            timeout=timeout,
            headers=headers,
        )

    def close(self) -> None:
        self.fetcher.close()

    def by_arxiv(self, arxiv_id: str) -> Enrichment | None:
        """The paper with this arXiv id, or None when Semantic Scholar does not know it (HTTP 404)."""
        try:
            data = self.fetcher.request(
                "GET", f"/graph/v1/paper/ARXIV:{arxiv_id}", params={"fields": FIELDS}, validate=_json
            )
        except SourceError as exc:
            if "HTTP 404" in str(exc):
                return None
            raise
        return parse_paper(data)

    def batch(self, arxiv_ids: list[str]) -> dict[str, Enrichment]:
        """Up to 500 papers in one call, keyed by arXiv id (unknown ids are absent)."""
        if len(arxiv_ids) > 500:
            raise ValueError("the batch endpoint takes at most 500 ids")
        if not arxiv_ids:
            return {}
        data = self.fetcher.request(
            "POST",
            "/graph/v1/paper/batch",
            params={"fields": FIELDS},
            json={"ids": [f"ARXIV:{i}" for i in arxiv_ids]},
            validate=_json,
        )
        if not isinstance(data, list):
            raise SourceError("Semantic Scholar: batch answer is not a list")
        found: dict[str, Enrichment] = {}
        for wanted, item in zip(arxiv_ids, data, strict=False):
            parsed = parse_paper(item)
            if parsed is not None:
                found[wanted] = parsed
        return found

    def match_title(self, title: str) -> Enrichment | None:
        """The best title match, kept only if its normalised title equals ours (no fuzzy false friends)."""
        try:
            data = self.fetcher.request(
                "GET",
                "/graph/v1/paper/search/match",
                params={"query": title, "fields": FIELDS},
                validate=_json,
            )
        except SourceError as exc:
            if "HTTP 404" in str(exc):
                return None
            raise
        items = data.get("data") if isinstance(data, Mapping) else None
        for item in items or []:
            parsed = parse_paper(item)
            if parsed is not None and title_key(parsed.title) == title_key(title):
                return parsed
        return None
