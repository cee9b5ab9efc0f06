"""Word roots for matching a head type's name to the words that describe it: "heads that summarise and read the
sentiment" names the *sentiment summarizer* and the *summary reader*, "heads that move names" the *name mover*.

A light, deterministic suffix stripper for the agent nouns and verbs of head-type names, not a general stemmer.
Each word gets a few root forms (inflection removed; then also one derivational suffix; then a trailing ``e`` or
``y``), and two words match when their forms meet: ``gatherer`` {gatherer, gather} meets ``gathers`` {gather,
gath}, which a single stem would split.
"""

from __future__ import annotations

import functools
import re

_DERIVATIONAL = (
    "isation", "ization", "ation", "ion", "ition", "iser", "izer", "ise", "ize", "ness", "ment", "ful", "ity",
    "er", "or", "al", "ive",
)  # fmt: skip


def _inflection(word: str) -> str:
    if word.endswith(("ies", "ied")) and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith("sses"):
        return word[:-2]
    if word.endswith("s") and not word.endswith(("ss", "us", "is")) and len(word) > 3:
        word = word[:-1]
    for suffix in ("ing", "ed"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def _bare(word: str) -> str:
    return word[:-1] if len(word) > 3 and word[-1] in "ey" else word


@functools.cache
def roots(word: str) -> frozenset[str]:
    """Root forms of one word (lower-cased); words of three letters or fewer are their own only root."""
    word = word.lower()
    if len(word) <= 3:
        return frozenset({word})
    base = _inflection(word)
    forms = {_bare(base)}
    for suffix in _DERIVATIONAL:
        if base.endswith(suffix) and len(base) - len(suffix) >= 3:
            forms.add(_bare(base[: -len(suffix)]))
            break
    return frozenset(forms)


def same_root(a: str, b: str) -> bool:
    return not roots(a).isdisjoint(roots(b))


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())
