"""RazorAttention's compensation token: a streaming head keeps the mean key and value of what it dropped,
attended with the weight of all the dropped tokens; the real cache equals its masked simulation."""

from __future__ import annotations

import math

import pytest
import torch
from torch.nn.functional import scaled_dot_product_attention
from transformers import DynamicCache

from headatlas.errors import InvalidSettingError
from headatlas.kv.cache import PolicyCache, _compensated, policy_attention
from headatlas.kv.policy import plan
from headatlas.testing.tiny import tiny_llama

from .headmaps import synthetic_headmap

SINK, RECENT, Q = 3, 8, 64


def razor_policy(compensation: bool = True, n_kv: int = 2):
    gen = torch.Generator().manual_seed(1)
    table = torch.rand(3, 4, generator=gen).tolist()
    hm = synthetic_headmap({"induction": table, "duplicate_token": table}, n_kv=n_kv)
    return plan(
        hm, rule="razor", budget=0.5, context=Q, sink=SINK, recent=RECENT, compensation=compensation, fill="whole"
    )


def test_compensation_sums_are_the_dropped_keys_and_values():
    loaded = tiny_llama("gqa", layers=3)
    model, cfg = loaded.model, loaded.model.config
    policy = razor_policy()
    ids = torch.randint(2, 300, (1, Q + 5), generator=torch.Generator().manual_seed(0))
    ours, full = PolicyCache(policy, cfg), DynamicCache()
    with torch.no_grad(), policy_attention(model):
        for cache in (ours, full):
            model(input_ids=ids[:, :Q], cache=cache, use_cache=True)
            for t in range(Q, Q + 5):  # five decode steps: five more tokens leave the window
                model(input_ids=ids[:, t : t + 1], cache=cache, use_cache=True)
    seen = Q + 5
    checked = 0
    for li in range(3):
        layer, keys, values = ours.layers[li], full.layers[li].keys, full.layers[li].values
        for g, s in zip(layer.groups, layer.store, strict=True):
            if g.recent is None:
                assert "ck" not in s
                continue
            heads = torch.tensor(g.kv_heads)
            dropped = slice(g.sink, seen - g.recent)
            torch.testing.assert_close(s["ck"], keys[:, heads, dropped].sum(2), atol=1e-4, rtol=1e-4)
            torch.testing.assert_close(s["cv"], values[:, heads, dropped].sum(2), atol=1e-4, rtol=1e-4)
            assert s["n"].tolist() == [seen - g.recent - g.sink]
            checked += 1
    assert checked > 0


def test_compensation_column_weighs_as_all_dropped_tokens():
    """softmax over kept keys and the compensation key counted n times, written out by hand."""
    gen = torch.Generator().manual_seed(2)
    d, kept, n = 8, 5, 7
    q = torch.randn(1, 1, 1, d, generator=gen)
    keys, values = torch.randn(1, 1, kept + 3, d, generator=gen), torch.randn(1, 1, kept + 3, d, generator=gen)
    allowed = torch.tensor([True] * kept + [False] * 3)[None, None, None]
    dropped = torch.tensor([False] * kept + [True] * 3)[None, None]  # three more dropped, on top of base
    base_k, base_v = torch.randn(1, 1, d, generator=gen), torch.randn(1, 1, d, generator=gen)
    base = (base_k, base_v, torch.tensor([float(n - 3)]))
    k2, v2, bias = _compensated(keys, values, allowed, dropped, base)
    got = scaled_dot_product_attention(q, k2, v2, attn_mask=bias)

    mean_k = ((base_k + keys[0, :, kept:].sum(1)) / n).reshape(d)
    mean_v = ((base_v + values[0, :, kept:].sum(1)) / n).reshape(1, d)
    scores = (q[0, 0] @ keys[0, 0, :kept].T)[0] / math.sqrt(d)
    comp = (q[0, 0, 0] @ mean_k) / math.sqrt(d)
    weights = torch.cat([scores.exp(), n * comp.exp()[None]])
    want = (weights[:, None] * torch.cat([values[0, 0, :kept], mean_v])).sum(0) / weights.sum()
    torch.testing.assert_close(got[0, 0, 0], want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kind", ["gqa", "mqa", "full"])
def test_compensation_real_cache_equals_masked_simulation_and_changes_decoding(kind):
    loaded = tiny_llama(kind, layers=3)
    model, cfg = loaded.model, loaded.model.config
    gen = torch.Generator().manual_seed(0)
    ids, chunk = torch.randint(2, 300, (1, Q), generator=gen), torch.randint(2, 300, (1, 6), generator=gen)

    def run(cache, steps=10):
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

    with_comp, without = razor_policy(True, cfg.num_key_value_heads), razor_policy(False, cfg.num_key_value_heads)
    real, masked = run(PolicyCache(with_comp, cfg)), run(PolicyCache(with_comp, cfg, masked=True))
    plain = run(PolicyCache(without, cfg))
    assert real[0] == masked[0]
    for a, b in zip(real[1], masked[1], strict=True):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
    assert max((a - b).abs().max().item() for a, b in zip(real[1], plain[1], strict=True)) > 1e-3


def test_compensation_adds_one_entry_per_streaming_head():
    policy = razor_policy()
    streaming = [h for h in policy.planned if not h.full]
    assert streaming
    assert all(h.held(Q, compensation=True) == SINK + RECENT + 1 for h in streaming)
    assert all(h.held(6, compensation=True) == 6 for h in streaming)  # nothing dropped yet: no token
    nominal = sum(h.held(Q, True) for h in policy.planned) / (len(policy.planned) * Q)
    assert policy.kv_fraction() == nominal


def test_compensation_belongs_to_the_razor_rule():
    hm = synthetic_headmap({"retrieval": [[0.1] * 4] * 2, "induction": [[0.1] * 4] * 2}, n_kv=2)
    with pytest.raises(InvalidSettingError, match="RazorAttention"):
        plan(hm, rule="retrieval", budget=0.5, context=64, sink=3, recent=8, compensation=True)
