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
