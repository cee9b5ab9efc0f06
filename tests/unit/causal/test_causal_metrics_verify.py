"""Metrics, Spearman, and the Python API's bad-input handling (tiny models)."""

from __future__ import annotations

import math

import pytest
import torch

from headatlas.causal import (
    METRICS,
    VerifySettings,
    ablate,
    attribute,
    get_metric,
    patch,
    register_metric,
    spearman,
)
from headatlas.causal.api import prompt_batch
from headatlas.causal.interventions import metric_values
from headatlas.causal.metrics import check_fits, damage, second_copy_rows
from headatlas.errors import InvalidSettingError
from headatlas.heads import head_types
from headatlas.lens import session
from headatlas.probes import PROBES, ProbeSettings
from headatlas.testing.tiny import tiny_llama

CENSUS_TYPES = ("previous_token", "current_token", "sink", "duplicate_token", "induction", "local", "retrieval")


def test_every_head_type_has_a_registered_metric():
    for type_id in CENSUS_TYPES:
        assert head_types()[type_id].causal_metric() is METRICS[head_types()[type_id].metric]  # type: ignore[index]
    for head_type in head_types().values():
        metric = head_type.causal_metric()
        assert metric is not None and METRICS[metric.name] is metric
    with pytest.raises(InvalidSettingError, match="valid metrics are"):
        get_metric("accuracy")


def test_a_metric_name_cannot_be_taken_twice():
    text_loss = METRICS["text_loss"]
    assert register_metric(text_loss) is text_loss  # the same metric again changes nothing
    other = text_loss.__class__(**{**text_loss.__dict__, "description": "another text loss"})
    with pytest.raises(InvalidSettingError, match="'text_loss' is already registered"):
        register_metric(other)
    assert METRICS["text_loss"] is text_loss


def test_second_copy_rows_cover_the_predictable_part():
    loaded = tiny_llama("gqa")
    batch = PROBES["repeated_tokens"](loaded.tokenizer, ProbeSettings(repeat_len=6, n_repeat=2), 0)[0]
    rows = second_copy_rows(batch)
    assert rows.tolist() == [[7, 8, 9, 10, 11]] * 2  # predict x_1..x_5 of the copy at 8..12
    targets = batch.input_ids.gather(1, rows + 1)
    assert torch.equal(targets, batch.input_ids[:, 2:7])  # the same tokens as in the first copy


def test_induction_loss_is_the_mean_cross_entropy_of_those_rows():
    loaded = tiny_llama("gqa")
    batch = PROBES["repeated_tokens"](loaded.tokenizer, ProbeSettings(repeat_len=6, n_repeat=2), 0)[0]
    with torch.no_grad(), session():
        value = metric_values(loaded, batch, get_metric("induction_loss"))
        logits = loaded.model(input_ids=batch.input_ids).logits
    expected = torch.nn.functional.cross_entropy(logits[0, 7:12], batch.input_ids[0, 8:13])
    assert math.isclose(float(value[0]), float(expected), rel_tol=1e-5)


def test_logit_diff_and_answer_checks():
    loaded = tiny_llama("gqa")
    batch = prompt_batch(loaded, ["abc", "abcde"], answer="x", wrong="y")
    assert batch.attention_mask.sum(1).tolist() == [4, 6]
    with torch.no_grad(), session():
        value = metric_values(loaded, batch, get_metric("logit_diff"))
        logits = loaded.model(input_ids=batch.input_ids[1:]).logits
    x, y = loaded.tokenizer.encode("x")[0], loaded.tokenizer.encode("y")[0]
    assert math.isclose(float(value[1]), float(logits[0, -1, x] - logits[0, -1, y]), rel_tol=1e-5, abs_tol=1e-6)
    with pytest.raises(InvalidSettingError, match="not a single token"):
        prompt_batch(loaded, "abc", answer="xy")
    with pytest.raises(InvalidSettingError, match="needs wrong"):
        check_fits(get_metric("logit_diff"), prompt_batch(loaded, "abc", answer="x"))


def test_damage_points_the_same_way_for_every_metric():
    assert damage(get_metric("induction_loss"), 1.0, 3.0) == 2.0
    assert damage(get_metric("needle_copy_accuracy"), 0.9, 0.4) == pytest.approx(0.5)


# -- random sets and statistics -------------------------------------------------------------------------
def test_spearman():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(0.9486833, rel=1e-6)
    assert spearman([1, 1, 1], [1, 2, 3]) is None
    assert spearman([1, 2], [1, 2]) is None


def test_verify_settings_refuse_too_few_random_sets():
    with pytest.raises(InvalidSettingError, match="at least 20"):
        VerifySettings(n_random=5)
    with pytest.raises(InvalidSettingError, match="valid methods"):
        VerifySettings(method="noise")


# -- API ------------------------------------------------------------------------------------------------
def test_ablate_api_on_prompts_and_probes():
    loaded = tiny_llama("gqa")
    result = ablate(loaded, "L1H0,L0H3", "induction_loss", "zero")
    assert result.heads == ("L1H0", "L0H3") and result.effect == pytest.approx(result.ablated - result.clean)
    assert result.effect != 0
    same = ablate(loaded, [(1, 0), (0, 3)], "induction_loss", "zero")
    assert same == result  # deterministic
    resampled = ablate(loaded, "L1H0", "induction_loss", "resample")
    assert resampled.clean == pytest.approx(result.clean)
    with pytest.raises(InvalidSettingError, match="needs a prompt"):
        ablate(loaded, "L1H0", "logit_diff")
    on_prompt = ablate(loaded, "L1H0", "logit_diff", "mean", prompt=["hello", "world"], answer="a", wrong="b")
    assert on_prompt.metric == "logit_diff"


def test_patch_and_attribute_api():
    loaded = tiny_llama("gqa")
    full = patch(loaded, "the cat", "the dog", metric="logit_diff", answer="a", wrong="b")
    # patching every head does not restore the clean run (embeddings differ), but moves toward it
    assert full.clean != full.corrupt
    noop = patch(loaded, "the cat", "the cat", "L0H1", metric="logit_diff", answer="a", wrong="b")
    assert noop.patched == pytest.approx(noop.clean, abs=1e-5) and noop.recovered is None
    scores = attribute(loaded, "the cat", "the dog", "logit_diff", answer="a", wrong="b")
    assert scores.scores.shape == (2, 4) and scores.scores.abs().sum() > 0
    assert len(scores.top(3)) == 3
    with pytest.raises(InvalidSettingError, match=r"differ in token length \(8 vs 9\)"):
        attribute(loaded, "the cat", "the cats", "logit_diff", answer="a", wrong="b")
    with pytest.raises(InvalidSettingError, match="valid directions"):
        patch(loaded, "a", "b", direction="sideways", answer="a", wrong="b")


def test_types_without_a_metric_are_reported_not_guessed():
    from headatlas.causal import verify_headmap
    from headatlas.headmap import HeadMap

    loaded = tiny_llama("gqa")
    rows = [
        {"layer": 0, "head": h, "head_type": "mystery", "score": 0.5, "score_se": None, "n_samples": 1,
         "threshold": 0.4, "member": True}
        for h in range(4)
    ]  # fmt: skip
    headmap = HeadMap(loaded.facts, rows, {"seed": 0}, {"mystery": {}})
    verify_headmap(loaded, headmap, VerifySettings(), metrics={"induction": METRICS["induction_loss"]})
    assert headmap.verification == {"mystery": {"status": "no_metric", "verified": None}}
    assert "attribution" not in headmap.csv_text().splitlines()[0]
    other = tiny_llama("gqa", layers=3)
    with pytest.raises(InvalidSettingError, match="not tiny-llama-gqa"):
        verify_headmap(other, headmap, metrics={})
