"""The census under a memory budget: probe batches split by samples give the scores of the whole batches."""

from __future__ import annotations

import torch

from headatlas.causal.interventions import memory_budget
from headatlas.census import ScanSettings, fit_budget, forward_bytes, run_census
from headatlas.probes import PROBES, ProbeSettings
from headatlas.testing.planted import build_planted_model

SMALL = ProbeSettings(repeat_len=12, n_repeat=4, text_len=32, n_text=4, needle_contexts=(256,), batch_size=4)
TYPES = ("previous_token", "induction", "duplicate_token", "sink", "retrieval")


def test_a_batch_is_split_by_samples_until_each_part_fits():
    loaded = build_planted_model()
    batch = PROBES["repeated_tokens"](loaded.tokenizer, SMALL, 0)[0]
    whole = forward_bytes(loaded, batch)
    assert fit_budget(loaded, batch, None) == [batch]
    assert fit_budget(loaded, batch, whole) == [batch]
    halves = fit_budget(loaded, batch, whole - 1)
    assert [int(p.input_ids.shape[0]) for p in halves] == [2, 2]
    assert torch.equal(torch.cat([p.input_ids for p in halves]), batch.input_ids)
    assert torch.equal(torch.cat([p.extras["period"] for p in halves]), batch.extras["period"])
    singles = fit_budget(loaded, batch, 1)  # below one sample: one sample per pass, never zero
    assert [int(p.input_ids.shape[0]) for p in singles] == [1, 1, 1, 1]


def test_scores_under_a_tiny_budget_equal_the_unbounded_census():
    loaded = build_planted_model()
    settings = ScanSettings(head_types=TYPES, probes=SMALL)
    free = run_census(loaded, settings)
    with memory_budget(1):
        bounded = run_census(loaded, settings)
    assert bounded.probes == free.probes  # samples, tokens and the model's top-1 accuracy
    for a, b in zip(free.rows, bounded.rows, strict=True):
        assert (a["head_type"], a["layer"], a["head"], a["n_samples"]) == (
            b["head_type"], b["layer"], b["head"], b["n_samples"]
        )  # fmt: skip
        if a["score"] is not None:
            assert abs(a["score"] - b["score"]) <= 1e-6
