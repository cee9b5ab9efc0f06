"""PolicyCache on left-padded batches of unequal lengths: each row's sink is its own first real tokens, the
real cache equals the masked simulation, and a padded row decodes as it does alone."""

from __future__ import annotations

import pytest
import torch
from transformers import DynamicCache

from headatlas.kv.cache import PolicyCache, policy_attention
from headatlas.kv.policy import KVPolicy, plan
from headatlas.testing.tiny import tiny_gemma3, tiny_llama

from .headmaps import synthetic_headmap

LENGTHS = (64, 45, 30)  # 30 < sink + recent + a few decode steps: the short row fills its ring while decoding


def policy_for(n_layers: int, n_heads: int, n_kv: int, *, rule: str = "retrieval", compensation: bool = False):
    gen = torch.Generator().manual_seed(1)
    table = torch.rand(n_layers, n_heads, generator=gen).tolist()
    hm = synthetic_headmap({"retrieval": table, "induction": table, "duplicate_token": table}, n_kv=n_kv)
    return plan(hm, rule=rule, budget=0.5, context=64, sink=3, recent=8, compensation=compensation)


def padded_batch(lengths=LENGTHS, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    gen = torch.Generator().manual_seed(seed)
    rows = [torch.randint(2, 300, (n,), generator=gen) for n in lengths]
    width = max(lengths)
    ids = torch.zeros(len(rows), width, dtype=torch.long)
    mask = torch.zeros(len(rows), width, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, width - len(r) :] = r
        mask[i, width - len(r) :] = 1
    return ids, mask, rows


def decode(model, cache, ids, mask, chunk: torch.Tensor | None = None, steps: int = 10):
    """Prefill a (padded) batch, optionally read a chunk, then greedy steps: (tokens per row, logits per step)."""
    logits, tokens = [], []
    with torch.no_grad(), policy_attention(model):
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        out = model(input_ids=ids, attention_mask=mask, position_ids=pos, cache=cache, use_cache=True)
        if chunk is not None:
            n = chunk.shape[1]
            mask = torch.cat([mask, torch.ones(ids.shape[0], n, dtype=mask.dtype)], dim=-1)
            pos = pos[:, -1:] + torch.arange(1, n + 1)
            out = model(input_ids=chunk, attention_mask=mask, position_ids=pos, cache=cache, use_cache=True)
        logits.append(out.logits[:, -1])
        for _ in range(steps):
            nxt = out.logits[:, -1:].argmax(-1)
            tokens.append(nxt[:, 0].tolist())
            mask = torch.cat([mask, torch.ones_like(nxt)], dim=-1)
            pos = pos[:, -1:] + 1
            out = model(input_ids=nxt, attention_mask=mask, position_ids=pos, cache=cache, use_cache=True)
            logits.append(out.logits[:, -1])
    return [list(t) for t in zip(*tokens, strict=True)], logits


@pytest.mark.parametrize("kind", ["gqa", "mqa"])
@pytest.mark.parametrize("compensation", [False, True])
@pytest.mark.parametrize("with_chunk", [False, True])
def test_padded_batch_real_cache_equals_masked_simulation(kind, compensation, with_chunk):
    loaded = tiny_llama(kind, layers=3)
    cfg = loaded.model.config
    policy = policy_for(3, 4, cfg.num_key_value_heads, rule="razor", compensation=compensation)
    ids, mask, _ = padded_batch()
    chunk = torch.randint(2, 300, (len(LENGTHS), 5), generator=torch.Generator().manual_seed(5)) if with_chunk else None
    real = decode(loaded.model, PolicyCache(policy, cfg), ids, mask, chunk)
    masked = decode(loaded.model, PolicyCache(policy, cfg, masked=True), ids, mask, chunk)
    full = decode(loaded.model, DynamicCache(), ids, mask, chunk)
    assert real[0] == masked[0]
    for a, b in zip(real[1], masked[1], strict=True):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
    assert max((a - b).abs().max().item() for a, b in zip(real[1], full[1], strict=True)) > 1e-3


@pytest.mark.parametrize("compensation", [False, True])
def test_each_padded_row_decodes_as_it_does_alone(compensation):
    loaded = tiny_llama("gqa", layers=3)
    cfg = loaded.model.config
    policy = policy_for(3, 4, 2, rule="razor", compensation=compensation)
    ids, mask, rows = padded_batch()
    batch = decode(loaded.model, PolicyCache(policy, cfg), ids, mask)
    for i, row in enumerate(rows):
        alone = decode(loaded.model, PolicyCache(policy, cfg), row[None], torch.ones(1, len(row), dtype=torch.long))
        assert batch[0][i] == alone[0][0]
        for a, b in zip(batch[1], alone[1], strict=True):
            torch.testing.assert_close(a[i], b[0], atol=1e-4, rtol=1e-4)


def test_padded_rows_keep_their_own_first_tokens_as_sink():
    loaded = tiny_llama("gqa", layers=2)
    cfg = loaded.model.config
    policy = policy_for(2, 4, 2)
    ids, mask, _ = padded_batch()
    cache = PolicyCache(policy, cfg)
    decode(loaded.model, cache, ids, mask, steps=0)
    layer = cache.layers[0]
    width = max(LENGTHS)
    assert layer.start.tolist() == [width - n for n in LENGTHS]
    for g, s in zip(layer.groups, layer.store, strict=True):
        if g.recent is None:
            continue
        for i, n in enumerate(LENGTHS):
            first = width - n
            held = sorted(p for p in s["pos"][i].tolist() if p >= 0)
            want = sorted({*range(first, first + g.sink), *range(max(first, width - g.recent), width)})
            assert held == want


def test_padded_batch_on_sliding_window_layers():
    loaded = tiny_gemma3(layers=4, window=8)
    cfg = loaded.model.config
    policy = policy_for(4, 4, 1)
    ids, mask, _ = padded_batch((40, 27))
    real = decode(loaded.model, PolicyCache(policy, cfg), ids, mask, steps=6)
    masked = decode(loaded.model, PolicyCache(policy, cfg, masked=True), ids, mask, steps=6)
    assert real[0] == masked[0]
    for a, b in zip(real[1], masked[1], strict=True):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def test_policy_file_round_trip_keeps_the_compensation_flag(tmp_path):
    policy = policy_for(2, 4, 2, rule="razor", compensation=True)
    policy.save(tmp_path / "p.json")
    assert KVPolicy.load(tmp_path / "p.json").compensation is True
