"""The one scan sequence: run_scan's typed result, and the API and CLI giving the same numbers through it."""

from __future__ import annotations

import pytest

from headatlas.causal.verify import VerifySettings
from headatlas.errors import InvalidSettingError, UnknownHeadTypeError
from headatlas.pipeline import ScanResult, run_scan, scan_settings
from headatlas.probes import ProbeSettings
from headatlas.testing.planted import build_planted_model

SMALL = ProbeSettings(n_repeat=2, repeat_len=8, n_text=2, text_len=16, needle_contexts=(256,), needle_per_context=1)
TYPES = ["previous_token", "induction", "name_mover"]


@pytest.fixture(scope="module")
def planted():
    return build_planted_model(spare_heads=24)  # 28 heads a layer: 27 alternatives to a one-head set


@pytest.fixture(scope="module")
def result(planted) -> ScanResult:
    return run_scan(planted, scan_settings(3, TYPES, SMALL), verify=True)


def test_the_result_holds_head_map_patterns_and_verification(planted, result):
    assert list(result.headmap.head_types) == TYPES
    assert result.verified and result.verification is result.headmap.verification
    assert result.verification["induction"]["status"] == "verified"  # the planted induction heads
    assert result.verification["name_mover"]["status"] == "no_scores"  # IOI does not fit the toy tokenizer
    assert result.ioi_roles is None
    assert result.patterns is not None and result.patterns["seed"] == 3  # the scan's seed, handed on once
    # each type's evidence: prose for previous-token, [BOS, x, x] for induction; IOI (name movers) does not fit
    examples = {ex["id"]: ex["types"] for ex in result.patterns["examples"]}
    assert examples == {"natural_text": ["previous_token"], "repeated_tokens": ["induction"]}
    assert result.headmap.settings["seed"] == 3 and result.headmap.settings["verify"]["seed"] == 3


def test_the_api_scan_is_the_pipelines_head_map(planted, result):
    from headatlas import scan

    headmap = scan(planted, head_types=TYPES, probes=SMALL, seed=3, verify=True)
    assert headmap.json_text() == result.headmap.json_text()
    assert {"to_pandas", "top", "matrix"} <= set(dir(headmap))


def test_seed_and_settings_are_checked_before_any_model_loads():
    with pytest.raises(UnknownHeadTypeError, match="valid head types"):
        scan_settings(0, ["induction", "bogus"])
    with pytest.raises(InvalidSettingError, match="non-negative"):
        scan_settings(-1)
    with pytest.raises(InvalidSettingError, match="verify=False"):
        run_scan("no-such-model", verify_settings=VerifySettings())


def test_patterns_can_be_skipped(planted):
    plain = run_scan(planted, scan_settings(0, ["sink"], SMALL), patterns=False)
    assert plain.patterns is None and not plain.verified and plain.verification == {}


def test_a_given_memory_budget_is_recorded_and_free_memory_is_not_read(planted, result, monkeypatch):
    import headatlas.pipeline as pipeline

    def no_reading(device):
        raise AssertionError("free memory was read although max_memory was given")

    monkeypatch.setattr(pipeline, "default_budget", no_reading)
    budget = 64 * 2**20
    fixed = run_scan(planted, scan_settings(3, TYPES, SMALL), verify=True, patterns=False, max_memory=budget)
    assert fixed.headmap.settings["max_memory"] == budget
    assert "max_memory" not in result.headmap.settings  # the free-memory default is not a setting to record
    assert fixed.headmap.verification == result.headmap.verification  # the planted findings, either way


def test_progress_covers_task_types_and_each_stability_rerun(planted):
    seen = []
    run_scan(
        planted,
        scan_settings(3, ["induction", "name_mover"], SMALL),
        stability_seeds=(3, 4),
        patterns=False,
        progress=lambda stage, done, total: seen.append((stage, done, total)),
    )
    stages = {stage for stage, _, _ in seen}
    assert {"repeated_tokens", "name_mover", "repeated_tokens · seed 4", "name_mover · seed 4"} == stages
    assert [(d, t) for s, d, t in seen if s == "name_mover"] == [(0, 1), (1, 1)]  # started, then scored
    finished = [(d, t) for s, d, t in seen if s == "repeated_tokens · seed 4"][-1]
    assert finished[0] == finished[1] > 0
