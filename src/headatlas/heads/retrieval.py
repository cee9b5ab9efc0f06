"""Retrieval heads: copy-paste a needle from a long context into the answer.

Score (Retrieval Head Mechanistically Explains Long-Context Factuality, Wu et al. 2024): for each
answer token, teacher-forced, a hit when the head's top-1 attended key lies inside the needle's value
and holds the very token being emitted; per sample, hits / |value|; averaged over samples at contexts
of 1k-8k tokens. Teacher forcing (instead of greedy decoding and keeping samples with ROUGE > 0.5)
makes every sample count and the score never empty; it measures the copy pattern whether or not the
model would have produced the answer itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_module
from ..probes import ProbeBatch
from ..probes.needle import PROBE_ID
from .registry import HeadType, register_head_type

if TYPE_CHECKING:
    import torch
else:
    torch = lazy_module("torch")


def score(probs: torch.Tensor, batch: ProbeBatch) -> torch.Tensor:
    top = probs.argmax(-1)  # [B, H, R]
    ids = batch.input_ids
    emitted = ids.gather(1, (batch.rows + 1).clamp(max=ids.shape[1] - 1))  # token each row predicts
    attended = ids.gather(1, top.flatten(1)).view_as(top)
    span = batch.extras["value_span"]
    inside = (top >= span[:, 0, None, None]) & (top < span[:, 1, None, None])
    real = (batch.rows >= 0)[:, None, :]
    hits = (inside & (attended == emitted[:, None, :]) & real).sum(-1).to(torch.float32)
    return hits / real.sum(-1).clamp(min=1).to(torch.float32)


HEAD_TYPE = register_head_type(
    HeadType(
        id="retrieval",
        name="Retrieval head",
        definition="While the answer is written, its top-1 key is the needle token being copied; hit rate.",
        papers=(
            "Retrieval Head Mechanistically Explains Long-Context Factuality",
            "RazorAttention: Efficient KV Cache Compression Through Retrieval Heads",
        ),
        probe=PROBE_ID,
        threshold=0.1,
        metric="needle_loss",
        score=score,
    )
)
