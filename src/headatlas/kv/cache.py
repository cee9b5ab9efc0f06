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
    """One attention layer's cache under a policy: one tensor pair per window group."""

    is_sliding = False
    is_compileable = False
    is_croppable = False

    def __init__(self, heads: Sequence[HeadPolicy], group_size: int, *, index: int, masked: bool = False) -> None:
        super().__init__()
        self.index = index
        self.groups = _groups(heads, group_size)
        self.masked = masked
        self.seen = 0
        self.store: list[dict[str, torch.Tensor]] = []

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        self.device = key_states.device
        self.is_initialized = True

    def _kept(self, q: int, g: _Group) -> list[int]:
        assert g.recent is not None
        head = list(range(min(g.sink, q)))
        return head + list(range(max(g.sink, q - g.recent), q))

    def _slot(self, pos: int, g: _Group) -> int:
        assert g.recent is not None
        return pos if pos < g.sink else g.sink + (pos - g.sink) % g.recent

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
            for g in self.groups:
                idx = torch.tensor(g.kv_heads, device=key_states.device)
                k, v = key_states.index_select(1, idx), value_states.index_select(1, idx)
                if g.recent is None:
                    self.store.append({"k": k.contiguous(), "v": v.contiguous()})
                    continue
                slots = g.sink + g.recent
                b, n, _, d = k.shape
                sk, sv = k.new_zeros(b, n, slots, d), v.new_zeros(b, n, slots, d)
                pos = torch.full((slots,), -1, dtype=torch.long, device=k.device)
                kept = self._kept(q, g)
                where = torch.tensor([self._slot(p, g) for p in kept], device=k.device, dtype=torch.long)
                src = torch.tensor(kept, device=k.device, dtype=torch.long)
                sk[:, :, where] = k[:, :, src]
                sv[:, :, where] = v[:, :, src]
                pos[where] = src
                self.store.append({"k": sk, "v": sv, "pos": pos})
            self.seen = q
            return key_states, value_states  # the prefill attends with the full context on every head
        p = self.seen
        new_pos = torch.arange(p, p + q, device=key_states.device)
        views: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]] = []
        for g, s in zip(self.groups, self.store, strict=True):
            idx = torch.tensor(g.kv_heads, device=key_states.device)
            k, v = key_states.index_select(1, idx), value_states.index_select(1, idx)
            if g.recent is None:
                s["k"] = torch.cat([s["k"], k], dim=-2)
                s["v"] = torch.cat([s["v"], v], dim=-2)
                views.append((s["k"], s["v"], None))
                continue
            if q > 1:  # a chunk: attend over the held window plus the whole chunk, then keep what the ring keeps
                views.append(
                    (torch.cat([s["k"], k], dim=-2), torch.cat([s["v"], v], dim=-2), torch.cat([s["pos"], new_pos]))
                )
            for i in range(max(0, q - g.sink - g.recent), q):
                slot = self._slot(p + i, g)
                s["k"][:, :, slot] = k[:, :, i]
                s["v"][:, :, slot] = v[:, :, i]
                s["pos"][slot] = p + i
            if q == 1:  # the slot just written held position p - recent, which p no longer sees: attend in place
                views.append((s["k"], s["v"], s["pos"]))
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
        self.store, self.seen, self.is_initialized = [], 0, False

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        for s in self.store:
            for name in ("k", "v"):
                s[name] = s[name].index_select(0, beam_idx.to(s[name].device))


class PolicyCache(Cache):
    """The policy as a cache: ``masked=False`` holds less, ``masked=True`` simulates it by masking."""

    def __init__(self, policy: KVPolicy, config: Any, *, masked: bool = False) -> None:
        policy.check_model(config)
        text = config.get_text_config(decoder=True) if hasattr(config, "get_text_config") else config
        group = text.num_attention_heads // (getattr(text, "num_key_value_heads", None) or text.num_attention_heads)
        types = getattr(text, "layer_types", None) or ["full_attention"] * text.num_hidden_layers
        layers: list[Any] = []
        for i, kind in enumerate(types):
            if kind == "sliding_attention":  # already a window; the policy applies to global layers
                layers.append(DynamicSlidingWindowLayer(sliding_window=text.sliding_window))
            else:
                layers.append(PolicyLayer(policy.layer(i), group, index=i, masked=masked))
        super().__init__(layers=layers)
        self.policy = policy
        self.masked = masked

    def nbytes(self) -> int:
        """Bytes of keys and values (and ring positions) held now."""
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


def _gather_mask(attention_mask: torch.Tensor | None, cols: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """The model's mask at the columns ``cols`` (absolute positions) combined with ``valid``."""
    if attention_mask is None:
        return valid
    picked = attention_mask.index_select(-1, cols.clamp(min=0))
    if picked.dtype == torch.bool:
        return picked & valid
    return picked.masked_fill(~valid, float("-inf"))


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
    layer, start, views = pending
    batch, _, q_len, dim = query.shape
    out = query.new_zeros(batch, q_len, query.shape[1], dim)
    scale = scaling if scaling is not None else dim**-0.5
    rows = torch.arange(start, start + q_len, device=query.device)[:, None]
    for gi, g in enumerate(layer.groups):
        qi = torch.tensor(g.q_heads, device=query.device)
        qg = query.index_select(1, qi)
        if layer.masked:
            ki = torch.tensor(g.kv_heads, device=query.device)
            kg, vg = key.index_select(1, ki), value.index_select(1, ki)
            cols = torch.arange(key.shape[-2], device=query.device)
            mask = attention_mask
            if g.recent is not None:
                valid = (cols[None, :] <= rows) & ((cols[None, :] < g.sink) | (cols[None, :] > rows - g.recent))
                mask = _gather_mask(attention_mask, cols, valid[None, None])
        else:
            kg, vg, pos = views[gi]
            mask = attention_mask
            if pos is not None:
                valid = (pos[None, :] >= 0) & (pos[None, :] <= rows)
                valid = valid & ((pos[None, :] < g.sink) | (pos[None, :] > rows - g.recent))
                mask = _gather_mask(attention_mask, pos, valid[None, None])
        og, _ = sdpa_attention_forward(module, qg, kg, vg, mask, dropout=dropout, scaling=scale)
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
