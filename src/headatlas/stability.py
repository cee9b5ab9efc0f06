"""Stability of a scan's findings over seeds: do the probes find the same heads when their prompts change?

The census is rerun with other seeds (new repeated-token sequences, texts, needles, task prompts). Per
head type it reports the mean pairwise Jaccard overlap of the member sets, the mean pairwise Spearman
correlation of the scores over heads, and the *stable* members: heads that are members under every seed.
Weights-only scores do not depend on the seed, so they are stable by construction (1.0).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations
from typing import Any

from .causal.statistics import spearman
from .headmap import HeadMap, head_name


def _jaccard(a: set[str], b: set[str]) -> float | None:
    union = a | b
    return len(a & b) / len(union) if union else None


def _mean(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return round(sum(known) / len(known), 6) if known else None


def stability(headmaps: Sequence[HeadMap], seeds: Sequence[int]) -> dict[str, dict[str, Any]]:
    """Per head type of ``headmaps[0]``: seeds, Jaccard, rank correlation, stable members and members per seed.

    ``headmaps[i]`` is the census under ``seeds[i]``. Jaccard is ``None`` when no seed finds a member, the
    rank correlation when a seed's scores are missing or constant.
    """
    if len(headmaps) != len(seeds) or len(seeds) < 2:
        raise ValueError("stability needs one head map per seed and at least two seeds")
    out: dict[str, dict[str, Any]] = {}
    for type_id in headmaps[0].head_types:
        members = [set(hm.members(type_id)) for hm in headmaps]
        scores = [
            {head_name(r["layer"], r["head"]): r["score"] for r in hm.rows if r["head_type"] == type_id}
            for hm in headmaps
        ]
        rhos: list[float | None] = []
        for a, b in combinations(scores, 2):
            heads = sorted(h for h in a if a[h] is not None and b.get(h) is not None)
            rhos.append(spearman([a[h] for h in heads], [b[h] for h in heads]))
        stable = set.intersection(*members)
        order = headmaps[0].members(type_id)
        out[type_id] = {
            "seeds": list(seeds),
            "jaccard": _mean([_jaccard(a, b) for a, b in combinations(members, 2)]),
            "rank_correlation": _mean(rhos),
            "stable_members": [h for h in order if h in stable],
            "members_per_seed": {str(seed): sorted(m, key=order_key) for seed, m in zip(seeds, members, strict=True)},
        }
    return out


def order_key(name: str) -> tuple[int, int]:
    """``L3H7`` -> ``(3, 7)``, so heads sort by layer then head."""
    layer, head = name[1:].split("H")
    return int(layer), int(head)
