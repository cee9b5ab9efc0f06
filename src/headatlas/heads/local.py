"""Local (streaming) heads: attention stays within a short window of recent tokens.

Score: on natural text, the attention mass each row i ≥ 2w puts on its last w = 8 tokens (itself
included, BOS excluded), averaged over rows. DuoAttention (2024) keeps only sink + recent tokens for
such "streaming heads"; the sink part is measured by the ``sink`` type, so it is left out here.
The threshold 0.7 is ours: no paper fixes one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..probes import ProbeBatch
from ..probes.text import PROBE_ID
from .registry import HeadType, register_head_type
from .scoring import key_positions, masked_row_mean, mass_on, valid_rows

if TYPE_CHECKING:
    import torch

WINDOW = 8


def score(probs: torch.Tensor, batch: ProbeBatch) -> torch.Tensor:
    keys = key_positions(batch)[None, None, :]
    rows = batch.rows[:, :, None]
    window = (keys <= rows) & (keys > rows - WINDOW) & (keys > 0)
    return masked_row_mean(mass_on(probs, window), valid_rows(batch, min_position=2 * WINDOW))


HEAD_TYPE = register_head_type(
    HeadType(
        id="local",
        name="Local / streaming head",
        definition=f"Keeps its attention on the last {WINDOW} tokens (BOS excluded); mass in that window.",
        papers=("DuoAttention: Efficient Long-Context LLM Inference with Retrieval and Streaming Heads",),
        probe=PROBE_ID,
        threshold=0.7,
        metric="text_loss",
        score=score,
    )
)
