"""Weights-only head types on the real SmolLM2-135M: every head scored, bounded, deterministic."""

from __future__ import annotations

import math

import pytest

from headatlas.census import ScanSettings, run_census
from headatlas.heads.copying import clear_cache
from headatlas.probes import ProbeSettings

pytestmark = pytest.mark.slow

TYPES = ("copying", "negative_copying", "successor", "copy_suppression")
SMALL_TEXT = ProbeSettings(n_text=4, text_len=64)


def test_weights_scores_on_smollm2_are_bounded_and_deterministic(smollm2):
    settings = ScanSettings(seed=0, head_types=TYPES, probes=SMALL_TEXT)
    first = run_census(smollm2, settings)
    for type_id in TYPES:
        rows = [r for r in first.rows if r["head_type"] == type_id]
        assert len(rows) == 270
        assert all(r["score"] is not None and math.isfinite(r["score"]) and 0.0 <= r["score"] <= 1.0 for r in rows)
    info = first.probes
    assert info["copying"]["token_set_size"] == 500  # SmolLM2 has far more than 500 single-token common words
    assert info["successor"]["tasks"]["digits"]["dropped"] == 11  # "10" … "20" are two digit tokens here
    assert info["copy_suppression"]["rows_scored"] > 0
    clear_cache()  # recompute, do not reuse
    assert run_census(smollm2, settings).csv_text() == first.csv_text()
