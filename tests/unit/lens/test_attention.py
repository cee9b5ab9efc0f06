"""The lens must be invisible to the model's output and exact about attention, for every layout."""

from __future__ import annotations

import copy

import pytest
import torch

from headatlas.causal.interventions import cache_keyword
from headatlas.lens import LENS_NAME, PatternTap, is_installed, session
from headatlas.testing.tiny import tiny_gemma3, tiny_llama


def eager_attentions(loaded, input_ids, attention_mask=None):
    """Reference: a deep copy of the model with eager attention and output_attentions=True."""
    reference = copy.deepcopy(loaded.model)
    reference.set_attn_implementation("eager")
    with torch.no_grad():
        out = reference(input_ids=input_ids, attention_mask=attention_mask, output_attentions=True)
    return out.logits, out.attentions


def tapped(loaded, input_ids, rows, attention_mask=None, hooks=()):
    got: dict[int, torch.Tensor] = {}
    with torch.no_grad(), session(taps=[PatternTap(rows, got.__setitem__)], hooks=hooks):
        logits = loaded.model(input_ids=input_ids, attention_mask=attention_mask).logits
    return logits, got


@pytest.mark.parametrize("kind", ["full", "gqa", "mqa"])
def test_taps_match_eager_attention_and_output_is_unchanged(kind):
    loaded = tiny_llama(kind)
    assert is_installed(loaded.model)
    ids = torch.randint(2, 300, (3, 20))
    rows = torch.arange(20).expand(3, 20)
    logits, got = tapped(loaded, ids, rows)
    ref_logits, ref_attn = eager_attentions(loaded, ids)
    torch.testing.assert_close(logits, ref_logits, atol=1e-5, rtol=1e-5)
    assert sorted(got) == [0, 1]
    for layer, probs in got.items():
        assert probs.shape == (3, 4, 20, 20)
        torch.testing.assert_close(probs, ref_attn[layer], atol=1e-6, rtol=1e-5)


def test_selected_rows_only_and_padding_rows_are_zero():
    loaded = tiny_llama("gqa")
    ids = torch.randint(2, 300, (2, 16))
    rows = torch.tensor([[3, 7, 15], [0, 9, -1]])
    _, got = tapped(loaded, ids, rows)
    _, ref_attn = eager_attentions(loaded, ids)
    for layer, probs in got.items():
        assert probs.shape == (2, 4, 3, 16)  # rows x keys, never T x T
        torch.testing.assert_close(probs[0], ref_attn[layer][0][:, [3, 7, 15]], atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(probs[1, :, :2], ref_attn[layer][1][:, [0, 9]], atol=1e-6, rtol=1e-5)
        assert torch.all(probs[1, :, 2] == 0)


def test_right_padded_batch_matches_each_sequence_alone():
    loaded = tiny_llama("gqa")
    ids = torch.randint(2, 300, (2, 14))
    mask = torch.ones_like(ids)
    mask[1, 10:] = 0
    rows = torch.arange(14).expand(2, 14)
    _, batched = tapped(loaded, ids, rows, attention_mask=mask)
    _, alone = tapped(loaded, ids[1:, :10], torch.arange(10)[None])
    for layer in batched:
        torch.testing.assert_close(batched[layer][1, :, :10, :10], alone[layer][0], atol=1e-6, rtol=1e-5)
        assert torch.all(batched[layer][1, :, :10, 10:] == 0)  # padded keys get no attention


def test_sliding_window_layers_of_gemma3():
    loaded = tiny_gemma3(window=8)
    assert loaded.facts.sliding_layers == (0, 2)
    ids = torch.randint(2, 300, (2, 24))
    rows = torch.arange(24).expand(2, 24)
    logits, got = tapped(loaded, ids, rows)
    ref_logits, ref_attn = eager_attentions(loaded, ids)
    torch.testing.assert_close(logits, ref_logits, atol=1e-5, rtol=1e-5)
    for layer, probs in got.items():
        torch.testing.assert_close(probs, ref_attn[layer], atol=1e-6, rtol=1e-5)
    keys = torch.arange(24)
    outside_window = keys[None, :] <= keys[:, None] - 8
    assert torch.all(got[0][..., outside_window] == 0)  # sliding layer: nothing beyond the window
    assert torch.any(got[1][..., outside_window] > 0)  # global layer sees everything


def test_hooks_see_per_head_output_and_can_replace_it():
    loaded = tiny_llama("gqa")
    ids = torch.randint(2, 300, (2, 12))
    seen: list[tuple[int, tuple[int, ...]]] = []

    def record(layer, out):
        seen.append((layer, tuple(out.shape)))

    with torch.no_grad():
        plain = loaded.model(ids).logits
    with torch.no_grad(), session(hooks=[record]):
        same = loaded.model(ids).logits
    torch.testing.assert_close(same, plain, atol=0, rtol=0)
    assert seen == [(0, (2, 12, 4, 16)), (1, (2, 12, 4, 16))]

    def zero_head(layer, out):
        if layer == 1:
            out = out.clone()
            out[:, :, 2] = 0
            return out
        return None

    with torch.no_grad(), session(hooks=[zero_head]):
        ablated = loaded.model(ids).logits
    # the same edit by hand: zero head 2's columns of layer 1's o_proj input
    manual = copy.deepcopy(loaded.model)
    with torch.no_grad():
        manual.model.layers[1].self_attn.o_proj.weight[:, 32:48] = 0
        expected = manual(ids).logits
    torch.testing.assert_close(ablated, expected, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(ablated, plain)


def test_outside_a_session_the_lens_is_plain_sdpa():
    loaded = tiny_llama("full")
    ids = torch.randint(2, 300, (1, 10))
    with torch.no_grad():
        lens_logits = loaded.model(ids).logits
    reference = copy.deepcopy(loaded.model)
    reference.set_attn_implementation("sdpa")
    with torch.no_grad():
        sdpa_logits = reference(ids).logits
    assert loaded.model.config._attn_implementation == LENS_NAME
    torch.testing.assert_close(lens_logits, sdpa_logits, atol=0, rtol=0)


def test_tap_layers_filter_and_decoding_step():
    loaded = tiny_llama("gqa")
    ids = torch.randint(2, 300, (1, 9))
    got: dict[int, torch.Tensor] = {}
    with torch.no_grad():
        keyword = cache_keyword(loaded.model)  # "cache" from transformers 5.24, "past_key_values" before
        cache = getattr(loaded.model(ids[:, :8], use_cache=True), keyword)
        with session(taps=[PatternTap(torch.tensor([[0]]), got.__setitem__, layers=frozenset({1}))]):
            loaded.model(ids[:, 8:], **{keyword: cache})
    _, ref_attn = eager_attentions(loaded, ids)
    assert list(got) == [1]
    torch.testing.assert_close(got[1][0, :, 0], ref_attn[1][0, :, 8], atol=1e-6, rtol=1e-5)


# -- pattern hooks: the whole attention, eagerly, with probabilities in the autograd graph ----------------
def _patterned(loaded, ids, attention_mask=None, hook=lambda record: None):
    seen: dict[int, object] = {}

    def keep(record):
        seen[record.layer] = record
        return hook(record)

    with torch.no_grad(), session(patterns=[keep]):
        logits = loaded.model(input_ids=ids, attention_mask=attention_mask).logits
    return logits, seen


@pytest.mark.parametrize("make", [lambda: tiny_llama("full"), lambda: tiny_llama("mqa"), lambda: tiny_gemma3(window=8)])
def test_pattern_hooks_see_the_model_attention_and_leave_the_output_unchanged(make):
    loaded = make()
    ids = torch.randint(2, 300, (2, 20))
    mask = torch.ones_like(ids)
    mask[1, 15:] = 0
    logits, seen = _patterned(loaded, ids, mask)
    with torch.no_grad():
        plain = loaded.model(input_ids=ids, attention_mask=mask).logits
    torch.testing.assert_close(logits, plain, atol=1e-5, rtol=1e-5)
    _, ref_attn = eager_attentions(loaded, ids, mask)
    assert sorted(seen) == list(range(loaded.facts.n_layers))
    for layer, record in seen.items():
        torch.testing.assert_close(record.probs[0], ref_attn[layer][0], atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(record.probs[1, :, :15], ref_attn[layer][1, :, :15], atol=1e-6, rtol=1e-5)
        # the record's own scores and mask rebuild its probabilities
        rebuilt = torch.softmax(record.logits(record.scores(record.query, record.key)), dim=-1)
        torch.testing.assert_close(rebuilt[0], record.probs[0], atol=1e-6, rtol=1e-5)


def test_pattern_hook_replacement_reaches_the_output():
    loaded = tiny_llama("gqa")
    ids = torch.randint(2, 300, (2, 12))
    # zero attention in layer 1 is the same as zeroing every head's output there
    blanked, _ = _patterned(loaded, ids, hook=lambda r: torch.zeros_like(r.probs) if r.layer == 1 else None)
    with torch.no_grad(), session(hooks=[lambda layer, out: torch.zeros_like(out) if layer == 1 else None]):
        zeroed = loaded.model(ids).logits
    torch.testing.assert_close(blanked, zeroed, atol=1e-5, rtol=1e-5)
    with torch.no_grad():
        assert not torch.allclose(blanked, loaded.model(ids).logits, atol=1e-3)


def test_pattern_hook_gives_the_gradient_with_respect_to_attention():
    loaded = tiny_llama("gqa", layers=1)
    ids = torch.randint(2, 300, (1, 8))
    deltas = {}

    def attach(record):
        deltas[record.layer] = torch.zeros_like(record.probs, requires_grad=True)
        return record.probs + deltas[record.layer]

    with torch.enable_grad(), session(patterns=[attach]):
        value = loaded.model(ids).logits[0, -1, 5]
        (grad,) = torch.autograd.grad(value, [deltas[0]])
    # move one attention weight of the last query by a small step: the logit moves by grad * step
    step = 1e-3

    def nudge(record):
        bumped = record.probs.clone()
        bumped[0, 1, -1, 2] += step
        return bumped

    moved, _ = _patterned(loaded, ids, hook=nudge)
    with torch.no_grad():
        base = loaded.model(ids).logits
    assert float(grad[0, 1, -1, 2]) != 0
    torch.testing.assert_close(moved[0, -1, 5] - base[0, -1, 5], grad[0, 1, -1, 2] * step, atol=1e-7, rtol=1e-3)
