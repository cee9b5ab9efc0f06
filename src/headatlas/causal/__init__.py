"""Causal verification: ablation, activation patching and attribution patching of attention heads.

Every intervention goes through the lens (``headatlas.lens.session(hooks=...)``) on each head's
output before ``o_proj``. Which metric checks a head type is the type's own (``HeadType.metric``);
:mod:`headatlas.causal.verify` explains the set test and the per-head checks.
"""

from .api import AblationResult, AttributionResult, PatchResult, ablate, attribute, patch
from .attribution import attribution_scores
from .interventions import METHODS, head_mask, parse_heads, run_sets
from .metrics import METRICS, Metric, get_metric, register_metric
from .verify import VerifySettings, random_head_sets, spearman, verify_headmap, verify_set

__all__ = [
    "METHODS",
    "METRICS",
    "AblationResult",
    "AttributionResult",
    "Metric",
    "PatchResult",
    "VerifySettings",
    "ablate",
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
    "verify_headmap",
    "verify_set",
]
