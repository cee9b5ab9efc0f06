"""Probe sets, by id. Each module has ``PROBE_ID`` and ``generate(tokenizer, settings, seed)``.

:data:`PROBES` holds the shared probes of the pattern scores; a head type whose causal metric reads a probe
of its own adds it when it registers (:func:`register_probe`).
"""

from collections.abc import Callable
from typing import Any

from ..errors import InvalidSettingError
from . import needle, repeated, text
from .base import ProbeBatch, ProbeSettings

Generator = Callable[[Any, ProbeSettings, int], list[ProbeBatch]]

PROBES: dict[str, Generator] = {
    repeated.PROBE_ID: repeated.generate,
    text.PROBE_ID: text.generate,
    needle.PROBE_ID: needle.generate,
}


def register_probe(probe_id: str, generate: Generator) -> None:
    """Add a probe; the same generator again is a no-op, another one under a taken id is refused."""
    held = PROBES.get(probe_id)
    if held is not None and held is not generate:
        raise InvalidSettingError(f"probe {probe_id!r} is already registered (by {held.__module__})")
    PROBES[probe_id] = generate


__all__ = ["PROBES", "Generator", "ProbeBatch", "ProbeSettings", "register_probe"]
