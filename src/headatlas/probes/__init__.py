"""Probe sets, by id. Each module has ``PROBE_ID`` and ``generate(tokenizer, settings, seed)``."""

from collections.abc import Callable
from typing import Any

from . import needle, repeated, text
from .base import ProbeBatch, ProbeSettings

Generator = Callable[[Any, ProbeSettings, int], list[ProbeBatch]]

PROBES: dict[str, Generator] = {
    repeated.PROBE_ID: repeated.generate,
    text.PROBE_ID: text.generate,
    needle.PROBE_ID: needle.generate,
}

__all__ = ["PROBES", "ProbeBatch", "ProbeSettings"]
