"""Causal verification: ablation, activation patching and attribution patching of attention heads.

Every intervention goes through the lens (``headatlas.lens.session(hooks=...)``) on each head's
output before ``o_proj``. See ``HEADS.md``, section "Causal checks".
"""

from .api import AblationResult, AttributionResult, PatchResult, ablate, attribute, patch
from .attribution import attribution_scores
from .interventions import METHODS, head_mask, parse_heads, run_sets
from .metrics import DEFAULT_METRIC, METRICS, Metric, get_metric, metric_for
from .verify import VerifySettings, random_head_sets, spearman, verify_headmap, verify_set

__all__ = [
    "DEFAULT_METRIC",
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
    "metric_for",
    "parse_heads",
    "patch",
    "random_head_sets",
    "run_sets",
    "spearman",
    "verify_headmap",
    "verify_set",
]
