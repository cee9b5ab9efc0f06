"""The one intervention engine: head ablation and patching through the lens, many settings per pass.

Every intervention acts on a head's output before ``o_proj`` (``[B, T, H, D]`` per layer, already one
slice per *query* head, so GQA/MQA models need nothing special). A *setting* is a set of heads to
replace (``masks[s]``, ``[L, H]``); many settings are evaluated in one forward pass: the batch is
repeated once per setting ("copy") and one lens hook (:func:`masked_hook`) replaces, in copy ``s``, the
heads of ``masks[s]`` by a :class:`Replacement`'s values. Two runners share that hook:

* :func:`run_settings` runs whole prompts and reads a causal metric (the causal commands,
  verification); the blocks below the lowest layer a pass ablates run once for all its settings;
* :func:`sweep_last` steps from a cached prefix (:func:`run_prefix`): under causal attention an
  intervention at position p cannot reach earlier positions, so the prompt up to p runs once and each
  setting only re-runs the tokens from p on (the task head types: one setting per head).

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
* a step's values (:class:`StepReplacement`): given outputs at the step's first position only.
"""

from __future__ import annotations

import contextlib
import contextvars
import copy
import inspect
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import InvalidSettingError
from ..lens import OutputHook, PatternTap, SharedPrefix, session
from ..models.facts import ModelFacts
from ..models.loader import LoadedModel
from ..probes import ProbeBatch
from .metrics import Metric, check_fits

HeadRef = tuple[int, int]
Reduce = Callable[[torch.Tensor], torch.Tensor]
"""``logits [S, B, V] at the last position -> [S, B, ...]``: what a sweep keeps of each setting."""
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


@dataclass
class StepReplacement(Replacement):
    """Values for a step from a cached prefix: at the step's first position the head outputs
    ``source(layer)`` (``[B, H, D]``, or ``[H, D]`` for every prompt alike; ``None``: unchanged); the
    step's later positions keep their own output."""

    source: Callable[[int], torch.Tensor | None]

    def values(self, layer: int, out: torch.Tensor, copies: int) -> torch.Tensor:
        given = self.source(layer)
        if given is None:
            return out
        given = given.to(device=out.device, dtype=out.dtype)
        given = given[None] if given.dim() == 2 else given
        new = out.clone()
        new[:, 0] = given.expand(out.shape[0] // copies, -1, -1).repeat(copies, 1, 1)
        return new


# -- running ----------------------------------------------------------------------------------------
def logits_at_rows(
    loaded: LoadedModel,
    batch: ProbeBatch,
    rows: torch.Tensor,
    hidden: list[torch.Tensor] | None = None,
    copies: int = 1,
) -> torch.Tensor:
    """Forward ``batch`` (inside whatever lens session is active) and return logits at ``rows``: ``[B, R, V]``.

    A ``hidden`` list receives the model's hidden states (the residual stream entering each layer, first).
    ``copies > 1``: the forward hands back ``copies`` stacked copies of the batch (inside :func:`repeat_from`),
    so the result is ``[copies * B, R, V]``, setting-major as :func:`repeat_batch`.
    """
    safe = rows.clamp(min=0)
    keep = safe.flatten().unique()
    output = loaded.model(
        input_ids=batch.input_ids,
        attention_mask=batch.attention_mask,
        logits_to_keep=keep,
        output_hidden_states=hidden is not None,
        use_cache=False,
    )
    if hidden is not None:
        hidden.extend(output.hidden_states)
    if output.logits.shape[0] != copies * batch.input_ids.shape[0]:
        raise RuntimeError(f"expected {copies} copies of the batch, the model returned {output.logits.shape[0]} rows")
    lookup = torch.full((batch.input_ids.shape[1],), 0, dtype=torch.long, device=keep.device)
    lookup[keep] = torch.arange(len(keep), device=keep.device)
    cols = lookup[safe].to(output.logits.device).repeat(copies, 1)
    return output.logits.gather(1, cols[:, :, None].expand(-1, -1, output.logits.shape[-1]))


def metric_values(
    loaded: LoadedModel,
    batch: ProbeBatch,
    metric: Metric,
    hidden: list[torch.Tensor] | None = None,
    copies: int = 1,
) -> torch.Tensor:
    """``metric`` per sample for one forward of ``batch`` under the active lens session: ``[B]``
    (``hidden``, ``copies``: as :func:`logits_at_rows`; with copies, ``[copies * B]``)."""
    rows = metric.rows(batch).to(batch.input_ids.device)
    logits = logits_at_rows(loaded, batch, rows, hidden, copies)
    if copies > 1:
        batch = repeat_batch(batch, copies)
        rows = rows.repeat(copies, 1)
    return metric.value(logits, batch, rows)


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


def passes(n_settings: int, batch: int, max_rows: int) -> Iterator[slice]:
    """Settings in groups of ``max(1, max_rows // batch)``: what one forward pass evaluates together."""
    per_pass = max(1, max_rows // batch)
    for start in range(0, n_settings, per_pass):
        yield slice(start, min(start + per_pass, n_settings))


PER_SAMPLE_INPUTS = ("hidden_states", "attention_mask", "position_embeddings", "position_ids")
"""What a model hands each block per sample (besides the residual stream, its first argument): repeated with it."""


def _repeat_rows(value: Any, batch: int, copies: int) -> Any:
    if isinstance(value, torch.Tensor) and value.dim() >= 1 and value.shape[0] == batch:
        return value.repeat(copies, *([1] * (value.dim() - 1)))
    if isinstance(value, tuple):
        return tuple(_repeat_rows(v, batch, copies) for v in value)
    return value


@contextlib.contextmanager
def repeat_from(loaded: LoadedModel, first: int, copies: int, batch: int) -> Iterator[bool]:
    """Run the blocks below ``first`` once on the ``batch`` prompts and give each of ``copies`` settings its own
    rows from block ``first`` on (setting-major, as :func:`repeat_batch`).

    Settings that change nothing below block ``first`` compute the same thing there, so a pass of ``copies``
    settings saves ``(1 - 1/copies) * first / n_layers`` of its block work (verification's sets and single
    heads are mostly in later layers). Forward pre-hooks repeat the residual stream entering block ``first``
    and, in every block from there on, the per-sample inputs the model hands each block
    (:data:`PER_SAMPLE_INPUTS`). Yields
    whether it is active: not for ``first`` 0 or one copy, nor for a family without a block adapter
    (:mod:`headatlas.models.anatomy`), where the caller repeats the whole batch instead.
    """
    from ..models.anatomy import ArchitectureUnavailable, anatomy

    try:
        blocks = anatomy(loaded).layers if 0 < first < loaded.facts.n_layers and copies > 1 else None
    except ArchitectureUnavailable:
        blocks = None
    if blocks is None:
        yield False
        return

    def pre_hook(module: Any, args: tuple, kwargs: dict[str, Any]) -> tuple[tuple, dict[str, Any]]:
        args = (_repeat_rows(args[0], batch, copies), *args[1:]) if args else args
        kwargs = {k: _repeat_rows(v, batch, copies) if k in PER_SAMPLE_INPUTS else v for k, v in kwargs.items()}
        return args, kwargs

    handles = [blocks[i].register_forward_pre_hook(pre_hook, with_kwargs=True) for i in range(first, len(blocks))]
    try:
        yield True
    finally:
        for handle in handles:
            handle.remove()


def first_layer(masks: torch.Tensor) -> int:
    """The lowest layer any of ``masks`` (``[S, L, H]``) touches; ``L`` when none touches any."""
    touched = masks.flatten(2).any(-1).any(0).nonzero()
    return int(touched[0]) if len(touched) else int(masks.shape[1])


def settings_masks(settings: Sequence[HeadRef | None], facts: ModelFacts) -> torch.Tensor:
    """One mask per setting, ``[S, L, H]``: the one head ``settings[s]``, or none for ``None``."""
    masks = torch.zeros(len(settings), facts.n_layers, facts.n_heads, dtype=torch.bool)
    for s, ref in enumerate(settings):
        if ref is not None:
            masks[s, ref[0], ref[1]] = True
    return masks


SHARED_PASS_GROWTH = 2
"""Where a pass shares its lower blocks (:func:`repeat_from`), it may hold up to this many times ``max_batch`` rows,
as the memory budget allows: more settings per pass run those blocks once for more of them."""


def ffn_width(loaded: LoadedModel) -> int:
    """The MLP's hidden width (``intermediate_size``; 4 x d_model where the config does not say), for the
    memory estimates of a pass."""
    return int(getattr(loaded.model.config, "intermediate_size", None) or 4 * loaded.facts.d_model)


def whole_row_bytes(loaded: LoadedModel, batch: ProbeBatch, metric: Metric) -> int:
    """Bytes one prompt row of a whole-prompt pass holds at its peak: its logits at the metric's rows (float32,
    x3 for the metric's temporaries) and one block's float32 activations (residual stream, attention with its
    score matrix, MLP)."""
    tokens = int(batch.input_ids.shape[1])
    facts = loaded.facts
    block = tokens * (8 * facts.d_model + 3 * ffn_width(loaded) + 2 * facts.n_heads * tokens)
    return 4 * (block + 3 * int(metric.rows(batch).shape[1]) * facts.vocab_size)


def pass_rows(loaded: LoadedModel, batch: ProbeBatch, metric: Metric, max_batch: int, shared: bool) -> int:
    """Prompt rows per whole-prompt pass: ``max_batch`` (up to :data:`SHARED_PASS_GROWTH` times it where passes
    share their lower blocks), lowered to what the active :func:`memory_budget` allows, at least one setting."""
    size = int(batch.input_ids.shape[0])
    budget = _BUDGET.get()
    if budget is None:
        return max_batch
    most = max_batch * (SHARED_PASS_GROWTH if shared else 1)
    return max(size, min(most, budget // whole_row_bytes(loaded, batch, metric)))


def run_settings(
    loaded: LoadedModel,
    batches: Sequence[ProbeBatch],
    metric: Metric,
    masks: torch.Tensor,
    replacement: Replacement | None,
    max_batch: int = 16,
    *,
    per_sample: bool = False,
    share_lower: bool = True,
) -> torch.Tensor:
    """``metric`` for every setting ``masks[s]`` (``[S, L, H]``), averaged over all samples of ``batches``: ``[S]``
    (with ``per_sample``: each sample's value, ``[S, N]`` float64, samples in batch order).

    Settings are evaluated together, ``max_batch // B`` per forward pass (sized by :func:`pass_rows` inside a
    :func:`memory_budget`), in order of the lowest layer they ablate; the blocks below a pass's lowest layer
    run once for all its settings (:func:`repeat_from`; ``share_lower=False`` repeats the whole batch per
    setting, the same values up to float rounding). A setting with an empty mask is the unablated model.
    """
    n_settings = masks.shape[0]
    total = torch.zeros(n_settings, dtype=torch.float64)
    samples: list[torch.Tensor] = []
    count = 0
    firsts = [first_layer(m[None]) for m in masks]  # a pass shares the blocks below its settings' lowest layer
    earlier = _WHOLE_PASSES.get()
    shared_work = share_lower and replacement is not None and not earlier
    order = sorted(range(n_settings), key=lambda s: -firsts[s]) if shared_work else list(range(n_settings))
    for batch in batches:
        check_fits(metric, batch)
        batch = batch.to(loaded.device)
        size = batch.input_ids.shape[0]
        each = torch.zeros(n_settings, size, dtype=torch.float64)
        rows = max_batch if earlier else pass_rows(loaded, batch, metric, max_batch, shared_work)
        for part in passes(n_settings, size, rows):
            index = order[part]
            chunk = masks[index]
            hooks = [] if replacement is None else [masked_hook(chunk, replacement, size)]
            first = min(firsts[s] for s in index) if shared_work else 0
            with torch.no_grad(), session(hooks=hooks), repeat_from(loaded, first, len(chunk), size) as shared:
                if shared:
                    values = metric_values(loaded, batch, metric, copies=len(chunk))
                else:
                    values = metric_values(loaded, repeat_batch(batch, len(chunk)), metric)
            each[index] = values.double().reshape(len(chunk), size).cpu()
        total += each.sum(1)
        samples.append(each)
        count += size
    if per_sample:
        return torch.cat(samples, 1) if samples else torch.zeros(n_settings, 0, dtype=torch.float64)
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
    *,
    per_sample: bool = False,
) -> torch.Tensor:
    """``metric`` with each head set ablated (``[S]``, or ``[S, N]`` per sample); resample sources are bound
    per batch size."""
    if not head_sets:
        return torch.zeros(0, dtype=torch.float64)
    masks = torch.stack([head_mask(s, loaded.facts) for s in head_sets])
    if isinstance(replacement, SourceReplacement):
        sizes = {int(b.input_ids.shape[0]) for b in batches}
        if len(sizes) != 1:
            raise InvalidSettingError("resample ablation needs batches of one size")
        replacement = resample_for(replacement, sizes.pop())
    return run_settings(loaded, batches, metric, masks, replacement, max_batch=max_batch, per_sample=per_sample)


# -- steps from a cached prefix -------------------------------------------------------------------------
@dataclass
class Prefix:
    """A batch of equal-length prompts run up to (not including) one position, with its KV cache."""

    cache: Any
    rest: torch.Tensor  # [B, k] the tokens from that position to the end (k = 1: the last token)
    length: int  # full prompt length T
    batch: int


def cache_keyword(model: Any) -> str:
    """The KV-cache keyword of this transformers release: ``cache`` (5.24 on) or ``past_key_values``."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


@torch.no_grad()
def run_prefix(loaded: LoadedModel, ids: torch.Tensor, position: int = -1) -> Prefix:
    """Run ``ids[:, :position]`` once and keep its KV cache (no intervention); default: all but the last token."""
    position = position % ids.shape[1] if position < 0 else position
    if not 0 < position < ids.shape[1]:
        raise InvalidSettingError(f"a task prompt needs tokens before and at position {position}")
    ids = ids.to(loaded.device)
    out = loaded.model(input_ids=ids[:, :position], use_cache=True, logits_to_keep=1)
    return Prefix(
        cache=getattr(out, cache_keyword(loaded.model)),
        rest=ids[:, position:],
        length=int(ids.shape[1]),
        batch=int(ids.shape[0]),
    )


_BUDGET: contextvars.ContextVar[int | None] = contextvars.ContextVar("headatlas_sweep_budget", default=None)


@contextlib.contextmanager
def memory_budget(max_bytes: int | None) -> Iterator[None]:
    """Bound the working memory of the sweeps run inside the block (``None``: no bound beyond ``max_rows``).

    A sweep pass holds a copy of the prefix's KV cache for every setting it runs plus their logits; with a
    budget, :func:`sweep_last` runs as many settings per pass as fit in ``max_bytes``. The answers do not
    depend on the grouping beyond float rounding (each setting is its own rows of the batch).
    """
    token = _BUDGET.set(max_bytes)
    try:
        yield
    finally:
        _BUDGET.reset(token)


ATTENTION_CHUNK_BYTES = 64 * 2**20
"""Keys and values a chunk of sweep rows holds at once in one layer (prefix included), without a budget."""


def _cache_layers(prefix: Prefix) -> list[Any]:
    return list(getattr(prefix.cache, "layers", []))


def _tensor_bytes(layers: Iterable[Any]) -> int:
    total = 0
    for layer in layers:
        for name in ("keys", "values"):
            tensor = getattr(layer, name, None)
            if isinstance(tensor, torch.Tensor):
                total += tensor.numel() * tensor.element_size()
    return total


def shares_prefix(prefix: Prefix) -> bool:
    """Whether the sweep rows can read ``prefix``'s cache in place (:func:`shared_cache`): a dynamic cache
    whose layers grow by concatenation (full or sliding window), as transformers builds by default."""
    from transformers.cache_utils import DynamicLayer, DynamicSlidingWindowLayer

    layers = _cache_layers(prefix)
    return bool(layers) and all(type(layer) in (DynamicLayer, DynamicSlidingWindowLayer) for layer in layers)


DEFAULT_BUDGET_SHARE = 0.25
"""Share of the free memory (RAM, or the GPU's) a scan's batched steps may hold when no budget is given."""


def default_budget(device: torch.device | str = "cpu") -> int | None:
    """:data:`DEFAULT_BUDGET_SHARE` of the memory free now on ``device`` (``MemAvailable``, or the CUDA device's
    free memory), in bytes; ``None`` where that cannot be read (no bound)."""
    where = torch.device(device)
    if where.type == "cuda" and torch.cuda.is_available():
        free, _ = torch.cuda.mem_get_info(where)
        return int(free * DEFAULT_BUDGET_SHARE)
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(int(line.split()[1]) * 1024 * DEFAULT_BUDGET_SHARE)
    except OSError:
        return None
    return None


_COPY_PREFIX: contextvars.ContextVar[bool] = contextvars.ContextVar("headatlas_copy_prefix", default=False)


@contextlib.contextmanager
def prefix_copies() -> Iterator[None]:
    """Inside the block, sweeps copy the prefix cache once per setting (the way they ran before the rows read it
    in place): the baseline of ``python -m headatlas.bench scan``. Same answers, more memory."""
    token = _COPY_PREFIX.set(True)
    try:
        yield
    finally:
        _COPY_PREFIX.reset(token)


_WHOLE_PASSES: contextvars.ContextVar[bool] = contextvars.ContextVar("headatlas_whole_passes", default=False)


@contextlib.contextmanager
def earlier_paths() -> Iterator[None]:
    """Inside the block, sweeps copy the prefix cache per setting (:func:`prefix_copies`) and whole-prompt passes
    repeat the whole batch per setting, ``max_batch`` rows each, whatever the budget: the way a scan ran before
    :func:`repeat_from` and :func:`pass_rows`, the baseline of ``python -m headatlas.bench scan``."""
    token = _WHOLE_PASSES.set(True)
    try:
        with prefix_copies():
            yield
    finally:
        _WHOLE_PASSES.reset(token)


def active_budget() -> int | None:
    """The bytes the active :func:`memory_budget` allows (``None``: no bound)."""
    return _BUDGET.get()


def row_bytes(prefix: Prefix, vocab_size: int) -> int:
    """Bytes one prompt row of a sweep pass holds: its logits (float32, x3 for the reductions' temporaries) and,
    where the prefix cannot be shared (:func:`shares_prefix`), its own copy of the prefix cache."""
    cache_bytes = 0 if shares_prefix(prefix) else _tensor_bytes(_cache_layers(prefix)) // max(prefix.batch, 1)
    return cache_bytes + 3 * 4 * vocab_size


def budget_rows(prefix: Prefix, vocab_size: int, max_rows: int) -> int:
    """``max_rows``, lowered to what the active :func:`memory_budget` allows (at least one setting's rows)."""
    budget = _BUDGET.get()
    if budget is None:
        return max_rows
    return max(prefix.batch, min(max_rows, budget // row_bytes(prefix, vocab_size)))


def shared_cache(prefix: Prefix, rows: int, n_heads: int) -> tuple[Any, SharedPrefix]:
    """A cache for ``rows`` sweep rows (row i continues prompt ``i mod prefix.batch``) that reads the prefix's
    keys and values in place instead of copying them per row, and the lens's :class:`SharedPrefix` that
    prepends them. The view reports the prefix's lengths (positions and masks come out as for a copy) and
    keeps nothing: ``prefix.cache`` is left as it was, ready for the next pass."""
    layers = _cache_layers(prefix)
    view = copy.copy(prefix.cache)
    view.layers = [_pass_through(layer) for layer in layers]
    longest = max((int(layer.keys.shape[-2]) for layer in layers), default=0) + int(prefix.rest.shape[1])
    dim = max((int(layer.keys.shape[-1]) for layer in layers), default=1)
    per_row = 2 * 2 * n_heads * longest * dim * 4  # keys and values, prefixed and as SDPA expands them
    budget = _BUDGET.get()
    limit = ATTENTION_CHUNK_BYTES if budget is None else min(ATTENTION_CHUNK_BYTES, max(budget // 4, 1))
    shared = SharedPrefix(
        layer=lambda index: (layers[index].keys, layers[index].values) if index < len(layers) else None,
        index=torch.arange(prefix.batch, device=prefix.rest.device).repeat(rows // prefix.batch),
        chunk_rows=max(1, limit // per_row),
    )
    return view, shared


def _pass_through(layer: Any) -> Any:
    """A shallow copy of a cache layer whose ``update`` keeps nothing and hands back only the new keys and
    values (the lens's :class:`SharedPrefix` adds the prefix)."""
    view = copy.copy(layer)

    def update(key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        return key_states, value_states

    view.update = update
    return view


class _Stop(Exception):
    """Ends a forward pass once the attention a sweep needs has been read."""


@torch.no_grad()
def sweep_last(
    loaded: LoadedModel,
    prefix: Prefix,
    heads: Sequence[HeadRef | None],
    values: Callable[[int], torch.Tensor | None],
    reduce: Reduce | None,
    *,
    tap_layers: frozenset[int] | None = None,
    on_probs: Callable[[int, int, torch.Tensor], None] | None = None,
    max_rows: int = 512,
    share_prefix: bool | None = None,
) -> torch.Tensor:
    """For each setting (a head, or ``None`` for no intervention), replace that head's output at the prefix's
    position (the last one unless :func:`run_prefix` was given another) by ``values(layer)`` ([B, H, D]) and
    step the rest of the prompt from the cache: ``reduce`` of the last position's logits, stacked ``[S, B, ...]``.

    With ``tap_layers``, ``on_probs(first_setting, layer, probs [S_chunk * B, H, 1, K])`` receives the patched
    position's attention in those layers (the lens computes them for that one row only). With ``reduce=None``
    only the attention is wanted: each pass stops right after the last tapped layer (no later layers, no
    unembedding) and the result is empty. ``max_rows`` bounds settings x prompts per pass, and an active
    :func:`memory_budget` may lower it. The rows read the prefix's cache in place (:func:`shared_cache`; the
    answers are those of a copy per row, bit for bit unless the attention is cut into smaller chunks than the
    pass, see :class:`~headatlas.lens.SharedPrefix`); ``share_prefix=False`` (default: unless inside
    :func:`prefix_copies`), or a cache kind the lens cannot read in place, copies the prefix cache once per
    setting instead.
    """
    masks = settings_masks(heads, loaded.facts)
    replacement = StepReplacement(values)
    kept: list[torch.Tensor] = []
    if share_prefix is None:
        share_prefix = not _COPY_PREFIX.get()
    shared = share_prefix and shares_prefix(prefix)
    for part in passes(len(heads), prefix.batch, budget_rows(prefix, loaded.facts.vocab_size, max_rows)):
        copies = part.stop - part.start
        if shared:
            cache, reads = shared_cache(prefix, copies * prefix.batch, loaded.facts.n_heads)
        else:  # a cache kind the lens cannot read in place: a copy of the prefix per setting
            cache, reads = copy.deepcopy(prefix.cache), None
            cache.batch_select_indices(torch.arange(prefix.batch, device=prefix.rest.device).repeat(copies))
        hooks = [masked_hook(masks[part], replacement, prefix.batch)]
        taps = []
        if tap_layers is not None and on_probs is not None:
            rows = torch.zeros(copies * prefix.batch, 1, dtype=torch.long, device=prefix.rest.device)

            def callback(layer: int, probs: torch.Tensor, start: int = part.start) -> None:
                assert on_probs is not None and tap_layers is not None
                on_probs(start, layer, probs)
                if reduce is None and layer == max(tap_layers):
                    raise _Stop

            taps = [PatternTap(rows, callback, layers=tap_layers)]
        try:
            with session(taps=taps, hooks=hooks, prefix=reads):
                step = {"input_ids": prefix.rest.repeat(copies, 1), cache_keyword(loaded.model): cache}
                out = loaded.model(**step, use_cache=True, logits_to_keep=1)
        except _Stop:
            continue
        finally:
            del cache
        if reduce is not None:
            kept.append(reduce(out.logits[:, -1].float().reshape(copies, prefix.batch, -1)))
        del out
    return torch.cat(kept) if kept else torch.zeros(0)
