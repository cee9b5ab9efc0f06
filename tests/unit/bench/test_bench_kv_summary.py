"""bench kv's summary leads with the rule fixed before the run, not the best rule on the evaluation needles."""

from __future__ import annotations

from headatlas.bench.kv import ATLAS_RULES, REPORTED_RULE, summary


def test_the_summary_reports_the_default_rule_and_the_hindsight_best_apart():
    needle = {"atlas_retrieval": 0.5, "atlas_razor": 0.7, "atlas_razor_comp": 0.9, "atlas_headkv": 0.6}
    results = {"full": {"needle_forced": 1.0, "prose_loss": 2.0}}
    for rule in ATLAS_RULES:
        results[f"{rule}@0.5"] = {"needle_forced": needle[rule], "prose_loss": 2.5}
    results["random_heads@0.5"] = {"needle_forced": 0.25, "prose_loss": 3.0}
    results["streaming_llm@0.5"] = {"needle_forced": 0.375, "prose_loss": 2.8}
    speed = {"full": 10.0, "atlas_retrieval@0.5": 12.0}
    row = summary({"2048": {"results": results, "decode_tokens_per_s": speed}}, (0.5,))["2048"]["0.5"]
    assert REPORTED_RULE == "atlas_retrieval" == row["rule"]  # `headatlas kv plan`'s default
    assert row["vs_full"] == 0.5 and row["points_over_random"] == 25.0 and row["points_over_streaming_llm"] == 12.5
    assert row["best_in_hindsight"] == "atlas_razor_comp" and row["best_in_hindsight_vs_full"] == 0.9
    assert row["decode_vs_full"] == 1.2
