"""Pattern scores on synthetic attention tensors: perfect patterns score exactly 1.0, others do not."""

from __future__ import annotations

import pytest
import torch

from headatlas.heads import get_head_type
from headatlas.probes.base import ProbeBatch

PATTERN_TYPES = ("previous_token", "current_token", "sink", "duplicate_token", "induction", "local")
PERIOD = 12


def score(head_type: str, probs: torch.Tensor, batch: ProbeBatch) -> torch.Tensor:
    return get_head_type(head_type).score(probs, batch)


def text_batch(batch: int = 2, length: int = 40, seed: int = 0) -> ProbeBatch:
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(2, 300, (batch, length), generator=gen)
    ids[:, 0] = 0
    return ProbeBatch(input_ids=ids, attention_mask=torch.ones_like(ids), rows=torch.arange(length).repeat(batch, 1))


def repeated_batch(batch: int = 2, period: int = PERIOD, seed: int = 0) -> ProbeBatch:
    """[BOS, x, x] with ``period`` distinct tokens per x, every position a row."""
    gen = torch.Generator().manual_seed(seed)
    seqs = [
        torch.cat([torch.tensor([0]), x, x])
        for x in (torch.randperm(200, generator=gen)[:period] + 2 for _ in range(batch))
    ]
    ids = torch.stack(seqs)
    return ProbeBatch(
        input_ids=ids,
        attention_mask=torch.ones_like(ids),
        rows=torch.arange(ids.shape[1]).repeat(batch, 1),
        extras={"period": torch.full((batch,), period)},
    )


def one_hot_pattern(batch: ProbeBatch, target: torch.Tensor, heads: int = 3) -> torch.Tensor:
    """``[B, heads, R, K]`` putting all of row r's mass on key ``target[b, r]``."""
    n_keys = batch.input_ids.shape[1]
    pattern = torch.nn.functional.one_hot(target, n_keys).float()
    return pattern[:, None].expand(-1, heads, -1, -1).clone()


def uniform_pattern(batch: ProbeBatch, heads: int = 3) -> torch.Tensor:
    """Causal uniform attention: row r spreads its mass evenly over keys 0..r."""
    n_keys = batch.input_ids.shape[1]
    causal = (torch.arange(n_keys)[None, :] <= batch.rows[:, :, None]).float()
    return (causal / causal.sum(-1, keepdim=True))[:, None].expand(-1, heads, -1, -1).clone()


def test_perfect_previous_current_and_sink_patterns_score_exactly_one():
    batch = text_batch()
    rows = batch.rows
    assert torch.all(score("previous_token", one_hot_pattern(batch, (rows - 1).clamp(min=0)), batch) == 1.0)
    assert torch.all(score("current_token", one_hot_pattern(batch, rows), batch) == 1.0)
    assert torch.all(score("sink", one_hot_pattern(batch, rows * 0), batch) == 1.0)
    # and each of them scores 0 on the other two types (row 0 is left out of all three)
    assert torch.all(score("current_token", one_hot_pattern(batch, (rows - 1).clamp(min=0)), batch) == 0.0)
    assert torch.all(score("sink", one_hot_pattern(batch, rows), batch) == 0.0)
    assert torch.all(score("previous_token", one_hot_pattern(batch, rows * 0), batch) < 1 / 39 + 1e-6)


def test_perfect_induction_pattern_scores_one_and_previous_token_scores_zero():
    batch = repeated_batch()
    rows = batch.rows
    second = rows > PERIOD
    induction_target = torch.where(second, rows - PERIOD + 1, torch.zeros_like(rows))
    assert torch.all(score("induction", one_hot_pattern(batch, induction_target), batch) == 1.0)
    previous = one_hot_pattern(batch, (rows - 1).clamp(min=0))
    assert torch.all(score("induction", previous, batch) == 0.0)
    # a duplicate-token pattern (the earlier copy itself, one key too early) is not induction either
    duplicate_target = torch.where(second, rows - PERIOD, torch.zeros_like(rows))
    assert torch.all(score("induction", one_hot_pattern(batch, duplicate_target), batch) == 0.0)


def test_duplicate_token_averages_over_rows_that_have_a_match():
    batch = repeated_batch()
    rows = batch.rows
    second = rows > PERIOD
    target = torch.where(second, rows - PERIOD, rows)  # first copy: itself (no earlier copy exists)
    probs = one_hot_pattern(batch, target)
    assert torch.all(score("duplicate_token", probs, batch) == 1.0)
    # averaging over every row instead (TransformerLens's detect_head) would cap the same pattern near 0.5
    all_rows_mean = second.sum(-1).float() / rows.shape[1]
    assert torch.all(all_rows_mean < 0.5)
    # attending to itself is not a duplicate-token match
    assert torch.all(score("duplicate_token", one_hot_pattern(batch, rows), batch) == 0.0)


@pytest.mark.parametrize("head_type", PATTERN_TYPES)
def test_uniform_attention_scores_low(head_type):
    batch = repeated_batch(period=30) if head_type in ("duplicate_token", "induction") else text_batch(length=64)
    value = score(head_type, uniform_pattern(batch), batch)
    assert value.shape == (2, 3)
    assert torch.all(value < 0.3), value


@pytest.mark.parametrize("head_type", PATTERN_TYPES)
def test_scores_do_not_mutate_their_input(head_type):
    batch = repeated_batch()
    probs = torch.rand(2, 3, batch.rows.shape[1], batch.input_ids.shape[1])
    before_probs, before_ids, before_rows = probs.clone(), batch.input_ids.clone(), batch.rows.clone()
    score(head_type, probs, batch)
    assert torch.equal(probs, before_probs)
    assert torch.equal(batch.input_ids, before_ids)
    assert torch.equal(batch.rows, before_rows)


@pytest.mark.parametrize("head_type", PATTERN_TYPES)
def test_padding_rows_and_padded_tokens_are_ignored(head_type):
    """Rows marked -1 and rows on padded positions do not change a score, whatever their probabilities."""
    full = repeated_batch(batch=1, period=20)
    length = full.input_ids.shape[1]
    probs = torch.rand(1, 3, length, length).tril()
    probs = probs / probs.sum(-1, keepdim=True)
    reference = score(head_type, probs, full)

    # the same rows, then 5 padding rows (-1) whose probabilities are garbage
    padded_rows = torch.cat([full.rows, torch.full((1, 5), -1)], dim=1)
    garbage = torch.rand(1, 3, 5, length)
    with_pad = ProbeBatch(full.input_ids, full.attention_mask, padded_rows, dict(full.extras))
    got = score(head_type, torch.cat([probs, garbage], dim=2), with_pad)
    torch.testing.assert_close(got, reference, rtol=1e-6, atol=1e-7)

    # the sequence right-padded with 6 masked tokens: rows on them are not real rows either
    ids = torch.cat([full.input_ids, torch.full((1, 6), 1)], dim=1)
    mask = torch.cat([full.attention_mask, torch.zeros(1, 6, dtype=torch.long)], dim=1)
    rows = torch.arange(length + 6)[None]
    wide = torch.zeros(1, 3, length + 6, length + 6)
    wide[:, :, :length, :length] = probs
    wide[:, :, length:, :] = torch.rand(1, 3, 6, length + 6)
    got = score(head_type, wide, ProbeBatch(ids, mask, rows, dict(full.extras)))
    torch.testing.assert_close(got, reference, rtol=1e-6, atol=1e-7)


def test_sample_without_any_valid_row_is_nan_not_zero():
    batch = text_batch(batch=1, length=20)
    batch = ProbeBatch(batch.input_ids, batch.attention_mask, torch.tensor([[0, -1, -1]]))
    probs = torch.zeros(1, 2, 3, 20)
    probs[:, :, 0, 0] = 1.0
    assert torch.all(score("previous_token", probs, batch).isnan())  # only row 0, which is left out
    # duplicate / induction on tokens with no earlier copy: undefined, not zero
    fresh = repeated_batch(batch=1)
    first_copy = ProbeBatch(fresh.input_ids, fresh.attention_mask, torch.arange(1, PERIOD + 1)[None], fresh.extras)
    probs = torch.full((1, 2, PERIOD, fresh.input_ids.shape[1]), 0.01)
    assert torch.all(score("duplicate_token", probs, first_copy).isnan())
    assert torch.all(score("induction", probs, first_copy).isnan())
