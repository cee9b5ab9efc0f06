"""Tag recall and precision against the curators' head-type tags of the curated list (the catalogue).

The papers are split by title hash (:func:`~headatlas.literature.feed.relevance.fold_of`, 5 folds): folds 0 and 1
are *held out* (their tagging errors were not looked at while writing the tagger's rules, cues and synonyms),
folds 2-4 are *dev*. The tagger reads only the title and the catalogue's three-part summary (no full text).
"""

from __future__ import annotations

from collections.abc import Iterable

from ..catalogue import load_catalogue
from ..schema import Paper
from .relevance import RelevanceModel, fold_of, training_set
from .tagging import Tagger, default_tagger

HELD_OUT_FOLDS = (0, 1)


def is_held_out(title: str) -> bool:
    return fold_of(title, 5) in HELD_OUT_FOLDS


def score(papers: Iterable[Paper], tagger: Tagger, fallback: RelevanceModel | None = None) -> dict[str, object]:
    """Micro-averaged precision and recall of the tagger's head types against each paper's ``head_types``; with
    ``fallback``, a paper the tagger finds nothing in gets its nearest catalogue paper's types (as ingest does)."""
    tp = fp = fn = n = 0
    misses: list[str] = []
    for p in papers:
        n += 1
        got = set(tagger.tag(p.title, p.summary.text()).head_types)
        if not got and fallback is not None:
            got = set(fallback.suggest(p.title, p.summary.text())[0])
        gold = set(p.head_types)
        tp += len(got & gold)
        fp += len(got - gold)
        fn += len(gold - got)
        if got != gold:
            misses.append(f"{p.title[:70]}: +{sorted(got - gold)} -{sorted(gold - got)}")
    return {
        "papers": n,
        "gold": tp + fn,
        "precision": round(tp / (tp + fp), 4) if tp + fp else 0.0,
        "recall": round(tp / (tp + fn), 4) if tp + fn else 0.0,
        "misses": misses,
    }


def measure_tagging(tagger: Tagger | None = None) -> dict[str, dict[str, object]]:
    tagger = tagger or default_tagger()
    papers = load_catalogue().papers
    held = [p for p in papers if is_held_out(p.title)]
    # the fallback's neighbours exclude every held-out paper, so none is tagged from itself
    fallback = RelevanceModel([e for e in training_set() if not is_held_out(e.title)], tagger=tagger)
    return {
        "held_out": score(held, tagger),
        "held_out_with_fallback": score(held, tagger, fallback),
        "dev": score([p for p in papers if not is_held_out(p.title)], tagger),
    }
