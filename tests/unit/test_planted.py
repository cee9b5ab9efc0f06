"""The planted-heads model: its heads do what they were built to do, and the census finds exactly them."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from headatlas.census import ScanSettings, run_census
from headatlas.headmap import head_name
from headatlas.lens import PatternTap, session
from headatlas.probes import ProbeSettings
from headatlas.testing.planted import (
    BOS,
    CURRENT,
    DUPLICATE,
    INDUCTION,
    PLANTED,
    PREVIOUS,
    SINK,
    VOCAB,
    build_planted_model,
)

PERIOD = 20
PATTERN_TYPES = ("previous_token", "current_token", "sink", "duplicate_token", "induction")
SMALL = ProbeSettings(
    repeat_len=PERIOD, n_repeat=4, text_len=64, n_text=4, needle_contexts=(256,), needle_per_context=1, batch_size=4
)


@pytest.fixture(scope="module")
def planted():
    return build_planted_model()


def repeated(n: int, period: int = PERIOD, seed: int = 0) -> torch.Tensor:
    """``[n, 1 + 2 * period]``: BOS then ``period`` distinct ordinary tokens, twice."""
    gen = torch.Generator().manual_seed(seed)
    seqs = []
    for _ in range(n):
        x = torch.randperm(VOCAB - 2, generator=gen)[:period] + 2
        seqs.append(torch.cat([torch.tensor([BOS]), x, x]))
    return torch.stack(seqs)


def patterns(loaded, ids: torch.Tensor, hooks=()) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
    got: dict[int, torch.Tensor] = {}
    rows = torch.arange(ids.shape[1]).expand(ids.shape[0], -1)
    with torch.no_grad(), session(taps=[PatternTap(rows, got.__setitem__)], hooks=hooks):
        logits = loaded.model(input_ids=ids).logits
    return logits, got


def second_and_first_copy_loss(logits: torch.Tensor, ids: torch.Tensor, period: int = PERIOD) -> tuple[float, float]:
    """Mean next-token loss on the tokens of the first copy and of the second copy (its first token excluded)."""
    nll = torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), ids[:, 1:], reduction="none")
    first = nll[:, :period]  # predicts positions 1..period
    second = nll[:, period + 1 :]  # predicts positions period+2..2*period: all follow an earlier copy
    return float(second.mean()), float(first.mean())


def zero_head(layer: int, head: int):
    def hook(at: int, out: torch.Tensor) -> torch.Tensor | None:
        if at != layer:
            return None
        out = out.clone()
        out[:, :, head] = 0
        return out

    return hook


def test_planted_attention_patterns(planted):
    ids = repeated(3)
    _, got = patterns(planted, ids)
    length = ids.shape[1]
    i = torch.arange(1, length)
    second = torch.arange(PERIOD + 1, length)
    first = torch.arange(1, PERIOD + 1)
    layer0 = got[0]
    assert torch.all(layer0[:, PREVIOUS[1], i, i - 1] > 0.99)
    assert torch.all(layer0[:, CURRENT[1], i, i] > 0.99)
    assert torch.all(layer0[:, SINK[1], i, 0] > 0.99)
    duplicate = layer0[:, DUPLICATE[1]]
    assert torch.all(duplicate[:, second, second - PERIOD] > 0.99)  # the earlier copy of its own token
    assert torch.all(duplicate[:, first, 0] > 0.99)  # no earlier copy: parks on BOS, never on itself
    assert torch.all(duplicate[:, i, i] < 1e-3)
    induction = got[INDUCTION[0]][:, INDUCTION[1]]
    assert torch.all(induction[:, second, second - PERIOD + 1] > 0.99)  # the token after the earlier copy
    for head in range(4):
        if (1, head) != INDUCTION:  # unplanted: spread out, nothing above 0.2 past the first few rows
            assert got[1][:, head, 8:].max() < 0.2
    # GQA: the two query heads of each KV head read the same keys yet attend differently
    assert not torch.allclose(layer0[:, 0], layer0[:, 1])
    assert not torch.allclose(layer0[:, 2], layer0[:, 3])


def test_census_finds_exactly_the_planted_heads(planted):
    hm = run_census(planted, ScanSettings(probes=SMALL))
    for head_type, heads in PLANTED.items():
        names = sorted(head_name(layer, head) for layer, head in heads)
        assert sorted(hm.members(head_type)) == names, head_type
        top = hm.top(head_type, len(heads) + 1)
        assert sorted(r["name"] for r in top[: len(heads)]) == names, head_type
        assert all(r["score"] > 0.99 for r in top[: len(heads)]), head_type
        assert top[len(heads)]["score"] < top[0]["score"] - 0.5, head_type  # a wide gap to the best unplanted
    for head_type in PATTERN_TYPES:
        planted_here = {head_name(*h) for h in PLANTED[head_type]}
        others = [
            r for r in hm.rows if r["head_type"] == head_type and head_name(r["layer"], r["head"]) not in planted_here
        ]
        assert len(others) == 7 and not any(r["member"] for r in others), head_type
    # only a copying head can put its top-1 key on the needle token it emits
    assert set(hm.members("retrieval")) <= {head_name(*INDUCTION)}


def test_census_ground_truth_holds_for_other_seeds():
    loaded = build_planted_model(seed=3)
    hm = run_census(loaded, ScanSettings(seed=5, head_types=PATTERN_TYPES, probes=SMALL))
    for head_type in PATTERN_TYPES:
        assert hm.members(head_type) == [head_name(*h) for h in PLANTED[head_type]], head_type


def test_induction_lowers_loss_and_ablation_removes_it(planted):
    ids = repeated(4, seed=1)
    logits, _ = patterns(planted, ids)
    second, first = second_and_first_copy_loss(logits, ids)
    assert first > math.log(VOCAB - 2) - 0.1  # random tokens cannot be predicted the first time
    assert second < 0.05

    def loss_without(layer: int, head: int) -> float:
        logits, _ = patterns(planted, ids, hooks=[zero_head(layer, head)])
        return second_and_first_copy_loss(logits, ids)[0]

    assert loss_without(*INDUCTION) > 3.0
    assert loss_without(*PREVIOUS) > 3.0  # the induction head's key is what the previous-token head wrote
    for layer, head in [(1, 0), (1, 1), (1, 3), CURRENT, SINK, DUPLICATE]:
        assert abs(loss_without(layer, head) - second) < 0.01, (layer, head)


def test_build_is_deterministic_and_seed_touches_only_unplanted_heads():
    a, b, c = build_planted_model(0), build_planted_model(0), build_planted_model(1)
    sa, sb, sc = a.model.state_dict(), b.model.state_dict(), c.model.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert any(not torch.equal(sa[k], sc[k]) for k in sa)
    for name in ("model.embed_tokens.weight", "lm_head.weight", "model.layers.0.self_attn.q_proj.weight"):
        assert torch.equal(sa[name], sc[name])
    assert a.facts.n_heads == 4 and a.facts.n_kv_heads == 2 and a.facts.n_layers == 2


def test_lens_matches_eager_attention_on_saturated_heads(planted):
    """Planted logits run to hundreds; the lens's taps and output must still equal eager attention."""
    ids = repeated(2, seed=2)
    logits, got = patterns(planted, ids)
    reference = copy.deepcopy(planted.model)
    reference.set_attn_implementation("eager")
    with torch.no_grad():
        out = reference(input_ids=ids, output_attentions=True)
    torch.testing.assert_close(logits, out.logits, atol=1e-4, rtol=1e-5)
    for layer in (0, 1):
        torch.testing.assert_close(got[layer], out.attentions[layer], atol=1e-6, rtol=1e-5)


def test_building_leaves_the_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    build_planted_model(seed=7)
    assert torch.equal(torch.rand(3), expected)
