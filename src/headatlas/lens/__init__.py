"""The one hook into a model: a custom attention function (see :mod:`headatlas.lens.attention`)."""

from .attention import (
    LENS_NAME,
    LensSession,
    OutputHook,
    PatternCallback,
    PatternTap,
    install,
    is_installed,
    selected_probs,
    session,
)

__all__ = [
    "LENS_NAME",
    "LensSession",
    "OutputHook",
    "PatternCallback",
    "PatternTap",
    "install",
    "is_installed",
    "selected_probs",
    "session",
]
