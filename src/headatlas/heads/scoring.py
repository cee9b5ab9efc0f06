"""Shared tensor helpers for pattern scores. ``probs`` is ``[B, H, R, K]``, ``batch.rows`` ``[B, R]``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_module
from ..probes import ProbeBatch

if TYPE_CHECKING:
    import torch
else:
    torch = lazy_module("torch")


def masked_row_mean(values: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean over rows of ``values`` [B, H, R] where ``valid`` [B, R]; NaN for a sample with no valid row."""
    weight = valid.to(values.dtype)[:, None, :]
    count = weight.sum(-1)
    total = (values * weight).sum(-1)
    return torch.where(count > 0, total / count.clamp(min=1), torch.full_like(total, float("nan")))


def prob_at(probs: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """Probability each row puts on key ``keys`` [B, R] (out-of-range keys give 0): ``[B, H, R]``."""
    n_keys = probs.shape[-1]
    inside = (keys >= 0) & (keys < n_keys)
    picked = probs.gather(-1, keys.clamp(0, n_keys - 1)[:, None, :, None].expand(*probs.shape[:3], 1))[..., 0]
    return picked * inside[:, None, :].to(probs.dtype)


def row_tokens(batch: ProbeBatch) -> torch.Tensor:
    """Token at each query row: ``[B, R]``."""
    return batch.input_ids.gather(1, batch.rows.clamp(min=0))


def key_positions(batch: ProbeBatch) -> torch.Tensor:
    return torch.arange(batch.input_ids.shape[1], device=batch.input_ids.device)


def valid_rows(batch: ProbeBatch, min_position: int = 0) -> torch.Tensor:
    """Rows that exist (not padding, not a padded token) and sit at ``position >= min_position``."""
    real = batch.attention_mask.gather(1, batch.rows.clamp(min=0)).bool()
    return (batch.rows >= min_position) & real


def earlier_same_token(batch: ProbeBatch) -> torch.Tensor:
    """``[B, R, K]``: key j < row i holds the same token as row i (duplicate-token matches)."""

    def make() -> torch.Tensor:
        same = row_tokens(batch)[:, :, None] == batch.input_ids[:, None, :]
        before = key_positions(batch)[None, None, :] < batch.rows[:, :, None]
        return same & before & batch.attention_mask[:, None, :].bool()

    return batch.memo("earlier_same_token", make)


def after_earlier_same_token(batch: ProbeBatch) -> torch.Tensor:
    """``[B, R, K]``: key j (1 ≤ j < i) follows an earlier copy of row i's token (induction targets)."""

    def make() -> torch.Tensor:
        same = earlier_same_token(batch)
        shifted = torch.zeros_like(same)
        shifted[:, :, 1:] = same[:, :, :-1]  # key j is a target when key j-1 matched
        before = key_positions(batch)[None, None, :] < batch.rows[:, :, None]
        return shifted & before

    return batch.memo("after_earlier_same_token", make)


def mass_on(probs: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """Attention mass each row puts on the keys marked in ``keys`` [B, R, K]: ``[B, H, R]``."""
    return (probs * keys[:, None].to(probs.dtype)).sum(-1)
