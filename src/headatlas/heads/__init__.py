"""Head types: one module each, registered on import (order = display order)."""

from . import (  # noqa: F401  (imported to register)
    current_token,
    duplicate_token,
    induction,
    local,
    previous_token,
    retrieval,
    sink,
)
from .registry import HeadType, get_head_type, head_types, register_head_type, resolve_head_types

__all__ = ["HeadType", "get_head_type", "head_types", "register_head_type", "resolve_head_types"]

# Weights-only (OV-circuit) types; copy_suppression also reads the natural-text probe.
from . import copy_suppression, copying, successor  # noqa: F401

# isort: split
# Task-defined types: each builds its own dataset for the model's tokenizer and measures a causal effect.
from . import function_vector, name_mover, negative_name_mover, s_inhibition, safety, semantic_induction  # noqa: F401

# isort: split
from . import task_metrics  # noqa: F401  (their causal metrics, for scan --verify)
