"""The source-neutral record of one paper as a source reported it, and the text helpers that key it."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..identity import doi_key, title_key

_NEW_ID = re.compile(r"(\d{4}\.\d{4,5})(?:v(\d+))?")
_OLD_ID = re.compile(r"([a-z\-]+(?:\.[A-Z]{2})?/\d{7})(?:v(\d+))?")


def parse_arxiv_id(text: str) -> tuple[str, int | None] | None:
    """``("2409.03752", 2)`` from ``http://arxiv.org/abs/2409.03752v2``, ``2409.03752`` or ``cs/0112017v1``."""
    tail = text.strip().rsplit("/abs/", 1)[-1].rsplit("/pdf/", 1)[-1]
    if tail.lower().startswith("arxiv:"):
        tail = tail[6:]
    for pattern in (_NEW_ID, _OLD_ID):
        match = pattern.fullmatch(tail.removesuffix(".pdf"))
        if match:
            return match.group(1), int(match.group(2)) if match.group(2) else None
    return None


def clean_space(text: str) -> str:
    return " ".join(text.split())


@dataclass(frozen=True)
class Entry:
    """One paper as one source reported it. Dates are ISO ``YYYY-MM-DD``; ``arxiv_id`` has no version."""

    source: str
    title: str
    abstract: str
    arxiv_id: str | None = None
    version: int | None = None
    authors: tuple[str, ...] = ()
    published: str | None = None
    updated: str | None = None
    categories: tuple[str, ...] = ()
    url: str | None = None
    venue: str | None = None
    journal_ref: str | None = None
    doi: str | None = None
    comment: str | None = None
    keywords: tuple[str, ...] = ()
    citation_count: int | None = None
    extra: dict[str, object] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        if not self.title.strip():
            raise ValueError("an entry needs a title")

    @property
    def norm_title(self) -> str:
        return title_key(self.title)

    @property
    def doi_key(self) -> str | None:
        return doi_key(self.doi)

    @property
    def key(self) -> str:
        return f"arxiv:{self.arxiv_id}" if self.arxiv_id else f"title:{self.norm_title}"
