"""Tag recall and precision against the curators' head-type tags of the curated list (the catalogue).

The papers are split by title hash (:func:`~headatlas.literature.feed.relevance.fold_of`, 5 folds): folds 0 and 1
are *held out* (their text is never read while writing the tagger's rules, cues and synonyms; the cues file is
checked against them in the tests), folds 2-4 are *dev*. The tagger reads only the title and the catalogue's
three-part summary (no full text). Precision and recall are micro-averaged over the papers' tags, with a
bootstrap 95% interval over papers (2000 resamples, seed 0).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from ..catalogue import load_catalogue
from ..schema import Paper
from .relevance import RelevanceModel, fold_of, training_set
from .tagging import Tagger, default_tagger

HELD_OUT_FOLDS = (0, 1)
BOOTSTRAP = 2000


def is_held_out(title: str) -> bool:
    return fold_of(title, 5) in HELD_OUT_FOLDS


def _ratio(num: int, den: int) -> float:
    return round(num / den, 4) if den else 0.0


def bootstrap_ci(counts: list[tuple[int, int, int]], *, n: int = BOOTSTRAP, seed: int = 0) -> dict[str, list[float]]:
    """95% percentile intervals of micro precision and recall, resampling papers (their ``(tp, fp, fn)``)."""
    if not counts:
        return {"precision": [0.0, 0.0], "recall": [0.0, 0.0]}
    c = np.asarray(counts, dtype=float)
    idx = np.random.default_rng(seed).integers(0, len(c), size=(n, len(c)))
    tp, fp, fn = (c[:, k][idx].sum(1) for k in range(3))
    out = {}
    with np.errstate(invalid="ignore", divide="ignore"):
        for name, values in (("precision", tp / (tp + fp)), ("recall", tp / (tp + fn))):
            values = values[~np.isnan(values)]
            out[name] = [round(float(np.percentile(values, 2.5)), 4), round(float(np.percentile(values, 97.5)), 4)]
    return out


def score(papers: Iterable[Paper], tagger: Tagger, fallback: RelevanceModel | None = None) -> dict[str, object]:
    """Micro-averaged precision and recall of the tagger's head types against each paper's ``head_types``; with
    ``fallback``, a paper the tagger finds nothing in gets its nearest catalogue paper's types (as ingest does)."""
    counts: list[tuple[int, int, int]] = []
    misses: list[str] = []
    for p in papers:
        got = set(tagger.tag(p.title, p.summary.text()).head_types)
        if not got and fallback is not None:
            got = set(fallback.suggest(p.title, p.summary.text())[0])
        gold = set(p.head_types)
        counts.append((len(got & gold), len(got - gold), len(gold - got)))
        if got != gold:
            misses.append(f"{p.title[:70]}: +{sorted(got - gold)} -{sorted(gold - got)}")
    tp, fp, fn = (sum(c[k] for c in counts) for k in range(3))
    return {
        "papers": len(counts),
        "gold": tp + fn,
        "precision": _ratio(tp, tp + fp),
        "recall": _ratio(tp, tp + fn),
        "ci95": bootstrap_ci(counts),
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
