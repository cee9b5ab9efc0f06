"""Synthetic scan files for the KV tests."""

from __future__ import annotations

import json
from pathlib import Path


def synthetic_headmap(
    scores: dict[str, list[list[float]]], n_kv: int, sliding: tuple[list[int], int] | None = None
) -> dict:
    """A ``headatlas.headmap/1`` dict with the given ``[layer][head]`` scores per head type (``sliding``: the
    sliding-window layers and their window)."""
    first = next(iter(scores.values()))
    rows = [
        {"layer": la, "head": h, "head_type": t, "score": s, "threshold": 0.4, "member": s >= 0.4}
        for t, table in scores.items()
        for la, layer in enumerate(table)
        for h, s in enumerate(layer)
    ]
    model = {"name": "synthetic", "n_layers": len(first), "n_heads": len(first[0]), "n_kv_heads": n_kv}
    if sliding is not None:
        model.update(sliding_layers=sliding[0], sliding_window=sliding[1])
    return {
        "format": "headatlas.headmap/1",
        "model": model,
        "head_types": {t: {"threshold": 0.4} for t in scores},
        "heads": rows,
    }


def write_headmap(path: Path, headmap: dict) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "headmap.json").write_text(json.dumps(headmap))
    return path
