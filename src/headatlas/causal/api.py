"""Python entry points: ``ablate``, ``patch`` and ``attribute`` on a model (name or LoadedModel)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import InvalidSettingError
from ..models.loader import LoadedModel, load_model
from ..probes import ProbeBatch, ProbeSettings
from ..probes.base import bos_id
from .attribution import attribution_scores
from .interventions import (
    HeadRef,
    SourceReplacement,
    ZeroReplacement,
    capture,
    check_method,
    head_label,
    make_replacement,
    parse_heads,
    run_sets,
)
from .metrics import Metric, damage, get_metric, probe_batches

HeadSpec = str | Iterable[str | Sequence[int]]
Prompts = str | Sequence[str] | ProbeBatch

SMALL_PROBES = ProbeSettings(
    repeat_len=20, n_repeat=8, text_len=64, n_text=8, needle_contexts=(1024,), needle_per_context=2
)
"""Probe sizes ``ablate`` uses for probe metrics when no batches are given."""


def _loaded(model: str | LoadedModel) -> LoadedModel:
    return model if isinstance(model, LoadedModel) else load_model(model)


def _tokens(tokenizer: Any, text: str) -> list[int]:
    return [bos_id(tokenizer), *tokenizer.encode(text, add_special_tokens=False)]


def _show(tokenizer: Any, ids: list[int]) -> str:
    convert = getattr(tokenizer, "convert_ids_to_tokens", None)
    return str(convert(ids) if convert is not None else ids)


def single_token(tokenizer: Any, text: str, what: str) -> int:
    """The one token id of ``text`` (e.g. ``" Mary"``); anything else is refused."""
    ids = list(tokenizer.encode(text, add_special_tokens=False))
    if len(ids) != 1:
        raise InvalidSettingError(f"{what} {text!r} is {len(ids)} tokens {_show(tokenizer, ids)}, not a single token")
    return int(ids[0])


def prompt_batch(
    loaded: LoadedModel, prompts: str | Sequence[str], answer: str | None = None, wrong: str | None = None
) -> ProbeBatch:
    """BOS + each prompt, right-padded, with ``answer``/``wrong`` token extras when given."""
    texts = [prompts] if isinstance(prompts, str) else list(prompts)
    if not texts:
        raise InvalidSettingError("no prompt given")
    tok = loaded.tokenizer
    seqs = [_tokens(tok, t) for t in texts]
    width = max(len(s) for s in seqs)
    pad = bos_id(tok)
    ids = torch.tensor([[*s, *([pad] * (width - len(s)))] for s in seqs])
    mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs])
    extras: dict[str, torch.Tensor] = {}
    if answer is not None:
        extras["answer"] = torch.full((len(seqs),), single_token(tok, answer, "answer"))
    if wrong is not None:
        extras["wrong"] = torch.full((len(seqs),), single_token(tok, wrong, "wrong answer"))
    rows = (mask.sum(1) - 1)[:, None]
    return ProbeBatch(input_ids=ids, attention_mask=mask, rows=rows, extras=extras)


def paired_batches(
    loaded: LoadedModel, clean: Prompts, corrupt: Prompts, answer: str | None, wrong: str | None
) -> tuple[ProbeBatch, ProbeBatch]:
    """Clean and corrupt batches whose samples align token for token (refused, with both tokenisations, if not)."""
    a = clean if isinstance(clean, ProbeBatch) else prompt_batch(loaded, clean, answer, wrong)
    b = corrupt if isinstance(corrupt, ProbeBatch) else prompt_batch(loaded, corrupt, answer, wrong)
    if a.input_ids.shape[0] != b.input_ids.shape[0]:
        raise InvalidSettingError(f"{a.input_ids.shape[0]} clean prompts but {b.input_ids.shape[0]} corrupt ones")
    lengths_a, lengths_b = a.attention_mask.sum(1), b.attention_mask.sum(1)
    bad = (lengths_a != lengths_b).nonzero().flatten().tolist()
    if bad or a.input_ids.shape != b.input_ids.shape:
        i = bad[0] if bad else 0
        ids_a = a.input_ids[i, : int(lengths_a[i])].tolist()
        ids_b = b.input_ids[i, : int(lengths_b[i])].tolist()
        raise InvalidSettingError(
            f"clean and corrupt prompts differ in token length ({len(ids_a)} vs {len(ids_b)}): clean"
            f" {_show(loaded.tokenizer, ids_a)}, corrupt {_show(loaded.tokenizer, ids_b)}"
        )
    return a, b


def metric_inputs(
    loaded: LoadedModel,
    metric: Metric,
    prompt: str | Sequence[str] | None,
    answer: str | None,
    wrong: str | None,
    seed: int,
) -> list[ProbeBatch]:
    """Batches a metric is evaluated on: the user's prompt(s), else the metric's own probe (small sizes)."""
    if prompt is not None:
        return [prompt_batch(loaded, prompt, answer, wrong)]
    return probe_batches(loaded, metric, SMALL_PROBES, seed)


@dataclass(frozen=True)
class AblationResult:
    """Metric before and after ablating ``heads``; ``effect`` is the damage (positive = the model got worse)."""

    heads: tuple[str, ...]
    metric: str
    method: str
    clean: float
    ablated: float
    effect: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "heads": list(self.heads),
            "metric": self.metric,
            "method": self.method,
            "clean": round(self.clean, 6),
            "ablated": round(self.ablated, 6),
            "effect": round(self.effect, 6),
        }


def ablate(
    model: str | LoadedModel,
    heads: HeadSpec,
    metric: str | Metric = "induction_loss",
    method: str = "mean",
    *,
    batches: Sequence[ProbeBatch] | None = None,
    reference: Sequence[ProbeBatch] | None = None,
    prompt: str | Sequence[str] | None = None,
    answer: str | None = None,
    wrong: str | None = None,
    seed: int = 0,
) -> AblationResult:
    """Ablate ``heads`` together and measure ``metric``.

    ``batches`` default to the metric's probe (small sizes) or ``prompt``; ``reference`` (mean
    statistics / resample sources) defaults to the batches themselves for mean ablation and to the
    probe drawn with ``seed + 1`` for resampling (prompts resample from the other prompts).
    """
    check_method(method)
    m = get_metric(metric)
    loaded = _loaded(model)
    head_list = parse_heads(heads, loaded.facts)
    inputs = list(batches) if batches is not None else metric_inputs(loaded, m, prompt, answer, wrong, seed)
    if reference is None:
        if method == "resample" and m.probe is not None and prompt is None and batches is None:
            reference = probe_batches(loaded, m, SMALL_PROBES, seed + 1)[:1]
        else:
            reference = inputs[:1] if method == "resample" else inputs
    replacement = make_replacement(loaded, method, list(reference))
    values = run_sets(loaded, inputs, m, [[], head_list], replacement)
    clean, ablated = float(values[0]), float(values[1])
    return AblationResult(
        heads=tuple(head_label(h) for h in head_list),
        metric=m.name,
        method=method,
        clean=clean,
        ablated=ablated,
        effect=float(damage(m, clean, ablated)),
    )


@dataclass(frozen=True)
class PatchResult:
    """Activation patching of ``heads`` from the source run into the target run.

    ``recovered`` = (patched - target) / (source - target): 1 when the heads carry the whole difference.
    """

    heads: tuple[str, ...]
    metric: str
    direction: str
    clean: float
    corrupt: float
    patched: float
    recovered: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "heads": list(self.heads),
            "metric": self.metric,
            "direction": self.direction,
            "clean": round(self.clean, 6),
            "corrupt": round(self.corrupt, 6),
            "patched": round(self.patched, 6),
            "recovered": None if self.recovered is None else round(self.recovered, 6),
        }


DIRECTIONS = ("clean_to_corrupt", "corrupt_to_clean")


def patch(
    model: str | LoadedModel,
    clean: Prompts,
    corrupt: Prompts,
    heads: HeadSpec | None = None,
    metric: str | Metric = "logit_diff",
    *,
    answer: str | None = None,
    wrong: str | None = None,
    direction: str = "clean_to_corrupt",
) -> PatchResult:
    """Run the target input with ``heads`` (default: all) taking their outputs from the source input.

    ``clean_to_corrupt`` (denoising) runs the corrupt prompt with clean head outputs;
    ``corrupt_to_clean`` (noising) the reverse.
    """
    if direction not in DIRECTIONS:
        raise InvalidSettingError(f"unknown direction {direction!r}; valid directions are {', '.join(DIRECTIONS)}")
    m = get_metric(metric)
    loaded = _loaded(model)
    head_list: list[HeadRef] = (
        [(layer, h) for layer in range(loaded.facts.n_layers) for h in range(loaded.facts.n_heads)]
        if heads is None
        else parse_heads(heads, loaded.facts)
    )
    a, b = paired_batches(loaded, clean, corrupt, answer, wrong)
    source, target = (a, b) if direction == "clean_to_corrupt" else (b, a)
    replacement = SourceReplacement(capture(loaded, source), torch.arange(source.input_ids.shape[0]))
    plain = ZeroReplacement()  # with empty head sets nothing is replaced: the unpatched runs
    clean_value = float(run_sets(loaded, [a], m, [[]], plain)[0])
    corrupt_value = float(run_sets(loaded, [b], m, [[]], plain)[0])
    patched = float(run_sets(loaded, [target], m, [head_list], replacement)[0])
    source_value, target_value = (
        (clean_value, corrupt_value) if direction == "clean_to_corrupt" else (corrupt_value, clean_value)
    )
    gap = source_value - target_value
    return PatchResult(
        heads=tuple(head_label(h) for h in head_list),
        metric=m.name,
        direction=direction,
        clean=clean_value,
        corrupt=corrupt_value,
        patched=patched,
        recovered=(patched - target_value) / gap if abs(gap) > 1e-12 else None,
    )


@dataclass(frozen=True)
class AttributionResult:
    """Per-head estimate of the metric change when that head alone takes the corrupt run's output.

    ``scores[layer, head]`` is in the metric's units (changed - clean), for the clean run.
    """

    metric: str
    clean: float
    corrupt: float
    scores: torch.Tensor  # [L, H]
    steps: int
    method: str = "atp"

    def top(self, k: int = 10) -> list[tuple[str, float]]:
        """The ``k`` heads with the largest |score|, largest first."""
        flat = self.scores.flatten()
        order = torch.argsort(-flat.abs(), stable=True)[:k].tolist()
        n_heads = self.scores.shape[1]
        return [(f"L{i // n_heads}H{i % n_heads}", float(flat[i])) for i in order]

    def to_dict(self, k: int = 10) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "clean": round(self.clean, 6),
            "corrupt": round(self.corrupt, 6),
            "steps": self.steps,
            "method": self.method,
            "top": [{"head": name, "attribution": round(v, 6)} for name, v in self.top(k)],
        }


def attribute(
    model: str | LoadedModel,
    clean: Prompts,
    corrupt: Prompts,
    metric: str | Metric = "logit_diff",
    *,
    answer: str | None = None,
    wrong: str | None = None,
    steps: int = 1,
    method: str = "atp",
) -> AttributionResult:
    """Attribution patching of every head at once: (a_corrupt - a_clean) · ∂metric/∂a at the clean run.

    Two forward passes and one backward (``steps > 1``: the integrated-gradients variant; ``method``:
    ``"atp*"`` or ``"atp*-qk"`` for AtP*, see :mod:`headatlas.causal.atp_star`).
    """
    m = get_metric(metric)
    loaded = _loaded(model)
    a, b = paired_batches(loaded, clean, corrupt, answer, wrong)
    source = SourceReplacement(capture(loaded, b), torch.arange(b.input_ids.shape[0]))
    scores = attribution_scores(loaded, [a], m, source, steps=steps, method=method)
    values = run_sets(loaded, [a], m, [[]], source)
    corrupt_value = float(run_sets(loaded, [b], m, [[]], source)[0])
    return AttributionResult(m.name, float(values[0]), corrupt_value, scores, steps, method)
