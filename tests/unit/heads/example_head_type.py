"""An example head type as a separate package would ship it: the whole of it is this one module.

A package declares it in its ``pyproject.toml``::

    [project.entry-points."headatlas.head_types"]
    two_back = "example_head_type:HEAD_TYPE"

and ``headatlas scan`` then scores it, verifies it with ``text_loss``, lists it and reports it. The type is
not in headatlas's vocabulary, so it brings its own entry (a ``HeadTerm``).
"""

from __future__ import annotations

import torch

from headatlas.heads import HeadType
from headatlas.heads.scoring import masked_row_mean, prob_at, valid_rows
from headatlas.literature.vocabulary import HeadTerm
from headatlas.probes import ProbeBatch
from headatlas.probes.text import PROBE_ID


def score(probs: torch.Tensor, batch: ProbeBatch) -> torch.Tensor:
    return masked_row_mean(prob_at(probs, batch.rows - 2), valid_rows(batch, min_position=2))


HEAD_TYPE = HeadType(
    id="two_back",
    name="Two-back head",
    definition="Attends from each token to the one two before it; mean A[i, i-2] over rows i >= 2.",
    papers=(),
    probe=PROBE_ID,
    threshold=0.4,
    score=score,
    metric="text_loss",
    term=HeadTerm(
        id="two_back",
        name="Two-back head",
        stage="ICI",
        definition="Heads that attend from each token to the token two positions before it.",
    ),
)
