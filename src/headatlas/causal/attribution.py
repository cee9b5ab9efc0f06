"""Attribution patching: a first-order estimate of every head's intervention effect at once.

For head h with output ``a_h`` and alternative output ``a'_h`` (the corrupt run's, or the ablation
value), ``M(a'_h) - M(a_h) ≈ (a'_h - a_h) · ∂M/∂a_h``, summed over positions and dimensions
(Nanda 2023, "Attribution Patching"; Syed et al. 2023). One forward and one backward pass give it for
all heads (plus the forward that produces ``a'``, when it comes from a second input).

With ``steps > 1`` the gradient is averaged over ``steps`` points on the straight path from the clean
outputs to the alternatives, all heads moved together (left Riemann sum starting at the clean run,
so ``steps = 1`` is plain attribution patching): the integrated-gradients variant of EAP-IG (Hanna,
Pezzelle & Belinkov 2024), at ``steps`` times the cost.

``method="atp*"`` is AtP* (Kramár et al. 2024; :mod:`.atp_star`): the QK fix for saturated attention
plus GradDrop; ``"atp*-qk"`` the QK fix alone. Plain attribution (``"atp"``) stays the default: on the
induction bench AtP* ranks heads no better against exact ablation (``python -m headatlas.bench causal``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..errors import InvalidSettingError
from ..lens import session
from ..models.loader import LoadedModel
from ..probes import ProbeBatch
from .atp_star import atp_star
from .interventions import (
    MeanReplacement,
    Replacement,
    SourceReplacement,
    mean_stats,
    metric_values,
    resample_for,
)
from .metrics import Metric, check_fits

ATTRIBUTION_METHODS = ("atp", "atp*", "atp*-qk")
"""Plain attribution patching, AtP* (QK fix and GradDrop), AtP*'s QK fix alone."""


def check_attribution_method(method: str) -> str:
    if method not in ATTRIBUTION_METHODS:
        raise InvalidSettingError(
            f"unknown attribution method {method!r}; valid methods are {', '.join(ATTRIBUTION_METHODS)}"
        )
    return method


def attribution_scores(
    loaded: LoadedModel,
    batches: Sequence[ProbeBatch],
    metric: Metric,
    replacement: Replacement | None = None,
    steps: int = 1,
    method: str = "atp",
) -> torch.Tensor:
    """Estimated change of the sample-mean ``metric`` when each head alone takes its replacement value: ``[L, H]``.

    The sign is that of the metric itself (``changed - clean``), not of damage. ``replacement=None``
    means mean ablation with the statistics of ``batches`` themselves (as ``make_replacement(loaded,
    "mean", batches)``); with ``steps=1`` those come from the same forward pass, so the whole estimate
    costs one forward and one backward per batch. ``method`` is one of :data:`ATTRIBUTION_METHODS`; the
    AtP* ones take ``steps=1`` only (AtP*'s estimate with GradDrop is a magnitude carrying the QK-fixed sign).
    """
    check_attribution_method(method)
    if not isinstance(steps, int) or steps < 1:
        raise InvalidSettingError(f"attribution steps must be a positive integer, got {steps!r}")
    if method != "atp" and steps != 1:
        raise InvalidSettingError(f"attribution method {method} takes steps=1, got {steps}")
    for batch in batches:
        check_fits(metric, batch)
    if method != "atp":
        return atp_star(loaded, batches, metric, replacement, graddrop=method == "atp*").scores
    if replacement is None and steps == 1:
        return _self_mean_scores(loaded, batches, metric)
    if replacement is None:
        replacement = MeanReplacement(mean_stats(loaded, batches))
    f = loaded.facts
    total = sum(int(b.input_ids.shape[0]) for b in batches)
    scores = torch.zeros(f.n_layers, f.n_heads, dtype=torch.float64)
    for batch in batches:
        scores += _batch_scores(loaded, batch.to(loaded.device), metric, replacement, steps, total)
    return scores.float()


def _gradients(
    loaded: LoadedModel, batch: ProbeBatch, metric: Metric, total: int
) -> tuple[dict[int, torch.Tensor], dict[int, torch.Tensor]]:
    """Clean head outputs and d(metric share)/d(output) per layer, from one forward and one backward."""
    clean: dict[int, torch.Tensor] = {}
    deltas: dict[int, torch.Tensor] = {}

    def hook(layer: int, out: torch.Tensor) -> torch.Tensor:
        clean[layer] = out.detach()
        deltas[layer] = torch.zeros_like(out, requires_grad=True)
        return out + deltas[layer]

    with torch.enable_grad(), session(hooks=[hook]):
        value = metric_values(loaded, batch, metric).sum() / total
        layers = sorted(deltas)
        got = torch.autograd.grad(value, [deltas[layer] for layer in layers], allow_unused=True)
    grads = {
        layer: g if g is not None else torch.zeros_like(clean[layer]) for layer, g in zip(layers, got, strict=True)
    }
    return clean, grads


def _self_mean_scores(loaded: LoadedModel, batches: Sequence[ProbeBatch], metric: Metric) -> torch.Tensor:
    """Mean-ablation attribution with the batches' own means, without a separate statistics pass.

    ``sum (m - a) g = m_bos . G_bos + m_body . G_body - sum a g``, with ``G`` the gradient summed over
    the BOS position / the later positions, so only those sums and the means' sums are kept.
    """
    f = loaded.facts
    total = sum(int(b.input_ids.shape[0]) for b in batches)
    shape = (f.n_layers, 2, f.n_heads, f.head_dim)
    act_sums, grad_sums = torch.zeros(shape, dtype=torch.float64), torch.zeros(shape, dtype=torch.float64)
    counts = torch.zeros(2, dtype=torch.float64)
    direct = torch.zeros(f.n_layers, f.n_heads, dtype=torch.float64)
    for batch in batches:
        batch = batch.to(loaded.device)
        clean, grads = _gradients(loaded, batch, metric, total)
        real = batch.attention_mask.bool()
        body = real.clone()
        body[:, 0] = False
        for layer, grad in grads.items():
            a, g = clean[layer].double(), grad.double()
            act_sums[layer, 0] += a[:, 0].sum(0).cpu()
            act_sums[layer, 1] += (a * body[:, :, None, None]).sum((0, 1)).cpu()
            grad_sums[layer, 0] += g[:, 0].sum(0).cpu()
            grad_sums[layer, 1] += g[:, 1:].sum((0, 1)).cpu()
            direct[layer] += (a * g).sum((0, 1, 3)).cpu()
        counts[0] += real.shape[0]
        counts[1] += float(body.sum())
    means = act_sums / counts.clamp(min=1)[None, :, None, None]
    # float32 statistics, as MeanReplacement applies them
    means = means.float().double()
    return ((means * grad_sums).sum((1, 3)) - direct).float()


def _batch_scores(
    loaded: LoadedModel, batch: ProbeBatch, metric: Metric, replacement: Replacement, steps: int, total: int
) -> torch.Tensor:
    """One batch's share of :func:`attribution_scores` (its samples' part of the mean): ``[L, H]``."""
    size = int(batch.input_ids.shape[0])
    repl = resample_for(replacement, size) if isinstance(replacement, SourceReplacement) else replacement
    clean: dict[int, torch.Tensor] = {}
    alt: dict[int, torch.Tensor] = {}
    summed: dict[int, torch.Tensor] = {}
    deltas: dict[int, torch.Tensor] = {}
    alpha = 0.0

    def hook(layer: int, out: torch.Tensor) -> torch.Tensor:
        if layer not in clean:  # the first step is the clean run
            clean[layer] = out.detach()
            alt[layer] = repl.values(layer, out, 1).detach().expand_as(out)
        base = out if alpha == 0 else torch.lerp(out, alt[layer], alpha)
        delta = torch.zeros_like(out, requires_grad=True)
        deltas[layer] = delta
        return base + delta

    for step in range(steps):
        alpha = step / steps
        deltas.clear()
        with torch.enable_grad(), session(hooks=[hook]):
            value = metric_values(loaded, batch, metric).sum() / total
            layers = sorted(deltas)
            got = torch.autograd.grad(value, [deltas[layer] for layer in layers], allow_unused=True)
        for layer, grad in zip(layers, got, strict=True):
            if grad is not None:
                summed[layer] = summed[layer] + grad if layer in summed else grad
    out = torch.zeros(loaded.facts.n_layers, loaded.facts.n_heads, dtype=torch.float64)
    for layer, grad in summed.items():
        diff = (alt[layer] - clean[layer]).to(grad.dtype)
        out[layer] = ((diff * grad).sum((0, 1, 3)) / steps).double().cpu()
    return out
