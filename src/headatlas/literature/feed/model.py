"""The source-neutral record of one paper as a source reported it, and the text helpers that key it."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date

from ...fileio import has_surrogates
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


_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def _is_iso_day(text: str) -> bool:
    """``YYYY-MM-DD`` and a real day (``2024-13-45`` is not; nor are ``20240501`` or ``2024-W01-1``)."""
    if not _DAY.fullmatch(text):
        return False
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


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
        """Everything a source may get wrong is refused here, before the store: the parsers skip such an entry
        with this message (``skipped item 3: published '2024-13-45' is not a date YYYY-MM-DD``)."""
        for name in ("source", "title", "abstract", "arxiv_id", "published", "updated", "url", "venue",
                     "journal_ref", "doi", "comment"):  # fmt: skip
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise ValueError(f"{name} must be text, got {type(value).__name__}")
            if value is not None and has_surrogates(value):
                raise ValueError(f"{name} holds a lone surrogate (not valid Unicode text)")
        for name in ("authors", "categories", "keywords"):
            values = getattr(self, name)
            if not isinstance(values, tuple) or not all(isinstance(v, str) and not has_surrogates(v) for v in values):
                raise ValueError(f"{name} must be a list of text")
        if not self.title.strip():
            raise ValueError("an entry needs a title")
        for name in ("published", "updated"):
            day = getattr(self, name)
            if day is not None and not _is_iso_day(day):
                raise ValueError(f"{name} {day!r} is not a date YYYY-MM-DD")
        for name, low in (("version", 1), ("citation_count", 0)):
            value = getattr(self, name)
            if value is not None and (
                not isinstance(value, int) or isinstance(value, bool) or not low <= value < 2**63
            ):
                raise ValueError(f"{name} must be an integer {low}..2**63-1, got {value!r}")

    @property
    def norm_title(self) -> str:
        return title_key(self.title)

    @property
    def doi_key(self) -> str | None:
        return doi_key(self.doi)

    @property
    def key(self) -> str:
        return f"arxiv:{self.arxiv_id}" if self.arxiv_id else f"title:{self.norm_title}"
