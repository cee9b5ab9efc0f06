"""Export a policy in DuoAttention's own pattern format (``attn_patterns/<model>/<run>/`` of its repository).

A directory with ``full_attention_heads.tsv`` — one row per layer, one tab-separated column per KV head,
the learned gate in [0, 1] (1 = retrieval head, keeps the full cache) — and ``config.json`` with at least
``sink_size`` and ``recent_size``. DuoAttention's ``load_attn_pattern`` and kvpress's ``DuoAttentionPress``
read exactly these two files (and clip the table to [0, 1]); both then turn the top heads into full heads
for a chosen sparsity.

The gates written here are not learned: a full head of the policy gets 1.0, a streaming head half its
rule score over the top score. So a sparsity equal to the policy's streaming fraction reproduces the
policy's split exactly, and any other sparsity still ranks heads by the scan.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import InvalidSettingError
from ..fileio import write_atomic
from .policy import KVPolicy

TABLE = "full_attention_heads.tsv"
CONFIG = "config.json"


def gate_table(policy: KVPolicy) -> list[list[float]]:
    """``[layer][kv head]`` gates in [0, 1]: 1 for full heads, ``0.5 * score / max score`` otherwise."""
    top = max((h.score for h in policy.heads), default=0.0)
    table = []
    for layer in range(policy.n_layers):
        row = []
        for h in policy.layer(layer):
            if h.full or h.sliding:  # a sliding-window layer is the model's, not a DuoAttention decision
                row.append(1.0)
            else:
                row.append(0.5 * max(h.score, 0.0) / top if top > 0 else 0.0)
        table.append(row)
    return table


def export_duo(policy: KVPolicy, out_dir: Path) -> Path:
    """Write the DuoAttention pattern directory; returns it. Per-head windows (``headkv``) are flattened
    to the policy's common ``sink`` / ``recent``, since DuoAttention has one window for all streaming heads."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    lines = ["\t".join(f"{g:.6f}" for g in row) for row in gate_table(policy)]
    write_atomic(out_dir / TABLE, "\n".join(lines) + "\n")
    config = {
        "sink_size": policy.sink,
        "recent_size": policy.recent,
        "streaming_fraction": round(1 - policy.full_fraction, 6),
        "source": "headatlas kv plan (gates from a scan, not learned)",
        "rule": policy.rule,
        "budget": policy.budget,
        "context": policy.context,
        "model": policy.model.get("name"),
    }
    write_atomic(out_dir / CONFIG, json.dumps(config, indent=1, sort_keys=True) + "\n")
    return out_dir


def read_duo(pattern_dir: Path) -> tuple[int, int, list[list[float]]]:
    """``(sink_size, recent_size, gates)`` as DuoAttention reads them (gates clipped to [0, 1])."""
    pattern_dir = Path(pattern_dir)
    try:
        config = json.loads((pattern_dir / CONFIG).read_text())
        rows = [line.split("\t") for line in (pattern_dir / TABLE).read_text().splitlines() if line.strip()]
        gates = [[min(1.0, max(0.0, float(x))) for x in row] for row in rows]
        return int(config["sink_size"]), int(config["recent_size"]), gates
    except (OSError, KeyError, ValueError) as exc:
        raise InvalidSettingError(f"{pattern_dir} is not a DuoAttention pattern directory: {exc}") from exc
