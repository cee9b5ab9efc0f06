"""Task-defined head types on tiny models: datasets (single-token filtering, counts, errors), direct effects
and IOI scores (shapes, finiteness, determinism)."""

from __future__ import annotations

import re

import pytest
import torch

from headatlas.errors import InvalidSettingError, TaskUnavailable
from headatlas.heads import get_head_type
from headatlas.heads.function_vector import indirect_effects
from headatlas.heads.ioi_circuit import run_ioi
from headatlas.heads.safety import default_pairs, format_request, kl_scores
from headatlas.heads.semantic_induction import build as semantic_build
from headatlas.heads.semantic_induction import scores as semantic_scores
from headatlas.heads.tasks import capture_run, direct_effects
from headatlas.lens import session
from headatlas.models.anatomy import read_norm
from headatlas.probes import fv_tasks, ioi
from headatlas.testing.tiny import ByteTokenizer, tiny_gemma3, tiny_llama

LETTERS = tuple("ABCDEFGH")


# -- IOI dataset ------------------------------------------------------------------------------------
def test_byte_tokenizer_keeps_only_single_character_names_and_counts_the_rest():
    tok = ByteTokenizer(300)
    pool = ioi.name_set(tok, ("A", "B", "Mary", "C", "John", "D", "A"))
    assert pool.form == "bare"  # " A" is two bytes, "A" one
    assert pool.names == ("A", "B", "C", "D")
    assert pool.dropped == 2  # Mary, John (the duplicate A is not a name of its own)
    assert list(pool.ids) == [tok.encode(n)[0] for n in pool.names]


def test_too_few_single_token_names_is_an_error_with_the_counts():
    with pytest.raises(TaskUnavailable, match=r"at least 4 names .* 0 of \d+ are \(\d+ dropped as multi-token\)"):
        ioi.name_set(ByteTokenizer(300))  # every default name is several bytes
    with pytest.raises(InvalidSettingError, match="3 of 4"):
        ioi.name_set(ByteTokenizer(300), ("A", "B", "C", "Dave"))


def test_ioi_prompts_place_the_names_and_corrupt_only_the_second_subject():
    tok = ByteTokenizer(300)
    data = ioi.build(tok, n_prompts=12, seed=3, names=LETTERS)
    assert data.n_prompts == 12 and len(data.groups) == 8
    assert data.info["names_kept"] == 8 and data.info["names_dropped"] == 0
    for g in data.groups:
        clean, corrupt = g.clean, g.corrupt
        assert clean.shape == corrupt.shape
        rows = torch.arange(clean.shape[0])
        assert torch.equal(clean[rows, g.io_pos], g.io)
        assert torch.equal(clean[rows, g.s1_pos], g.s)
        assert torch.equal(clean[rows, g.s2_pos], g.s)
        assert bool((g.io != g.s).all())
        differs = (clean != corrupt).nonzero()
        assert differs[:, 1].tolist() == g.s2_pos[differs[:, 0]].tolist()  # only S2 changes
        third = corrupt[rows, g.s2_pos]
        assert bool(((third != g.io) & (third != g.s)).all())
        assert bool((clean[:, 0] == 0).all())  # BOS
    first = data.groups[0]
    assert bool(first.io_pos[0] < first.s1_pos[0]) and bool(first.io_pos[1] > first.s1_pos[1])  # ABBA, BABA


def test_ioi_prompts_are_deterministic_in_the_seed():
    tok = ByteTokenizer(300)
    a, b, c = (ioi.build(tok, 8, seed, LETTERS) for seed in (1, 1, 2))
    assert all(torch.equal(x.clean, y.clean) for x, y in zip(a.groups, b.groups, strict=True))
    assert any(not torch.equal(x.clean, y.clean) for x, y in zip(a.groups, c.groups, strict=True))
    with pytest.raises(InvalidSettingError, match="n_prompts"):
        ioi.build(tok, 0, 0, LETTERS)


class WordTokenizer:
    """Each space-prefixed word (or punctuation mark) is one token: the "space" form of real BPE tokenizers."""

    bos_token_id, eos_token_id, all_special_ids = 0, 1, [0, 1]

    def __init__(self) -> None:
        self.vocab: dict[str, int] = {}

    def __len__(self) -> int:
        return 2 + len(self.vocab)

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return [self.vocab.setdefault(w, 2 + len(self.vocab)) for w in re.findall(r" ?[\w']+| ?[^\w\s]", text)]


def test_word_tokenizer_uses_space_prefixed_names_and_probe_batches_carry_answer_and_wrong():
    from headatlas.probes import ProbeSettings

    tok = WordTokenizer()
    data = ioi.build(tok, 8, 0)
    assert data.names.form == "space" and data.info["names_dropped"] == 0
    filled = ioi.TEMPLATES[0].format(A="Mary", B="John", C="John")
    assert data.groups[0].clean.shape[1] == 1 + len(tok.encode(filled))
    batches = ioi.generate(tok, ProbeSettings(), 0)
    assert len(batches) == len(ioi.TEMPLATES)
    for b in batches:
        assert b.rows.tolist() == [[b.input_ids.shape[1] - 1]] * b.input_ids.shape[0]
        assert bool((b.extras["answer"] != b.extras["wrong"]).all())


# -- direct effects ---------------------------------------------------------------------------------
@pytest.mark.parametrize("make", [lambda: tiny_llama("mqa"), lambda: tiny_gemma3()], ids=["llama-mqa", "gemma3"])
def test_direct_effects_read_the_head_through_the_frozen_final_norm(make):
    loaded = make()
    with torch.no_grad():
        loaded.model.model.norm.weight.normal_()
    ids = torch.randint(2, 200, (2, 8), generator=torch.Generator().manual_seed(2))
    run = capture_run(loaded, ids, hidden=True)
    final = run["final"]
    # the rebuilt final residual really is what the final norm saw
    normed = loaded.model.model.norm(final)
    logits = loaded.model.lm_head(normed)
    torch.testing.assert_close(logits.float(), run["logits"], atol=1e-4, rtol=1e-4)
    direction = loaded.model.lm_head.weight[5] - loaded.model.lm_head.weight[7]
    effects = direct_effects(loaded, run["heads"], final, direction.expand(2, -1).detach())
    assert effects.shape == (2, loaded.facts.n_layers, loaded.facts.n_heads)
    # by hand for the last layer (Llama: no norm between the head and the residual stream)
    layer = loaded.facts.n_layers - 1
    block = loaded.model.model.layers[layer]
    if getattr(block, "pre_feedforward_layernorm", None) is None:
        reading = read_norm(loaded.model.model.norm, final.shape[-1], torch.device("cpu"))
        gain, eps = reading.gain, reading.eps
        w_o = block.self_attn.o_proj.weight.detach().view(final.shape[-1], loaded.facts.n_heads, -1)
        written = torch.einsum("dhk,bk->bd", w_o[:, 1:2], run["heads"][layer][:, 1])
        rms = final.pow(2).mean(-1, keepdim=True).add(eps).sqrt()
        by_hand = ((gain * written / rms) * direction.detach()).sum(-1)
        torch.testing.assert_close(effects[:, layer, 1], by_hand, atol=1e-5, rtol=1e-4)
    # the direction's sign carries through
    flipped = direct_effects(loaded, run["heads"], final, -direction.expand(2, -1).detach())
    torch.testing.assert_close(flipped, -effects)


# -- IOI scores -------------------------------------------------------------------------------------
def test_ioi_scores_have_the_model_shape_are_finite_and_deterministic():
    loaded = tiny_llama("gqa", layers=3)
    first = run_ioi(loaded, n_prompts=6, seed=0, names=LETTERS, n_receivers=2)
    again = run_ioi(loaded, n_prompts=6, seed=0, names=LETTERS, n_receivers=2)
    for name in ("direct", "gated", "attn_io", "attn_s", "s_inhibition"):
        value = getattr(first, name)
        assert value.shape == (3, 4), name
        assert bool(value.isfinite().all()), name
        assert torch.equal(value, getattr(again, name)), name
    assert bool(((first.attn_io >= 0) & (first.attn_io + first.attn_s <= 1 + 1e-5)).all())
    # gating: a head counts as a name mover only where it attends to IO
    assert bool((first.gated[first.attn_io < 0.1] == 0).all())
    assert torch.equal(first.gated[first.attn_io >= 0.1], first.direct[first.attn_io >= 0.1])
    # no head in or above the top receiver's layer can change a receiver's query
    if first.receivers:
        top = max(layer for layer, _ in first.receivers)
        assert bool((first.s_inhibition[top:] == 0).all())
    assert first.info["n_prompts"] == 6 and first.info["name_form"] == "bare"


def test_ioi_upstream_roles_are_single_position_patches_of_the_logit_difference():
    loaded = tiny_llama("full", layers=3)
    result = run_ioi(loaded, n_prompts=8, seed=0, names=LETTERS)
    data = ioi.build(loaded.tokenizer, 8, 0, LETTERS)
    assert result.s2_signal.shape == result.s1_next_signal.shape == (3, 4)
    assert set(result.info["roles"]) == {"s2_signal", "s1_next_signal", "how"}
    assert len(result.info["roles"]["s2_signal"]) == 5
    # brute force for one head: patch its S2 output from the ABC prompt, full forward passes, first prompts
    layer, head = 0, 2
    drops = []
    for g in data.groups:
        clean, corrupt, s2 = g.clean[:1], g.corrupt[:1], int(g.s2_pos[0])
        source = capture_run(loaded, corrupt[:, : s2 + 1])["heads"][layer]

        def hook(at: int, out: torch.Tensor, source: torch.Tensor = source, s2: int = s2) -> torch.Tensor | None:
            if at != layer:
                return None
            new = out.clone()
            new[:, s2, head] = source[:, head]
            return new

        with torch.no_grad():
            plain = loaded.model(input_ids=clean).logits[0, -1]
            with session(hooks=[hook]):
                patched = loaded.model(input_ids=clean).logits[0, -1]
        io, s = int(g.io[0]), int(g.s[0])
        drops.append(float(plain[io] - plain[s]) - float(patched[io] - patched[s]))
    receivers_top = max((r[0] for r in result.receivers), default=3)
    expected = sum(drops) / len(drops) if layer < receivers_top else 0.0
    assert float(result.s2_signal[layer, head]) == pytest.approx(expected, abs=1e-4)
    assert bool((result.s2_signal[receivers_top:] == 0).all())


def test_ioi_logit_difference_is_io_minus_s_of_the_model_itself():
    loaded = tiny_llama("full")
    result = run_ioi(loaded, n_prompts=4, seed=1, names=LETTERS)
    data = ioi.build(loaded.tokenizer, 4, 1, LETTERS)
    total = 0.0
    for g in data.groups:
        with torch.no_grad():
            logits = loaded.model(input_ids=g.clean).logits[:, -1]
        rows = torch.arange(g.clean.shape[0])
        total += float((logits[rows, g.io] - logits[rows, g.s]).sum())
        assert float((logits[rows, g.s] - logits[rows, g.io]).sum()) == pytest.approx(
            -float((logits[rows, g.io] - logits[rows, g.s]).sum())
        )
    assert result.info["logit_diff_clean"] == pytest.approx(total / 4, abs=1e-4)


def test_ioi_head_types_are_registered_with_model_scores():
    for type_id, stage in (("name_mover", "ICI"), ("negative_name_mover", "ICI"), ("s_inhibition", "LR")):
        head_type = get_head_type(type_id)
        assert head_type.model_score is not None and head_type.score is None
        assert head_type.stage == stage and head_type.threshold > 0
        assert head_type.papers == (
            "Interpretability in the Wild: a Circuit for Indirect Object Identification in GPT-2 small",
        )


# -- function vectors ---------------------------------------------------------------------------------
def test_fv_tasks_keep_single_token_items_and_drop_short_tasks_with_counts():
    data = fv_tasks.build(ByteTokenizer(300), n_prompts=2, seed=0)
    info = data.info
    assert info["tasks_dropped"] == ["antonym", "country_capital"]  # no one-byte words there
    assert info["tasks"]["uppercase"] == {"form": "bare", "items": 26, "dropped": 14}  # letters kept, words not
    assert info["tasks"]["next_item"]["items"] == 8 + 25  # digits 1-8 and letters a-y
    assert [t.task for t in data.tasks] == ["uppercase", "next_item"]
    with pytest.raises(TaskUnavailable, match=r"no function-vector task has 12 items .* t: 2"):
        fv_tasks.build(ByteTokenizer(300), 1, 0, {"t": (("a", "b"), ("c", "d"), ("long", "word"))})


def test_fv_prompts_show_the_task_and_shuffled_twins_permute_every_label():
    tok = ByteTokenizer(300)
    data = fv_tasks.build(tok, n_prompts=3, seed=4)
    upper = data.tasks[0]
    assert upper.clean.shape == upper.shuffled.shape == (3, 1 + 10 * 11 + 8)  # "Q: x\nA: y\n\n" is 11 bytes
    for clean, shuffled, answer in zip(upper.clean, upper.shuffled, upper.answer, strict=True):
        label_pos = [1 + 11 * k + 8 for k in range(10)]
        inputs = clean[[p - 5 for p in label_pos]]
        labels, permuted = clean[label_pos], shuffled[label_pos]
        assert bool((labels == inputs - 32).all())  # 'a' -> 'A' (ids shifted by the tokenizer alike)
        assert sorted(labels.tolist()) == sorted(permuted.tolist()) and bool((labels != permuted).all())
        assert int(answer) == int(clean[-5]) - 32 and torch.equal(clean[-8:], shuffled[-8:])
    again = fv_tasks.build(tok, n_prompts=3, seed=4)
    assert torch.equal(again.tasks[1].shuffled, data.tasks[1].shuffled)


def test_function_vector_scores_are_finite_deterministic_and_cover_every_head():
    loaded = tiny_llama("gqa")
    first, count, info = indirect_effects(loaded, n_prompts=2, seed=0)
    again, _, _ = indirect_effects(loaded, n_prompts=2, seed=0)
    assert first.shape == (2, 4) and bool(first.isfinite().all()) and torch.equal(first, again)
    assert count == 4  # two usable tasks x two prompts
    assert bool((first.abs() <= 1).all())  # a difference of probabilities
    assert set(info["per_task"]) == {"uppercase", "next_item"}


# -- safety ---------------------------------------------------------------------------------------------
def test_safety_prompts_without_a_chat_template_use_question_answer():
    tok = ByteTokenizer(300)
    ids = format_request(tok, "Hi?")
    assert ids == [0, *tok.encode("Question: Hi?\nAnswer:")]
    assert len(default_pairs()) >= 5 and all(a != b for a, b in default_pairs())


def test_safety_kl_is_non_negative_deterministic_and_cancels_on_identical_requests():
    loaded = tiny_llama("mqa")
    harmful, harmless, info = kl_scores(loaded, n_pairs=2)
    assert harmful.shape == harmless.shape == (2, 4)
    assert bool((harmful >= 0).all() & (harmless >= 0).all()) and float(harmful.max()) > 0
    again, _, _ = kl_scores(loaded, n_pairs=2)
    assert torch.equal(harmful, again) and info["n_pairs"] == 2 and not info["chat_template"]
    same_h, same_l, _ = kl_scores(loaded, pairs=(("Same words?", "Same words?"),))
    assert torch.equal(same_h, same_l)  # score = harmful - harmless is exactly 0


# -- semantic induction -----------------------------------------------------------------------------------
def test_semantic_induction_prompts_need_space_prefixed_single_token_pairs():
    with pytest.raises(TaskUnavailable, match="semantic induction needs relations"):
        semantic_build(ByteTokenizer(300))  # one-byte items only come bare
    groups = semantic_build(WordTokenizer(), n_prompts=3)
    assert len(groups) == 4
    for ids, tails, head_pos, others in groups:
        assert ids.shape[0] == 3 and int(head_pos) < ids.shape[1] - 1
        assert set(tails.tolist()) <= set(others.tolist())


def test_semantic_induction_scores_are_attention_shares_where_the_head_raises_the_tail():
    loaded = tiny_llama("gqa", vocab=2000)
    tok = WordTokenizer()
    loaded.tokenizer = tok
    first, count, _ = semantic_scores(loaded, n_prompts=2)
    again, _, _ = semantic_scores(loaded, n_prompts=2)
    assert first.shape == (2, 4) and count == 8 and torch.equal(first, again)
    assert bool(((first >= 0) & (first <= 1)).all())


def test_a_scan_reports_a_task_that_does_not_fit_the_tokenizer_instead_of_failing():
    from headatlas.census import ScanSettings, run_census

    types = ("name_mover", "s_inhibition", "function_vector", "safety")
    headmap = run_census(tiny_llama("gqa"), ScanSettings(seed=0, head_types=types))
    for type_id in ("name_mover", "s_inhibition"):  # no default name is one byte
        rows = [r for r in headmap.rows if r["head_type"] == type_id]
        assert len(rows) == 8 and all(r["score"] is None and not r["member"] for r in rows)
        assert "IOI needs at least 4 names" in headmap.probes[type_id]["unavailable"]
    for type_id in ("function_vector", "safety"):  # letters and "Question: ... Answer:" fit a byte tokenizer
        rows = [r for r in headmap.rows if r["head_type"] == type_id]
        assert all(r["score"] is not None for r in rows) and "unavailable" not in headmap.probes[type_id]


# -- causal metrics for verification ----------------------------------------------------------------------
def test_counting_prompts_show_four_items_and_ask_for_the_fifth():
    from headatlas.heads.successor import counting_prompts

    tok = ByteTokenizer(300)  # bare form: only "1".."9" and "A".."Z" are single tokens
    tasks = counting_prompts(tok)
    assert [ids.shape for ids, _ in tasks] == [(5, 9), (22, 9)]  # digits 1-9 and letters: one prompt per window
    letters, answers = tasks[1]
    comma = tok.encode(",")[0]
    assert letters[0].tolist() == [0, *[t for c in "ABCD" for t in (tok.encode(c)[0], comma)]]
    assert answers.tolist() == [tok.encode(chr(ord("E") + i))[0] for i in range(22)]
    words = WordTokenizer()  # space form: " Monday" is one token
    days, next_days = next((ids, a) for ids, a in counting_prompts(words) if ids.shape[0] == 3)  # 7 days
    assert days[0].tolist() == [0, *words.encode(" Monday, Tuesday, Wednesday, Thursday,")]
    assert next_days.tolist() == words.encode(" Friday Saturday Sunday")


def test_a_metric_with_a_fit_step_reads_the_models_own_reply_token():
    from headatlas.causal import ablate
    from headatlas.causal.metrics import METRICS, probe_batches
    from headatlas.heads.tasks import capture_run
    from headatlas.probes import PROBES, ProbeSettings

    loaded = tiny_llama("gqa")
    metric = METRICS["safety_reply_logprob"]
    raw = PROBES[metric.probe](loaded.tokenizer, ProbeSettings(), 0)
    assert [float(b.extras["sign"]) for b in raw[:4]] == [1.0, -1.0, 1.0, -1.0]  # harmful, matched harmless, ...
    assert all(int(b.extras["answer"]) == 0 for b in raw)  # a placeholder until the model is asked
    fitted = probe_batches(loaded, metric, ProbeSettings(), 0)
    for batch in fitted:
        top = capture_run(loaded, batch.input_ids)["logits"].argmax(-1)
        assert batch.extras["answer"].tolist() == top.tolist()
    result = ablate(loaded, ["L1H0", "L1H1"], "safety_reply_logprob")
    assert result.metric == "safety_reply_logprob" and result.clean == result.clean  # finite, not NaN
    assert result.ablated != result.clean  # removing two of eight heads moves the reply
    counting = ablate(loaded, ["L0H0"], "successor_logprob")
    assert counting.clean < 0 and counting.effect == pytest.approx(counting.clean - counting.ablated)


def test_task_types_carry_their_metrics_and_probes():
    from headatlas.causal.metrics import METRICS
    from headatlas.heads import get_head_type
    from headatlas.probes import PROBES

    expected = {
        "name_mover": "ioi_logit_diff",
        "negative_name_mover": "ioi_logit_diff_reversed",
        "s_inhibition": "ioi_logit_diff",
        "function_vector": "fv_answer_logprob",
        "semantic_induction": "relation_tail_logprob",
        "successor": "successor_logprob",
        "safety": "safety_reply_logprob",
    }
    for type_id, name in expected.items():
        metric = get_head_type(type_id).causal_metric()
        assert metric is not None and metric.name == name and METRICS[name] is metric
        assert PROBES[metric.probe] is get_head_type(type_id).probes[metric.probe]  # type: ignore[index]
    tok = WordTokenizer()
    batch = PROBES["ioi"](tok, None, 0)[0]
    logits = torch.randn(batch.input_ids.shape[0], 1, len(tok) + 10)
    rows = METRICS["ioi_logit_diff"].rows(batch)
    forward = METRICS["ioi_logit_diff"].value(logits, batch, rows)
    torch.testing.assert_close(METRICS["ioi_logit_diff_reversed"].value(logits, batch, rows), -forward)
    index = torch.arange(len(forward))
    expected_diff = logits[index, 0, batch.extras["answer"]] - logits[index, 0, batch.extras["wrong"]]
    torch.testing.assert_close(forward, expected_diff)
    fv = PROBES["fv_tasks"](tok, None, 0)
    assert len(fv) == 4 and all(b.extras["answer"].shape == (b.input_ids.shape[0],) for b in fv)


def test_verification_runs_on_task_types_and_skips_those_without_scores():
    from headatlas.api import scan
    from headatlas.causal import VerifySettings

    quick = VerifySettings(top_n=1, max_exact_members=2, max_batch=48)
    loaded = tiny_llama("gqa", vocab=2000)
    loaded.tokenizer = WordTokenizer()
    headmap = scan(loaded, head_types=["name_mover", "semantic_induction"], verify=True, verify_settings=quick)
    for type_id in ("name_mover", "semantic_induction"):
        record = headmap.verification[type_id]
        assert record["metric"] in ("ioi_logit_diff", "relation_tail_logprob")
        assert record["status"] in ("verified", "not_verified", "no_members", "too_many_members")
        assert record["per_head"]["exact_heads"]
    byte = scan(tiny_llama("gqa"), head_types=["name_mover"], verify=True, verify_settings=quick)
    assert byte.verification["name_mover"] == {"status": "no_scores", "verified": None}


@pytest.mark.parametrize("probe", ["ioi", "fv_tasks", "semantic_relations"])
def test_task_probes_same_seed_same_tokens_other_seed_other_tokens(probe):
    from headatlas.probes import PROBES

    tok = WordTokenizer()
    first, again, other = (PROBES[probe](tok, None, seed) for seed in (0, 0, 1))
    assert all(torch.equal(a.input_ids, b.input_ids) for a, b in zip(first, again, strict=True))
    assert not all(torch.equal(a.input_ids, b.input_ids) for a, b in zip(first, other, strict=True))
    assert all(bool((b.input_ids[:, 0] == tok.bos_token_id).all()) for b in first)
