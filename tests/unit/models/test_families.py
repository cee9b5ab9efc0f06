"""Every decoder family on a tiny random model built from transformers' own config classes (no downloads).

For each family: the lens equals eager attention; the anatomy's per-head weights, the OV circuits and the
direct effects equal computations written here from the weight matrices and the model's own norm modules;
the pattern types, the weights-only types and an ablation run; a planted copying head is found. Biases and
norm weights are randomised so that a mislaid bias or gain cannot pass.
"""

from __future__ import annotations

import copy
import functools
from typing import Any

import pytest
import torch

from headatlas.causal.api import ablate
from headatlas.causal.interventions import first_layer, head_mask, make_replacement, repeat_from, run_settings
from headatlas.causal.metrics import get_metric
from headatlas.census import ScanSettings, run_census
from headatlas.errors import ArchitectureUnavailable
from headatlas.heads import head_types
from headatlas.heads.copying import copying_fractions
from headatlas.heads.ioi_circuit import run_ioi
from headatlas.heads.tasks import capture_run, direct_effects
from headatlas.heads.weights import circuits, embeddings, ov_logits, own_token_ranks, word_tokens
from headatlas.lens import PatternTap, session
from headatlas.models.anatomy import FAMILIES, anatomy
from headatlas.models.loader import LoadedModel
from headatlas.probes import PROBES, ProbeSettings
from headatlas.testing.tiny import _wrap

VOCAB = 300
TOKENS = 120  # token set of the copying scores (all 298 by default; fewer keeps this file fast)
SMALL = ProbeSettings(n_repeat=2, repeat_len=8, n_text=2, text_len=48, needle_contexts=(256,), needle_per_context=1)
_DECODER = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=2, max_position_embeddings=512, pad_token_id=0)  # fmt: skip
_GPT = dict(n_embd=64, n_layer=2, n_head=4, n_positions=512)
_NEOX = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
             max_position_embeddings=512, attention_bias=True)  # fmt: skip
_MOE = dict(num_experts=4, num_experts_per_tok=2, moe_intermediate_size=32)

CASES: dict[str, tuple[str, dict[str, Any]]] = {
    # the families issue 18 asks for
    "gpt2": ("gpt2", _GPT),
    "gpt_neox": ("gpt_neox", _NEOX),  # Pythia: parallel attention and MLP
    "gptj": ("gptj", dict(_GPT, rotary_dim=8)),
    "llama": ("llama", _DECODER),
    "mistral": ("mistral", dict(_DECODER, sliding_window=8)),  # every layer slides
    "mixtral": ("mixtral", dict(_DECODER, num_local_experts=4, num_experts_per_tok=2)),
    "qwen2": ("qwen2", _DECODER),  # Q/K/V biases
    "qwen3": ("qwen3", dict(_DECODER, head_dim=16)),  # Q/K norms
    "gemma2": ("gemma2", dict(_DECODER, head_dim=16, sliding_window=8)),  # sandwich norms, soft-capped attention
    "gemma3": ("gemma3_text", dict(_DECODER, head_dim=16, sliding_window=8)),
    "phi3": ("phi3", _DECODER),  # stacked qkv_proj
    "olmo2": ("olmo2", _DECODER),  # norms on the outputs, none on the inputs
    "starcoder2": ("starcoder2", dict(_DECODER, sliding_window=8)),  # LayerNorm, biases everywhere
    # beyond the list
    "gpt_neox_sequential": ("gpt_neox", dict(_NEOX, use_parallel_residual=False)),
    "phi": ("phi", _DECODER),  # Phi-1/2: parallel, LayerNorm, unembedding bias
    "gemma": ("gemma", dict(_DECODER, head_dim=16)),
    "olmo": ("olmo", _DECODER),  # parameter-free LayerNorms
    "olmo3": ("olmo3", dict(_DECODER, sliding_window=8)),
    "cohere": ("cohere", _DECODER),  # parallel, mean-centred norms without bias
    "qwen2_moe": ("qwen2_moe", dict(_DECODER, shared_expert_intermediate_size=32, **_MOE)),
    "qwen3_moe": ("qwen3_moe", dict(_DECODER, head_dim=16, **_MOE)),
    "smollm3": ("smollm3", _DECODER),
}
CENTRED = {"gpt2", "gpt_neox", "gptj", "starcoder2", "phi", "olmo", "cohere"}  # LayerNorm-style families


@functools.cache
def _pristine(case: str, perturb: bool) -> LoadedModel:
    from transformers import AutoConfig, AutoModelForCausalLM

    model_type, kwargs = CASES[case]
    torch.manual_seed(0)
    config = AutoConfig.for_model(model_type, vocab_size=VOCAB, bos_token_id=0, eos_token_id=1, **kwargs)
    model = AutoModelForCausalLM.from_config(config).eval()
    if perturb:
        gen = torch.Generator().manual_seed(1)
        with torch.no_grad():
            for name, param in model.named_parameters():
                if name.endswith("bias") or "norm" in name or ".ln_" in name:
                    param.add_(0.1 * torch.randn(param.shape, generator=gen))
    return _wrap(model, VOCAB, f"tiny-{case}")


def build(case: str, *, perturb: bool = True) -> LoadedModel:
    """A fresh copy of the case's tiny model (random biases and norm gains unless ``perturb=False``)."""
    loaded = _pristine(case, perturb)
    return LoadedModel(copy.deepcopy(loaded.model), loaded.tokenizer, loaded.facts)


def test_every_family_of_the_issue_has_an_adapter() -> None:
    wanted = {"gpt2", "gpt_neox", "gptj", "llama", "mistral", "mixtral", "qwen2", "qwen3", "gemma2", "gemma3_text",
              "phi3", "olmo2", "starcoder2"}  # fmt: skip
    assert wanted <= set(FAMILIES)
    assert {model_type for model_type, _ in CASES.values()} == set(FAMILIES)  # every adapter is tested here


# -- the weights as this test reads them, independently of headatlas.models.anatomy ---------------------
def _model_type(loaded: LoadedModel) -> str:
    return loaded.facts.architecture


def _blocks(model: Any) -> Any:
    base = model.base_model
    return base.h if hasattr(base, "h") else base.layers


def _attention(block: Any) -> Any:
    for name in ("self_attn", "attn", "attention"):
        if hasattr(block, name):
            return getattr(block, name)
    raise AssertionError(type(block).__name__)


def qkvo(loaded: LoadedModel, layer: int) -> dict[str, torch.Tensor | None]:
    """``q [H, D, d]``, ``k``/``v`` ``[KV, D, d]``, ``o [d, H, D]`` and their biases, sliced from the modules."""
    f = loaded.facts
    h, kv, dim, d = f.n_heads, f.n_kv_heads, f.head_dim, f.d_model
    attn = _attention(_blocks(loaded.model)[layer])
    kind = _model_type(loaded)
    if kind == "gpt2":  # Conv1D: weight [in, out], out = [q | k | v]
        w, b = attn.c_attn.weight, attn.c_attn.bias
        parts = [(w[:, i * d : (i + 1) * d].T, b[i * d : (i + 1) * d]) for i in range(3)]
        o, bo = attn.c_proj.weight.T, attn.c_proj.bias
    elif kind == "gpt_neox":  # per head: q, k, v rows
        w = attn.query_key_value.weight.view(h, 3, dim, d)
        b = attn.query_key_value.bias.view(h, 3, dim)
        parts = [(w[:, i], b[:, i]) for i in range(3)]  # [H, D, d] views
        o, bo = attn.dense.weight, attn.dense.bias
    elif kind == "phi3":  # all queries, all keys, all values
        w = attn.qkv_proj.weight
        parts = [(piece, None) for piece in torch.split(w, [h * dim, kv * dim, kv * dim])]
        o, bo = attn.o_proj.weight, attn.o_proj.bias
    else:
        parts = [(p.weight, p.bias) for p in (attn.q_proj, attn.k_proj, attn.v_proj)]
        out = attn.out_proj if kind == "gptj" else attn.dense if kind == "phi" else attn.o_proj
        o, bo = out.weight, out.bias
    counts = (h, kv, kv)
    result: dict[str, torch.Tensor | None] = {}
    for name, (weight, bias), n in zip("qkv", parts, counts, strict=True):
        result[name] = weight.view(n, dim, d)  # views (never copies), so that planting writes the model's weights
        result["b" + name] = None if bias is None else bias.view(n, dim)
    result["o"], result["bo"] = o.view(d, h, dim), bo
    return result


def _in_norm(loaded: LoadedModel, layer: int) -> Any:
    block = _blocks(loaded.model)[layer]
    return None if _model_type(loaded) in ("olmo2", "olmo3") else getattr(block, "ln_1", None) or block.input_layernorm


def _post_norm(loaded: LoadedModel, layer: int) -> Any:
    kind = _model_type(loaded)
    sandwich = kind in ("gemma2", "gemma3_text", "olmo2", "olmo3")
    return _blocks(loaded.model)[layer].post_attention_layernorm if sandwich else None


def _final_norm(loaded: LoadedModel) -> Any:
    base = loaded.model.base_model
    for name in ("ln_f", "final_layer_norm", "final_layernorm", "norm"):
        if hasattr(base, name):
            return getattr(base, name)
    raise AssertionError


def _lone_tokens(loaded: LoadedModel, ids: list[int]) -> tuple[Any, dict[int, torch.Tensor]]:
    """Hidden states and per-head outputs when each token is a sequence of its own."""
    captured: dict[int, torch.Tensor] = {}
    with torch.no_grad(), session(hooks=[lambda layer, out: captured.__setitem__(layer, out.clone())]):
        out = loaded.model(input_ids=torch.tensor(ids)[:, None], output_hidden_states=True)
    return out.hidden_states, captured


# -- the lens ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", CASES)
def test_lens_equals_eager_attention(case: str) -> None:
    loaded = build(case)
    ids = torch.randint(2, VOCAB, (2, 20), generator=torch.Generator().manual_seed(0))
    got: dict[int, torch.Tensor] = {}
    with torch.no_grad(), session(taps=[PatternTap(torch.arange(20).expand(2, 20), got.__setitem__)]):
        logits = loaded.model(input_ids=ids).logits
    reference = copy.deepcopy(loaded.model)
    reference.set_attn_implementation("eager")
    with torch.no_grad():
        eager = reference(input_ids=ids, output_attentions=True)
    assert sorted(got) == list(range(loaded.facts.n_layers))
    for layer, probs in got.items():
        assert float((probs - eager.attentions[layer]).abs().max()) <= 1e-5, layer
    assert float((logits - eager.logits).abs().max()) <= 1e-5
    if loaded.facts.sliding_window:  # the window really cuts: no attention beyond it
        beyond = torch.ones(20, 20).tril(-loaded.facts.sliding_window).bool()
        for layer in loaded.facts.sliding_layers:
            assert float(got[layer][..., beyond].abs().max()) == 0.0


# -- the anatomy ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", CASES)
def test_anatomy_reads_each_heads_weights_where_the_family_keeps_them(case: str) -> None:
    loaded = build(case)
    parts = anatomy(loaded)
    for layer in range(loaded.facts.n_layers):
        mine = qkvo(loaded, layer)
        for name, got in (("q", parts.query(layer)), ("k", parts.key(layer)), ("v", parts.value(layer))):
            assert torch.equal(got.weight, mine[name]), name
            assert (got.bias is None) == (mine["b" + name] is None) and (
                got.bias is None or torch.equal(got.bias, mine["b" + name])
            ), name
        out = parts.out(layer)
        assert torch.equal(out.weight, mine["o"])
        assert (out.bias is None) == (mine["bo"] is None) and (out.bias is None or torch.equal(out.bias, mine["bo"]))


@pytest.mark.parametrize("case", CASES)
def test_values_and_effective_embedding_equal_the_models_own_forward_pass(case: str) -> None:
    """A lone token attends to itself: each head's output is its KV head's value, and the residual stream after
    layer 0 is the effective embedding."""
    loaded = build(case)
    if case == "gpt2":  # the anatomy leaves the learned position embedding out of a token's embedding
        assert torch.equal(embeddings(circuits(loaded), [7, 9])[0], loaded.model.transformer.wte.weight[[7, 9]])
        with torch.no_grad():
            loaded.model.transformer.wpe.weight.zero_()
    parts, circ = anatomy(loaded), circuits(loaded)
    hidden, heads = _lone_tokens(loaded, [7, 9, 11])
    raw, effective = embeddings(circ, [7, 9, 11])
    torch.testing.assert_close(raw, hidden[0][:, 0], atol=1e-6, rtol=0)
    torch.testing.assert_close(effective, hidden[1][:, 0], atol=2e-5, rtol=1e-5)
    for layer in range(loaded.facts.n_layers):
        values = parts.values(layer, hidden[layer][:, 0])[:, parts.kv_of_head]  # [N, H, D]
        torch.testing.assert_close(values, heads[layer][:, 0], atol=2e-5, rtol=1e-5)


# -- weights-only scores -------------------------------------------------------------------------------
def _direct_ov_logits(loaded: LoadedModel, ids: list[int]) -> torch.Tensor:
    """``[L, H, N, C]`` OV logits from the sliced weights and the model's own norm modules, with every norm's
    per-token scale kept (so they equal the anatomy's up to a positive factor per row)."""
    f = loaded.facts
    hidden, _ = _lone_tokens(loaded, ids)
    unembed = loaded.model.get_output_embeddings().weight[ids].detach()
    final = _final_norm(loaded)
    out = []
    with torch.no_grad():
        for layer in range(f.n_layers):
            w = qkvo(loaded, layer)
            source = hidden[0 if layer == 0 else 1][:, 0]
            norm = _in_norm(loaded, layer)
            x = source if norm is None else norm(source)
            v = torch.einsum("kjd,nd->nkj", w["v"], x) + (0 if w["bv"] is None else w["bv"])  # [N, KV, D]
            v = v.repeat_interleave(f.n_heads // f.n_kv_heads, dim=1)  # query head h reads KV head h // group
            written = torch.einsum("dhj,nhj->hnd", w["o"], v)  # [H, N, d]
            post = _post_norm(loaded, layer)
            if post is not None:
                written = post(written)
            normed = final(written) - final(torch.zeros_like(written))  # a norm's bias is no head's
            out.append(normed @ unembed.T)
    return torch.stack(out)


@pytest.mark.parametrize("case", CASES)
def test_weights_only_scores_equal_a_direct_computation(case: str) -> None:
    loaded = build(case)
    if case == "gpt2":
        with torch.no_grad():
            loaded.model.transformer.wpe.weight.zero_()  # so that the lone-token forward pass has no position
    ids = word_tokens(loaded.tokenizer, n=TOKENS, seed=0)
    direct = _direct_ov_logits(loaded, ids)
    circ = circuits(loaded)
    raw, effective = embeddings(circ, ids)
    for layer in range(loaded.facts.n_layers):
        got = ov_logits(circ, layer, raw if layer == 0 else effective, ids)
        ratio = direct[layer].norm(dim=-1) / got.norm(dim=-1)  # [H, N]: positive scale per row
        torch.testing.assert_close(got * ratio[..., None], direct[layer], atol=1e-4, rtol=1e-4)
    positive, negative, scored = copying_fractions(loaded, seed=0, n=TOKENS)
    assert scored == ids
    above, below = own_token_ranks(direct)
    torch.testing.assert_close(positive, (above < 5).float().mean(-1))
    torch.testing.assert_close(negative, (below < 5).float().mean(-1))


@torch.no_grad()
def _plant_copier(loaded: LoadedModel, head: int, sign: float) -> None:
    """Head ``head`` of layer 1 copies (``sign`` 1) or suppresses (-1) the token it attends to, on the first
    ``D`` residual channels: layer 0 writes nothing, tokens embed as unit vectors there, unembedding = embedding."""
    f = loaded.facts
    dim, d = f.head_dim, f.d_model
    block0 = _blocks(loaded.model)[0]
    for param in block0.mlp.parameters():
        param.zero_()
    qkvo(loaded, 0)["o"].zero_()  # a view into the output projection (or Conv1D) weight
    embed = loaded.model.get_input_embeddings().weight
    rows = torch.randn(embed.shape[0], dim, generator=torch.Generator().manual_seed(1))
    embed.zero_()
    embed[:, :dim] = rows / rows.norm(dim=-1, keepdim=True)
    loaded.model.get_output_embeddings().weight.copy_(embed)
    w = qkvo(loaded, 1)
    kv = head // (f.n_heads // f.n_kv_heads)
    v, o = w["v"], w["o"]
    assert v is not None and o is not None
    v[kv] = torch.eye(dim, d)
    o[:, head] = 0.0
    o[:dim, head] = sign * torch.eye(dim)
    planted = qkvo(loaded, 1)  # the slices were views: the model's own parameters changed
    assert torch.equal(planted["v"][kv], torch.eye(dim, d)) and torch.equal(
        planted["o"][:dim, head], sign * torch.eye(dim)
    )


@pytest.mark.parametrize("case", CASES)
def test_planted_copying_and_suppressing_heads_are_found(case: str) -> None:
    loaded = build(case, perturb=False)
    _plant_copier(loaded, head=1, sign=1.0)
    _plant_copier(loaded, head=3, sign=-1.0)
    positive, negative, _ = copying_fractions(loaded, seed=0, n=TOKENS)
    assert positive[1, 1] == pytest.approx(1.0) and negative[1, 1] == 0.0
    assert negative[1, 3] == pytest.approx(1.0) and positive[1, 3] == 0.0
    positive[1, 1], negative[1, 3] = 0.0, 0.0
    assert float(positive.max()) < 0.5 and float(negative.max()) < 0.5  # nothing else was planted


# -- direct effects (the task types' direct path) --------------------------------------------------------
def _frozen(norm: Any, y: torch.Tensor, at: torch.Tensor, centred: bool, eps: float) -> torch.Tensor:
    """``norm`` applied to ``y`` [..., d] with its divisor frozen at the one it has at ``at`` [..., d] and its bias
    left out: the module's own output, rescaled (a norm is invariant to the scale of its input, up to eps)."""

    def divisor(x: torch.Tensor) -> torch.Tensor:
        x = x - x.mean(-1, keepdim=True) if centred else x
        return torch.sqrt(x.pow(2).mean(-1, keepdim=True) + eps)

    return (norm(y) - norm(torch.zeros_like(y))) * divisor(y) / divisor(at)


@pytest.mark.parametrize("case", CASES)
def test_direct_effects_equal_a_direct_computation(case: str) -> None:
    loaded = build(case)
    f = loaded.facts
    ids = torch.randint(2, VOCAB, (2, 9), generator=torch.Generator().manual_seed(2))
    run = capture_run(loaded, ids, hidden=True)  # rebuilds the final residual (and checks it against the model)
    final = run["final"]
    with torch.no_grad():
        normed = loaded.model(input_ids=ids, output_hidden_states=True).hidden_states[-1][:, -1]
    final_norm = _final_norm(loaded)
    torch.testing.assert_close(final_norm(final), normed, atol=1e-5, rtol=1e-5)
    direction = torch.randn(2, f.d_model, generator=torch.Generator().manual_seed(3))
    effects = direct_effects(loaded, run["heads"], final, direction)
    centred, eps = _model_type(loaded) in CENTRED, 1e-5 if _model_type(loaded) == "olmo" else None

    def eps_of(norm: Any) -> float:
        return eps if eps is not None else float(getattr(norm, "variance_epsilon", getattr(norm, "eps", 0.0)))

    with torch.no_grad():
        for layer in range(f.n_layers):
            w = qkvo(loaded, layer)
            written = torch.einsum("dhj,bhj->bhd", w["o"], run["heads"][layer])  # [B, H, d]
            post = _post_norm(loaded, layer)
            if post is not None:  # frozen at the layer's whole attention output
                total = written.sum(1, keepdim=True) + (0 if w["bo"] is None else w["bo"])
                written = _frozen(post, written, total, centred, eps_of(post))
            through = _frozen(final_norm, written, final[:, None], centred, eps_of(final_norm))
            expected = (through * direction[:, None]).sum(-1)
            torch.testing.assert_close(effects[:, layer], expected, atol=1e-4, rtol=1e-4)


# -- scans and causal commands ---------------------------------------------------------------------------
PATTERN_TYPES = tuple(t.id for t in head_types().values() if t.score is not None)
WEIGHT_TYPES = ("successor", "copy_suppression")  # copying's scores are checked above


@pytest.mark.parametrize("case", CASES)
def test_pattern_and_weights_types_scan_and_an_ablation_runs(case: str) -> None:
    loaded = build(case)
    headmap = run_census(loaded, ScanSettings(head_types=PATTERN_TYPES + WEIGHT_TYPES, probes=SMALL))
    assert not [k for k, v in headmap.probes.items() if isinstance(v, dict) and "unavailable" in v]
    assert len(headmap.rows) == len(PATTERN_TYPES + WEIGHT_TYPES) * loaded.facts.n_head_total
    unscored = {r["head_type"] for r in headmap.rows if r["score"] is None}
    # a random model may never predict a token that occurs earlier in the text: no copy-suppression row to score
    assert unscored <= {"copy_suppression"} and (not unscored or headmap.probes["copy_suppression"]["rows_scored"] == 0)
    batches = PROBES["repeated_tokens"](loaded.tokenizer, SMALL, 0)
    result = ablate(loaded, "L1H0,L0H2", "induction_loss", "mean", batches=batches)
    assert result.heads == ("L1H0", "L0H2")
    assert torch.isfinite(torch.tensor([result.clean, result.ablated])).all()
    assert result.clean != result.ablated  # the heads' outputs really were replaced


@pytest.mark.parametrize("case", CASES)
def test_settings_sharing_the_blocks_below_their_lowest_layer_give_the_same_metric(case: str) -> None:
    loaded = build(case)
    batches = PROBES["repeated_tokens"](loaded.tokenizer, SMALL, 0)  # two prompts: a pass holds several settings
    replacement = make_replacement(loaded, "mean", batches)
    sets = [[], [(1, 0)], [(1, 1), (1, 3)], [(0, 2)], [(0, 1), (1, 2)], [(1, 2)]]
    masks = torch.stack([head_mask(s, loaded.facts) for s in sets])
    metric = get_metric("induction_loss")
    shared = run_settings(loaded, batches, metric, masks, replacement, max_batch=8, per_sample=True)
    whole = run_settings(loaded, batches, metric, masks, replacement, max_batch=8, per_sample=True, share_lower=False)
    one_by_one = torch.cat(
        [run_settings(loaded, batches, metric, m[None], replacement, per_sample=True) for m in masks]
    )
    torch.testing.assert_close(shared, whole, rtol=1e-6, atol=1e-6)  # bit for bit on the CPU that wrote this
    torch.testing.assert_close(shared, one_by_one, rtol=1e-6, atol=1e-6)
    assert bool(((shared[1:] - shared[0]).abs().amax(1) > 1e-5).all())  # every set really changes the metric
    with repeat_from(loaded, 1, 3, 2) as active:
        assert active  # every family here has a block adapter: the shared path ran
    assert first_layer(masks[1:3]) == 1 and first_layer(masks[:1]) == loaded.facts.n_layers


@pytest.mark.parametrize("case", ["gpt2", "gpt_neox", "gemma2", "olmo2"])  # fused, parallel, sandwich, post-norm
def test_ioi_runs_its_sweeps_and_direct_effects(case: str) -> None:
    loaded = build(case)
    result = run_ioi(loaded, n_prompts=2, seed=0, names=tuple("ABCDEFGH"), n_receivers=2)
    for name in ("direct", "gated", "s_inhibition"):
        value = getattr(result, name)
        assert value.shape == (loaded.facts.n_layers, loaded.facts.n_heads)
        assert bool(value.isfinite().all())


def test_a_family_without_an_adapter_is_unavailable_by_name_and_the_scan_goes_on() -> None:
    from transformers import OPTConfig, OPTForCausalLM

    torch.manual_seed(0)
    config = OPTConfig(vocab_size=VOCAB, hidden_size=64, ffn_dim=128, num_hidden_layers=2, num_attention_heads=4,
                       word_embed_proj_dim=64, max_position_embeddings=512)  # fmt: skip
    loaded = _wrap(OPTForCausalLM(config).eval(), VOCAB, "tiny-opt")
    with pytest.raises(ArchitectureUnavailable, match=r"'opt' .*handled: .*gpt2.*gpt_neox"):
        anatomy(loaded)
    headmap = run_census(loaded, ScanSettings(head_types=("copying", "successor", "induction"), probes=SMALL))
    for type_id in ("copying", "successor"):
        message = headmap.probes[type_id]["unavailable"]
        assert "'opt'" in message and "\n" not in message
    assert all(r["score"] is not None for r in headmap.rows if r["head_type"] == "induction")


def test_a_sliding_window_without_layer_types_slides_every_layer() -> None:
    assert build("mistral").facts.sliding_layers == (0, 1)
    assert build("mistral").facts.sliding_window == 8
    assert build("llama").facts.sliding_layers == ()
