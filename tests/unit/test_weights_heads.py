"""Weights-only head types (copying, negative_copying, successor, copy_suppression) on tiny models."""

from __future__ import annotations

import pytest
import torch

from headatlas.census import ScanSettings, run_census
from headatlas.errors import InvalidSettingError
from headatlas.heads import HeadType
from headatlas.heads.copy_suppression import attention_to_predicted
from headatlas.heads.copying import copying_fractions
from headatlas.heads.successor import build_tasks, successor_fractions
from headatlas.heads.weights import circuits, embeddings, head_outputs, norm_gain, word_tokens
from headatlas.lens import install, session
from headatlas.models.facts import facts_from_config
from headatlas.models.loader import LoadedModel
from headatlas.probes import ProbeSettings
from headatlas.testing.tiny import ByteTokenizer, tiny_gemma3, tiny_llama

SMALL_TEXT = ProbeSettings(n_text=2, text_len=32, batch_size=2)
WEIGHT_TYPES = ("copying", "negative_copying", "successor")


def _tiny(kind: str) -> LoadedModel:
    return tiny_gemma3() if kind == "gemma3" else tiny_llama(kind)


@torch.no_grad()
def _plant(loaded: LoadedModel, layer: int, head: int, ov: torch.Tensor, vectors: dict[int, torch.Tensor]) -> None:
    """Make head ``(layer, head)``'s OV circuit act as ``ov`` (16 x 16) on the first 16 residual channels.

    Layer 0 is silenced (effective embedding = embedding), every token embeds as a unit vector in those
    channels (``vectors`` overrides some), and the unembedding is the embedding.
    """
    model, facts = loaded.model, loaded.facts
    dim = facts.head_dim
    assert dim == ov.shape[0] == 16
    block0 = model.model.layers[0]
    block0.self_attn.o_proj.weight.zero_()
    block0.mlp.down_proj.weight.zero_()
    embed = model.model.embed_tokens.weight
    gen = torch.Generator().manual_seed(1)
    rows = torch.randn(embed.shape[0], dim, generator=gen)
    for token, vector in vectors.items():
        rows[token] = vector
    embed.zero_()
    embed[:, :dim] = rows / rows.norm(dim=-1, keepdim=True)
    model.get_output_embeddings().weight.copy_(embed)
    attn = model.model.layers[layer].self_attn
    kv = head // (facts.n_heads // facts.n_kv_heads)
    attn.v_proj.weight[kv * dim : (kv + 1) * dim] = torch.eye(dim, facts.d_model)
    attn.o_proj.weight[:, head * dim : (head + 1) * dim] = 0.0
    attn.o_proj.weight[:dim, head * dim : (head + 1) * dim] = ov


@pytest.mark.parametrize("kind", ["full", "gqa", "mqa", "gemma3"])
def test_planted_copying_head_scores_one(kind: str) -> None:
    loaded = _tiny(kind)
    _plant(loaded, layer=1, head=1, ov=torch.eye(16), vectors={})
    positive, negative, ids = copying_fractions(loaded, seed=0)
    assert len(ids) > 100
    assert positive[1, 1] == pytest.approx(1.0)
    assert negative[1, 1] == 0.0
    others = positive.clone()
    others[1, 1] = 0.0
    assert float(others.max()) < 0.5  # random heads, including head 0 that shares head 1's KV head under GQA


@pytest.mark.parametrize("kind", ["full", "gqa", "mqa", "gemma3"])
def test_planted_negative_copying_head_scores_one(kind: str) -> None:
    loaded = _tiny(kind)
    _plant(loaded, layer=1, head=3, ov=-torch.eye(16), vectors={})
    positive, negative, _ = copying_fractions(loaded, seed=0)
    assert negative[1, 3] == pytest.approx(1.0)
    assert positive[1, 3] == 0.0
    others = negative.clone()
    others[1, 3] = 0.0
    assert float(others.max()) < 0.5


def test_copying_is_recomputed_when_the_weights_change() -> None:
    loaded = tiny_llama("gqa")
    before, _, _ = copying_fractions(loaded, seed=0)
    assert float(before[1, 1]) < 0.5
    _plant(loaded, layer=1, head=1, ov=torch.eye(16), vectors={})  # in-place edits of the same parameters
    after, _, _ = copying_fractions(loaded, seed=0)
    assert after[1, 1] == pytest.approx(1.0)


def test_gqa_head_reads_its_own_kv_head() -> None:
    """Query head 1 reads KV head 0 (= 1 // 2), not KV head 1 (= 1 % 2): plant there and only there."""
    loaded = tiny_llama("gqa")
    _plant(loaded, layer=1, head=1, ov=torch.eye(16), vectors={})
    with torch.no_grad():  # spoil KV head 1 so that a wrong mapping cannot score
        loaded.model.model.layers[1].self_attn.v_proj.weight[16:32].normal_(generator=torch.Generator().manual_seed(3))
    positive, _, _ = copying_fractions(loaded, seed=0)
    assert positive[1, 1] == pytest.approx(1.0)


def _tiny_other(model_type: str) -> LoadedModel:
    """A random Mistral / Qwen2 (value bias) / Qwen3 with GQA, for the Llama-style families."""
    from transformers import AutoConfig, AutoModelForCausalLM

    torch.manual_seed(0)
    config = AutoConfig.for_model(
        model_type, vocab_size=300, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=256,
    )  # fmt: skip
    model = AutoModelForCausalLM.from_config(config).eval()
    if model_type == "qwen2":
        assert model.model.layers[0].self_attn.v_proj.bias is not None
        with torch.no_grad():
            model.model.layers[0].self_attn.v_proj.bias.normal_()
    install(model)
    facts = facts_from_config(config, name=f"tiny-{model_type}", source="test", sha256=None)
    return LoadedModel(model, ByteTokenizer(300), facts)


@pytest.mark.parametrize("kind", ["full", "gqa", "mqa", "gemma3", "mistral", "qwen2", "qwen3"])
def test_head_outputs_match_the_models_attention(kind: str) -> None:
    """On a one-token input each head attends to itself: its output is the OV circuit of the embedding."""
    loaded = _tiny_other(kind) if kind in ("mistral", "qwen2", "qwen3") else _tiny(kind)
    circ = circuits(loaded)
    captured: dict[int, torch.Tensor] = {}

    def capture(layer: int, out: torch.Tensor) -> None:
        captured[layer] = out.detach().clone()

    token = torch.tensor([[7]])
    with torch.no_grad(), session(hooks=[capture]):
        hidden = loaded.model(input_ids=token, output_hidden_states=True).hidden_states
    raw, effective = embeddings(circ, [7])
    facts = loaded.facts
    w_out = loaded.model.model.layers[0].self_attn.o_proj.weight.view(facts.d_model, facts.n_heads, facts.head_dim)
    expected = torch.einsum("hk,dhk->hd", captured[0][0, 0], w_out)
    assert torch.allclose(head_outputs(circ, 0, raw)[:, 0], expected, atol=1e-5)
    assert torch.allclose(raw[0], hidden[0][0, 0], atol=1e-5)  # Gemma's sqrt(d_model) scale included
    assert torch.allclose(effective[0], hidden[1][0, 0], atol=1e-4)  # residual stream after layer 0


@pytest.mark.parametrize("kind", ["llama", "gemma3"])
def test_norm_gain_reads_the_modules_weighting(kind: str) -> None:
    loaded = tiny_llama("gqa") if kind == "llama" else tiny_gemma3()
    norm = loaded.model.model.norm
    with torch.no_grad():
        norm.weight.copy_(torch.linspace(0.5, 2.0, norm.weight.shape[0]))
    gain = norm_gain(norm, loaded.facts.d_model, torch.float32, torch.device("cpu"))
    expected = norm.weight if kind == "llama" else 1.0 + norm.weight  # Gemma scales by (1 + w)
    assert torch.allclose(gain, expected / expected.max(), atol=1e-5)


def test_planted_successor_head_scores_one() -> None:
    loaded = tiny_llama("gqa")
    tasks = {"letters": tuple("ABCDEFGHIJKL")}
    token_ids = [loaded.tokenizer.encode(c)[0] for c in tasks["letters"]]
    basis = torch.eye(16)
    shift = torch.zeros(16, 16)
    for i in range(11):
        shift[i + 1, i] = 1.0  # e_i -> e_{i+1}
    _plant(loaded, layer=1, head=2, ov=shift, vectors={t: basis[i] for i, t in enumerate(token_ids)})
    fractions, built = successor_fractions(loaded, tasks=tasks)
    assert len(built[0].pairs) == 11
    assert fractions[1, 2] == pytest.approx(1.0)
    assert float(fractions.flatten().sort().values[-2]) < 0.5  # no other head
    _plant(loaded, layer=1, head=2, ov=torch.eye(16), vectors={t: basis[i] for i, t in enumerate(token_ids)})
    assert successor_fractions(loaded, tasks=tasks)[0][1, 2] == 0.0  # a copying head ranks the item itself first


def test_successor_drops_multi_token_items_and_counts_them() -> None:
    loaded = tiny_llama("gqa")  # byte tokenizer: only bare single characters are one token
    tasks = {t.name: t for t in build_tasks(loaded.tokenizer)}
    assert (len(tasks["digits"].kept), tasks["digits"].dropped, tasks["digits"].form) == (9, 11, "bare")
    assert (len(tasks["letters"].kept), tasks["letters"].dropped) == (26, 0)
    assert tasks["months"].kept == [] and tasks["months"].dropped == 12
    result = run_census(loaded, ScanSettings(head_types=("successor",)))
    info = result.probes["successor"]
    assert info["items_dropped"] == 11 + 20 + 10 + 7 + 12
    assert {r["n_samples"] for r in result.rows} == {8 + 25}


def test_successor_with_too_few_single_token_items_is_an_error() -> None:
    class Wordy:
        def __len__(self) -> int:
            return 300

        def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
            return [5, 6]  # everything is two tokens

    with pytest.raises(InvalidSettingError, match=r"only 0 ordinal pairs .* \(95 of 95 items dropped\)"):
        build_tasks(Wordy())


def test_weights_types_need_no_forward_pass_and_fill_headmap_rows() -> None:
    loaded = tiny_gemma3()

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a weights-only score ran a forward pass")

    loaded.model.forward = refuse
    result = run_census(loaded, ScanSettings(head_types=WEIGHT_TYPES))
    facts = loaded.facts
    assert len(result.rows) == len(WEIGHT_TYPES) * facts.n_layers * facts.n_heads
    for row in result.rows:
        assert 0.0 <= row["score"] <= 1.0
        assert row["score_se"] is None
    assert {r["n_samples"] for r in result.rows if r["head_type"] == "copying"} == {298}
    assert result.head_types["copying"]["probe"] is None
    assert result.probes["copying"]["token_set_size"] == 298


def test_weights_scores_are_deterministic_and_seeded() -> None:
    loaded = tiny_llama("mqa")
    first = run_census(loaded, ScanSettings(seed=3, head_types=WEIGHT_TYPES)).csv_text()
    assert run_census(loaded, ScanSettings(seed=3, head_types=WEIGHT_TYPES)).csv_text() == first
    assert word_tokens(loaded.tokenizer, n=50, seed=1) == word_tokens(loaded.tokenizer, n=50, seed=1)
    assert word_tokens(loaded.tokenizer, n=50, seed=1) != word_tokens(loaded.tokenizer, n=50, seed=2)


def test_copy_suppression_matches_an_independent_eager_computation() -> None:
    """The attention half recomputed with transformers' eager attention and the model's own logits."""
    loaded = tiny_llama("gqa", seed=4)
    attention, rows = attention_to_predicted(loaded, SMALL_TEXT, seed=0)
    reference = tiny_llama("gqa", seed=4).model
    reference.set_attn_implementation("eager")
    from headatlas.probes.text import generate

    totals = torch.zeros(loaded.facts.n_layers, loaded.facts.n_heads, dtype=torch.float64)
    count = 0
    for batch in generate(loaded.tokenizer, SMALL_TEXT, 0):
        with torch.no_grad():
            out = reference(input_ids=batch.input_ids, output_attentions=True)
        predicted = out.logits.argmax(-1)
        for b in range(batch.input_ids.shape[0]):
            for i in range(batch.input_ids.shape[1]):
                keys = [j for j in range(1, i + 1) if batch.input_ids[b, j] == predicted[b, i]]
                if keys:
                    count += 1
                    for layer, probs in enumerate(out.attentions):
                        totals[layer] += probs[b, :, i, keys].sum(-1).double()
    assert rows == count > 0
    assert torch.allclose(attention, (totals / count).float(), atol=1e-5)


@pytest.mark.parametrize("kind", ["gqa", "gemma3"])
def test_copy_suppression_is_the_product_of_its_halves(kind: str) -> None:
    loaded = _tiny(kind)
    result = run_census(loaded, ScanSettings(head_types=("negative_copying", "copy_suppression"), probes=SMALL_TEXT))
    attention, rows = attention_to_predicted(loaded, SMALL_TEXT, seed=0)
    expected = torch.from_numpy(result.matrix("negative_copying")).float() * attention
    assert torch.allclose(torch.from_numpy(result.matrix("copy_suppression")).float(), expected, atol=1e-6)
    assert {r["n_samples"] for r in result.rows if r["head_type"] == "copy_suppression"} == {rows}


def test_head_type_needs_exactly_one_way_to_score() -> None:
    def model_score(loaded: object, probes: object, seed: int) -> object:
        raise AssertionError

    common = {"id": "x_type", "name": "X", "definition": "d", "papers": (), "term": "copying", "threshold": 0.5}
    with pytest.raises(InvalidSettingError, match="exactly one"):
        HeadType(**common, probe=None)  # type: ignore[arg-type]
    with pytest.raises(InvalidSettingError, match="exactly one"):
        HeadType(**common, probe="natural_text", score=lambda p, b: p, model_score=model_score)  # type: ignore[arg-type]
    with pytest.raises(InvalidSettingError, match="no probe"):
        HeadType(**common, probe=None, score=lambda p, b: p)  # type: ignore[arg-type]
    assert HeadType(**common, probe=None, model_score=model_score).probe is None  # type: ignore[arg-type]
