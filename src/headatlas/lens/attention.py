"""The lens: headatlas's single integration point with a model.

A custom attention function registered in transformers' ``AttentionInterface`` under the name
``headatlas``. Inside an active :func:`session` it

* returns the real attention output, computed by transformers' own SDPA function;
* computes attention probabilities for just the query rows that a :class:`PatternTap` asks for and
  hands them, one layer at a time, to the tap's callback (so ``[layers, heads, T, T]`` never exists);
* passes each layer's per-head output (``[batch, T, heads, head_dim]``, before ``o_proj``) through
  the session's :data:`OutputHook` s, which may read it (captures, gradients) or replace it
  (ablation, patching);
* when the session has :data:`PatternHook` s, computes the layer's attention eagerly instead, hands the
  whole pattern (:class:`LayerAttention`, probabilities in the autograd graph) to them and uses the
  probabilities they return (gradients with respect to attention, AtP*);
* when the session has a :class:`SharedPrefix` (many rows stepping from one cached prompt prefix), reads
  the prefix's keys and values once per prompt and attends in chunks of rows, so the prefix is never
  copied per row.

Outside a session it is plain SDPA. Query/key come in with RoPE applied and KV heads not yet
repeated; query head ``h`` reads KV head ``h // (heads / kv_heads)``, as ``repeat_kv`` does.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

from ..errors import UnsupportedArchitectureError

LENS_NAME = "headatlas"

PatternCallback = Callable[[int, torch.Tensor], None]
"""Receives ``(layer_idx, probs)`` with ``probs`` of shape ``[batch, heads, rows, keys]`` (float32)."""

OutputHook = Callable[[int, torch.Tensor], "torch.Tensor | None"]
"""Receives ``(layer_idx, head_output)`` of shape ``[batch, T, heads, head_dim]``; may return a replacement."""


@dataclass
class LayerAttention:
    """One layer's whole attention, computed eagerly for the session's pattern hooks.

    ``query`` ``[B, H, Tq, D]`` and ``key`` ``[B, KV, K, D]`` are what the attention function received
    (RoPE applied, KV heads not repeated). ``bias`` ``[B, 1, Tq, K]`` (float32) is the additive mask:
    0 where a query may attend, ``-inf`` where not (or the model's own float mask). ``probs``
    ``[B, H, Tq, K]`` (float32) is ``softmax(logits(scores(query, key)))``, in the autograd graph.
    """

    layer: int
    query: torch.Tensor
    key: torch.Tensor
    scaling: float
    softcap: float | None
    bias: torch.Tensor
    probs: torch.Tensor

    def scores(self, query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
        """Scaled ``query · key`` (shaped like the fields, any leading dims): ``[..., H, Tq, K]``."""
        return attention_scores(query, key, self.scaling)

    def logits(self, scores: torch.Tensor) -> torch.Tensor:
        """What the softmax reads: ``scores`` soft-capped (if the model does) plus the mask."""
        capped = scores if self.softcap is None else torch.tanh(scores / self.softcap) * self.softcap
        return capped + self.bias


PatternHook = Callable[[LayerAttention], "torch.Tensor | None"]
"""Receives one layer's :class:`LayerAttention`; may return replacement probabilities ``[B, H, Tq, K]``."""


@dataclass
class PatternTap:
    """Ask for attention probabilities of selected query rows.

    ``rows`` is ``[batch, R]`` of query positions; ``-1`` marks padding rows, whose probabilities
    come back as zeros. ``layers`` restricts the layers computed (``None``: all).
    """

    rows: torch.Tensor
    callback: PatternCallback
    layers: frozenset[int] | None = None


@dataclass
class SharedPrefix:
    """Keys and values of a cached prefix that many batch rows share, held once per prompt.

    ``layer(l)`` gives layer ``l``'s prefix keys and values ``[P, KV, Tp, D]`` (``None``: the layer has
    no shared prefix); batch row ``i`` continues prompt ``index[i]``. The model's cache hands the attention
    function only the rows' own new keys and values; the lens prepends the prefix, ``chunk_rows`` rows at a
    time. Each row's attention runs the same kernel on the same numbers as over a cache copied per row, without
    that copy: bit for bit the same when a chunk holds all the rows the copied run batches together; with smaller
    chunks equal within float rounding, since SDPA's CPU kernel may split its work by batch size (seen with 2
    threads on an AVX-512 AMD EPYC for single-row queries).
    """

    layer: Callable[[int], tuple[torch.Tensor, torch.Tensor] | None]
    index: torch.Tensor  # [N]
    chunk_rows: int


@dataclass
class LensSession:
    taps: Sequence[PatternTap] = ()
    hooks: Sequence[OutputHook] = ()
    patterns: Sequence[PatternHook] = ()
    prefix: SharedPrefix | None = None
    layers_seen: set[int] = field(default_factory=set)


_ACTIVE: contextvars.ContextVar[LensSession | None] = contextvars.ContextVar("headatlas_lens", default=None)


@contextlib.contextmanager
def session(
    taps: Sequence[PatternTap] = (),
    hooks: Sequence[OutputHook] = (),
    patterns: Sequence[PatternHook] = (),
    prefix: SharedPrefix | None = None,
) -> Iterator[LensSession]:
    """Activate taps and hooks (and a shared prefix) for the forward passes run inside the ``with`` block."""
    if prefix is not None and patterns:
        raise ValueError("pattern hooks need the whole attention; they cannot run with a shared prefix")
    state = LensSession(taps=list(taps), hooks=list(hooks), patterns=list(patterns), prefix=prefix)
    token = _ACTIVE.set(state)
    try:
        yield state
    finally:
        _ACTIVE.reset(token)


def selected_probs(
    query: torch.Tensor,
    key: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    rows: torch.Tensor,
    softcap: float | None = None,
) -> torch.Tensor:
    """Softmax attention of the query rows ``rows`` ([B, R]) over all keys: ``[B, H, R, K]``, float32.

    ``attention_mask`` is what the model hands the attention function: ``None`` (causal), boolean
    (True = may attend) or additive float, shaped ``[B or 1, 1, Tq, K]``.
    """
    batch, n_heads, q_len, dim = query.shape
    n_kv, k_len = key.shape[1], key.shape[2]
    if n_heads % n_kv:
        raise UnsupportedArchitectureError(f"{n_heads} query heads do not divide over {n_kv} KV heads")
    groups = n_heads // n_kv
    n_rows = rows.shape[1]
    safe = rows.clamp(min=0).to(query.device)
    picked = query.gather(2, safe[:, None, :, None].expand(batch, n_heads, n_rows, dim)).float()
    # [B, kv, groups*R, D] @ [B, kv, D, K]: GQA without materialising repeated keys
    grouped = picked.reshape(batch, n_kv, groups * n_rows, dim)
    scores = torch.matmul(grouped, key.float().transpose(-1, -2)).reshape(batch, n_heads, n_rows, k_len)
    scores = scores * scaling
    if softcap is not None:
        scores = torch.tanh(scores / softcap) * softcap
    if attention_mask is None:
        positions = safe + (k_len - q_len)  # absolute position of each query row among the keys
        allowed = torch.arange(k_len, device=query.device)[None, None, :] <= positions[:, :, None]
        scores = scores.masked_fill(~allowed[:, None], float("-inf"))
    else:
        mask = attention_mask.expand(batch, -1, -1, -1)[:, 0]  # [B, Tq, K]
        mask_rows = mask.gather(1, safe[:, :, None].expand(batch, n_rows, mask.shape[-1]))[:, None]
        if mask_rows.dtype == torch.bool:
            scores = scores.masked_fill(~mask_rows, float("-inf"))
        else:
            scores = scores + mask_rows.float()
    probs = torch.softmax(scores, dim=-1)
    valid = (rows >= 0).to(query.device)[:, None, :, None]
    return torch.where(valid & ~probs.isnan(), probs, torch.zeros((), device=probs.device))


def attention_scores(query: torch.Tensor, key: torch.Tensor, scaling: float) -> torch.Tensor:
    """``scaling * q . k`` for every query head and key, float32: ``[..., H, Tq, K]``.

    ``query`` is ``[..., H, Tq, D]`` and ``key`` ``[..., KV, K, D]`` (same leading dims); query head ``h``
    reads KV head ``h // (H / KV)``, without materialising repeated keys.
    """
    *lead, n_heads, q_len, dim = query.shape
    n_kv, k_len = key.shape[-3], key.shape[-2]
    if n_heads % n_kv:
        raise UnsupportedArchitectureError(f"{n_heads} query heads do not divide over {n_kv} KV heads")
    grouped = query.float().reshape(*lead, n_kv, (n_heads // n_kv) * q_len, dim)
    scores = torch.matmul(grouped, key.float().transpose(-1, -2))
    return scores.reshape(*lead, n_heads, q_len, k_len) * scaling


def additive_mask(
    attention_mask: torch.Tensor | None, batch: int, q_len: int, k_len: int, device: torch.device
) -> torch.Tensor:
    """The attention function's mask as an additive float32 bias ``[B, 1, Tq, K]`` (``None``: causal)."""
    if attention_mask is None:
        positions = torch.arange(q_len, device=device)[:, None] + (k_len - q_len)
        allowed = (torch.arange(k_len, device=device)[None, :] <= positions)[None, None].expand(batch, 1, -1, -1)
    elif attention_mask.dtype == torch.bool:
        allowed = attention_mask.expand(batch, -1, -1, -1)[:, :1]
    else:
        return attention_mask.float().expand(batch, -1, -1, -1)[:, :1]
    zero = torch.zeros((), device=device)
    return torch.where(allowed, zero, torch.full((), float("-inf"), device=device))


def masked_softmax(logits: torch.Tensor) -> torch.Tensor:
    """Softmax over the last dim; rows with no allowed key give zeros, not NaN."""
    probs = torch.softmax(logits, dim=-1)
    return torch.where(probs.isnan(), torch.zeros((), device=probs.device), probs)


def _pattern_output(
    state: LensSession,
    layer: int,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    softcap: float | None,
) -> torch.Tensor:
    """Eager attention whose probabilities pass through the session's pattern hooks: ``[B, T, H, D]``."""
    batch, n_heads, q_len, _ = query.shape
    bias = additive_mask(attention_mask, batch, q_len, key.shape[2], query.device)
    record = LayerAttention(layer, query, key, scaling, softcap, bias, probs=torch.zeros(0))
    record.probs = masked_softmax(record.logits(record.scores(query, key)))
    probs = record.probs
    for hook in state.patterns:
        replaced = hook(record)
        if replaced is not None:
            probs = replaced
    groups = n_heads // key.shape[1]
    out = torch.matmul(probs.to(value.dtype).reshape(batch, key.shape[1], groups * q_len, -1), value)
    return out.reshape(batch, n_heads, q_len, -1).transpose(1, 2).contiguous()


def _eager_output(
    module: Any,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    softcap: float,
) -> torch.Tensor:
    """Attention output for soft-capped logits (which SDPA cannot do): ``[B, T, H, D]``."""
    q_len = query.shape[2]
    rows = torch.arange(q_len, device=query.device).expand(query.shape[0], q_len)
    probs = selected_probs(query, key, attention_mask, scaling, rows, softcap).to(value.dtype)
    groups = query.shape[1] // key.shape[1]
    out = torch.matmul(probs.reshape(probs.shape[0], key.shape[1], groups * q_len, -1), value)
    return out.reshape(query.shape[0], query.shape[1], q_len, -1).transpose(1, 2).contiguous()


def lens_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """The function transformers calls in every attention layer once the lens is installed. The arguments
    follow transformers' own ``sdpa_attention_forward`` order (dropout before scaling), so wrappers that pass
    them by position, as kvpress does, reach the right ones."""
    scale = scaling if scaling is not None else query.shape[-1] ** -0.5
    softcap = kwargs.pop("softcap", None)
    state = _ACTIVE.get()
    shared = None if state is None or state.prefix is None else state.prefix.layer(_layer_of(module))
    if state is not None and shared is not None:
        assert state.prefix is not None
        layer = _layer_of(module)
        taps = [tap for tap in state.taps if tap.layers is None or layer in tap.layers]
        out, tapped = _prefixed_attention(
            module, query, key, value, attention_mask, dropout, scale, softcap, kwargs, state.prefix, shared, taps
        )
        state.layers_seen.add(layer)
        for tap, probs in zip(taps, tapped, strict=True):
            tap.callback(layer, probs)
        return _apply_hooks(state, layer, out), None
    if state is not None and state.patterns:
        layer = _layer_of(module)
        out = _pattern_output(state, layer, query, key, value, attention_mask, scale, softcap)
    else:
        out = _plain_output(module, query, key, value, attention_mask, dropout, scale, softcap, kwargs)
    if state is None:
        return out, None
    layer = _layer_of(module)
    state.layers_seen.add(layer)
    for tap in state.taps:
        if tap.layers is None or layer in tap.layers:
            with torch.no_grad():
                tap.callback(layer, selected_probs(query, key, attention_mask, scale, tap.rows, softcap))
    return _apply_hooks(state, layer, out), None


def _plain_output(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float,
    scale: float,
    softcap: float | None,
    kwargs: dict[str, Any],
) -> torch.Tensor:
    """The layer's attention output ``[B, T, H, D]``: transformers' SDPA, or eager for soft-capped logits."""
    if softcap is None:
        out, _ = sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scale, **kwargs
        )
        return out
    return _eager_output(module, query, key, value, attention_mask, scale, softcap)


def _prefixed_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float,
    scale: float,
    softcap: float | None,
    kwargs: dict[str, Any],
    prefix: SharedPrefix,
    shared: tuple[torch.Tensor, torch.Tensor],
    taps: Sequence[PatternTap],
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Attention of rows whose keys and values are ``shared`` (the prefix, one per prompt) followed by their own
    ``key`` / ``value`` (the new positions), ``prefix.chunk_rows`` rows at a time; the output and each tap's
    probabilities, concatenated over the chunks."""
    past_keys, past_values = shared
    n_rows = query.shape[0]
    outs: list[torch.Tensor] = []
    tapped: list[list[torch.Tensor]] = [[] for _ in taps]
    for start in range(0, n_rows, max(prefix.chunk_rows, 1)):
        rows = slice(start, min(start + max(prefix.chunk_rows, 1), n_rows))
        index = prefix.index[rows].to(past_keys.device)
        chunk_key = torch.cat([past_keys[index], key[rows]], dim=-2)
        chunk_value = torch.cat([past_values[index], value[rows]], dim=-2)
        mask = attention_mask
        if mask is not None and mask.shape[0] != 1:
            mask = mask[rows]
        chunk_query = query[rows]
        outs.append(_plain_output(module, chunk_query, chunk_key, chunk_value, mask, dropout, scale, softcap, kwargs))
        with torch.no_grad():
            for probs, tap in zip(tapped, taps, strict=True):
                probs.append(selected_probs(chunk_query, chunk_key, mask, scale, tap.rows[rows], softcap))
        del chunk_key, chunk_value
    return torch.cat(outs), [torch.cat(probs) for probs in tapped]


def _apply_hooks(state: LensSession, layer: int, out: torch.Tensor) -> torch.Tensor:
    for hook in state.hooks:
        replaced = hook(layer, out)
        if replaced is not None:
            out = replaced
    return out


def _layer_of(module: torch.nn.Module) -> int:
    layer = int(getattr(module, "layer_idx", -1))
    if layer < 0:
        raise UnsupportedArchitectureError(f"{type(module).__name__} has no layer_idx; the lens needs it")
    return layer


AttentionInterface.register(LENS_NAME, lens_attention)
AttentionMaskInterface.register(LENS_NAME, sdpa_mask)


def install(model: Any) -> None:
    """Route every attention layer of ``model`` through the lens (idempotent)."""
    model.set_attn_implementation(LENS_NAME)


def is_installed(model: Any) -> bool:
    return getattr(model.config, "_attn_implementation", None) == LENS_NAME
