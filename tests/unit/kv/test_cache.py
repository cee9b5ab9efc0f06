"""PolicyCache: holds less, and its greedy outputs equal the masked simulation of the same policy."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from transformers import DynamicCache

from headatlas.errors import InvalidSettingError
from headatlas.kv.cache import PolicyCache, cache_nbytes, policy_attention
from headatlas.kv.policy import KVPolicy, plan, plan_from_scan
from headatlas.testing.tiny import tiny_gemma3, tiny_llama

from .headmaps import synthetic_headmap


def tiny_policy(n_layers: int, n_heads: int, n_kv: int, rule: str = "retrieval", budget: float = 0.5) -> KVPolicy:
    gen = torch.Generator().manual_seed(1)
    table = torch.rand(n_layers, n_heads, generator=gen).tolist()
    hm = synthetic_headmap({"retrieval": table, "induction": table}, n_kv=n_kv)
    return plan(hm, rule=rule, budget=budget, context=64, sink=3, recent=8)


def run(model, cache, ids, chunk, steps: int = 12):
    """Prefill ``ids``, feed ``chunk`` in one forward, then decode greedily: (tokens, every step's logits)."""
    with torch.no_grad(), policy_attention(model):
        model(input_ids=ids, cache=cache, use_cache=True)
        out = model(input_ids=chunk, cache=cache, use_cache=True)
        logits, tokens = [out.logits], []
        for _ in range(steps):
            nxt = out.logits[:, -1:].argmax(-1)
            tokens.append(int(nxt))
            out = model(input_ids=nxt, cache=cache, use_cache=True)
            logits.append(out.logits)
    return tokens, logits


@pytest.mark.parametrize("kind", ["full", "gqa", "mqa"])
@pytest.mark.parametrize("rule", ["retrieval", "headkv"])
def test_real_cache_equals_masked_simulation(kind, rule):
    loaded = tiny_llama(kind, layers=3)
    cfg = loaded.model.config
    policy = tiny_policy(3, cfg.num_attention_heads, cfg.num_key_value_heads, rule)
    gen = torch.Generator().manual_seed(0)
    ids, chunk = torch.randint(2, 300, (1, 64), generator=gen), torch.randint(2, 300, (1, 7), generator=gen)
    real = run(loaded.model, PolicyCache(policy, cfg), ids, chunk)
    masked = run(loaded.model, PolicyCache(policy, cfg, masked=True), ids, chunk)
    full = run(loaded.model, DynamicCache(), ids, chunk)
    assert real[0] == masked[0]
    for a, b in zip(real[1], masked[1], strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    # the policy changes something, so the equality above is not vacuous
    assert max((a - b).abs().max().item() for a, b in zip(real[1], full[1], strict=True)) > 1e-3


def test_all_full_policy_is_the_dynamic_cache():
    loaded = tiny_llama("gqa", layers=2)
    policy = tiny_policy(2, 4, 2, budget=1.0)
    gen = torch.Generator().manual_seed(0)
    ids, chunk = torch.randint(2, 300, (1, 40), generator=gen), torch.randint(2, 300, (1, 5), generator=gen)
    ours, ref = (
        run(loaded.model, PolicyCache(policy, loaded.model.config), ids, chunk),
        run(loaded.model, DynamicCache(), ids, chunk),
    )
    assert ours[0] == ref[0]
    for a, b in zip(ours[1], ref[1], strict=True):
        torch.testing.assert_close(a, b)


def test_bytes_held_follow_the_policy():
    loaded = tiny_llama("gqa", layers=3)
    cfg = loaded.model.config
    policy = tiny_policy(3, 4, 2, "headkv")
    ids, chunk = torch.randint(2, 300, (1, 64)), torch.randint(2, 300, (1, 4))
    ours, full = PolicyCache(policy, cfg), DynamicCache()
    run(loaded.model, ours, ids, chunk, steps=4)
    run(loaded.model, full, ids, chunk, steps=4)
    length = 64 + 4 + 4
    head_dim = cfg.hidden_size // cfg.num_attention_heads
    kv_bytes = sum(h.held(length) for h in policy.heads) * 2 * head_dim * 4
    windows = {(h.layer, h.sink, h.recent) for h in policy.heads if not h.full}  # one position ring per group
    ring_positions = sum(8 * (sink + recent) for _, sink, recent in windows)
    assert cache_nbytes(ours) == kv_bytes + ring_positions
    assert cache_nbytes(full) == len(policy.heads) * length * 2 * head_dim * 4
    assert abs(cache_nbytes(ours) / cache_nbytes(full) - policy.kv_fraction(length)) < 0.05


def test_sliding_layers_keep_their_own_window_and_agree_with_the_simulation():
    loaded = tiny_gemma3(layers=4, window=8)
    cfg = loaded.model.config
    policy = tiny_policy(4, 4, 1, budget=0.5)
    ids, chunk = torch.randint(2, 300, (1, 48)), torch.randint(2, 300, (1, 3))
    real = run(loaded.model, PolicyCache(policy, cfg), ids, chunk, steps=6)
    masked = run(loaded.model, PolicyCache(policy, cfg, masked=True), ids, chunk, steps=6)
    assert real[0] == masked[0]


def test_cache_scope_shortens_every_sliding_layer_and_agrees_with_the_simulation():
    loaded = tiny_gemma3(layers=4, window=8)  # layers 0 and 2 slide (window 8), 1 and 3 are global
    cfg = loaded.model.config
    table = torch.rand(4, 4, generator=torch.Generator().manual_seed(1)).tolist()
    hm = synthetic_headmap({"retrieval": table}, n_kv=1, sliding=([0, 2], 8))
    policy = plan(hm, budget=0.5, context=48, sink=1, recent=4)
    assert policy.local_window == 5
    ids, chunk = torch.randint(2, 300, (1, 48)), torch.randint(2, 300, (1, 3))
    ours = PolicyCache(policy, cfg)
    real = run(loaded.model, ours, ids, chunk, steps=6)
    masked = run(loaded.model, PolicyCache(policy, cfg, masked=True), ids, chunk, steps=6)
    assert real[0] == masked[0]
    assert [ours.layers[i].keys.shape[-2] for i in (0, 2)] == [4, 4]  # a window of 5: the last 4 between steps
    own = run(
        loaded.model,
        PolicyCache(plan(hm, budget=0.5, context=48, sink=1, recent=4, scope="global"), cfg),
        ids,
        chunk,
        steps=6,
    )
    assert not all(torch.equal(a, b) for a, b in zip(real[1], own[1], strict=True))  # the shorter window is used


def test_model_that_does_not_match_the_scan_is_refused():
    loaded = tiny_llama("gqa", layers=2)
    with pytest.raises(InvalidSettingError, match="does not match the scan"):
        PolicyCache(tiny_policy(3, 4, 2), loaded.model.config)


def _second_copy_accuracy(planted, policy: KVPolicy | None) -> float:
    """Induction on the planted model: [BOS, x, x], the second copy decoded one token at a time."""
    from headatlas.testing.planted import BOS

    gen = torch.Generator().manual_seed(3)
    x = torch.randperm(60, generator=gen)[:20] + 2
    seq = torch.cat([torch.tensor([BOS]), x, x])[None]
    model = planted.model
    cache = DynamicCache() if policy is None else PolicyCache(policy, model.config)
    hits = []
    with torch.no_grad(), policy_attention(model):
        out = model(input_ids=seq[:, :22], cache=cache, use_cache=True)
        for t in range(22, seq.shape[1]):
            hits.append(int(out.logits[0, -1].argmax()) == int(seq[0, t]))
            out = model(input_ids=seq[:, t : t + 1], cache=cache, use_cache=True)
    return sum(hits) / len(hits)


def test_planted_induction_survives_the_razor_policy_and_dies_without_it(planted, planted_scan):
    policy = plan_from_scan(planted_scan, rule="razor", budget=0.5, context=41, sink=1, recent=4)
    assert policy.head(1, 1).full  # the planted induction head L1H2 reads KV head 1
    inverted = dataclasses.replace(
        policy,
        heads=tuple(
            dataclasses.replace(h, sink=1 if h.full else 0, recent=4 if h.full else None) for h in policy.heads
        ),
    )
    assert _second_copy_accuracy(planted, None) == 1.0
    assert _second_copy_accuracy(planted, policy) == 1.0
    assert _second_copy_accuracy(planted, inverted) < 0.5
