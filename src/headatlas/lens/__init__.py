"""The one hook into a model: a custom attention function (see :mod:`headatlas.lens.attention`)."""

from .attention import (
    LENS_NAME,
    LayerAttention,
    LensSession,
    OutputHook,
    PatternCallback,
    PatternHook,
    PatternTap,
    SharedPrefix,
    install,
    is_installed,
    masked_softmax,
    selected_probs,
    session,
)

__all__ = [
    "LENS_NAME",
    "LayerAttention",
    "LensSession",
    "OutputHook",
    "PatternCallback",
    "PatternHook",
    "PatternTap",
    "SharedPrefix",
    "install",
    "is_installed",
    "masked_softmax",
    "selected_probs",
    "session",
]
