"""Head types: one module each, registered on import (order = display order), then those of installed
plug-in packages (the ``headatlas.head_types`` entry-point group)."""

from . import (  # noqa: F401  (imported to register)
    current_token,
    duplicate_token,
    induction,
    local,
    previous_token,
    retrieval,
    sink,
)
from .registry import (
    HeadType,
    ModelScore,
    causal_metrics,
    get_head_type,
    head_types,
    load_entry_points,
    register_head_type,
    resolve_head_types,
)

__all__ = [
    "HeadType",
    "ModelScore",
    "causal_metrics",
    "get_head_type",
    "head_types",
    "load_entry_points",
    "register_head_type",
    "resolve_head_types",
]

# Weights-only (OV-circuit) types; copy_suppression also reads the natural-text probe.
from . import copy_suppression, copying, successor  # noqa: F401

# isort: split
# Task-defined types: each builds its own dataset for the model's tokenizer and measures a causal effect.
from . import function_vector, name_mover, negative_name_mover, s_inhibition, safety, semantic_induction  # noqa: F401

# isort: split
load_entry_points()
