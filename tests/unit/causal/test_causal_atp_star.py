"""AtP* on tiny models: exact where the only nonlinearity is a later head's softmax; GradDrop's passes."""

from __future__ import annotations

import pytest
import torch

from headatlas.causal.atp_star import atp_star, qk_ceiling
from headatlas.causal.attribution import attribution_scores
from headatlas.causal.interventions import ZeroReplacement, run_sets
from headatlas.causal.metrics import Metric, get_metric, last_rows
from headatlas.errors import ArchitectureUnavailable, InvalidSettingError
from headatlas.lens import session
from headatlas.probes import PROBES, ProbeBatch, ProbeSettings
from headatlas.testing.tiny import tiny_gemma3, tiny_llama

BIG = 1e5
SOURCE = slice(1, 17)  # residual channels head L0H0 writes (and only it)

ONE_LOGIT = Metric(
    name="one_logit",
    description="logit of token 7 at the last position (linear in the logits)",
    probe=None,
    higher_is_better=True,
    rows=last_rows,
    value=lambda logits, batch, rows: logits[:, 0, 7].float(),
)


def composed_model(seed: int = 0):
    """A 2-layer Llama in which head L0H0 reaches the metric only linearly or through layer 1's queries/keys.

    * the MLPs write nothing;
    * every residual stream carries ``BIG`` in channel 0, which no head writes and no norm passes on
      (gain 0 there), so each norm's ``1 / rms`` is constant to ~1e-7 and the norms act linearly; the other
      gains undo that constant;
    * L0H0 writes only into channels 1-16; layer 1 reads them into its queries and keys (scaled up: its
      attention is sharp) but not into its values;
    * the metric is one logit.

    So patching L0H0 changes the metric exactly by the linear paths plus each layer-1 head's change of
    attention times its (unchanged) values: what AtP*'s QK fix computes.
    """
    loaded = tiny_llama("full", layers=2, seed=seed)
    inner = loaded.model.model
    gen = torch.Generator().manual_seed(seed)
    d = loaded.facts.d_model
    with torch.no_grad():
        inner.embed_tokens.weight.copy_(torch.randn(inner.embed_tokens.weight.shape, generator=gen))
        inner.embed_tokens.weight[:, 0] = BIG
        gain = torch.full((d,), BIG / d**0.5)
        gain[0] = 0
        inner.norm.weight.copy_(gain)
        for block in inner.layers:
            block.mlp.down_proj.weight.zero_()
            block.input_layernorm.weight.copy_(gain)
            attn = block.self_attn
            for proj, scale in ((attn.q_proj, 0.25), (attn.k_proj, 0.25), (attn.v_proj, 0.3), (attn.o_proj, 0.3)):
                proj.weight.copy_(torch.randn(proj.weight.shape, generator=gen) * scale)
            attn.o_proj.weight[0] = 0  # no head writes channel 0
        first, second = inner.layers[0].self_attn, inner.layers[1].self_attn
        first.o_proj.weight[:, :16] = 0
        first.o_proj.weight[SOURCE, :16] = torch.randn(16, 16, generator=gen)
        first.o_proj.weight[SOURCE, 16:] = 0
        second.v_proj.weight[:, SOURCE] = 0
    return loaded


def prompt(seed: int = 0, batch: int = 3, length: int = 12) -> ProbeBatch:
    ids = torch.randint(2, 300, (batch, length), generator=torch.Generator().manual_seed(seed))
    mask = torch.ones_like(ids)
    return ProbeBatch(input_ids=ids, attention_mask=mask, rows=last_rows(ProbeBatch(ids, mask, ids[:, :1])))


def exact_effect(loaded, batch, metric, head, replacement):
    values = run_sets(loaded, [batch], metric, [[], [head]], replacement)
    return float(values[1] - values[0])


def test_qk_fix_is_exact_where_the_only_nonlinearity_is_a_later_softmax():
    loaded = composed_model()
    batch = prompt()
    zero = ZeroReplacement()
    exact = exact_effect(loaded, batch, ONE_LOGIT, (0, 0), zero)
    result = atp_star(loaded, [batch], ONE_LOGIT, zero, graddrop=False, qk_targets=None)
    assert result.targets == ((1, 0), (1, 1), (1, 2), (1, 3))
    assert float(result.qk[0, 0]) == pytest.approx(exact, rel=1e-4)
    # the linear estimate misses what the saturated softmax does
    plain = attribution_scores(loaded, [batch], ONE_LOGIT, zero)
    assert abs(float(plain[0, 0]) - exact) > 0.2 * abs(exact)
    # layer 1's heads reach the metric linearly: AtP* leaves them as plain attribution has them
    torch.testing.assert_close(result.qk[1], plain[1], atol=1e-6, rtol=1e-4)


def test_qk_ceiling_is_exact_where_the_only_nonlinearity_is_a_later_softmax():
    loaded = composed_model()
    batch = prompt()
    zero = ZeroReplacement()
    exact = exact_effect(loaded, batch, ONE_LOGIT, (0, 0), zero)
    ceiling = qk_ceiling(loaded, [batch], ONE_LOGIT, zero)
    assert float(ceiling[0, 0]) == pytest.approx(exact, rel=1e-4)
    plain = attribution_scores(loaded, [batch], ONE_LOGIT, zero)
    torch.testing.assert_close(ceiling[1], plain[1], atol=1e-6, rtol=1e-4)


def test_qk_ceiling_reads_later_patterns_only_and_chunks_alike():
    loaded = tiny_llama("gqa", layers=3)
    batches = PROBES["repeated_tokens"](loaded.tokenizer, ProbeSettings(repeat_len=6, n_repeat=3, batch_size=3), 0)
    metric = get_metric("induction_loss")
    plain = attribution_scores(loaded, batches, metric, None)
    one = qk_ceiling(loaded, batches, metric, chunk=1)
    many = qk_ceiling(loaded, batches, metric, chunk=5)
    torch.testing.assert_close(one, many, atol=1e-6, rtol=1e-4)
    # the last layer has no later softmax: its heads keep plain attribution's estimate
    torch.testing.assert_close(one[-1], plain[-1], atol=1e-6, rtol=1e-4)
    assert not torch.allclose(one[0], plain[0], atol=1e-6, rtol=1e-4)
    with pytest.raises(InvalidSettingError, match="chunk"):
        qk_ceiling(loaded, batches, metric, chunk=0)


def test_qk_fix_with_no_targets_is_plain_attribution():
    loaded = tiny_llama("gqa", layers=3)
    batches = PROBES["repeated_tokens"](loaded.tokenizer, ProbeSettings(repeat_len=6, n_repeat=3, batch_size=3), 0)
    metric = get_metric("induction_loss")
    plain = attribution_scores(loaded, batches, metric, None)
    none = atp_star(loaded, batches, metric, None, graddrop=False, qk_targets=0)
    assert none.targets == ()
    torch.testing.assert_close(none.qk, plain, atol=1e-7, rtol=1e-5)
    some = atp_star(loaded, batches, metric, None, graddrop=False, qk_targets=3)
    assert 1 <= len(some.targets) <= 3 and all(layer >= 1 for layer, _ in some.targets)
    assert not torch.allclose(some.qk, plain, atol=1e-7, rtol=1e-5)
    assert (some.forwards, some.backwards) == (1, 2)  # the observing pass that picks the targets, the estimate


def test_graddrop_with_one_layer_is_the_magnitude_of_plain_attribution():
    loaded = tiny_llama("gqa", layers=1)
    batches = PROBES["repeated_tokens"](loaded.tokenizer, ProbeSettings(repeat_len=6, n_repeat=3, batch_size=3), 0)
    metric = get_metric("induction_loss")
    result = atp_star(loaded, batches, metric, None, qk_targets=None)
    assert result.graddrop is not None and result.targets == ()
    torch.testing.assert_close(result.graddrop, attribution_scores(loaded, batches, metric, None).abs())
    assert (result.forwards, result.backwards) == (1, 2)
    assert result.forward_equivalents == 5.0


def _layer0_attribution_without(loaded, batch, cut_layer):
    """Zero-ablation attribution of layer-0 heads with ``cut_layer``'s attention output cut from the backward pass."""
    with torch.no_grad(), session(hooks=[lambda layer, out: outputs.__setitem__(layer, out)]):
        outputs: dict[int, torch.Tensor] = {}
        loaded.model(batch.input_ids)
    delta = torch.zeros_like(outputs[0], requires_grad=True)

    def hook(layer, out):
        if layer == 0:
            return out + delta
        return out.detach() if layer == cut_layer else None

    with torch.enable_grad(), session(hooks=[hook]):
        value = ONE_LOGIT.value(loaded.model(batch.input_ids).logits[:, -1:], batch, batch.rows).mean()
        (grad,) = torch.autograd.grad(value, [delta])
    return (-outputs[0] * grad).sum((0, 1, 3))


def test_graddrop_sums_the_changes_of_one_pass_per_dropped_layer():
    loaded = tiny_llama("gqa", layers=3)
    batch = prompt(length=10)
    result = atp_star(loaded, [batch], ONE_LOGIT, ZeroReplacement(), qk_fix=False)
    assert result.graddrop is not None and (result.forwards, result.backwards) == (1, 4)
    full = result.qk[0]
    torch.testing.assert_close(_layer0_attribution_without(loaded, batch, None), full, atol=1e-6, rtol=1e-4)
    # pass l = 0 silences the heads themselves (|0 - ĉ|); l = 1, 2 remove the paths through those layers
    expected = full.abs() + sum((_layer0_attribution_without(loaded, batch, cut) - full).abs() for cut in (1, 2))
    torch.testing.assert_close(result.graddrop[0], expected, atol=1e-6, rtol=1e-4)
    assert torch.all(expected > full.abs() + 1e-6)  # the later layers' passes do add something here
    # heads of the last layer: only their own pass changes them
    torch.testing.assert_close(result.graddrop[2], result.qk[2].abs())


def test_graddrop_dominates_the_qk_fixed_magnitude():
    loaded = tiny_llama("mqa", layers=3)
    batches = PROBES["repeated_tokens"](loaded.tokenizer, ProbeSettings(repeat_len=6, n_repeat=3, batch_size=3), 0)
    result = atp_star(loaded, batches, get_metric("induction_loss"), None, qk_targets=None)
    assert result.graddrop is not None
    assert torch.all(result.graddrop >= result.qk.abs() - 1e-7)  # the head's own-layer pass alone gives |ĉ|
    assert torch.equal(result.scores.abs(), result.graddrop)
    assert torch.all((result.scores < 0) == (result.qk < 0))


def test_refusals():
    loaded = tiny_llama("gqa")
    metric = get_metric("induction_loss")
    batches = PROBES["repeated_tokens"](loaded.tokenizer, ProbeSettings(repeat_len=6, n_repeat=2, batch_size=2), 0)
    with pytest.raises(InvalidSettingError, match="qk_targets"):
        atp_star(loaded, batches, metric, None, qk_targets=-1)
    gemma = tiny_gemma3()
    with pytest.raises(ArchitectureUnavailable, match="QK fix"):
        atp_star(gemma, batches, metric, None)
    plain_gemma = atp_star(gemma, batches, metric, None, qk_fix=False, graddrop=False)
    torch.testing.assert_close(plain_gemma.qk, attribution_scores(gemma, batches, metric, None), atol=1e-7, rtol=1e-5)


def test_attribution_api_dispatches_to_atp_star():
    loaded = tiny_llama("gqa", layers=2)
    metric = get_metric("induction_loss")
    batches = PROBES["repeated_tokens"](loaded.tokenizer, ProbeSettings(repeat_len=6, n_repeat=2, batch_size=2), 0)
    star = atp_star(loaded, batches, metric, None)
    torch.testing.assert_close(attribution_scores(loaded, batches, metric, None, method="atp*"), star.scores)
    qk_only = atp_star(loaded, batches, metric, None, graddrop=False)
    torch.testing.assert_close(attribution_scores(loaded, batches, metric, None, method="atp*-qk"), qk_only.qk)
    with pytest.raises(InvalidSettingError, match="valid methods are atp"):
        attribution_scores(loaded, batches, metric, None, method="eap")
    with pytest.raises(InvalidSettingError, match="steps=1"):
        attribution_scores(loaded, batches, metric, None, steps=2, method="atp*")
