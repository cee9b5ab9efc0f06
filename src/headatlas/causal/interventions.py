"""Interventions on heads through the lens: zero, mean and resample ablation, activation patching.

All act on a head's output before ``o_proj`` (``[B, T, H, D]`` per layer, already one slice per
*query* head, so GQA/MQA models need nothing special). Many head sets are evaluated in one forward
pass: the batch is repeated once per set ("setting") and each copy ablates its own heads.

Replacement values:

* ``zero``: the head's output becomes 0 at every position.
* ``mean``: a per-head mean vector over the reference batch, pooled over every real token after BOS;
  position 0 gets the head's mean output *at* BOS instead (BOS is the same token in every probe, so
  mean ablation leaves the BOS residual, which sink heads read, as it was). Pooling positions makes
  references of any length usable (needle haystacks differ in length).
* ``resample``: the head's output on *other* inputs of the same length (sample ``i`` reads reference
  sample ``(i + 1) mod B_ref``, so a batch can be its own reference), captured from an unablated run
  (Chan et al. 2022, causal scrubbing).
* patching: a resample whose source is a second input aligned sample by sample (clean -> corrupt
  or corrupt -> clean).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import InvalidSettingError
from ..lens import OutputHook, session
from ..models.facts import ModelFacts
from ..models.loader import LoadedModel
from ..probes import ProbeBatch
from .metrics import Metric, check_fits

HeadRef = tuple[int, int]
METHODS = ("zero", "mean", "resample")
_NAME = re.compile(r"^L(\d+)H(\d+)$", re.IGNORECASE)


def head_label(head: HeadRef) -> str:
    return f"L{head[0]}H{head[1]}"


def parse_heads(heads: str | Iterable[str | Sequence[int]], facts: ModelFacts) -> list[HeadRef]:
    """Heads from ``"L18H6,L17H3"``, a list of such names, or ``(layer, head)`` pairs, checked against the model."""
    items: list[Any] = [s for s in heads.split(",")] if isinstance(heads, str) else list(heads)
    items = [s.strip() if isinstance(s, str) else s for s in items]
    items = [s for s in items if s != ""]
    if not items:
        raise InvalidSettingError("empty head list; name heads as L<layer>H<head>, e.g. L18H6,L17H3")
    out: list[HeadRef] = []
    for item in items:
        if isinstance(item, str):
            match = _NAME.match(item)
            if match is None:
                raise InvalidSettingError(f"bad head name {item!r}; expected L<layer>H<head>, e.g. L18H6")
            layer, head = int(match[1]), int(match[2])
        elif isinstance(item, Sequence) and len(item) == 2 and all(isinstance(v, int) for v in item):
            layer, head = int(item[0]), int(item[1])
        else:
            raise InvalidSettingError(f"bad head {item!r}; give 'L<layer>H<head>' or a (layer, head) pair")
        if not (0 <= layer < facts.n_layers and 0 <= head < facts.n_heads):
            raise InvalidSettingError(
                f"no head L{layer}H{head} in {facts.name}: layers are 0-{facts.n_layers - 1},"
                f" heads 0-{facts.n_heads - 1}"
            )
        if (layer, head) in out:
            raise InvalidSettingError(f"head L{layer}H{head} listed twice")
        out.append((layer, head))
    return out


def head_mask(heads: Iterable[HeadRef], facts: ModelFacts) -> torch.Tensor:
    """``[layers, heads]`` boolean mask of a head set."""
    mask = torch.zeros(facts.n_layers, facts.n_heads, dtype=torch.bool)
    for layer, head in heads:
        mask[layer, head] = True
    return mask


def check_method(method: str) -> str:
    if method not in METHODS:
        raise InvalidSettingError(f"unknown ablation method {method!r}; valid methods are {', '.join(METHODS)}")
    return method


# -- replacement values -----------------------------------------------------------------------------
class Replacement:
    """What an ablated head outputs instead; ``values`` must broadcast against ``[copies*B, T, H, D]``."""

    def values(self, layer: int, out: torch.Tensor, copies: int) -> torch.Tensor:
        raise NotImplementedError


class ZeroReplacement(Replacement):
    def values(self, layer: int, out: torch.Tensor, copies: int) -> torch.Tensor:
        return torch.zeros((), dtype=out.dtype, device=out.device)


@dataclass
class MeanReplacement(Replacement):
    """``stats[layer]`` is ``[2, H, D]``: mean output at BOS (row 0) and over real positions >= 1 (row 1)."""

    stats: torch.Tensor  # [L, 2, H, D]

    def values(self, layer: int, out: torch.Tensor, copies: int) -> torch.Tensor:
        bos, body = self.stats[layer].to(device=out.device, dtype=out.dtype)
        length = out.shape[1]
        full = body[None].expand(length, -1, -1).clone()
        full[0] = bos
        return full[None]


@dataclass
class SourceReplacement(Replacement):
    """Outputs captured from another run: ``cache[layer]`` is ``[B_src, T, H, D]``; sample i reads ``index[i]``."""

    cache: torch.Tensor  # [L, B_src, T, H, D]
    index: torch.Tensor  # [B]

    def values(self, layer: int, out: torch.Tensor, copies: int) -> torch.Tensor:
        if self.cache.shape[2] != out.shape[1]:
            raise InvalidSettingError(
                f"source activations have {self.cache.shape[2]} positions but the run has {out.shape[1]};"
                " resampling and patching need inputs of the same token length"
            )
        picked = self.cache[layer].to(device=out.device, dtype=out.dtype)[self.index.to(out.device)]
        return picked.repeat(copies, 1, 1, 1)


# -- running ----------------------------------------------------------------------------------------
def logits_at_rows(loaded: LoadedModel, batch: ProbeBatch, rows: torch.Tensor) -> torch.Tensor:
    """Forward ``batch`` (inside whatever lens session is active) and return logits at ``rows``: ``[B, R, V]``."""
    safe = rows.clamp(min=0)
    keep = safe.flatten().unique()
    output = loaded.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, logits_to_keep=keep)
    lookup = torch.full((batch.input_ids.shape[1],), 0, dtype=torch.long, device=keep.device)
    lookup[keep] = torch.arange(len(keep), device=keep.device)
    cols = lookup[safe].to(output.logits.device)
    return output.logits.gather(1, cols[:, :, None].expand(-1, -1, output.logits.shape[-1]))


def metric_values(loaded: LoadedModel, batch: ProbeBatch, metric: Metric) -> torch.Tensor:
    """``metric`` per sample for one forward of ``batch`` under the active lens session: ``[B]``."""
    rows = metric.rows(batch).to(batch.input_ids.device)
    return metric.value(logits_at_rows(loaded, batch, rows), batch, rows)


def repeat_batch(batch: ProbeBatch, copies: int) -> ProbeBatch:
    """The batch stacked ``copies`` times (setting-major: copy c holds samples c*B … c*B+B-1)."""
    return ProbeBatch(
        input_ids=batch.input_ids.repeat(copies, 1),
        attention_mask=batch.attention_mask.repeat(copies, 1),
        rows=batch.rows.repeat(copies, 1),
        extras={k: v.repeat(copies, *([1] * (v.dim() - 1))) for k, v in batch.extras.items()},
    )


def masked_hook(masks: torch.Tensor, replacement: Replacement, batch_size: int) -> OutputHook:
    """A lens hook replacing, in copy c of the batch, the heads marked in ``masks[c]`` (``[C, L, H]``)."""
    copies = masks.shape[0]

    def hook(layer: int, out: torch.Tensor) -> torch.Tensor | None:
        layer_mask = masks[:, layer]
        if not bool(layer_mask.any()):
            return None
        select = layer_mask.to(out.device).repeat_interleave(batch_size, 0)[:, None, :, None]
        return torch.where(select, replacement.values(layer, out, copies), out)

    return hook


def run_settings(
    loaded: LoadedModel,
    batches: Sequence[ProbeBatch],
    metric: Metric,
    masks: torch.Tensor,
    replacement: Replacement | None,
    max_batch: int = 16,
) -> torch.Tensor:
    """``metric`` for every setting ``masks[s]`` (``[S, L, H]``), averaged over all samples of ``batches``: ``[S]``.

    Settings are evaluated together, ``max_batch // B`` per forward pass. A setting with an empty
    mask is the unablated model.
    """
    n_settings = masks.shape[0]
    total = torch.zeros(n_settings, dtype=torch.float64)
    count = 0
    for batch in batches:
        check_fits(metric, batch)
        batch = batch.to(loaded.device)
        size = batch.input_ids.shape[0]
        per_pass = max(1, max_batch // size)
        for start in range(0, n_settings, per_pass):
            chunk = masks[start : start + per_pass]
            hooks = [] if replacement is None else [masked_hook(chunk, replacement, size)]
            with torch.no_grad(), session(hooks=hooks):
                values = metric_values(loaded, repeat_batch(batch, len(chunk)), metric)
            total[start : start + len(chunk)] += values.double().reshape(len(chunk), size).sum(1).cpu()
        count += size
    return total / max(count, 1)


def capture(loaded: LoadedModel, batch: ProbeBatch) -> torch.Tensor:
    """Every head's output on ``batch``: ``[L, B, T, H, D]`` (no intervention)."""
    outputs: dict[int, torch.Tensor] = {}

    def hook(layer: int, out: torch.Tensor) -> None:
        outputs[layer] = out.detach().cpu()

    batch = batch.to(loaded.device)
    with torch.no_grad(), session(hooks=[hook]):
        loaded.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, logits_to_keep=1)
    return torch.stack([outputs[layer] for layer in range(loaded.facts.n_layers)])


def mean_stats(loaded: LoadedModel, batches: Sequence[ProbeBatch]) -> torch.Tensor:
    """Per-head mean outputs for mean ablation: ``[L, 2, H, D]`` (row 0 at BOS, row 1 over positions >= 1)."""
    f = loaded.facts
    sums = torch.zeros(f.n_layers, 2, f.n_heads, f.head_dim, dtype=torch.float64)
    counts = torch.zeros(2, dtype=torch.float64)

    for batch in batches:
        batch = batch.to(loaded.device)
        real = batch.attention_mask.bool().clone()
        first = torch.zeros_like(real)
        first[:, 0] = True

        def hook(layer: int, out: torch.Tensor, real: torch.Tensor = real, first: torch.Tensor = first) -> None:
            o = out.detach().double()
            sums[layer, 0] += (o * first[:, :, None, None]).sum((0, 1)).cpu()
            sums[layer, 1] += (o * (real & ~first)[:, :, None, None]).sum((0, 1)).cpu()

        with torch.no_grad(), session(hooks=[hook]):
            loaded.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, logits_to_keep=1)
        counts[0] += float(first.sum())
        counts[1] += float((real & ~first).sum())
    return (sums / counts.clamp(min=1)[None, :, None, None]).float()


def make_replacement(
    loaded: LoadedModel,
    method: str,
    reference: Sequence[ProbeBatch],
) -> Replacement:
    """The replacement for ``method`` with statistics (mean) or activations (resample) from ``reference``."""
    check_method(method)
    if method == "zero":
        return ZeroReplacement()
    if not reference:
        raise InvalidSettingError(f"{method} ablation needs a reference batch")
    if method == "mean":
        return MeanReplacement(mean_stats(loaded, reference))
    if len(reference) != 1:
        raise InvalidSettingError("resample ablation takes one reference batch")
    return SourceReplacement(capture(loaded, reference[0]), torch.zeros(0, dtype=torch.long))


def resample_for(replacement: Replacement, batch_size: int) -> Replacement:
    """Bind a resample source to a target batch size (sample i reads reference sample (i + 1) mod B_ref)."""
    if isinstance(replacement, SourceReplacement) and len(replacement.index) != batch_size:
        n_src = replacement.cache.shape[1]
        if n_src < 2:
            raise InvalidSettingError("resample ablation needs a reference batch of at least 2 samples")
        return SourceReplacement(replacement.cache, (torch.arange(batch_size) + 1) % n_src)
    return replacement


def run_sets(
    loaded: LoadedModel,
    batches: Sequence[ProbeBatch],
    metric: Metric,
    head_sets: Sequence[Sequence[HeadRef]],
    replacement: Replacement,
    max_batch: int = 16,
) -> torch.Tensor:
    """``metric`` with each head set ablated (``[S]``); resample sources are bound per batch size."""
    if not head_sets:
        return torch.zeros(0, dtype=torch.float64)
    masks = torch.stack([head_mask(s, loaded.facts) for s in head_sets])
    if isinstance(replacement, SourceReplacement):
        sizes = {int(b.input_ids.shape[0]) for b in batches}
        if len(sizes) != 1:
            raise InvalidSettingError("resample ablation needs batches of one size")
        replacement = resample_for(replacement, sizes.pop())
    return run_settings(loaded, batches, metric, masks, replacement, max_batch=max_batch)
