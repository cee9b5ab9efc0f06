"""Task-defined head types on the real SmolLM2-135M with small settings: finite, deterministic scores."""

from __future__ import annotations

import pytest
import torch

from headatlas.heads.function_vector import indirect_effects
from headatlas.heads.ioi_circuit import run_ioi
from headatlas.heads.safety import kl_scores
from headatlas.heads.semantic_induction import scores as semantic_scores
from headatlas.probes import fv_tasks, ioi

pytestmark = pytest.mark.slow


def test_ioi_names_are_single_tokens_in_the_smollm2_tokenizer(smollm2):
    pool = ioi.name_set(smollm2.tokenizer)
    assert pool.form == "space"
    assert len(pool.names) >= 100 and pool.dropped == len(ioi.default_names()) - len(pool.names)
    for name, token in zip(pool.names, pool.ids, strict=True):
        assert smollm2.tokenizer.encode(f" {name}", add_special_tokens=False) == [token]


def test_ioi_scores_on_smollm2_are_finite_and_deterministic(smollm2):
    first = run_ioi(smollm2, n_prompts=2, seed=0)
    again = run_ioi(smollm2, n_prompts=2, seed=0)
    for name in ("direct", "gated", "s_inhibition"):
        value = getattr(first, name)
        assert value.shape == (30, 9)
        assert bool(value.isfinite().all())
        assert torch.equal(value, getattr(again, name))
    assert first.info["logit_diff_clean"] > 1.0  # the model does the task: IO over S
    assert abs(first.info["logit_diff_corrupt"]) < first.info["logit_diff_clean"]
    assert first.receivers  # some head attends to IO and writes it
    assert float(first.gated.max()) > 0.2


def test_function_vector_scores_on_smollm2_are_finite_and_deterministic(smollm2):
    assert fv_tasks.build(smollm2.tokenizer, 1, 0).info["tasks_dropped"] == []  # every task keeps 12+ items
    upper = {k: v for k, v in fv_tasks.default_tasks().items() if k == "uppercase"}
    first, count, info = indirect_effects(smollm2, n_prompts=1, seed=0, tasks=upper)
    again, _, _ = indirect_effects(smollm2, n_prompts=1, seed=0, tasks=upper)
    assert first.shape == (30, 9) and bool(first.isfinite().all()) and torch.equal(first, again)
    assert count == 1
    for task in info["per_task"].values():  # the demonstrations teach the task; shuffling them unteaches it
        assert task["p_answer_clean"] > task["p_answer_shuffled"]


def test_safety_scores_on_smollm2_use_the_chat_template_and_are_deterministic(smollm2):
    harmful, harmless, info = kl_scores(smollm2, n_pairs=1)
    again, _, _ = kl_scores(smollm2, n_pairs=1)
    assert info["chat_template"] and harmful.shape == (30, 9)
    assert bool(harmful.isfinite().all() & harmless.isfinite().all()) and torch.equal(harmful, again)
    assert bool((harmful >= 0).all()) and float(harmful.max()) > 0


def test_semantic_induction_scores_on_smollm2_are_finite_and_deterministic(smollm2):
    first, count, info = semantic_scores(smollm2, n_prompts=2)
    again, _, _ = semantic_scores(smollm2, n_prompts=2)
    assert first.shape == (30, 9) and count == 8 and info["n_templates"] == 4
    assert bool(first.isfinite().all()) and torch.equal(first, again)
    assert float(first.max()) > 0  # some head attends to the related word and raises its partner


def test_ioi_roles_on_smollm2_fall_to_the_pattern_types_wang_et_al_name(smollm2):
    """At S2 the strongest heads are duplicate-token or induction heads; at S1+1 a previous-token head leads."""
    from headatlas.census import ScanSettings, run_census

    result = run_ioi(smollm2, seed=0)
    upstream = ("duplicate_token", "induction", "previous_token")
    census = run_census(smollm2, ScanSettings(seed=0, head_types=upstream))
    members = {t: set(census.members(t)) for t in upstream}
    s2_top = list(result.info["roles"]["s2_signal"])
    s1_next_top = list(result.info["roles"]["s1_next_signal"])
    assert s2_top[0] in members["induction"] | members["duplicate_token"]
    assert s1_next_top[0] in members["previous_token"]
    median = float(result.s2_signal.flatten().median())
    for head in members["duplicate_token"]:  # every duplicate-token head carries some of the S2 signal
        layer, index = (int(x) for x in head[1:].split("H"))
        assert float(result.s2_signal[layer, index]) > median
