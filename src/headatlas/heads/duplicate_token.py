"""Duplicate-token heads: attend from a token to its earlier occurrences.

Score: on repeated random tokens, the attention mass each row puts on earlier positions holding the
same token, averaged only over rows that have such a match (the second copy). Dividing by all rows,
as TransformerLens's ``detect_head`` does, caps the score near 0.5; this one reaches 1.0.
(Interpretability in the Wild: a Circuit for Indirect Object Identification in GPT-2 small, 2023.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..probes import ProbeBatch
from ..probes.repeated import PROBE_ID
from .registry import HeadType, register_head_type
from .scoring import earlier_same_token, masked_row_mean, mass_on, valid_rows

if TYPE_CHECKING:
    import torch


def score(probs: torch.Tensor, batch: ProbeBatch) -> torch.Tensor:
    matches = earlier_same_token(batch)
    has_match = matches.any(-1) & valid_rows(batch)
    return masked_row_mean(mass_on(probs, matches), has_match)


HEAD_TYPE = register_head_type(
    HeadType(
        id="duplicate_token",
        name="Duplicate-token head",
        definition="Attends to earlier copies of the current token; mass on them, over rows that have one.",
        papers=("Interpretability in the Wild: a Circuit for Indirect Object Identification in GPT-2 small",),
        probe=PROBE_ID,
        threshold=0.3,
        metric="induction_loss",
        upstream_role=True,
        score=score,
    )
)
