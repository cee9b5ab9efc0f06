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


def gemma_like(n_global_kv: int = 3) -> dict:
    """Six layers, one KV head each: layers 2 and 5 global, the rest sliding (window 16), like Gemma 3."""
    scores = [[0.1 * (la + 1)] * 2 for la in range(6)]
    return synthetic_headmap({"retrieval": scores}, n_kv=1, sliding=([0, 1, 3, 4], 16))


def test_remainder_fill_holds_the_budget_when_few_heads_decide_it():
    three = synthetic_headmap({"retrieval": [[0.9], [0.5], [0.1]]}, n_kv=1)  # three KV heads, as Gemma's globals
    whole = plan(three, budget=0.5, context=100, sink=2, recent=8, fill="whole")
    rest = plan(three, budget=0.5, context=100, sink=2, recent=8)
    assert full_set(whole) == full_set(rest) == {(0, 0)}  # round((150 - 30) / 90) = 1 whole head either way
    assert whole.kv_fraction() == pytest.approx(120 / 300)
    assert rest.kv_fraction() == pytest.approx(0.5)  # the 30 left over go to the next head by rank
    assert rest.head(1, 0).sink == 2 and rest.head(1, 0).recent == 38 and rest.head(2, 0).recent == 8


def test_cache_scope_counts_sliding_layers_at_their_window():
    hm = gemma_like()
    cache = plan(hm, budget=0.5, context=64, sink=2, recent=6)
    old = plan(hm, budget=0.5, context=64, sink=2, recent=6, scope="global", fill="whole")
    # full cache: 2 global heads x 64 + 4 sliding x 16 = 192 tokens; half is 96; the local layers hold 8 each
    assert cache.local_window == 8 and old.local_window is None
    assert all(h.sliding and h.sink == 0 and h.recent == 8 for h in cache.heads if h.layer in (0, 1, 3, 4))
    assert all(h.full for h in old.heads if h.sliding)
    # 96 - 32 = 64 tokens for the globals: the top one full (rounded up from 0.86 of a head), the other its window
    assert full_set(cache) == {(5, 0)}
    assert cache.kv_fraction() == pytest.approx((32 + 64 + 8) / 192)
    assert old.kv_fraction() == pytest.approx((64 + 8) / 128)  # of the global layers only


def test_cache_scope_sizes_the_local_window_to_the_budget():
    hm = gemma_like()
    grown = plan(hm, budget=0.9, context=64, sink=2, recent=6)  # both globals full: the rest to the locals
    assert {h.layer for h in grown.heads if h.full} == {2, 5} and grown.local_window == 11
    shrunk = plan(hm, budget=0.25, context=64, sink=2, recent=6)  # 48 tokens: globals 2 x 8, locals 8 each
    assert shrunk.local_window == 8 and shrunk.kv_fraction() == pytest.approx(0.25)
    with pytest.raises(InvalidSettingError, match="sliding-window layers 5 tokens, fewer than recent = 6"):
        plan(hm, budget=0.2, context=64, sink=2, recent=6)
    assert plan(hm, budget=1.0, context=64, sink=2, recent=6).local_window is None


def test_old_policy_files_load_as_scope_global_whole():
    policy = plan(gemma_like(), budget=0.5, context=64, sink=2, recent=6)
    data = policy.to_json()
    assert KVPolicy.from_json(data) == policy
    del data["scope"], data["fill"]
    old = KVPolicy.from_json(data)
    assert old.scope == "global" and old.fill == "whole"


@pytest.mark.parametrize(("key", "value", "message"), [("scope", "layers", "valid scopes"), ("fill", "x", "fills")])
def test_unknown_scope_or_fill_is_refused(key, value, message):
    with pytest.raises(InvalidSettingError, match=message):
        plan(gemma_like(), budget=0.5, context=64, sink=2, recent=6, **{key: value})
