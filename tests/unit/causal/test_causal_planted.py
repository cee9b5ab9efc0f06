"""Causal checks against ground truth: the planted-heads model (headatlas.testing.planted)."""

from __future__ import annotations

import copy
import csv
import io
import json
from dataclasses import replace

import pytest
import torch

from headatlas.api import scan
from headatlas.causal import (
    METHODS,
    VerifySettings,
    ablate,
    attribution_scores,
    get_metric,
    verify_set,
)
from headatlas.causal.interventions import make_replacement
from headatlas.causal.verify import SCREEN_SUMMARY, adopt_set_tests, strict_set_tests
from headatlas.errors import InvalidSettingError
from headatlas.heads import causal_metrics, resolve_head_types
from headatlas.probes import PROBES, ProbeSettings
from headatlas.store import connect, save_scan
from headatlas.testing.planted import INDUCTION, PLANTED, PREVIOUS, build_planted_model

UNRELATED = (1, 0)  # unplanted: writes only into spare dimensions nothing reads
PROBE = ProbeSettings(repeat_len=12, n_repeat=4, batch_size=4)
VERIFY = VerifySettings(repeat_len=12, n_repeat=4, top_n=2, max_batch=48, strict=True, n_random_max=100)
SCREEN = VerifySettings(repeat_len=12, n_repeat=4, top_n=0, max_exact_members=1, max_batch=48)
PAIR = ["induction", "previous_token"]
SPARE = 192  # unplanted heads added per layer (196 in all, a divisor of the hidden size): 195 alternatives per head


@pytest.fixture(scope="module")
def planted():
    return build_planted_model(0)


@pytest.fixture(scope="module")
def planted_wide():
    """The planted model with 196 heads a layer, so a one-head set has enough distinct random sets."""
    return build_planted_model(0, spare_heads=SPARE)


@pytest.mark.parametrize("method", METHODS)
def test_ablating_the_planted_induction_head_destroys_the_induction_metric(planted, method):
    hit = ablate(planted, [INDUCTION], "induction_loss", method)
    other = ablate(planted, [UNRELATED], "induction_loss", method)
    assert hit.clean < 0.01  # the planted model copies the second half almost perfectly
    assert hit.effect > 3.0  # ~ln(62): no better than guessing among the ordinary tokens
    assert abs(other.effect) < 0.01


def test_attribution_ranks_the_planted_head_first(planted):
    batches = PROBES["repeated_tokens"](planted.tokenizer, PROBE, 0)
    metric = get_metric("induction_loss")
    replacement = make_replacement(planted, "mean", batches)
    for steps in (1, 4):
        scores = attribution_scores(planted, batches, metric, replacement, steps=steps)
        best = int(torch.argmax(scores))
        assert divmod(best, planted.facts.n_heads) == INDUCTION


def _planted_scan(planted_wide, settings):
    return scan(planted_wide, head_types=PAIR, probes=PROBE, verify=True, verify_settings=settings)


@pytest.fixture(scope="module")
def strict_scan(planted_wide):
    return _planted_scan(planted_wide, VERIFY)


def test_verification_marks_planted_sets_verified_and_random_sets_not(planted_wide, strict_scan, db_path):
    planted, headmap = planted_wide, strict_scan
    for type_id in ("induction", "previous_token"):
        assert headmap.members(type_id) == [f"L{h[0]}H{h[1]}" for h in PLANTED[type_id]]
        record = headmap.verification[type_id]
        assert record["verified"] is True and record["status"] == "verified"
        # the planted set beats every random set: the sequential test draws all 100 and p sits at its floor
        assert record["n_random"] == 100 and not record["stopped_early"]
        assert record["p_value"] == round(1 / 101, 6) and record["p_holm"] == round(2 / 101, 6)
        assert len(set(map(tuple, record["random_sets"]))) == 20 and record["layer_window"] == 0
        assert record["n_tests"] == 2
        assert record["effect"] > 3.0 and record["random_max"] < 0.01
        low, high = record["effect_ci"]
        assert record["random_mean"] < low <= record["effect"] <= high
        assert all(s[0].startswith(f"L{PLANTED[type_id][0][0]}H") for s in record["random_sets"])  # same layer
    assert headmap.verification["induction"]["per_head"]["top_by_attribution"][0] == "L1H2"

    # sets of spare heads (exchangeable with the random sets) handed in as if they were members: not verified
    for heads in ([(1, 40)], [(1, 41), (1, 90)], [(0, 7), (1, 100), (1, 150)]):
        record = verify_set(planted, heads, "induction_loss", VERIFY)
        assert record["verified"] is False and record["p_value"] > 0.05 and record["p_holm"] == record["p_value"]
    assert record["stopped_early"] and record["n_random"] == 20  # the last is clearly not significant: one round

    # files: attribution for every head, ablation_effect only where exact ablation ran (empty cell)
    rows = list(csv.DictReader(io.StringIO(headmap.csv_text())))
    assert {"attribution", "ablation_effect"} <= set(rows[0])
    induction_rows = {f"L{r['layer']}H{r['head']}": r for r in rows if r["head_type"] == "induction"}
    assert all(r["attribution"] != "" for r in induction_rows.values())
    assert float(induction_rows["L1H2"]["ablation_effect"]) > 3.0
    exact_heads = set(headmap.verification["induction"]["per_head"]["exact_heads"])
    assert any(r["ablation_effect"] == "" for name, r in induction_rows.items() if name not in exact_heads)
    data = json.loads(headmap.json_text())
    assert data["verification"]["induction"]["verified"] is True

    # the store keeps them
    conn = connect(db_path)
    scan_id = save_scan(conn, headmap)
    stored = conn.execute(
        "SELECT layer, head, attribution, ablation_effect FROM head_scores WHERE scan_id = ? AND head_type = ?",
        (scan_id, "induction"),
    ).fetchall()
    by_head = {(r["layer"], r["head"]): r for r in stored}
    assert by_head[INDUCTION]["ablation_effect"] > 3.0
    assert all(r["attribution"] is not None for r in stored)
    assert any(r["ablation_effect"] is None for r in stored)


def test_strict_set_tests_turn_a_screened_scan_into_the_strict_scan(planted_wide, strict_scan):
    """`atlas strict`'s path: the set tests alone, run on a screened scan's members, give the strict scan's
    records (per-head checks kept, the screen's verdict under ``screen``); records that do not fit are refused."""
    screened = _planted_scan(planted_wide, replace(VERIFY, strict=False))
    metrics = causal_metrics(resolve_head_types(PAIR))
    records = strict_set_tests(planted_wide, screened, VERIFY, metrics=metrics)
    assert records == {t: {k: v for k, v in strict_scan.verification[t].items() if k != "per_head"} for t in PAIR}
    before = copy.deepcopy(screened.verification)
    with pytest.raises(InvalidSettingError, match="other verification settings"):
        adopt_set_tests(screened, records, replace(VERIFY, seed=1).to_dict())
    with pytest.raises(InvalidSettingError, match="the scan tested"):
        adopt_set_tests(screened, {"induction": records["induction"]}, VERIFY.to_dict())
    moved = {**records, "previous_token": {**records["previous_token"], "members": ["L1H3"]}}
    with pytest.raises(InvalidSettingError, match="other members"):
        adopt_set_tests(screened, moved, VERIFY.to_dict())
    assert screened.verification == before  # a refusal changes nothing
    adopt_set_tests(screened, records, VERIFY.to_dict())
    for type_id in PAIR:
        record, screen = screened.verification[type_id], before[type_id]
        assert {k: v for k, v in record.items() if k != "screen"} == strict_scan.verification[type_id]
        assert record["screen"] == {k: screen[k] for k in SCREEN_SUMMARY}
        assert record["screen"]["n_random"] == 20 and record["n_random"] == 100
    assert screened.settings["verify"] == strict_scan.settings["verify"]
    adopt_set_tests(screened, records, VERIFY.to_dict())  # again: the same records, the first screen kept
    assert screened.verification["induction"]["screen"] == {k: before["induction"][k] for k in SCREEN_SUMMARY}


def test_verification_is_deterministic(planted):
    quick = VerifySettings(repeat_len=12, n_repeat=4, top_n=0, max_exact_members=1, max_batch=48)
    first = scan(planted, head_types=["previous_token"], probes=PROBE, verify=True, verify_settings=quick)
    second = scan(planted, head_types=["previous_token"], probes=PROBE, verify=True, verify_settings=quick)
    assert first.json_text() == second.json_text()
    assert PLANTED["previous_token"][0] == PREVIOUS


def test_the_screening_test_beats_all_20_random_sets_uncorrected(planted_wide):
    planted = planted_wide
    headmap = scan(planted, head_types=["induction"], probes=PROBE, verify=True, verify_settings=SCREEN)
    record = headmap.verification["induction"]
    assert record["verified"] is True and record["p_value"] == round(1 / 21, 6)
    assert len(record["random_effects"]) == 20 and record["n_random"] == 20
    assert len(set(map(tuple, record["random_sets"]))) == 20 and record["layer_window"] == 0
    assert "p_holm" not in record and "effect_ci" not in record and "strict" not in headmap.settings["verify"]
    assert record["rule"].startswith("verified = set damage > 0 and empirical p < 0.05")
    record = verify_set(planted, [(1, 40)], "induction_loss", SCREEN)  # a spare head
    assert record["verified"] is False and record["p_value"] > 0.05


def test_a_model_with_few_heads_cannot_claim_more_comparisons_than_it_has(planted):
    """8 heads: a one-head set has 7 alternatives in the whole model, so the screen compares with each once
    (an exact permutation test, floor 1/8) and cannot verify, however strong the head is."""
    headmap = scan(planted, head_types=["induction"], probes=PROBE, verify=True, verify_settings=SCREEN)
    record = headmap.verification["induction"]
    assert record["effect"] > record["random_max"] > 3.0  # beats every set, L0H0 (its previous-token input) too
    assert record["n_random"] == 7 and record["random_population"] == 7 and record["layer_window"] == 1
    assert sorted(map(tuple, record["random_sets"])) == sorted(
        (f"L{lay}H{h}",) for lay in (0, 1) for h in range(4) if (lay, h) != INDUCTION
    )
    assert record["p_value"] == round(1 / 8, 6) and record["verified"] is False


def test_a_set_with_nothing_to_compare_draws_no_random_sets(planted):
    """No members: nothing is tested, so the record claims no sets, window or population; every head a
    member (8 of 8): no random set exists even across the whole model, and the record says so."""
    empty = verify_set(planted, [], "induction_loss", SCREEN)
    assert empty["status"] == "no_members" and empty["n_random"] == 0 and empty["random_effects"] == []
    assert "layer_window" not in empty and "random_population" not in empty and empty["verified"] is None
    everything = [(layer, head) for layer in range(2) for head in range(4)]
    full = verify_set(planted, everything, "induction_loss", SCREEN)
    assert full["status"] == "too_many_members" and full["n_random"] == 0 and full["random_population"] == 0
    assert full["layer_window"] == 1 and full["verified"] is None
