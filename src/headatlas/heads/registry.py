"""Head types, the plug-in unit of headatlas: what a kind of head is, how it is scored and how it is checked.

A :class:`HeadType` carries everything the rest of headatlas needs about one kind of head: its score (a
pattern score over a probe's shared forward passes, or a score computed from the model), its threshold,
the causal metric that verifies it (with any probe that metric brings), flags the atlas reads, and the
entry of the paper vocabulary (``literature/data/head_types.yaml``) it belongs to, which gives its stage.
Registering it (:func:`register_head_type`) is the only step: the census, ``scan --verify``, ``heads list``,
reports and the atlas all read the registry. The built-in types register when :mod:`headatlas.heads` is
imported; other packages add types through the ``headatlas.head_types`` entry-point group
(:func:`load_entry_points`).

This module imports neither torch nor the models: listing head types does not need them.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from ..errors import InvalidSettingError, UnknownHeadTypeError

if TYPE_CHECKING:
    import torch

    from ..causal.metrics import Metric
    from ..literature.vocabulary import HeadTerm
    from ..models.loader import LoadedModel
    from ..probes import ProbeBatch, ProbeSettings

    ProbeGenerator = Callable[[Any, ProbeSettings, int], list[ProbeBatch]]

ScoreFn = Callable[["torch.Tensor", "ProbeBatch"], "torch.Tensor"]
"""``(probs [B, H, R, K], batch) -> [B, H]``: one score per sample and head, NaN where undefined."""

ENTRY_POINT_GROUP = "headatlas.head_types"


@dataclass(frozen=True)
class ModelScore:
    """Scores a head type computes straight from the model rather than from a shared probe pass.

    ``score`` is ``[layers, heads]``; ``n_samples`` is how many items each score averages over (tokens of
    a token set, task pairs, scored rows); ``info`` says what was used (set sizes, dropped items …).
    """

    score: torch.Tensor
    n_samples: int
    info: dict[str, Any] = field(default_factory=dict)


ModelScoreFn = Callable[["LoadedModel", "ProbeSettings", int], ModelScore]
"""``(loaded, probe settings, seed) -> ModelScore``: weights-only scores, or scores needing their own passes.
A task that cannot be built for the model's tokenizer raises :class:`~headatlas.errors.TaskUnavailable`."""


@dataclass(frozen=True)
class HeadType:
    """A kind of attention head the literature has named, and how headatlas detects and checks it.

    ``name``, ``definition`` and ``papers`` describe the *score* (what the number measures and whose method
    it follows, as written into every head map); the concept itself (its stage, the literature's definition,
    aliases, every paper about it) is the vocabulary entry ``term`` (default: the type's id).
    """

    id: str  # snake_case noun, e.g. "induction"
    name: str  # display name
    definition: str  # what the score measures, in one or two sentences
    papers: tuple[str, ...]  # titles of the papers whose method the score follows
    probe: str | None  # id of the shared probe a pattern score reads; None for model-scored types
    threshold: float  # a head is a member when score >= threshold
    score: ScoreFn | None = None  # pattern score over the probe's shared forward passes …
    model_score: ModelScoreFn | None = None  # … or scores computed from the model itself (exactly one of the two)
    metric: str | Metric | None = None  # causal metric of ``scan --verify``: a built-in's name or the type's own
    probes: Mapping[str, ProbeGenerator] = field(
        default_factory=dict, compare=False
    )  # probes the type's own metric reads
    instruct_only: bool = False  # defined on instruct/chat models (on a base model the scan is a control)
    upstream_role: bool = False  # feeds the IOI circuit upstream of S-inhibition (the atlas's IOI-roles table)
    term: str | HeadTerm | None = None  # vocabulary entry (id, or a term of the type's own); default: ``id``
    stage: str = field(init=False)  # survey stage, from the vocabulary entry

    def __post_init__(self) -> None:
        if not self.id.isidentifier() or self.id != self.id.lower():
            raise InvalidSettingError(f"head-type id must be a snake_case identifier, got {self.id!r}")
        if (self.score is None) == (self.model_score is None):
            raise InvalidSettingError(f"head type {self.id!r} needs exactly one of score and model_score")
        if self.score is not None and self.probe is None:
            raise InvalidSettingError(f"head type {self.id!r} has a pattern score but no probe")
        object.__setattr__(self, "probes", MappingProxyType(dict(self.probes)))
        object.__setattr__(self, "stage", self.vocabulary_entry().stage)

    def vocabulary_entry(self) -> HeadTerm:
        """The vocabulary entry of this type (its stage, the literature's definition, aliases, papers)."""
        from ..literature.vocabulary import HeadTerm, shipped_terms

        if isinstance(self.term, HeadTerm):
            return self.term
        term_id = self.term or self.id
        for term in shipped_terms():
            if term.id == term_id:
                return term
        raise InvalidSettingError(
            f"head type {self.id!r} names vocabulary entry {term_id!r}, which literature/data/head_types.yaml"
            " lacks; add it there or give the type a HeadTerm of its own"
        )

    def causal_metric(self) -> Metric | None:
        """The metric ``scan --verify`` checks this type with (``None``: the type has none)."""
        if self.metric is None or not isinstance(self.metric, str):
            return self.metric
        from ..causal.metrics import get_metric

        return get_metric(self.metric)


_REGISTRY: dict[str, HeadType] = {}


def register_head_type(head_type: HeadType) -> HeadType:
    """Add a head type, with the probes and metric it brings; refuses an id (or a probe or metric name)
    that something else already holds. Registering the same object again changes nothing."""
    from ..causal.metrics import register_metric
    from ..probes import PROBES, register_probe

    held = _REGISTRY.get(head_type.id)
    if held is head_type:
        return head_type
    if held is not None:
        raise InvalidSettingError(f"head type {head_type.id!r} is already registered (by {_origin(held)})")
    for probe_id, generate in head_type.probes.items():
        register_probe(probe_id, generate)
    if head_type.probe is not None and head_type.probe not in PROBES:
        raise InvalidSettingError(f"unknown probe {head_type.probe!r}; valid probes are {', '.join(PROBES)}")
    if head_type.metric is not None and not isinstance(head_type.metric, str):
        register_metric(head_type.metric)
    head_type.causal_metric()  # a metric named by a string must exist
    _REGISTRY[head_type.id] = head_type
    return head_type


def _origin(head_type: HeadType) -> str:
    fn = head_type.score or head_type.model_score
    return getattr(fn, "__module__", None) or "an earlier registration"


def load_entry_points(entry_points: Iterable[importlib.metadata.EntryPoint] | None = None) -> list[HeadType]:
    """Register the head types other packages declare in the ``headatlas.head_types`` entry-point group.

    Each entry point names a :class:`HeadType` or an iterable of them (``pkg.module:HEAD_TYPE``). A name that
    collides with a registered type raises, naming the package, rather than silently replacing it.
    """
    if entry_points is None:
        entry_points = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    added = []
    for point in entry_points:
        loaded = point.load()
        many = isinstance(loaded, Iterable) and not isinstance(loaded, str | bytes)
        for head_type in list(loaded) if many else [loaded]:
            if not isinstance(head_type, HeadType):
                raise InvalidSettingError(
                    f"entry point {point.value!r} gives {type(head_type).__name__}, not a HeadType"
                )
            try:
                added.append(register_head_type(head_type))
            except InvalidSettingError as exc:
                raise InvalidSettingError(f"entry point {point.name} ({point.value}): {exc}") from None
    return added


def causal_metrics(types: Iterable[HeadType]) -> dict[str, Metric]:
    """Each type's causal metric by id; types without one are left out (verification reports ``no_metric``)."""
    metrics = {t.id: t.causal_metric() for t in types}
    return {type_id: metric for type_id, metric in metrics.items() if metric is not None}


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
