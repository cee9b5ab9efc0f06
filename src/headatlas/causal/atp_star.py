"""AtP* (Kramár et al. 2024, "AtP*: An efficient and scalable method for localizing LLM behaviour to components").

Plain attribution patching (:mod:`.attribution`) estimates head ``n``'s effect as ``Δa_n · ∂M/∂a_n``.
AtP* fixes two ways that first-order estimate fails (the paper's sec. 3.1):

* **Attention saturation (the QK fix).** Where a softmax is saturated its gradient is ~0, yet a large
  change of its logits moves the pattern a lot. The paper recomputes a head's softmax with the patched
  query/key and carries the exact change of the pattern on with the gradient from the attention
  probabilities onward. Here the patched nodes are head *outputs* (after their own softmax), so the
  softmaxes a patch runs into are those of the later heads it feeds (a previous-token head feeding an
  induction head's keys). For a set of *target* heads ``m`` the backward pass stops at ``m``'s attention
  probabilities (no gradient through ``m``'s queries and keys, so no linear term through its softmax);
  instead each source ``n`` gets ``ΔA_m · ∂M/∂A_m``, with ``ΔA_m`` the exact change of ``m``'s softmax
  under the queries/keys that ``n``'s change gives it (to first order along the direct residual path,
  :mod:`.qk_paths`). The targets are the ``qk_targets`` heads with the largest bound on what any change
  of their pattern can do, ``Σ_rows (max - min of ∂M/∂A_m over the row's keys)``, read in a first
  backward pass that stops nothing.
* **Cancellation (GradDrop).** Paths of opposite sign can cancel in the total gradient. One more
  backward pass per layer ``l`` drops the gradient through layer ``l``'s attention output (its heads
  get none, earlier heads lose every path through it), giving estimates ``ĉ_l``; the magnitude is
  ``Σ_l |ĉ_l(n) - ĉ(n)|``, the sign that of ``ĉ``. The paper drops a layer's whole residual
  contribution; the lens reaches only the attention part, so the MLP's part is never dropped.

Cost: one forward (eager attention, probabilities in the autograd graph) and one backward; the QK fix
adds the observing backward (none with ``qk_targets=None``) and, outside the passes, ``D × D`` virtual
weights and one softmax per target head and source head; GradDrop adds one backward per layer.

Measured on SmolLM2-135M (``bench causal``: induction loss, mean ablation, Spearman against exact
single-head ablation, at 2×33 / 4×41 / 4×65 tokens): plain 0.811 / 0.770 / 0.779; QK fix (8 targets)
0.770 / 0.786 / 0.784; AtP* with GradDrop 0.659 / 0.740 / 0.719 (65 forward-equivalents counted). At
4×41, 24 and 64 targets give 0.638 and 0.486. The first-order direct-path change of a later head's keys
points within cos 0.8-0.9 of the true one, and a saturated softmax turns that error into a wrong
pattern: for L17H8 the recomputed L18H6/L18H7 patterns give +0.8 nats each where the true ones give
+0.07 and +0.10. Plain attribution therefore stays the default (see ``bench causal``).

:func:`qk_ceiling` is the QK fix with every later head a target and each ``ΔA`` taken from a real forward
with the source replaced: the best any estimate of ``ΔA`` can do, at the cost of exact ablation. On the
same bench it reaches 0.925 / 0.915 / 0.880 (0.523 at 2×33 for the linear paths alone, every softmax held),
so most of the shortfall is in the cheap ``ΔA``, and even exact ``ΔA`` does not reach 0.9 on every shape.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from ..errors import InvalidSettingError
from ..lens import LayerAttention, masked_softmax, session
from ..models.loader import LoadedModel
from ..probes import ProbeBatch
from .interventions import (
    HeadRef,
    MeanReplacement,
    Replacement,
    SourceReplacement,
    head_mask,
    masked_hook,
    mean_stats,
    metric_values,
    repeat_batch,
    resample_for,
)
from .metrics import Metric, check_fits
from .qk_paths import Anatomy, qk_changes, read_anatomy

QK_TARGETS = 8
"""At most this many target heads for the QK fix, by default (the best of 8, 24, 64 on SmolLM2's induction bench)."""
QK_RATIO = 0.02
"""A head is a target when its bound is at least this fraction of the largest bound seen before it."""


@dataclass(frozen=True)
class AtpStar:
    """Per-head estimates ``[L, H]`` of the change of the sample-mean metric when the head alone takes its
    replacement value, from one run of :func:`atp_star`.

    ``qk`` is attribution patching with the QK fix (signed; without it, plain attribution), ``graddrop``
    GradDrop's magnitude ``Σ_l |ĉ_l - ĉ|`` on top of it (``None`` without GradDrop). ``forwards`` and
    ``backwards`` count the passes; ``targets`` are the heads whose softmax was recomputed.
    """

    qk: torch.Tensor
    graddrop: torch.Tensor | None
    forwards: int
    backwards: int
    targets: tuple[HeadRef, ...]

    @property
    def scores(self) -> torch.Tensor:
        """The AtP* estimate: GradDrop's magnitude with the QK-fixed sign where GradDrop ran, else ``qk``."""
        if self.graddrop is None:
            return self.qk
        return torch.where(self.qk < 0, -self.graddrop, self.graddrop)

    @property
    def forward_equivalents(self) -> float:
        """Passes in units of one forward, a backward counted as two (the usual rule of thumb)."""
        return float(self.forwards + 2 * self.backwards)


class _Gate(torch.autograd.Function):
    """Identity on the way forward; on the way back the gradient stops while ``layer`` is in ``dropped``."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, layer: int, dropped: set[int]) -> torch.Tensor:
        ctx.layer, ctx.dropped = layer, dropped
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        return (torch.zeros_like(grad) if ctx.layer in ctx.dropped else grad), None, None


@dataclass
class _Targets:
    """The QK fix's target heads, and ``∂M/∂A`` of each per gradient pass.

    With a ``budget`` the targets come from an observing pass (nothing stopped) that reads every head's
    bound; without one every head of layers >= 1 is a target.
    """

    budget: int | None
    biases: dict[int, torch.Tensor] = field(default_factory=dict)  # layer -> the attention mask
    chosen: dict[int, list[int]] = field(default_factory=dict)  # layer -> target heads
    grads: list[dict[int, torch.Tensor]] = field(default_factory=list)  # per pass: layer -> [B, |heads|, T, K]
    observing: bool = False
    bounds: dict[HeadRef, float] = field(default_factory=dict)

    def choose(self, n_layers: int, n_heads: int) -> None:
        """Every head of layers >= 1 without a budget; else the ``budget`` largest bounds, each at least
        :data:`QK_RATIO` of the largest."""
        if self.budget is None:
            self.chosen = {layer: list(range(n_heads)) for layer in range(1, n_layers)}
            return
        top = max(self.bounds.values(), default=0.0)
        ranked = sorted(self.bounds, key=lambda ref: (-self.bounds[ref], ref))
        keep = [ref for ref in ranked if self.bounds[ref] > 0 and self.bounds[ref] >= QK_RATIO * top][: self.budget]
        self.chosen = {}
        for layer, head in sorted(keep):
            self.chosen.setdefault(layer, []).append(head)

    def backward(self, layer: int, grad: torch.Tensor) -> torch.Tensor:
        if self.observing:
            if layer > 0:
                bounds = _span_bound(grad, self.biases[layer]).tolist()
                self.bounds.update({(layer, head): value for head, value in enumerate(bounds)})
            return grad
        heads = self.chosen.get(layer, [])
        if not heads:
            return grad
        self.grads[-1][layer] = grad[:, heads].detach()
        kept = torch.ones(grad.shape[1], dtype=grad.dtype, device=grad.device)
        kept[heads] = 0
        return grad * kept[None, :, None, None]

    def refs(self) -> list[HeadRef]:
        return [(layer, head) for layer in sorted(self.chosen) for head in self.chosen[layer]]


class _Freeze(torch.autograd.Function):
    """Identity on the way forward; on the way back :class:`_Targets` reads ``∂M/∂A`` and stops it for targets."""

    @staticmethod
    def forward(ctx: Any, probs: torch.Tensor, layer: int, targets: _Targets) -> torch.Tensor:
        ctx.layer, ctx.targets = layer, targets
        return probs.view_as(probs)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        return ctx.targets.backward(ctx.layer, grad), None, None


def atp_star(
    loaded: LoadedModel,
    batches: Sequence[ProbeBatch],
    metric: Metric,
    replacement: Replacement | None = None,
    *,
    qk_fix: bool = True,
    graddrop: bool = True,
    qk_targets: int | None = QK_TARGETS,
) -> AtpStar:
    """AtP* estimates for every head (see the module docstring); ``replacement=None`` is mean ablation with
    the statistics of ``batches`` (taken from the same forward when there is one batch).

    ``qk_targets`` caps the QK fix's targets (``None``: every head of layers >= 1, no ratio; ``0``: plain
    attribution patching). Targets are chosen per batch.
    """
    if qk_targets is not None and (not isinstance(qk_targets, int) or qk_targets < 0):
        raise InvalidSettingError(f"qk_targets must be a non-negative integer or None, got {qk_targets!r}")
    for batch in batches:
        check_fits(metric, batch)
    f = loaded.facts
    forwards = 0
    if replacement is None and len(batches) > 1:
        replacement = MeanReplacement(mean_stats(loaded, batches))
        forwards += len(batches)
    anat = read_anatomy(loaded) if qk_fix and qk_targets != 0 else None
    total = sum(int(b.input_ids.shape[0]) for b in batches)
    n_drops = f.n_layers if graddrop else 0
    estimates = torch.zeros(1 + n_drops, f.n_layers, f.n_heads, dtype=torch.float64)
    targets: set[HeadRef] = set()
    for batch in batches:
        chooser = _Targets(qk_targets)
        estimates += _batch(loaded, anat, chooser, batch.to(loaded.device), metric, replacement, total, n_drops)
        targets.update(chooser.refs())
        forwards += 1
    return AtpStar(
        qk=estimates[0].float(),
        graddrop=(estimates[1:] - estimates[0]).abs().sum(0).float() if graddrop else None,
        forwards=forwards,
        backwards=len(batches) * (1 + n_drops + (1 if anat is not None and qk_targets is not None else 0)),
        targets=tuple(sorted(targets)),
    )


def _own_means(clean: dict[int, torch.Tensor], batch: ProbeBatch, n_layers: int) -> torch.Tensor:
    """Mean-ablation statistics of one batch from its own head outputs, as :func:`mean_stats` computes them."""
    real = batch.attention_mask.bool().clone()
    first = torch.zeros_like(real)
    first[:, 0] = True
    body = real & ~first
    stats = []
    for layer in range(n_layers):
        o = clean[layer].double()
        bos = (o * first[:, :, None, None]).sum((0, 1)).cpu() / max(float(first.sum()), 1.0)
        rest = (o * body[:, :, None, None]).sum((0, 1)).cpu() / max(float(body.sum()), 1.0)
        stats.append(torch.stack([bos, rest]))
    return torch.stack(stats).float()


def _span_bound(grad: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``Σ_rows (max - min)`` of ``∂M/∂A`` over each row's allowed keys, per head: ``[H]``.

    A row's change of attention sums to zero and has L1 norm at most 2, so no change of the pattern moves
    ``M`` (through this head's attention, the rest held) by more than this.
    """
    allowed = (bias > float("-inf")).expand_as(grad)
    high = grad.masked_fill(~allowed, float("-inf")).amax(-1)
    low = grad.masked_fill(~allowed, float("inf")).amin(-1)
    spread = torch.where(allowed.any(-1), high - low, torch.zeros((), device=grad.device))
    return spread.sum((0, 2))


def _batch(
    loaded: LoadedModel,
    anat: Anatomy | None,
    chooser: _Targets,
    batch: ProbeBatch,
    metric: Metric,
    replacement: Replacement | None,
    total: int,
    n_drops: int,
) -> torch.Tensor:
    """One batch's share of the estimates per gradient pass, ``[1 + drops, L, H]`` (pass 0 drops nothing,
    pass ``1 + l`` drops layer ``l``)."""
    f = loaded.facts
    clean: dict[int, torch.Tensor] = {}
    deltas: dict[int, torch.Tensor] = {}
    records: dict[int, LayerAttention] = {}
    dropped: set[int] = set()

    def output_hook(layer: int, out: torch.Tensor) -> torch.Tensor:
        clean[layer] = out.detach()
        deltas[layer] = torch.zeros_like(out, requires_grad=True)
        return _Gate.apply(out + deltas[layer], layer, dropped)

    def pattern_hook(attention: LayerAttention) -> torch.Tensor:
        records[attention.layer] = replace(
            attention, query=attention.query.detach(), key=attention.key.detach(), probs=attention.probs.detach()
        )
        chooser.biases[attention.layer] = attention.bias
        return _Freeze.apply(attention.probs, attention.layer, chooser)

    hidden: list[torch.Tensor] = []
    patterns = [pattern_hook] if anat is not None else []
    with torch.enable_grad(), session(hooks=[output_hook], patterns=patterns):
        value = metric_values(loaded, batch, metric, hidden if anat is not None else None).sum() / total
    layers = list(range(f.n_layers))

    if replacement is None:
        replacement = MeanReplacement(_own_means(clean, batch, f.n_layers))
    size = int(batch.input_ids.shape[0])
    repl = resample_for(replacement, size) if isinstance(replacement, SourceReplacement) else replacement
    diff = {layer: repl.values(layer, clean[layer], 1).expand_as(clean[layer]) - clean[layer] for layer in layers}

    wanted = [deltas[layer] for layer in layers]
    if anat is not None and chooser.budget is not None:
        chooser.observing = True
        torch.autograd.grad(value, wanted, allow_unused=True, retain_graph=True)
        chooser.observing = False
    chooser.choose(f.n_layers, f.n_heads)
    estimates = torch.zeros(1 + n_drops, f.n_layers, f.n_heads, dtype=torch.float64)
    for step in range(1 + n_drops):
        dropped.clear()
        if step > 0:
            dropped.add(step - 1)
        chooser.grads.append({})
        got = torch.autograd.grad(value, wanted, allow_unused=True, retain_graph=step < n_drops)
        for layer, grad in zip(layers, got, strict=True):
            if grad is not None:
                estimates[step, layer] = (diff[layer] * grad).sum((0, 1, 3)).double().cpu()
    if anat is not None:
        with torch.no_grad():
            _add_qk_terms(anat, estimates, chooser, records, [h.detach() for h in hidden], diff, f.n_heads)
    return estimates


def _add_qk_terms(
    anat: Anatomy,
    estimates: torch.Tensor,
    chooser: _Targets,
    records: dict[int, LayerAttention],
    hidden: Sequence[torch.Tensor],
    diff: dict[int, torch.Tensor],
    n_heads: int,
) -> None:
    """Add, for every source head and gradient pass, ``ΔA_m · ∂M/∂A_m`` through each target ``m``'s softmax."""
    for layer in sorted(chooser.chosen):
        heads = chooser.chosen[layer]
        if not heads:
            continue
        rec = records[layer]
        groups = n_heads // rec.key.shape[1]
        kv_heads = sorted({h // groups for h in heads})
        changes = qk_changes(
            anat, layer, hidden[layer], [diff[src] for src in range(layer)], heads, kv_heads, (rec.query, rec.key)
        )
        for i, head in enumerate(heads):
            j = kv_heads.index(head // groups)
            change = _softmax_change(rec, head, changes.query[:, :, i], changes.key[:, :, j], groups)
            for step, grads in enumerate(chooser.grads):
                if layer not in grads:  # no gradient reached this layer's attention in that pass
                    continue
                term = torch.einsum("nbtk,btk->n", change, grads[layer][:, i].float()).double().cpu()
                term = term.view(layer, n_heads)
                if 0 < step <= layer:  # pass 1 + l drops layer l: its heads' paths start in what is dropped
                    term[step - 1] = 0
                estimates[step, :layer] += term


def _softmax_change(rec: LayerAttention, head: int, dq: torch.Tensor, dk: torch.Tensor, groups: int) -> torch.Tensor:
    """Exact change of ``head``'s attention under each source's query/key change: ``[N, B, T, K]``.

    ``dq`` ``[N, B, T, D]`` and ``dk`` ``[N, B, K, D]`` are the first-order changes of its query and key.
    """
    q = rec.query[:, head].float()  # [B, T, D]
    k = rec.key[:, head // groups].float()  # [B, K, D]
    scores = torch.einsum("...td,...kd->...tk", q + dq, k + dk) * rec.scaling  # [N, B, T, K]
    if rec.softcap is not None:
        scores = torch.tanh(scores / rec.softcap) * rec.softcap
    return masked_softmax(scores + rec.bias[:, 0]) - rec.probs[:, head]


def qk_ceiling(
    loaded: LoadedModel,
    batches: Sequence[ProbeBatch],
    metric: Metric,
    replacement: Replacement | None = None,
    chunk: int = 16,
) -> torch.Tensor:
    """The QK fix with exact pattern changes, ``[L, H]``: for head ``n``, ``Δa_n · ∂M/∂a_n`` with every
    softmax held (the gradient stops at all attention probabilities) plus ``Σ_m ΔA_m · ∂M/∂A_m`` over every
    head ``m`` of later layers, ``ΔA_m`` read from a forward with ``n`` replaced (``chunk`` sources per pass).

    One replaced forward per head, so it costs what exact ablation costs: a diagnostic of how far the
    cheap, first-order ``ΔA`` of :func:`atp_star` is from what its decomposition allows, not an estimator
    to use. ``replacement=None`` is mean ablation with the statistics of ``batches``.
    """
    if not isinstance(chunk, int) or chunk < 1:
        raise InvalidSettingError(f"chunk must be a positive integer, got {chunk!r}")
    for batch in batches:
        check_fits(metric, batch)
    f = loaded.facts
    if replacement is None:
        replacement = MeanReplacement(mean_stats(loaded, batches))
    total = sum(int(b.input_ids.shape[0]) for b in batches)
    heads = [(layer, head) for layer in range(f.n_layers) for head in range(f.n_heads)]
    out = torch.zeros(f.n_layers, f.n_heads, dtype=torch.float64)
    for batch in batches:
        batch = batch.to(loaded.device)
        size = int(batch.input_ids.shape[0])
        repl = resample_for(replacement, size) if isinstance(replacement, SourceReplacement) else replacement
        held = _held_gradients(loaded, batch, metric, total)
        for layer in range(f.n_layers):
            clean, grad = held.outputs[layer], held.output_grads[layer]
            if grad is not None:
                diff = repl.values(layer, clean, 1).expand_as(clean) - clean
                out[layer] += (diff * grad).sum((0, 1, 3)).double().cpu()
        for start in range(0, len(heads), chunk):
            sources = heads[start : start + chunk]
            for (layer, head), term in zip(
                sources, _pattern_terms(loaded, batch, metric, repl, sources, held), strict=True
            ):
                out[layer, head] += term
    return out.float()


@dataclass(frozen=True)
class _Held:
    """One batch's clean head outputs and attention probabilities, with ``∂M/∂`` of each while every
    softmax is held (``None`` where no gradient reached)."""

    outputs: dict[int, torch.Tensor]
    output_grads: tuple[torch.Tensor | None, ...]
    probs: dict[int, torch.Tensor]
    prob_grads: tuple[torch.Tensor | None, ...]


def _held_gradients(loaded: LoadedModel, batch: ProbeBatch, metric: Metric, total: int) -> _Held:
    outputs: dict[int, torch.Tensor] = {}
    deltas: dict[int, torch.Tensor] = {}
    probs: dict[int, torch.Tensor] = {}

    def output_hook(layer: int, value: torch.Tensor) -> torch.Tensor:
        outputs[layer] = value.detach()
        deltas[layer] = torch.zeros_like(value, requires_grad=True)
        return value + deltas[layer]

    def hold(attention: LayerAttention) -> torch.Tensor:
        probs[attention.layer] = attention.probs.detach().requires_grad_(True)
        return probs[attention.layer]

    layers = range(loaded.facts.n_layers)
    with torch.enable_grad(), session(hooks=[output_hook], patterns=[hold]):
        value = metric_values(loaded, batch, metric).sum() / total
        got = torch.autograd.grad(
            value, [deltas[layer] for layer in layers] + [probs[layer] for layer in layers], allow_unused=True
        )
    n = len(layers)
    return _Held(outputs, tuple(got[:n]), {k: v.detach() for k, v in probs.items()}, tuple(got[n:]))


def _pattern_terms(
    loaded: LoadedModel,
    batch: ProbeBatch,
    metric: Metric,
    replacement: Replacement,
    sources: Sequence[HeadRef],
    held: _Held,
) -> list[float]:
    """``Σ_m ΔA_m · ∂M/∂A_m`` over the heads of layers after each source, from one pass with a copy of
    ``batch`` per source (that source replaced)."""
    copies, size = len(sources), int(batch.input_ids.shape[0])
    masks = torch.stack([head_mask([source], loaded.facts) for source in sources])
    terms = torch.zeros(copies, dtype=torch.float64)

    def read(attention: LayerAttention) -> None:
        grad = held.prob_grads[attention.layer]
        if grad is None:
            return
        change = attention.probs.detach().view(copies, *grad.shape) - held.probs[attention.layer]
        later = torch.tensor([attention.layer > layer for layer, _ in sources], device=change.device)
        terms.add_(((change * grad[None]).sum((1, 2, 3, 4)) * later).double().cpu())

    with torch.no_grad(), session(hooks=[masked_hook(masks, replacement, size)], patterns=[read]):
        metric_values(loaded, repeat_batch(batch, copies), metric)
    return terms.tolist()
