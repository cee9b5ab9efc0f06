"""A transformers ``Cache`` that really holds less: streaming heads keep only sink + recent tokens.

Semantics (the same as kvpress's presses, which compress after the prefill): the prefill attends with the
full context on every head; afterwards a streaming KV head holds its first ``sink`` tokens and a ring
buffer of its last ``recent`` tokens, so at decode position ``p`` it sees keys ``j < sink`` or
``p - recent < j <= p``. Full heads grow as in ``DynamicCache``.

Heads of one layer with the same window share a tensor (a "group"); the attention function
:data:`KV_ATTENTION` runs SDPA once per group over that group's own keys, so a streaming head's keys
are never padded back to the full length. ``masked=True`` builds the *simulation* of the same policy
instead: every head keeps the full cache and the window is enforced by an attention mask — greedy
outputs of the two must agree.

Use through :func:`policy_attention` (switches the model's attention function while it is active). The
lens's taps and hooks are not applied on the split decode path.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from transformers import AttentionInterface
from transformers.cache_utils import Cache, CacheLayerMixin, DynamicSlidingWindowLayer
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

from ..lens.attention import lens_attention
from .policy import HeadPolicy, KVPolicy

KV_ATTENTION = "headatlas_kv"
_PENDING = threading.local()


@dataclass
class _Group:
    kv_heads: list[int]
    q_heads: list[int]
    sink: int
    recent: int | None  # None: full cache


def _groups(heads: Sequence[HeadPolicy], group_size: int) -> list[_Group]:
    by_window: dict[tuple[int, int | None], _Group] = {}
    for h in heads:
        key = (h.sink, h.recent) if not h.full else (0, None)
        g = by_window.setdefault(key, _Group([], [], key[0], key[1]))
        g.kv_heads.append(h.kv_head)
        g.q_heads.extend(range(h.kv_head * group_size, (h.kv_head + 1) * group_size))
    return sorted(by_window.values(), key=lambda g: (g.recent is not None, g.recent or 0))


class PolicyLayer(CacheLayerMixin):
    """One attention layer's cache under a policy: one tensor pair per window group.

    A streaming group's store: ``k``, ``v`` of shape (batch, heads, sink + recent, dim), ``pos`` (batch,
    sink + recent) the position held in each slot (-1: empty), and with the compensation token ``ck``, ``cv``
    (batch, heads, dim) the sums of the dropped keys and values and ``n`` (batch,) how many were dropped.
    Each row's sink is its own first real tokens (``start``: left padding per row).
    """

    is_sliding = False
    is_compileable = False
    is_croppable = False

    def __init__(
        self,
        heads: Sequence[HeadPolicy],
        group_size: int,
        *,
        index: int,
        masked: bool = False,
        compensation: bool = False,
    ) -> None:
        super().__init__()
        self.index = index
        self.groups = _groups(heads, group_size)
        self.masked = masked
        self.compensation = compensation
        self.seen = 0
        self.start: torch.Tensor | None = None  # (batch,) first real position of each row
        self.store: list[dict[str, torch.Tensor]] = []

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        self.device = key_states.device
        self.is_initialized = True

    def fill(self, key_states: torch.Tensor, value_states: torch.Tensor, start: torch.Tensor | None = None) -> None:
        """Hold what a prefill of ``key_states`` leaves: all of it on full heads, each row's first ``sink`` real
        tokens and last ``recent`` tokens on streaming heads (and the mean of the rest, with compensation)."""
        b, _, q, _ = key_states.shape
        dev = key_states.device
        self.start = torch.zeros(b, dtype=torch.long, device=dev) if start is None else start.to(dev)
        self.store = []
        cols = torch.arange(q, device=dev)
        rel = cols[None, :] - self.start[:, None]  # (batch, q): position within the row's real tokens
        for g in self.groups:
            idx = torch.tensor(g.kv_heads, device=dev)
            k, v = key_states.index_select(1, idx), value_states.index_select(1, idx)
            if g.recent is None:
                self.store.append({"k": k.contiguous(), "v": v.contiguous()})
                continue
            slots = g.sink + g.recent
            keep = (rel >= 0) & ((rel < g.sink) | (cols[None, :] >= q - g.recent))
            order = torch.sort(torch.where(keep, cols[None, :], q + cols[None, :]), dim=-1).values[:, :slots]
            pos = torch.full((b, slots), -1, dtype=torch.long, device=dev)
            pos[:, : order.shape[1]] = torch.where(order < q, order, -1)
            src = pos.clamp(min=0)[:, None, :, None].expand(b, k.shape[1], slots, k.shape[-1])
            held = (pos >= 0)[:, None, :, None]
            entry = {"k": k.gather(2, src) * held, "v": v.gather(2, src) * held, "pos": pos}
            if self.compensation:
                dropped = ((rel >= g.sink) & (cols[None, :] < q - g.recent)).to(k.dtype)
                entry["ck"] = torch.einsum("bq,bnqd->bnd", dropped, k)
                entry["cv"] = torch.einsum("bq,bnqd->bnd", dropped, v)
                entry["n"] = dropped.sum(-1)
            self.store.append(entry)
        self.seen = q

    def _write(self, g: _Group, s: dict[str, torch.Tensor], k: torch.Tensor, v: torch.Tensor, p: int) -> None:
        """Put position ``p`` (keys ``k``: batch, heads, dim) in each row's ring: an empty slot, else the
        oldest non-sink one (whose entry joins the compensation token)."""
        assert g.recent is not None and self.start is not None
        pos = s["pos"]
        rows = torch.arange(pos.shape[0], device=pos.device)
        sink = (pos >= 0) & (pos - self.start[:, None] < g.sink)
        age = torch.where(pos < 0, -1, torch.where(sink, torch.iinfo(torch.long).max, pos))
        slot = age.argmin(-1)
        if self.compensation:
            evicted = (pos[rows, slot] >= 0).to(k.dtype)
            s["ck"] = s["ck"] + s["k"][rows, :, slot] * evicted[:, None, None]
            s["cv"] = s["cv"] + s["v"][rows, :, slot] * evicted[:, None, None]
            s["n"] = s["n"] + evicted
        s["k"][rows, :, slot] = k
        s["v"][rows, :, slot] = v
        pos[rows, slot] = p

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        q = key_states.shape[-2]
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        prefill = self.seen == 0
        if self.masked:
            return self._update_masked(key_states, value_states, prefill)
        if prefill:
            self.fill(key_states, value_states)
            _PENDING.value = (self, None, key_states, value_states)  # kv_attention refills for left padding
            return key_states, value_states  # the prefill attends with the full context on every head
        p = self.seen
        b = key_states.shape[0]
        new_pos = torch.arange(p, p + q, device=key_states.device).expand(b, q)
        views: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, tuple[torch.Tensor, ...] | None]] = []
        for g, s in zip(self.groups, self.store, strict=True):
            idx = torch.tensor(g.kv_heads, device=key_states.device)
            k, v = key_states.index_select(1, idx), value_states.index_select(1, idx)
            if g.recent is None:
                s["k"] = torch.cat([s["k"], k], dim=-2)
                s["v"] = torch.cat([s["v"], v], dim=-2)
                views.append((s["k"], s["v"], None, None))
                continue
            comp = (s["ck"], s["cv"], s["n"]) if self.compensation else None
            if q > 1:  # a chunk: attend over the held window plus the whole chunk, then keep what the ring keeps
                views.append(
                    (
                        torch.cat([s["k"], k], dim=-2),
                        torch.cat([s["v"], v], dim=-2),
                        torch.cat([s["pos"], new_pos], dim=-1),
                        comp,  # the sums before the chunk: its rows add what they no longer see themselves
                    )
                )
            for i in range(q):
                self._write(g, s, k[:, :, i], v[:, :, i], p + i)
            if q == 1:  # the slot just written held position p - recent, which p no longer sees: attend in place
                views.append((s["k"], s["v"], s["pos"], (s["ck"], s["cv"], s["n"]) if self.compensation else None))
        self.seen += q
        _PENDING.value = (self, p, views)
        full = self.full_store()
        if full is not None:
            return full["k"], full["v"]
        return key_states[:, :, :0], value_states[:, :, :0]

    def _update_masked(
        self, key_states: torch.Tensor, value_states: torch.Tensor, prefill: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if prefill:
            self.store = [{"k": key_states, "v": value_states}]
        else:
            self.store[0]["k"] = torch.cat([self.store[0]["k"], key_states], dim=-2)
            self.store[0]["v"] = torch.cat([self.store[0]["v"], value_states], dim=-2)
            _PENDING.value = (self, self.seen, [])
        self.seen += key_states.shape[-2]
        return self.store[0]["k"], self.store[0]["v"]

    def full_store(self) -> dict[str, torch.Tensor] | None:
        for g, s in zip(self.groups, self.store, strict=False):  # the masked simulation keeps one store
            if g.recent is None:
                return s
        return None

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for s in self.store for t in s.values())

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.seen + query_length, 0

    def get_seq_length(self) -> int:
        return self.seen

    def get_max_length(self) -> int:
        return -1

    def reset(self) -> None:
        self.store, self.seen, self.is_initialized, self.start = [], 0, False, None

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        for s in self.store:
            for name, t in s.items():
                s[name] = t.index_select(0, beam_idx.to(t.device))
        if self.start is not None:
            self.start = self.start.index_select(0, beam_idx.to(self.start.device))


class PolicyCache(Cache):
    """The policy as a cache: ``masked=False`` holds less, ``masked=True`` simulates it by masking.

    Batches may be left-padded to unequal lengths (pass the ``attention_mask``): each row's sink is its own
    first real tokens. Right padding is not supported.
    """

    def __init__(self, policy: KVPolicy, config: Any, *, masked: bool = False) -> None:
        policy.check_model(config)
        text = config.get_text_config(decoder=True) if hasattr(config, "get_text_config") else config
        group = text.num_attention_heads // (getattr(text, "num_key_value_heads", None) or text.num_attention_heads)
        types = getattr(text, "layer_types", None) or ["full_attention"] * text.num_hidden_layers
        own = getattr(text, "sliding_window", None) if "sliding_attention" in types else None
        local = min(policy.local_window or own, own) if own else None
        layers: list[Any] = []
        for i, kind in enumerate(types):
            if kind == "sliding_attention":  # already a window: the model's, or the policy's shorter one (every
                # sliding layer alike, since transformers builds one mask for all of them)
                assert local is not None
                layers.append(DynamicSlidingWindowLayer(sliding_window=local))
            else:
                layers.append(
                    PolicyLayer(policy.layer(i), group, index=i, masked=masked, compensation=policy.compensation)
                )
        super().__init__(layers=layers)
        self.policy = policy
        self.masked = masked

    def nbytes(self) -> int:
        """Bytes of keys and values (and ring positions, compensation sums) held now."""
        return cache_nbytes(self)


def cache_nbytes(cache: Any) -> int:
    """Bytes of keys and values held by any transformers cache (ours counts its per-group tensors)."""
    total = 0
    for layer in cache.layers:
        if isinstance(layer, PolicyLayer):
            total += layer.nbytes()
        elif getattr(layer, "keys", None) is not None and isinstance(layer.keys, torch.Tensor):
            total += layer.keys.numel() * layer.keys.element_size() + layer.values.numel() * layer.values.element_size()
    return total


def _allowed(attention_mask: torch.Tensor | None) -> torch.Tensor | None:
    """The model's mask as booleans (True: may attend), or None."""
    if attention_mask is None or attention_mask.dtype == torch.bool:
        return attention_mask
    return attention_mask > torch.finfo(attention_mask.dtype).min / 2


def row_starts(attention_mask: torch.Tensor | None, batch: int, device: torch.device) -> torch.Tensor:
    """Each row's first real position: the first column its last query may attend (left padding)."""
    allowed = _allowed(attention_mask)
    if allowed is None:
        return torch.zeros(batch, dtype=torch.long, device=device)
    last = allowed[:, 0, -1, :].expand(batch, -1)
    return last.to(torch.int32).argmax(-1).to(device)


def _compensated(
    keys: torch.Tensor,
    values: torch.Tensor,
    allowed: torch.Tensor,
    dropped: torch.Tensor,
    base: tuple[torch.Tensor, ...] | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Keys, values and an additive mask with one compensation column per query row (RazorAttention).

    ``dropped`` (batch, q, columns): the columns a row no longer sees, added to ``base`` (sums and count of
    what the cache dropped before). The column holds their mean key and value; its score gets ``+ log n``,
    so it weighs as much as the ``n`` dropped tokens would if they all had the mean key.
    """
    d = dropped.to(keys.dtype)
    sum_k = torch.einsum("bqs,bnsd->bnqd", d, keys)
    sum_v = torch.einsum("bqs,bnsd->bnqd", d, values)
    n = d.sum(-1)
    if base is not None:
        sum_k, sum_v, n = sum_k + base[0][:, :, None], sum_v + base[1][:, :, None], n + base[2][:, None]
    denom = n.clamp(min=1)[:, None, :, None]
    q_len = dropped.shape[1]
    eye = torch.eye(q_len, dtype=torch.bool, device=keys.device)[None, None]
    log_n = torch.where(n > 0, n.clamp(min=1).log(), float("-inf"))[:, None, :, None]
    comp_bias = torch.where(eye, log_n, float("-inf"))
    bias = torch.zeros(allowed.shape, dtype=keys.dtype, device=keys.device).masked_fill(~allowed, float("-inf"))
    bias = torch.cat([bias.expand(comp_bias.shape[0], -1, -1, -1), comp_bias.to(keys.dtype)], dim=-1)
    return torch.cat([keys, sum_k / denom], dim=-2), torch.cat([values, sum_v / denom], dim=-2), bias


def kv_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """Attention for :class:`PolicyCache`: one SDPA call per window group on decode steps, else the lens."""
    pending = getattr(_PENDING, "value", None)
    _PENDING.value = None
    if pending is None or pending[0].index != getattr(module, "layer_idx", None):
        return lens_attention(module, query, key, value, attention_mask, scaling=scaling, dropout=dropout, **kwargs)
    if pending[1] is None:  # the real cache's prefill: the rings were filled without padding; refill if padded
        layer = pending[0]
        starts = row_starts(attention_mask, key.shape[0], key.device)
        if bool(starts.any()):
            layer.fill(pending[2], pending[3], starts)
        return lens_attention(module, query, key, value, attention_mask, scaling=scaling, dropout=dropout, **kwargs)
    layer, first, views = pending
    batch, _, q_len, dim = query.shape
    out = query.new_zeros(batch, q_len, query.shape[1], dim)
    scale = scaling if scaling is not None else dim**-0.5
    rows = torch.arange(first, first + q_len, device=query.device)[None, :, None]  # (1, q, 1)
    model_allowed = _allowed(attention_mask)
    if layer.masked:
        starts = row_starts(attention_mask, batch, query.device)
    else:
        assert layer.start is not None
        starts = layer.start
    start = starts[:, None, None]  # (batch, 1, 1)
    for gi, g in enumerate(layer.groups):
        qi = torch.tensor(g.q_heads, device=query.device)
        qg = query.index_select(1, qi)
        comp: tuple[torch.Tensor, ...] | None = None
        pos: torch.Tensor | None
        if layer.masked:
            ki = torch.tensor(g.kv_heads, device=query.device)
            kg, vg = key.index_select(1, ki), value.index_select(1, ki)
            pos = torch.arange(key.shape[-2], device=query.device)[None, None, :]  # (1, 1, columns)
            sel = None
        else:
            kg, vg, ring, comp = views[gi]
            pos = None if ring is None else ring[:, None, :]  # (batch, 1, slots)
            sel = ring
        if pos is None:  # a full head on the real cache: the model's own mask
            og, _ = sdpa_attention_forward(module, qg, kg, vg, attention_mask, dropout=dropout, scaling=scale)
            out[:, :, qi] = og
            continue
        allowed = (pos >= 0) & (pos <= rows)
        if g.recent is not None:
            is_sink = (pos >= start) & (pos - start < g.sink)
            window = is_sink | (pos > rows - g.recent)
            dropped = allowed & (pos >= start) & ~window
            allowed = allowed & window
        if model_allowed is not None:
            if sel is None:
                picked = model_allowed
            else:  # the model's mask at each row's held positions
                full_mask = model_allowed.expand(batch, -1, q_len, -1)
                picked = full_mask.gather(-1, sel.clamp(min=0)[:, None, None, :].expand(-1, 1, q_len, -1))
            allowed = allowed[:, None] & picked
        else:
            allowed = allowed[:, None].expand(batch, 1, q_len, -1)
        if g.recent is not None and layer.compensation:
            kg, vg, bias = _compensated(kg, vg, allowed, dropped.expand(batch, q_len, -1), comp)
            og, _ = sdpa_attention_forward(module, qg, kg, vg, bias, dropout=dropout, scaling=scale)
        else:
            og, _ = sdpa_attention_forward(module, qg, kg, vg, allowed, dropout=dropout, scaling=scale)
        out[:, :, qi] = og
    return out, None


AttentionInterface.register(KV_ATTENTION, kv_attention)
AttentionMaskInterface.register(KV_ATTENTION, sdpa_mask)


@contextlib.contextmanager
def policy_attention(model: Any) -> Iterator[None]:
    """Route the model's attention through :func:`kv_attention` while the block runs."""
    before = model.config._attn_implementation
    model.set_attn_implementation(KV_ATTENTION)
    try:
        yield
    finally:
        _PENDING.value = None
        model.set_attn_implementation(before)
