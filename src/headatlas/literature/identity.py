"""When are two records the same paper? Ids first (arXiv id without version, DOI, OpenReview id), then a title key.

The one title normaliser of the project is :func:`title_key`: NFKC, Latin accents folded (``Über`` -> ``uber``),
case folded, and only the letters, combining marks and digits of *every* script kept, so a Chinese, Arabic or
Cyrillic title keys on its own characters instead of collapsing to nothing. Punctuation and spaces are dropped
(``Pre-training`` == ``Pretraining``). A title with no letter or digit at all keys on its whole folded text behind
a ``#`` (which no letter key can contain), so two such titles merge only when they are written the same.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

from ..errors import CatalogueError

_ARXIV_NEW = re.compile(r"(?<![\d.])(\d{4}\.\d{4,5})(?:v\d+)?(?![\d])")
_ARXIV_OLD = re.compile(r"(?<![a-z])([a-z\-]+(?:\.[A-Z]{2})?/\d{7})(?:v\d+)?(?!\d)")
_DOI = re.compile(r"\b(10\.\d{4,9}/\S+)", re.IGNORECASE)
_OPENREVIEW = re.compile(r"openreview\.net/(?:forum|pdf)\?(?:[^#\s]*&)?id=([A-Za-z0-9_\-]+)", re.IGNORECASE)


def _fold_latin(char: str) -> str:
    """``é`` -> ``e``: a character whose decomposition is an ASCII letter plus combining marks. Other scripts'
    marks (Devanagari vowel signs, Cyrillic ``й``) carry meaning and stay."""
    if char.isascii():
        return char
    parts = unicodedata.normalize("NFKD", char)
    if parts[0].isascii() and parts[0].isalpha() and all(unicodedata.combining(c) for c in parts[1:]):
        return parts[0]
    return char


def title_key(title: str) -> str:
    """The key under which two spellings of a title are one paper; never empty (raises for a blank title)."""
    text = unicodedata.normalize("NFKC", title)
    folded = "".join(_fold_latin(c) for c in text).casefold()
    kept = "".join(c for c in folded if unicodedata.category(c)[0] in "LMN")
    if kept:
        return kept
    rest = " ".join(folded.split())
    if not rest:
        raise CatalogueError("a title is empty")
    return "#" + rest


def arxiv_key(text: str | None) -> str | None:
    """The versionless arXiv id inside ``text`` (an id, ``arXiv:…`` or an arxiv.org URL), else None."""
    if not text:
        return None
    bare = text.strip()
    if "arxiv" not in bare.lower() and not (_ARXIV_NEW.fullmatch(bare) or _ARXIV_OLD.fullmatch(bare)):
        return None  # a DOI or page number is not an arXiv id
    found = _ARXIV_NEW.search(text) or _ARXIV_OLD.search(text)
    return found.group(1) if found else None


def doi_key(text: str | None) -> str | None:
    """A DOI (``10.18653/v1/P19-1580``), from a bare DOI or a doi.org URL, lower-cased; else None."""
    if not text:
        return None
    found = _DOI.search(text)
    return found.group(1).rstrip(".,;)").lower() if found else None


def openreview_key(text: str | None) -> str | None:
    """The OpenReview note id of an openreview.net forum or pdf URL, else None."""
    if not text:
        return None
    found = _OPENREVIEW.search(text)
    return found.group(1) if found else None


def identity_keys(*texts: str | None) -> list[str]:
    """Typed id keys (``arxiv:…``, ``doi:…``, ``openreview:…``) found in ids and URLs, without duplicates."""
    keys: list[str] = []
    for text in texts:
        for kind, fn in (("arxiv", arxiv_key), ("doi", doi_key), ("openreview", openreview_key)):
            value = fn(text)
            if value is not None and f"{kind}:{value}" not in keys:
                keys.append(f"{kind}:{value}")
    return keys


def title_slug(title: str, year: int | None = None) -> str:
    """A stable lower-case id for a paper without an arXiv id: ``<first five title words>-<year>`` (no year part
    when ``year`` is None: a paper known by its title alone).

    The words are the title's ASCII letters and digits (accents folded). A title with any other letter (or none)
    also gets eight hex digits of its :func:`title_key`, so two Chinese titles never share an id.
    """
    folded = "".join(_fold_latin(c) for c in unicodedata.normalize("NFKC", title)).lower()
    words = re.findall(r"[a-z0-9]+", folded)
    key = title_key(title)
    tail = [] if "".join(words) == key else [hashlib.sha256(key.encode("utf-8")).hexdigest()[:8]]
    return "-".join([*words[:5], *tail, *([str(year)] if year is not None else [])])
