"""Sink heads: attention parked on the first token (BOS) when the head has nothing to do.

Score: mean over rows i ≥ 1 of A[i, 0] on natural text. A head that is a sink on most inputs and
active on a few is "dormant" in the sense of Active-Dormant Attention Heads (2024); this score is the
average, so a high value means mostly dormant on ordinary prose.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..probes import ProbeBatch
from ..probes.text import PROBE_ID
from .registry import HeadType, register_head_type
from .scoring import masked_row_mean, prob_at, valid_rows

if TYPE_CHECKING:
    import torch


def score(probs: torch.Tensor, batch: ProbeBatch) -> torch.Tensor:
    return masked_row_mean(prob_at(probs, batch.rows * 0), valid_rows(batch, min_position=1))


HEAD_TYPE = register_head_type(
    HeadType(
        id="sink",
        name="Attention sink / dormant head",
        definition="Puts its attention on the first token (BOS); mean A[i, 0] over rows i >= 1.",
        papers=("Active-Dormant Attention Heads: Mechanistically Demystifying Extreme-Token Phenomena in LLMs",),
        probe=PROBE_ID,
        threshold=0.6,
        metric="text_loss",
        score=score,
    )
)
