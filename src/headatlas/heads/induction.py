"""Induction heads: find the earlier copy of the current token and attend to the token after it.

Score: on [BOS, x, x] with |x| = 50 distinct random tokens, the attention mass each row puts on keys
that follow an earlier occurrence of its own token, averaged over rows that have one. On this probe
that is exactly A[i, i − |x| + 1] averaged over the second copy; 1.0 is a perfect induction head.
(In-context Learning and Induction Heads, Olsson et al. 2022.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..probes import ProbeBatch
from ..probes.repeated import PROBE_ID
from .registry import HeadType, register_head_type
from .scoring import after_earlier_same_token, masked_row_mean, mass_on, valid_rows

if TYPE_CHECKING:
    import torch


def score(probs: torch.Tensor, batch: ProbeBatch) -> torch.Tensor:
    targets = after_earlier_same_token(batch)
    has_target = targets.any(-1) & valid_rows(batch)
    return masked_row_mean(mass_on(probs, targets), has_target)


HEAD_TYPE = register_head_type(
    HeadType(
        id="induction",
        name="Induction head",
        definition="Attends to the token after an earlier copy of the current token ([A][B] ... [A] -> [B]).",
        papers=("In-context Learning and Induction Heads",),
        probe=PROBE_ID,
        threshold=0.4,
        metric="induction_loss",
        upstream_role=True,
        score=score,
    )
)
