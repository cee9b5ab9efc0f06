"""Causal verification: ablation, activation patching and attribution patching of attention heads.

Every intervention goes through the lens (``headatlas.lens.session(hooks=...)``) on each head's
output before ``o_proj``. Which metric checks a head type is the type's own (``HeadType.metric``);
:mod:`headatlas.causal.verify` explains the set test and the per-head checks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from .api import AblationResult, AttributionResult, PatchResult, ablate, attribute, patch
    from .attribution import attribution_scores
    from .interventions import METHODS, head_mask, parse_heads, run_sets
    from .metrics import METRICS, Metric, get_metric, register_metric
    from .random_sets import random_head_sets
    from .statistics import spearman
    from .verify import VerifySettings, adopt_set_tests, strict_set_tests, verify_headmap, verify_set

# loaded on first use, so `headatlas --help` and the paper commands do not import torch
_LAZY = {
    "AblationResult": ".api",
    "AttributionResult": ".api",
    "PatchResult": ".api",
    "ablate": ".api",
    "attribute": ".api",
    "patch": ".api",
    "attribution_scores": ".attribution",
    "METHODS": ".interventions",
    "head_mask": ".interventions",
    "parse_heads": ".interventions",
    "run_sets": ".interventions",
    "METRICS": ".metrics",
    "Metric": ".metrics",
    "get_metric": ".metrics",
    "register_metric": ".metrics",
    "VerifySettings": ".verify",
    "random_head_sets": ".random_sets",
    "spearman": ".statistics",
    "adopt_set_tests": ".verify",
    "strict_set_tests": ".verify",
    "verify_headmap": ".verify",
    "verify_set": ".verify",
}

__all__ = [
    "METHODS",
    "METRICS",
    "AblationResult",
    "AttributionResult",
    "Metric",
    "PatchResult",
    "VerifySettings",
    "ablate",
    "adopt_set_tests",
    "attribute",
    "attribution_scores",
    "get_metric",
    "head_mask",
    "parse_heads",
    "patch",
    "random_head_sets",
    "register_metric",
    "run_sets",
    "spearman",
    "strict_set_tests",
    "verify_headmap",
    "verify_set",
]

__getattr__, __dir__ = lazy_exports(__name__, globals(), _LAZY)
