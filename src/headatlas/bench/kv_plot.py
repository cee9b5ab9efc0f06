"""The kv bench's plot: needle accuracy and prose loss vs the fraction of the KV cache held, one line per method,
one column per model (contexts averaged; the JSON keeps each). Needs matplotlib (the ``kv`` extra, or the
bench's kvpress environment, which has it).

``python -m headatlas.bench.kv_plot RESULTS.json OUT.png`` plots a ``kv.json`` the bench wrote.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ORDER = (
    "atlas_retrieval",
    "atlas_razor",
    "atlas_razor_comp",
    "atlas_headkv",
    "random_heads",
    "streaming_llm",
    "snapkv",
    "knorm",
    "expected_attention",
    "duo_attention",
    "atlas_press",
)


def curves(by_length: dict[str, dict[str, Any]], metric: str) -> dict[str, tuple[list[float], list[float]]]:
    """method -> (KV fractions from 1.0 down, the metric averaged over context lengths); 1.0 is the full cache.
    A policy sits at the fraction it really holds (``kv_fraction_nominal``: on Gemma 3, three global KV heads
    cannot split 0.5 or 0.25 exactly), a press at its compression target."""
    lengths = list(by_length)
    fractions = sorted({float(k.split("@")[1]) for r in by_length.values() for k in r if "@" in k}, reverse=True)
    full = sum(by_length[n]["full"][metric] for n in lengths) / len(lengths)
    methods = [m for m in ORDER if any(metric in by_length[n].get(f"{m}@{f}", {}) for n in lengths for f in fractions)]
    out = {}
    for m in methods:
        xs, ys = [1.0], [full]
        for f in fractions:
            cells = [by_length[n][f"{m}@{f}"] for n in lengths if metric in by_length[n].get(f"{m}@{f}", {})]
            xs.append(sum(c.get("kv_fraction_nominal", f) for c in cells) / len(cells) if cells else f)
            ys.append(sum(c[metric] for c in cells) / len(cells) if cells else float("nan"))
        out[m] = (xs, ys)
    return out


def plot(record: dict[str, Any], path: Path) -> None:
    """``record``: the bench's JSON (``models`` -> name -> ``results`` -> length -> method@fraction -> scores)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(record["models"])
    fig, axes = plt.subplots(2, len(models), figsize=(6.2 * len(models), 8.4), squeeze=False)
    rows = (
        ("needle_forced", "needle value accuracy (teacher-forced)"),
        ("prose_loss", "prose loss after the compressed context (nats/token)"),
    )
    for col, name in enumerate(models):
        by_length = record["models"][name]["results"]
        lengths = ", ".join(f"{int(n) // 1024}k" for n in by_length)
        for row, (metric, label) in enumerate(rows):
            ax = axes[row][col]
            for method, (xs, ys) in curves(by_length, metric).items():
                ours = method.startswith("atlas_") and method != "atlas_press"
                style = "-o" if ours else ("--s" if method == "random_heads" else ":^")
                ax.plot(xs, ys, style, label=method, linewidth=2.4 if ours else 1.3, markersize=5 if ours else 4)
            ax.set_xlabel("fraction of the KV cache held")
            ax.set_ylabel(label)
            ax.invert_xaxis()
            ax.grid(alpha=0.3)
            if row == 0:
                ax.set_title(f"{name} (contexts {lengths}; mean)")
                ax.set_ylim(-0.02, 1.02)
    axes[0][0].legend(fontsize=8, loc="lower left")
    fig.suptitle("Head-aware KV cache from a scan vs kvpress presses: needle in a haystack and prose")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(fig)


if __name__ == "__main__":
    plot(json.loads(Path(sys.argv[1]).read_text()), Path(sys.argv[2]))
