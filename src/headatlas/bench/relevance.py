"""Relevance benchmark: the tf-idf + logistic-regression classifier against a keyword filter, on the held-out
labelled set (``literature/feed/data/relevance_eval.tsv``, never trained on).

``python -m headatlas.bench relevance``

Prints precision, recall and F1 of both, the misclassified titles, and, last, one JSON line.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence

from ..literature.feed.relevance import THRESHOLD, RelevanceModel, evaluation_set, keyword_baseline, training_set


def prf(truth: Sequence[bool], predicted: Sequence[bool]) -> dict[str, float]:
    tp = sum(t and p for t, p in zip(truth, predicted, strict=True))
    fp = sum(p and not t for t, p in zip(truth, predicted, strict=True))
    fn = sum(t and not p for t, p in zip(truth, predicted, strict=True))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4)}


def measure() -> dict[str, object]:
    """Fit on the training set, score the held-out set; returns the figures (also used by ``bench feed``)."""
    start = time.perf_counter()
    train = training_set()
    model = RelevanceModel(train)
    fit_s = time.perf_counter() - start
    held_out = evaluation_set()
    train_titles = {e.title.lower() for e in train}
    overlap = [e.title for e in held_out if e.title.lower() in train_titles]
    if overlap:
        raise SystemExit(f"evaluation titles also in training data: {overlap}")
    truth = [e.label for e in held_out]
    verdicts = model.judge([(e.title, e.abstract) for e in held_out])
    ours = [v.relevant for v in verdicts]
    base = [keyword_baseline(e.title, e.abstract) for e in held_out]
    errors = [
        f"{'FN' if e.label else 'FP'} {v.score:.2f} {e.title}"
        for e, v in zip(held_out, verdicts, strict=True)
        if e.label != v.relevant
    ]
    real = [i for i, e in enumerate(held_out) if e.origin == "real"]
    return {
        "n_train": len(train),
        "n_eval_real": len(real),
        "model_real_only": prf([truth[i] for i in real], [ours[i] for i in real]),
        "baseline_real_only": prf([truth[i] for i in real], [base[i] for i in real]),
        "n_eval": len(held_out),
        "n_eval_relevant": sum(truth),
        "threshold": THRESHOLD,
        "fit_s": round(fit_s, 3),
        "model": prf(truth, ours),
        "keyword_baseline": prf(truth, base),
        "errors": errors,
    }


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(prog="python -m headatlas.bench relevance").parse_args(argv)
    result = measure()
    model, base = result["model"], result["keyword_baseline"]
    assert isinstance(model, dict) and isinstance(base, dict)
    print(f"held-out set: {result['n_eval']} papers ({result['n_eval_relevant']} about heads)")
    print(f"{'':>18} precision recall  f1")
    for name, figures in (("tf-idf + logreg", model), ("keyword 'head(s)'", base)):
        print(f"{name:>18} {figures['precision']:>9.3f} {figures['recall']:>6.3f} {figures['f1']:>5.3f}")
    real_model, real_base = result["model_real_only"], result["baseline_real_only"]
    assert isinstance(real_model, dict) and isinstance(real_base, dict)
    print(
        f"real titles only ({result['n_eval_real']}): model {real_model['precision']:.3f} / {real_model['recall']:.3f},"
        f" keyword {real_base['precision']:.3f} / {real_base['recall']:.3f} (precision / recall)"
    )
    for line in result["errors"]:  # type: ignore[attr-defined]
        print(f"  misclassified: {line}")
    summary = {
        "benchmark": "relevance",
        "precision": model["precision"],
        "recall": model["recall"],
        "f1": model["f1"],
        "baseline_precision": base["precision"],
        "baseline_recall": base["recall"],
        "baseline_f1": base["f1"],
        "precision_vs_baseline": round(model["precision"] / base["precision"], 3) if base["precision"] else None,
        "n_eval": result["n_eval"],
        "precision_real_only": real_model["precision"],
        "recall_real_only": real_model["recall"],
    }
    print(json.dumps(summary))
    return 0
