"""Repeated random tokens ``[BOS, x, x]`` (In-context Learning and Induction Heads, 2022).

``x`` is ``repeat_len`` distinct ordinary tokens drawn uniformly from the vocabulary, so the only way
to predict the second copy is to look back at the first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._lazy import lazy_module
from .base import ProbeBatch, ProbeSettings, all_rows, bos_id, chunked, generator

if TYPE_CHECKING:
    import torch
else:
    torch = lazy_module("torch")

PROBE_ID = "repeated_tokens"


def ordinary_token_ids(tokenizer: Any) -> torch.Tensor:
    """Vocabulary ids that are not special tokens (sorted, so sampling is deterministic)."""
    special = set(tokenizer.all_special_ids)
    size = len(tokenizer)
    return torch.tensor([i for i in range(size) if i not in special])


def generate(tokenizer: Any, settings: ProbeSettings, seed: int) -> list[ProbeBatch]:
    gen = generator(seed, salt=1)
    pool = ordinary_token_ids(tokenizer)
    bos = bos_id(tokenizer)
    seqs = []
    for _ in range(settings.n_repeat):
        x = pool[torch.randperm(len(pool), generator=gen)[: settings.repeat_len]]
        seqs.append(torch.cat([torch.tensor([bos]), x, x]))
    batches = []
    for group in chunked(seqs, settings.batch_size):
        ids = torch.stack(group)
        batches.append(
            ProbeBatch(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                rows=all_rows(*ids.shape),
                extras={"period": torch.full((len(group),), settings.repeat_len)},
            )
        )
    return batches
