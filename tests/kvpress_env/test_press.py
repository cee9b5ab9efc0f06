"""AtlasPress and DuoAttentionPress fed our pattern, in kvpress's own machinery.

kvpress 0.5.5 needs transformers<5.3, so these tests are not part of the main suite (`testpaths` leaves this
folder out: they could only be skipped there). They run in the environment ``python -m headatlas.bench kv`` builds:
``PYTHONPATH=src:. .venv-kv/bin/python -m pytest tests/kvpress_env``.
"""

from __future__ import annotations

import kvpress
import pytest
import torch
from tests.unit.kv.headmaps import synthetic_headmap
from transformers import DynamicCache

from headatlas.kv.duo import export_duo
from headatlas.kv.policy import KVPolicy, plan
from headatlas.kv.press import AtlasPress, local_duo_pattern
from headatlas.testing.tiny import tiny_llama


@pytest.fixture(scope="module")
def model():
    loaded = tiny_llama("gqa", layers=3)
    loaded.model.set_attn_implementation("sdpa")  # kvpress's attention patch assumes transformers' signature
    loaded.model.config.name_or_path = "tiny-gqa-for-duo"
    return loaded.model


def policy_for(budget: float, rule: str = "retrieval") -> KVPolicy:
    gen = torch.Generator().manual_seed(1)
    table = torch.rand(3, 4, generator=gen).tolist()
    return plan(
        synthetic_headmap({"retrieval": table, "induction": table}, 2),
        rule=rule,
        budget=budget,
        context=64,
        sink=3,
        recent=8,
    )


def decode_logits(model, press, ids, steps: int = 4) -> list[torch.Tensor]:
    cache, logits = DynamicCache(), []
    with torch.no_grad():
        with press(model) if press is not None else torch.no_grad():
            out = model(input_ids=ids, past_key_values=cache, use_cache=True)
        for _ in range(steps):
            out = model(input_ids=out.logits[:, -1:].argmax(-1), past_key_values=cache, use_cache=True)
            logits.append(out.logits)
    return logits


def test_atlas_press_masks_exactly_the_streaming_heads_middle(model):
    policy = policy_for(0.5, "headkv")
    press = AtlasPress(policy)
    ids = torch.randint(2, 300, (1, 64))
    decode_logits(model, press, ids, steps=1)
    for layer in range(3):
        indices = model.model.layers[layer].self_attn.masked_key_indices
        got = set() if indices is None else {(int(h), int(p)) for _, h, p in zip(*indices, strict=True)}
        want = {(h.kv_head, p) for h in policy.layer(layer) if not h.full for p in range(h.sink, 64 - h.recent)}
        assert got == want
    dropped = sum(64 - h.held(64) for h in policy.heads) / (len(policy.heads) * 64)
    assert abs(press.compression_ratio - dropped) < 1e-9


def test_atlas_press_with_a_full_policy_changes_nothing(model):
    ids = torch.randint(2, 300, (1, 48))
    for a, b in zip(
        decode_logits(model, AtlasPress(policy_for(1.0)), ids), decode_logits(model, None, ids), strict=True
    ):
        torch.testing.assert_close(a, b)


def test_atlas_press_changes_decoding_when_heads_stream(model):
    ids = torch.randint(2, 300, (1, 64))
    pressed, plain = decode_logits(model, AtlasPress(policy_for(0.3)), ids), decode_logits(model, None, ids)
    assert max((a - b).abs().max().item() for a, b in zip(pressed, plain, strict=True)) > 1e-3


def test_duo_attention_press_loads_our_pattern_unchanged(model, tmp_path):
    policy = policy_for(0.5)
    pattern = export_duo(policy, tmp_path / "duo")
    press = kvpress.DuoAttentionPress(head_compression_ratio=1 - policy.full_fraction)
    with local_duo_pattern(pattern, model):
        press.post_init_from_model(model)
    streaming = {(la, k) for la, k in zip(*torch.nonzero(press.streaming_mask, as_tuple=True), strict=True)}
    assert {(int(la), int(k)) for la, k in streaming} == {(h.layer, h.kv_head) for h in policy.heads if not h.full}
    assert (press.sink_size, press.recent_size) == (3, 8)
    # and the press runs: same masking as AtlasPress with the same policy, so the same logits
    ids = torch.randint(2, 300, (1, 64))
    with local_duo_pattern(pattern, model):
        duo = decode_logits(model, press, ids)
    for a, b in zip(duo, decode_logits(model, AtlasPress(policy), ids), strict=True):
        torch.testing.assert_close(a, b)


def test_atlas_press_refuses_a_compensation_policy():
    gen = torch.Generator().manual_seed(1)
    table = torch.rand(3, 4, generator=gen).tolist()
    hm = synthetic_headmap({"induction": table, "duplicate_token": table}, 2)
    policy = plan(hm, rule="razor", budget=0.5, context=64, sink=3, recent=8, compensation=True)
    with pytest.raises(ValueError, match="compensation"):
        AtlasPress(policy)


@pytest.mark.parametrize(
    "make",
    [
        lambda: kvpress.StreamingLLMPress(compression_ratio=0.5),
        lambda: kvpress.SnapKVPress(compression_ratio=0.5, window_size=8),
        lambda: kvpress.KnormPress(compression_ratio=0.5),
        lambda: kvpress.ExpectedAttentionPress(compression_ratio=0.5, n_future_positions=8),
        lambda: AtlasPress(policy_for(0.5, "headkv")),
    ],
)
def test_bench_replay_of_a_press_is_the_live_press(model, make):
    """The bench runs each press's own forward_hook on the recorded prefill: same cache as kvpress's context
    manager, and the same logits when reading on (through the bench's forward, true positions)."""
    import functools

    from headatlas.bench.kv_presses import pruned_forward, recording, replay

    ids = torch.randint(2, 300, (1, 64), generator=torch.Generator().manual_seed(4))
    follow = list(range(5, 17))
    with torch.no_grad():
        live = DynamicCache()
        with make()(model):
            model(input_ids=ids, past_key_values=live, use_cache=True)
        live_masked = [layer.self_attn.masked_key_indices for layer in model.model.layers]
        live_kv = [(layer.keys.clone(), layer.values.clone()) for layer in live.layers]
        live_logits = pruned_forward(model, follow, live, start=64).logits
        prefill = DynamicCache()
        with recording(model) as records:
            model(input_ids=ids, past_key_values=prefill, use_cache=True)
        cache = replay(make(), model, prefill, records)
        for layer, masked in zip(model.model.layers, live_masked, strict=True):
            got = layer.self_attn.masked_key_indices
            assert (got is None) == (masked is None)
            if got is not None:
                assert all(torch.equal(a, b) for a, b in zip(got, masked, strict=True))
        for a, (keys, values) in zip(cache.layers, live_kv, strict=True):
            torch.testing.assert_close(a.keys, keys)
            torch.testing.assert_close(a.values, values)
        assert cache.layers[0].keys.shape[2] < 64 or make().__class__.__name__ == "AtlasPress"
        replay_logits = functools.partial(pruned_forward, start=64)(model, follow, cache).logits
    torch.testing.assert_close(replay_logits, live_logits)
