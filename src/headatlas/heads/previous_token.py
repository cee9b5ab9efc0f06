"""Previous-token heads: each token attends to the token right before it.

Score: mean over query rows i ≥ 1 of A[i, i−1] on natural text; 1.0 is a perfect previous-token head.
The first half of an induction circuit (A Mathematical Framework for Transformer Circuits, 2021;
In-context Learning and Induction Heads, 2022).
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
    return masked_row_mean(prob_at(probs, batch.rows - 1), valid_rows(batch, min_position=1))


HEAD_TYPE = register_head_type(
    HeadType(
        id="previous_token",
        name="Previous-token head",
        definition="Attends from each token to the one just before it; mean A[i, i-1] over rows i >= 1.",
        papers=(
            "A Mathematical Framework for Transformer Circuits",
            "In-context Learning and Induction Heads",
        ),
        probe=PROBE_ID,
        threshold=0.4,
        metric="induction_loss",
        upstream_role=True,
        score=score,
    )
)
