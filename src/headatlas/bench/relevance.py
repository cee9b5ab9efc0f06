"""Relevance and tagging benchmark on real papers only.

``python -m headatlas.bench relevance [--features tfidf,embedding,combined]``

The labelled pool is the curated list's papers (the catalogue, positives) and ``relevance_eval.tsv`` (real papers,
many hard negatives about attention that do not study heads). Every paper is scored by a model that never saw
it: a 5-fold cross-validation by title hash (:func:`headatlas.literature.feed.relevance.folds`); the rows of
``relevance_eval.tsv`` are never in any training set. Each fold's operating threshold is chosen by an inner
cross-validation on that fold's training data (recall target 0.9), never on the papers it scores. Precision and
recall come with a bootstrap 95% interval (2000 resamples of the scored papers, seed 0). Tf-idf, sentence
embeddings and both together are measured in the same run, against a keyword filter. Head-type tagging is
measured against the curators' tags on the catalogue papers (title + summary, no full text), on the held-out folds
whose text was never read while writing the tagger's rules (:mod:`headatlas.literature.feed.tag_eval`), with a
bootstrap 95% interval over papers. Prints a table, the
misclassified titles, and, last, one JSON line.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence

import numpy as np

from ..literature.feed.relevance import (
    FEATURES,
    Labelled,
    RelevanceModel,
    folds,
    keyword_baseline,
    operating_threshold,
    title_key,
)

BOOTSTRAP = 2000


def prf(truth: Sequence[bool], predicted: Sequence[bool]) -> dict[str, float]:
    tp = sum(t and p for t, p in zip(truth, predicted, strict=True))
    fp = sum(p and not t for t, p in zip(truth, predicted, strict=True))
    fn = sum(t and not p for t, p in zip(truth, predicted, strict=True))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4)}


def bootstrap_ci(
    truth: Sequence[bool], predicted: Sequence[bool], *, n: int = BOOTSTRAP, seed: int = 0
) -> dict[str, list[float]]:
    """95% percentile intervals of precision and recall over ``n`` resamples (with replacement) of the papers."""
    t = np.asarray(truth, dtype=bool)
    p = np.asarray(predicted, dtype=bool)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(t), size=(n, len(t)))
    tp = (t[idx] & p[idx]).sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = tp / p[idx].sum(1)
        recall = tp / t[idx].sum(1)
    out = {}
    for name, values in (("precision", precision), ("recall", recall)):
        values = values[~np.isnan(values)]
        out[name] = [round(float(np.percentile(values, 2.5)), 4), round(float(np.percentile(values, 97.5)), 4)]
    return out


def cross_validate(features: str, k: int = 5) -> dict[str, object]:
    """Every pooled paper scored once, by the fold model that did not see it."""
    start = time.perf_counter()
    embedder = None
    if features != "tfidf":
        from ..literature.feed.embeddings import default_embedder

        embedder = default_embedder()
    items: list[Labelled] = []
    scores: list[float] = []
    predicted: list[bool] = []
    thresholds: list[float] = []
    for train, test in folds(k):
        seen = {title_key(e.title) for e in train}
        leaked = [e.title for e in test if title_key(e.title) in seen]
        if leaked:
            raise SystemExit(f"evaluation papers also in training data: {leaked}")
        threshold = operating_threshold(train, features=features, embedder=embedder, k=k)
        model = RelevanceModel(train, features=features, embedder=embedder, threshold=threshold)
        s = model.scores([(e.title, e.abstract) for e in test])
        items += test
        scores += [float(x) for x in s]
        predicted += [bool(x >= threshold) for x in s]
        thresholds.append(threshold)
    truth = [e.label for e in items]
    errors = [
        f"{'FN' if e.label else 'FP'} {s:.2f} {e.title}"
        for e, s, p in zip(items, scores, predicted, strict=True)
        if e.label != p
    ]
    return {
        **prf(truth, predicted),
        "ci95": bootstrap_ci(truth, predicted),
        "thresholds": thresholds,
        "seconds": round(time.perf_counter() - start, 2),
        "errors": errors,
        "_truth": truth,
        "_items": items,
    }


def measure(features: Sequence[str] = ("tfidf",)) -> dict[str, object]:
    """All figures (also used by ``bench feed``). ``model`` is the shipped tf-idf model's cross-validated figures."""
    variants = {name: cross_validate(name) for name in dict.fromkeys(["tfidf", *features])}
    base_run = variants["tfidf"]
    items: list[Labelled] = base_run.pop("_items")  # type: ignore[assignment]
    truth: list[bool] = base_run.pop("_truth")  # type: ignore[assignment]
    for v in variants.values():
        v.pop("_items", None)
        v.pop("_truth", None)
    base = [keyword_baseline(e.title, e.abstract) for e in items]
    from ..literature.feed.tag_eval import measure_tagging

    return {
        "n_eval": len(items),
        "n_eval_relevant": sum(truth),
        "n_catalogue": sum(e.origin == "catalogue" for e in items),
        "model": {k: variants["tfidf"][k] for k in ("precision", "recall", "f1", "ci95")},
        "variants": variants,
        "keyword_baseline": {**prf(truth, base), "ci95": bootstrap_ci(truth, base)},
        "errors": variants["tfidf"]["errors"],
        "tagging": measure_tagging(),
    }


def _parse_features(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    bad = [n for n in names if n not in FEATURES]
    if bad or not names:
        raise SystemExit(f"unknown features {bad or text!r}; valid are {', '.join(FEATURES)}")
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m headatlas.bench relevance")
    parser.add_argument(
        "--features",
        default=None,
        help="comma-separated, of tfidf, embedding, combined (default: all three when the embedding model is"
        " installed, else tfidf)",
    )
    args = parser.parse_args(argv)
    if args.features is None:
        from ..literature.feed.embeddings import available

        features = list(FEATURES) if available() else ["tfidf"]
    else:
        features = _parse_features(args.features)
    result = measure(features)
    variants = result["variants"]
    assert isinstance(variants, dict)
    base = result["keyword_baseline"]
    assert isinstance(base, dict)
    print(
        f"real papers: {result['n_eval']} ({result['n_eval_relevant']} about heads; {result['n_catalogue']} from the"
        " curated list, scored by 5-fold cross-validation; the rest never trained on)"
    )
    print(f"{'':>18} precision [95% CI]      recall [95% CI]         f1     thresholds  seconds")
    rows = [(name, v) for name, v in variants.items()] + [("keyword 'head(s)'", base)]
    for name, v in rows:
        ci = v["ci95"]
        th = ",".join(f"{t:.2f}" for t in v.get("thresholds", [])) or "-"
        print(
            f"{name:>18} {v['precision']:.3f} [{ci['precision'][0]:.3f}, {ci['precision'][1]:.3f}]"
            f"  {v['recall']:.3f} [{ci['recall'][0]:.3f}, {ci['recall'][1]:.3f}]  {v['f1']:.3f}  {th}"
            f"  {v.get('seconds', '-')}"
        )
    tf = variants["tfidf"]
    for name, v in variants.items():
        if name != "tfidf":
            print(
                f"  {name} / tfidf: precision x{v['precision'] / tf['precision']:.3f},"
                f" recall x{v['recall'] / tf['recall']:.3f}, time x{v['seconds'] / max(tf['seconds'], 1e-3):.1f}"
            )
    for line in tf["errors"]:
        print(f"  misclassified (tfidf): {line}")
    tagging = result["tagging"]
    assert isinstance(tagging, dict)
    for split in ("held_out", "held_out_with_fallback", "dev"):
        t = tagging[split]
        ci = t["ci95"]
        print(
            f"tagging, {split} ({t['papers']} papers, {t['gold']} curator tags): precision {t['precision']:.3f}"
            f" [{ci['precision'][0]:.3f}, {ci['precision'][1]:.3f}] recall {t['recall']:.3f}"
            f" [{ci['recall'][0]:.3f}, {ci['recall'][1]:.3f}] (text: title + summary)"
        )
    summary: dict[str, object] = {
        "benchmark": "relevance",
        "precision": tf["precision"],
        "recall": tf["recall"],
        "f1": tf["f1"],
        "precision_ci95": tf["ci95"]["precision"],
        "recall_ci95": tf["ci95"]["recall"],
        "baseline_precision": base["precision"],
        "baseline_recall": base["recall"],
        "baseline_f1": base["f1"],
        "precision_vs_baseline": round(tf["precision"] / base["precision"], 3) if base["precision"] else None,
        "n_eval": result["n_eval"],
        "tag_precision": tagging["held_out"]["precision"],
        "tag_recall": tagging["held_out"]["recall"],
        "tag_precision_ci95": tagging["held_out"]["ci95"]["precision"],
        "tag_recall_ci95": tagging["held_out"]["ci95"]["recall"],
        "tag_precision_with_fallback": tagging["held_out_with_fallback"]["precision"],
        "tag_recall_with_fallback": tagging["held_out_with_fallback"]["recall"],
    }
    for name, v in variants.items():
        if name != "tfidf":
            summary[f"{name}_precision"] = v["precision"]
            summary[f"{name}_recall"] = v["recall"]
    print(json.dumps(summary))
    return 0
