"""Planning a KV policy from a scan file: rules, GQA grouping, budgets, bad input."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from headatlas.errors import InvalidSettingError
from headatlas.kv.policy import KVPolicy, plan, plan_from_scan, read_headmap

from .headmaps import synthetic_headmap, write_headmap

ATLAS = Path(__file__).resolve().parents[3] / "atlas" / "smollm2-135m"


def full_set(policy: KVPolicy) -> set[tuple[int, int]]:
    return {(h.layer, h.kv_head) for h in policy.heads if h.full}


def test_planted_razor_keeps_induction_and_echo_heads_full(planted_scan):
    # GQA 4 query / 2 KV heads: L1H2 (induction) reads KV head 1, L0H2 (duplicate/echo) reads KV head 1
    policy = plan_from_scan(planted_scan, rule="razor", budget=0.5, context=41, sink=1, recent=4)
    assert full_set(policy) == {(0, 1), (1, 1)}


def test_planted_retrieval_head_stays_full_at_the_smallest_budget(planted_scan):
    policy = plan_from_scan(planted_scan, rule="retrieval", budget=0.3, context=41, sink=1, recent=4)
    assert full_set(policy) == {(1, 1)}


def test_kv_head_is_full_when_any_query_head_needs_it():
    scores = [[0.0, 0.0, 0.0, 0.9], [0.5, 0.0, 0.0, 0.0]]  # 4 query heads over 2 KV heads
    policy = plan(synthetic_headmap({"retrieval": scores}, n_kv=2), budget=0.3, context=100, sink=2, recent=8)
    assert full_set(policy) == {(0, 1)}
    assert policy.head(0, 1).score == 0.9
    assert policy.head(0, 1).query_heads == (2, 3)
    assert policy.head(1, 0).recent == 8 and policy.head(1, 0).sink == 2


@pytest.mark.parametrize("rule", ["retrieval", "razor", "headkv"])
@pytest.mark.parametrize("budget", [0.25, 0.5, 0.75])
def test_atlas_policy_meets_its_budget(rule, budget):
    policy = plan_from_scan(ATLAS, rule=rule, budget=budget, context=2048)
    assert abs(policy.kv_fraction() - budget) <= 0.05 * budget
    assert policy.n_layers == 30 and len(policy.heads) == 90


def test_rules_rank_by_their_own_head_types():
    headmap = read_headmap(ATLAS)
    by_rule = {r: full_set(plan(headmap, rule=r, budget=0.2, context=2048)) for r in ("retrieval", "razor")}
    # SmolLM2 L8H0 is its strongest duplicate-token (echo) head: razor keeps its KV head, retrieval need not
    assert (8, 0) in by_rule["razor"]
    assert by_rule["retrieval"] != by_rule["razor"]
    # L18H7 (KV head 2) is the top retrieval head
    assert (18, 2) in by_rule["retrieval"]


def test_headkv_shares_the_budget_by_score():
    scores = [[0.0, 0.0, 0.1, 0.1], [0.3, 0.3, 2.0, 2.0]]
    hm = synthetic_headmap({"retrieval": scores, "induction": [[0.0] * 4, [0.0] * 4]}, n_kv=2)
    policy = plan(hm, rule="headkv", budget=0.5, context=100, sink=2, recent=8)
    held = {(h.layer, h.kv_head): h.held(100) for h in policy.heads}
    assert held[(1, 1)] == 100  # the top head reaches the context: full
    assert held[(0, 0)] == 10  # score 0: only the streaming window
    assert held[(0, 1)] < held[(1, 0)] < 100
    assert math.isclose(policy.kv_fraction(), 0.5, abs_tol=0.01)


def test_full_budget_keeps_every_head():
    policy = plan_from_scan(ATLAS, rule="razor", budget=1.0)
    assert all(h.full for h in policy.heads) and policy.kv_fraction() == 1.0


def test_policy_round_trips_through_json(tmp_path):
    policy = plan_from_scan(ATLAS, rule="headkv", budget=0.5, context=1024)
    policy.save(tmp_path / "p.json")
    again = KVPolicy.load(tmp_path / "p.json")
    assert again == policy
    assert again.to_json()["rule"] == "headkv"


@pytest.mark.parametrize("budget", [0.0, -0.5, 1.5, float("nan")])
def test_budget_outside_unit_interval_is_refused(budget):
    with pytest.raises(InvalidSettingError, match="budget"):
        plan_from_scan(ATLAS, budget=budget)


def test_window_larger_than_budget_is_refused():
    with pytest.raises(InvalidSettingError, match="streaming window"):
        plan_from_scan(ATLAS, budget=0.1, context=1024, sink=64, recent=128)


def test_scan_without_the_rules_types_is_refused(tmp_path):
    scan = write_headmap(tmp_path / "s", synthetic_headmap({"retrieval": [[0.1] * 4] * 2}, n_kv=2))
    with pytest.raises(InvalidSettingError, match="lacks induction, duplicate_token"):
        plan_from_scan(scan, rule="razor")


def test_missing_or_foreign_scan_is_refused(tmp_path):
    with pytest.raises(InvalidSettingError, match="does not exist"):
        read_headmap(tmp_path / "nowhere")
    (tmp_path / "headmap.json").write_text('{"format": "other"}')
    with pytest.raises(InvalidSettingError, match="not a headatlas scan"):
        read_headmap(tmp_path)


def test_unknown_rule_lists_the_valid_ones():
    with pytest.raises(InvalidSettingError, match="retrieval, razor, headkv"):
        plan_from_scan(ATLAS, rule="snap")
