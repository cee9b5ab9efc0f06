"""The registry of head types: one source of truth for CLI choices, tables, reports and the catalogue."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from ..errors import InvalidSettingError, UnknownHeadTypeError
from ..probes import PROBES, ProbeBatch, ProbeSettings

if TYPE_CHECKING:
    from ..models.loader import LoadedModel

ScoreFn = Callable[[torch.Tensor, ProbeBatch], torch.Tensor]
"""``(probs [B, H, R, K], batch) -> [B, H]``: one score per sample and head, NaN where undefined."""


@dataclass(frozen=True)
class ModelScore:
    """Scores a head type computes straight from the model rather than from a shared probe pass.

    ``score`` is ``[layers, heads]``; ``n_samples`` is how many items each score averages over (tokens of
    a token set, task pairs, scored rows); ``info`` says what was used (set sizes, dropped items …).
    """

    score: torch.Tensor
    n_samples: int
    info: dict[str, Any] = field(default_factory=dict)


ModelScoreFn = Callable[["LoadedModel", ProbeSettings, int], ModelScore]
"""``(loaded, probe settings, seed) -> ModelScore``: weights-only scores, or scores needing their own passes."""

STAGES = ("KR", "ICI", "LR", "EP")  # survey stages: knowledge recalling … expression preparation


@dataclass(frozen=True)
class HeadType:
    """A kind of attention head the literature has named, and how headatlas detects it."""

    id: str  # snake_case noun, e.g. "induction"
    name: str  # display name
    definition: str  # what the score measures, in one or two sentences
    papers: tuple[str, ...]  # titles of the defining papers (seed list)
    stage: str  # survey stage (KR / ICI / LR / EP)
    probe: str | None  # id in headatlas.probes.PROBES; None for weights-only types
    threshold: float  # a head is a member when score >= threshold
    score: ScoreFn | None = None  # pattern score over the probe's shared forward passes …
    model_score: ModelScoreFn | None = None  # … or scores computed from the model itself (exactly one of the two)

    def __post_init__(self) -> None:
        if not self.id.isidentifier() or self.id != self.id.lower():
            raise InvalidSettingError(f"head-type id must be a snake_case identifier, got {self.id!r}")
        if self.stage not in STAGES:
            raise InvalidSettingError(f"stage must be one of {', '.join(STAGES)}, got {self.stage!r}")
        if (self.score is None) == (self.model_score is None):
            raise InvalidSettingError(f"head type {self.id!r} needs exactly one of score and model_score")
        if self.score is not None and self.probe is None:
            raise InvalidSettingError(f"head type {self.id!r} has a pattern score but no probe")
        if self.probe is not None and self.probe not in PROBES:
            raise InvalidSettingError(f"unknown probe {self.probe!r}; valid probes are {', '.join(PROBES)}")


_REGISTRY: dict[str, HeadType] = {}


def register_head_type(head_type: HeadType) -> HeadType:
    """Add a head type; refuses a second registration of the same id."""
    if head_type.id in _REGISTRY:
        raise InvalidSettingError(f"head type {head_type.id!r} is already registered")
    _REGISTRY[head_type.id] = head_type
    return head_type


def head_types() -> dict[str, HeadType]:
    """All registered head types, in registration order."""
    return dict(_REGISTRY)


def get_head_type(head_type_id: str) -> HeadType:
    try:
        return _REGISTRY[head_type_id]
    except KeyError:
        valid = ", ".join(_REGISTRY)
        raise UnknownHeadTypeError(f"unknown head type {head_type_id!r}; valid head types are {valid}") from None


def resolve_head_types(ids: list[str] | None) -> list[HeadType]:
    """Head types for a run: ``None`` means all; duplicates are refused, not silently dropped."""
    if ids is None:
        return list(_REGISTRY.values())
    if len(set(ids)) != len(ids):
        raise InvalidSettingError(f"head type listed twice in {','.join(ids)}")
    if not ids:
        raise InvalidSettingError("no head types selected")
    return [get_head_type(i) for i in ids]
