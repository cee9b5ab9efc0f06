"""The census: run the selected head types over shared forward passes and collect a HeadMap.

Head types that read the same probe share its forward passes; each pass asks the lens for the
probe's query rows only, and every layer's probabilities are reduced to per-sample scores the moment
they are computed. A type whose task does not fit the model's tokenizer (``TaskUnavailable``) is
recorded without scores, with the reason, instead of failing the scan.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from ._version import __version__
from .causal.interventions import active_budget, ffn_width
from .errors import InvalidSettingError, TaskUnavailable
from .headmap import HeadMap
from .heads import HeadType, resolve_head_types
from .heads.registry import ModelScore
from .lens import PatternCallback, PatternTap, session
from .models.loader import LoadedModel
from .probes import PROBES, ProbeBatch, ProbeSettings

Progress = Callable[[str, int, int], None]
"""``(stage, done, total)``: a probe's forward passes (``probe_id``, called after each), or a type scored from the
model itself (``type_id``, called with 0 of 1 as it starts and 1 of 1 when scored)."""


@dataclass(frozen=True)
class ScanSettings:
    """What a scan runs. ``head_types=None`` means every registered type."""

    seed: int = 0
    head_types: tuple[str, ...] | None = None
    probes: ProbeSettings = field(default_factory=ProbeSettings)

    def __post_init__(self) -> None:
        if not isinstance(self.seed, int) or self.seed < 0:
            raise InvalidSettingError(f"seed must be a non-negative integer, got {self.seed!r}")


def _forward(loaded: LoadedModel, batch: ProbeBatch, callback: PatternCallback) -> tuple[torch.Tensor, torch.Tensor]:
    """One forward pass with the lens tapping ``batch.rows``; returns logits at the rows' positions only."""
    keep = batch.rows.clamp(min=0).flatten().unique()
    with torch.no_grad(), session(taps=[PatternTap(batch.rows, callback)]) as state:
        output = loaded.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, logits_to_keep=keep)
    if len(state.layers_seen) != loaded.facts.n_layers:
        raise RuntimeError(f"the lens saw {len(state.layers_seen)} of {loaded.facts.n_layers} layers")
    return output.logits, keep


def forward_bytes(loaded: LoadedModel, batch: ProbeBatch) -> int:
    """About what one census pass over ``batch`` holds beyond the weights (float32): the logits at its kept rows,
    one layer's activations (residual stream, query/key/value, MLP) and one layer's selected probabilities."""
    n_samples, n_tokens = batch.input_ids.shape
    f = loaded.facts
    ffn = ffn_width(loaded)
    kept = int(batch.rows.clamp(min=0).flatten().unique().numel())
    logits = n_samples * kept * f.vocab_size
    layer = n_samples * n_tokens * (6 * f.d_model + 4 * ffn)
    probs = n_samples * f.n_heads * batch.rows.shape[1] * n_tokens
    return 4 * (logits + layer + 2 * probs)


def fit_budget(loaded: LoadedModel, batch: ProbeBatch, budget: int | None) -> list[ProbeBatch]:
    """``batch`` split by samples, in order, into parts whose :func:`forward_bytes` fit ``budget`` (a part of one
    sample may not; ``None``: no bound). Each sample's scores do not depend on its batch companions beyond
    float rounding."""
    size = int(batch.input_ids.shape[0])
    if budget is None or size == 1 or forward_bytes(loaded, batch) <= budget:
        return [batch]
    half = size // 2
    return [
        *fit_budget(loaded, _samples(batch, 0, half), budget),
        *fit_budget(loaded, _samples(batch, half, size), budget),
    ]


def _samples(batch: ProbeBatch, start: int, stop: int) -> ProbeBatch:
    return ProbeBatch(
        input_ids=batch.input_ids[start:stop],
        attention_mask=batch.attention_mask[start:stop],
        rows=batch.rows[start:stop],
        extras={k: v[start:stop] for k, v in batch.extras.items()},
    )


def _reduce_into(
    scores: dict[str, torch.Tensor], types: list[HeadType], batch: ProbeBatch, layer: int, probs: torch.Tensor
) -> None:
    """Turn one layer's probabilities into per-sample scores for every head type, then drop them."""
    for t in types:
        assert t.score is not None  # only pattern types are grouped by probe
        scores[t.id][:, layer] = t.score(probs, batch).float().cpu()


def _probe_diagnostics(probe_id: str, batch: ProbeBatch, logits: torch.Tensor, keep: torch.Tensor) -> dict:
    """How well the model itself does the probe's task (top-1 accuracy on the scored rows)."""
    targets = batch.input_ids.gather(1, (batch.rows + 1).clamp(max=batch.input_ids.shape[1] - 1))
    index = {int(p): i for i, p in enumerate(keep.tolist())}
    cols = torch.tensor([[index[int(p)] for p in row] for row in batch.rows.clamp(min=0).tolist()])
    predicted = logits.argmax(-1).gather(1, cols.to(logits.device))  # top-1 per kept position, then per row
    real = (batch.rows >= 0) & (batch.rows + 1 < batch.input_ids.shape[1])
    if probe_id == "repeated_tokens":  # only the second copy is predictable
        real &= batch.rows > batch.extras["period"][:, None]
    correct = ((predicted == targets) & real).sum().item()
    return {"correct": int(correct), "total": int(real.sum().item())}


def run_census(loaded: LoadedModel, settings: ScanSettings, progress: Progress | None = None) -> HeadMap:
    """Score every head of ``loaded`` for the selected head types."""
    selected = resolve_head_types(list(settings.head_types) if settings.head_types is not None else None)
    n_layers, n_heads = loaded.facts.n_layers, loaded.facts.n_heads
    by_probe: dict[str, list[HeadType]] = {}
    for head_type in selected:
        if head_type.score is not None and head_type.probe is not None:
            by_probe.setdefault(head_type.probe, []).append(head_type)

    per_sample: dict[str, list[torch.Tensor]] = {t.id: [] for t in selected}  # each [B, L, H]
    probe_info: dict[str, dict[str, Any]] = {}
    for probe_id, types in by_probe.items():
        batches = PROBES[probe_id](loaded.tokenizer, settings.probes, settings.seed)
        batches, window_note = _fit_context(loaded, probe_id, batches, settings.probes)
        if not batches:  # nothing of this probe fits the model: its types are reported without scores
            probe_info[probe_id] = {"n_samples": 0, "unavailable": window_note, "head_types": [t.id for t in types]}
            continue
        tokens, accuracy = 0, {"correct": 0, "total": 0}
        for done, whole in enumerate(batches, start=1):
            for batch in fit_budget(loaded, whole, active_budget()):
                batch_on = batch.to(loaded.device)
                scores = {t.id: torch.full((batch.input_ids.shape[0], n_layers, n_heads), float("nan")) for t in types}
                logits, keep = _forward(loaded, batch_on, functools.partial(_reduce_into, scores, types, batch_on))
                for t in types:
                    per_sample[t.id].append(scores[t.id])
                diag = _probe_diagnostics(probe_id, batch_on, logits, keep)
                accuracy = {k: accuracy[k] + diag[k] for k in accuracy}
                del logits, batch_on
            tokens += int(whole.attention_mask.sum())
            if progress is not None:
                progress(probe_id, done, len(batches))
        probe_info[probe_id] = {
            "n_samples": sum(int(b.input_ids.shape[0]) for b in batches),
            "n_tokens": tokens,
            "model_top1_accuracy": round(accuracy["correct"] / max(accuracy["total"], 1), 6),
            "head_types": [t.id for t in types],
        }
        if window_note:
            probe_info[probe_id]["window"] = window_note

    # Types scored from the model itself (weights-only, or their own passes): no shared forward pass.
    direct: dict[str, ModelScore] = {}
    for head_type in selected:
        if head_type.model_score is not None:
            if progress is not None:
                progress(head_type.id, 0, 1)
            try:
                result = head_type.model_score(loaded, settings.probes, settings.seed)
            except TaskUnavailable as error:  # e.g. too few single-token items: no scores, and why
                nan = torch.full((n_layers, n_heads), float("nan"))
                result = ModelScore(nan, 0, {"unavailable": str(error)})
            if tuple(result.score.shape) != (n_layers, n_heads):
                raise RuntimeError(f"{head_type.id}: model score has shape {tuple(result.score.shape)}")
            direct[head_type.id] = result
            probe_info[head_type.id] = {**result.info, "n_samples": result.n_samples, "head_types": [head_type.id]}
            if progress is not None:
                progress(head_type.id, 1, 1)

    rows = []
    for head_type in selected:
        if head_type.id in direct:
            mean = direct[head_type.id].score.double().cpu()
            count = torch.where(mean.isnan(), 0, direct[head_type.id].n_samples)
            spread = None  # a weights-only score has no sampling spread to report
        elif not per_sample[head_type.id]:  # its probe did not fit the model's context window
            mean = torch.full((n_layers, n_heads), float("nan"), dtype=torch.float64)
            count = torch.zeros((n_layers, n_heads), dtype=torch.long)
            spread = None
        else:
            stacked = torch.cat(per_sample[head_type.id]).double()  # [S, L, H]
            count = (~stacked.isnan()).sum(0)
            mean = torch.nanmean(stacked, dim=0)
            spread = torch.sqrt(torch.nansum((stacked - mean) ** 2, dim=0) / (count - 1).clamp(min=1))
        for layer in range(n_layers):
            for head in range(n_heads):
                n = int(count[layer, head])
                value = float(mean[layer, head]) if n else float("nan")
                rows.append(
                    {
                        "layer": layer,
                        "head": head,
                        "head_type": head_type.id,
                        "score": value if n else None,
                        "score_se": float(spread[layer, head]) / n**0.5 if spread is not None and n > 1 else None,
                        "n_samples": n,
                        "threshold": head_type.threshold,
                        "member": bool(n and value >= head_type.threshold),
                    }
                )
    scan_settings = {
        "seed": settings.seed,
        "probes": settings.probes.to_dict(),
        "head_types": [t.id for t in selected],
        "dtype": str(next(loaded.model.parameters()).dtype).replace("torch.", ""),
        "headatlas_version": __version__,
        "transformers_version": _version_of("transformers"),
        "torch_version": torch.__version__,
    }
    head_type_info = {
        t.id: {
            "name": t.name,
            "definition": t.definition,
            "papers": list(t.papers),
            "stage": t.stage,
            "probe": t.probe,
            "threshold": t.threshold,
        }
        for t in selected
    }
    return HeadMap(loaded.facts, rows, scan_settings, head_type_info, probe_info)


def _fit_context(
    loaded: LoadedModel, probe_id: str, batches: list[ProbeBatch], probes: ProbeSettings
) -> tuple[list[ProbeBatch], str | None]:
    """The probe's batches that fit the model's context window, and a note on what was left out (None: all fit).

    Needle contexts a user chose (``fit_to_window=False``) must all fit: a longer one is an error, not a quiet
    change of the experiment."""
    limit = loaded.facts.max_positions
    longest = max(int(b.input_ids.shape[1]) for b in batches)
    if limit is None or longest <= limit:
        return batches, None
    if probe_id == "needle" and not probes.fit_to_window:
        raise InvalidSettingError(
            f"probe {probe_id!r} needs {longest} tokens but {loaded.facts.name} has a context window of {limit}"
        )
    kept = [b for b in batches if int(b.input_ids.shape[1]) <= limit]
    dropped = len(batches) - len(kept)
    if not kept:
        return [], f"every {probe_id} sample exceeds the model's context window of {limit} tokens"
    return kept, f"{dropped} of {len(batches)} {probe_id} samples exceed the {limit}-token context window: left out"


def _version_of(package: str) -> str:
    import importlib.metadata

    return importlib.metadata.version(package)
