"""Current-token heads: each token attends to itself.

Score: mean over query rows i ≥ 1 of A[i, i] on natural text (row 0 can only attend to itself, so it
is left out). Same family of pattern heads as previous-token heads (A Mathematical Framework for
Transformer Circuits, 2021).
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
    return masked_row_mean(prob_at(probs, batch.rows), valid_rows(batch, min_position=1))


HEAD_TYPE = register_head_type(
    HeadType(
        id="current_token",
        name="Current-token head",
        definition="Attends from each token to itself; mean A[i, i] over rows i >= 1.",
        papers=("A Mathematical Framework for Transformer Circuits",),
        probe=PROBE_ID,
        threshold=0.4,
        metric="text_loss",
        score=score,
    )
)
