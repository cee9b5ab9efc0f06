"""Task-defined head types on the real SmolLM2-135M with small settings: finite, deterministic scores."""

from __future__ import annotations

import pytest
import torch

from headatlas.heads.ioi_circuit import run_ioi
from headatlas.probes import ioi

pytestmark = pytest.mark.slow


def test_ioi_names_are_single_tokens_in_the_smollm2_tokenizer(smollm2):
    pool = ioi.name_set(smollm2.tokenizer)
    assert pool.form == "space"
    assert len(pool.names) >= 100 and pool.dropped == len(ioi.default_names()) - len(pool.names)
    for name, token in zip(pool.names, pool.ids, strict=True):
        assert smollm2.tokenizer.encode(f" {name}", add_special_tokens=False) == [token]


def test_ioi_scores_on_smollm2_are_finite_and_deterministic(smollm2):
    first = run_ioi(smollm2, n_prompts=4, seed=0)
    again = run_ioi(smollm2, n_prompts=4, seed=0)
    for name in ("direct", "gated", "s_inhibition"):
        value = getattr(first, name)
        assert value.shape == (30, 9)
        assert bool(value.isfinite().all())
        assert torch.equal(value, getattr(again, name))
    assert first.info["logit_diff_clean"] > 1.0  # the model does the task: IO over S
    assert abs(first.info["logit_diff_corrupt"]) < first.info["logit_diff_clean"]
    assert first.receivers  # some head attends to IO and writes it
    assert float(first.gated.max()) > 0.2
