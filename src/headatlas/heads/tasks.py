"""Shared machinery of the task-defined head types (IOI, function vectors, safety, semantic induction).

These types measure a causal effect per head, which naively costs one forward pass per head. All of
them intervene at the *last* position only (where the answer is predicted), and under causal attention
a change at the last position cannot reach any earlier position. So the prompt minus its last token is
run once with a KV cache, and every head's intervention is then a one-token step from that cache; the
steps of many heads run together as one batch ("settings": copy ``s`` of the batch intervenes on head
``heads[s]``). Interventions go through the lens hooks, like every other intervention in headatlas.
The same holds for an intervention at any one position p: the cache then ends before p and the step
re-runs the prompt from p on (the IOI roles patch at S2 and at the token after S1 this way).
"""

from __future__ import annotations

import copy
import inspect
import weakref
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..causal.metrics import METRICS, FitFn, Metric, ValueFn
from ..errors import ArchitectureUnavailable, InvalidSettingError, UnsupportedArchitectureError
from ..lens import PatternTap, session
from ..models.anatomy import Anatomy, anatomy
from ..models.loader import LoadedModel
from ..probes import ProbeBatch

HeadRef = tuple[int, int]
Reduce = Callable[[torch.Tensor], torch.Tensor]
"""``logits [S, B, V] at the last position -> [S, B, ...]``: what a sweep keeps of each setting."""


@dataclass
class Prefix:
    """A batch of equal-length prompts run up to (not including) one position, with its KV cache."""

    cache: Any
    rest: torch.Tensor  # [B, k] the tokens from that position to the end (k = 1: the last token)
    length: int  # full prompt length T
    batch: int


def equal_length(ids: Sequence[Sequence[int]]) -> torch.Tensor:
    """Stack token lists that must all have one length (the task builders guarantee it)."""
    lengths = {len(s) for s in ids}
    if len(lengths) != 1:
        raise InvalidSettingError(f"prompts of one group must have one token length, got {sorted(lengths)}")
    return torch.tensor([list(s) for s in ids], dtype=torch.long)


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


def _settings_hook(
    heads: Sequence[HeadRef | None], values: Callable[[int], torch.Tensor | None], batch: int
) -> Callable[[int, torch.Tensor], torch.Tensor | None]:
    """Lens hook for a step from a prefix: in copy ``s`` replace head ``heads[s]``'s output at the step's first
    position by ``values(layer)[:, head]``."""
    by_layer: dict[int, list[tuple[int, int]]] = {}
    for s, ref in enumerate(heads):
        if ref is not None:
            by_layer.setdefault(ref[0], []).append((s, ref[1]))

    def hook(layer: int, out: torch.Tensor) -> torch.Tensor | None:
        todo = by_layer.get(layer)
        if not todo:
            return None
        source = values(layer)
        if source is None:
            return None
        source = source.to(device=out.device, dtype=out.dtype)  # [B, H, D], or [H, D] for every prompt alike
        if source.dim() == 2:
            source = source[None]
        new = out.clone()
        for s, head in todo:
            new[s * batch : (s + 1) * batch, 0, head] = source[:, head]
        return new

    return hook


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
) -> torch.Tensor:
    """For each setting (a head, or ``None`` for no intervention), replace that head's output at the prefix's
    position (the last one unless :func:`run_prefix` was given another) by ``values(layer)`` ([B, H, D]) and
    step the rest of the prompt from the cache: ``reduce`` of the last position's logits, stacked ``[S, B, ...]``.

    With ``tap_layers``, ``on_probs(first_setting, layer, probs [S_chunk * B, H, 1, K])`` receives the patched
    position's attention in those layers (the lens computes them for that one row only). With ``reduce=None``
    only the attention is wanted: each pass stops right after the last tapped layer (no later layers, no
    unembedding) and the result is empty.
    """
    per_pass = max(1, max_rows // prefix.batch)
    kept: list[torch.Tensor] = []
    for start in range(0, len(heads), per_pass):
        chunk = list(heads[start : start + per_pass])
        copies = len(chunk)
        cache = copy.deepcopy(prefix.cache)
        index = torch.arange(prefix.batch, device=prefix.rest.device).repeat(copies)
        cache.batch_select_indices(index)
        hooks = [_settings_hook(chunk, values, prefix.batch)]
        taps = []
        if tap_layers is not None and on_probs is not None:
            rows = torch.zeros(copies * prefix.batch, 1, dtype=torch.long, device=prefix.rest.device)

            def callback(layer: int, probs: torch.Tensor, start: int = start) -> None:
                assert on_probs is not None and tap_layers is not None
                on_probs(start, layer, probs)
                if reduce is None and layer == max(tap_layers):
                    raise _Stop

            taps = [PatternTap(rows, callback, layers=tap_layers)]
        try:
            with session(taps=taps, hooks=hooks):
                step = {"input_ids": prefix.rest.repeat(copies, 1), cache_keyword(loaded.model): cache}
                out = loaded.model(**step, use_cache=True, logits_to_keep=1)
        except _Stop:
            continue
        if reduce is not None:
            kept.append(reduce(out.logits[:, -1].float().reshape(copies, prefix.batch, -1)))
    return torch.cat(kept) if kept else torch.zeros(0)


class _Stop(Exception):
    """Ends a forward pass once the attention a sweep needs has been read."""


@torch.no_grad()
def capture_run(
    loaded: LoadedModel,
    ids: torch.Tensor,
    *,
    tap_rows: torch.Tensor | None = None,
    hidden: bool = False,
) -> dict[str, Any]:
    """One unmodified forward pass of equal-length prompts ``ids`` [B, T].

    Returns ``heads`` (every head's output at the last position, ``[L, B, H, D]``), ``logits`` at the last
    position ``[B, V]``, ``probs`` (with ``tap_rows`` [B, R]: the attention of those rows, ``[L, B, H, R, K]``)
    and, with ``hidden``, ``final`` (the residual stream entering the final norm at the last position, ``[B, d]``).
    """
    ids = ids.to(loaded.device)
    heads: dict[int, torch.Tensor] = {}
    probs: dict[int, torch.Tensor] = {}

    def hook(layer: int, out: torch.Tensor) -> None:
        heads[layer] = out[:, -1].detach().float().cpu()

    def tap(layer: int, p: torch.Tensor) -> None:
        probs[layer] = p.detach().cpu()

    taps = [] if tap_rows is None else [PatternTap(tap_rows.to(loaded.device), tap)]
    with session(taps=taps, hooks=[hook]):
        out = loaded.model(input_ids=ids, logits_to_keep=1, output_hidden_states=hidden)
    n_layers = loaded.facts.n_layers
    result: dict[str, Any] = {
        "heads": torch.stack([heads[layer] for layer in range(n_layers)]),
        "logits": out.logits[:, -1].float().cpu(),
    }
    if tap_rows is not None:
        result["probs"] = torch.stack([probs[layer] for layer in range(n_layers)])
    if hidden:
        states = out.hidden_states  # embeddings, outputs of layers 0 .. L-2, then the *normed* final stream
        result["final"] = _final_residual(loaded, states[-2][:, -1], heads[n_layers - 1], states[-1][:, -1])
    return result


def _final_residual(
    loaded: LoadedModel, before: torch.Tensor, last_heads: torch.Tensor, normed: torch.Tensor
) -> torch.Tensor:
    """The residual stream entering the final norm at one position, ``[B, d]``.

    transformers reports the final norm's *output* as the last hidden state, so the last block is redone
    here at that position from its input ``before`` and its heads' outputs ``last_heads`` [B, H, D]
    (attention and MLP, with the family's norms: see :mod:`headatlas.models.anatomy`), and checked against
    the reported ``normed`` output.
    """
    parts = _parts(loaded)
    layer = loaded.facts.n_layers - 1
    out = parts.out(layer)
    flat = last_heads.to(before.device, before.dtype).flatten(1)
    attn = torch.nn.functional.linear(flat, out.weight.reshape(parts.d_model, -1), out.bias)
    x = parts.finish_block(layer, before, attn)
    check = parts.final_norm(x).float()
    error = float((check - normed.float()).abs().max()) / max(float(normed.float().abs().max()), 1e-6)
    if error > 1e-3:
        raise UnsupportedArchitectureError(
            f"could not rebuild the final residual stream of {loaded.facts.architecture!r} (relative error {error:.2g})"
        )
    return x.float().cpu()


def _parts(loaded: LoadedModel) -> Anatomy:
    try:
        return anatomy(loaded)
    except ArchitectureUnavailable as error:
        raise ArchitectureUnavailable(f"direct effects: {error}") from error


@torch.no_grad()
def direct_effects(
    loaded: LoadedModel, heads: torch.Tensor, final: torch.Tensor, directions: torch.Tensor
) -> torch.Tensor:
    """Direct logit attribution of each head's last-position output along ``directions``: ``[B, L, H]``.

    ``heads`` is ``[L, B, H, D]`` (outputs before ``W_O``), ``final`` ``[B, d]`` the residual entering the
    final norm of the run whose norm scales are frozen, ``directions`` ``[B, d]`` unembedding directions
    (e.g. ``U[IO] - U[S]``). Head ``h`` of layer ``l`` writes ``W_O[:, h] a_h`` into the residual stream;
    through the final norm with its ``1/rms`` frozen at the run's value, its direct contribution to the
    logit difference is ``(g * W_O[:, h] a_h) · direction / rms`` (a LayerNorm also centres what the head
    writes, and its bias is no head's). A post-attention norm (Gemma 2/3, OLMo 2) is frozen the same way
    (its ``1/rms`` of the layer's whole attention output). Linear in ``a_h``, so the effect of replacing
    ``a_h`` by ``a'_h`` on the direct path is the difference of two such terms.
    """
    parts = _parts(loaded)
    device, dtype = loaded.device, torch.float32
    final_norm = parts.read_norm(parts.final_norm)
    rms = final_norm.scale(final.to(device))  # [B]
    read = directions.to(device, dtype) * final_norm.gain.to(device) / rms[:, None]  # [B, d]
    if final_norm.centred:
        read = read - read.mean(-1, keepdim=True)
    n_layers, batch, n_heads, _ = heads.shape
    out = torch.zeros(batch, n_layers, n_heads)
    for layer in range(n_layers):
        w_o = parts.out(layer)
        a = heads[layer].to(device, dtype)  # [B, H, D]
        written = torch.einsum("dhk,bhk->bhd", w_o.weight.float(), a)  # [B, H, d]
        post = parts.norm(layer, "attn_out_norm")
        if post is not None:
            total = written.sum(1)
            if w_o.bias is not None:
                total = total + w_o.bias.float()
            post_norm = parts.read_norm(post)
            written = written * post_norm.gain.to(device) / post_norm.scale(total)[:, None, None]
            if post_norm.centred:
                written = written - written.mean(-1, keepdim=True)
        out[:, layer] = torch.einsum("bhd,bd->bh", written, read).cpu()
    return out


# -- per-model memo -----------------------------------------------------------------------------------
_MEMO: weakref.WeakKeyDictionary[Any, dict[Hashable, Any]] = weakref.WeakKeyDictionary()


def memoised(loaded: LoadedModel, key: Hashable, make: Callable[[], Any]) -> Any:
    """Compute ``make()`` once per model and key, so types sharing one experiment (the three IOI types) run it
    once per scan. Keyed weakly on the model object."""
    slot = _MEMO.setdefault(loaded.model, {})
    if key not in slot:
        slot[key] = make()
    return slot[key]


def all_heads(n_layers: int, n_heads: int, below: int | None = None) -> list[HeadRef]:
    """Every head, layer-major; with ``below``, only heads of layers ``< below``."""
    top = n_layers if below is None else min(below, n_layers)
    return [(layer, head) for layer in range(top) for head in range(n_heads)]


def single_token(tokenizer: Any, text: str) -> int | None:
    """The id of ``text`` when this tokenizer makes it exactly one token, else ``None``."""
    ids = tokenizer.encode(text, add_special_tokens=False)
    return int(ids[0]) if len(ids) == 1 else None


def encode(tokenizer: Any, text: str) -> list[int]:
    return [int(i) for i in tokenizer.encode(text, add_special_tokens=False)]


# -- the causal metrics of task types -----------------------------------------------------------------
def prompt_batch(ids: torch.Tensor, answer: torch.Tensor, wrong: torch.Tensor | None = None) -> ProbeBatch:
    """Task prompts as a metric's probe batch, read at the last position (``answer``, optionally ``wrong``)."""
    extras = {"answer": answer} if wrong is None else {"answer": answer, "wrong": wrong}
    rows = torch.full((ids.shape[0], 1), ids.shape[1] - 1)
    return ProbeBatch(input_ids=ids, attention_mask=torch.ones_like(ids), rows=rows, extras=extras)


def last_position_metric(
    name: str,
    description: str,
    probe: str,
    value: ValueFn | None = None,
    needs: tuple[str, ...] = ("answer",),
    fit: FitFn | None = None,
) -> Metric:
    """A metric read at the last position of its probe's prompts, higher = the model does the task better
    (default value: log P(answer))."""
    return Metric(
        name,
        description,
        probe,
        higher_is_better=True,
        rows=METRICS["logit_diff"].rows,
        value=value if value is not None else METRICS["answer_logprob"].value,
        needs=needs,
        fit=fit,
    )
