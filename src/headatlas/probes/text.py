"""Natural text: windows of plain English prose written for this project (``data/prose.txt``).

Sentences are drawn with a seeded generator and joined until a window of ``text_len`` tokens
(after BOS) is full. Also the filler of the needle-in-a-haystack probe.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING, Any

from .._lazy import lazy_module
from .base import ProbeBatch, ProbeSettings, all_rows, bos_id, chunked, generator

if TYPE_CHECKING:
    import torch
else:
    torch = lazy_module("torch")

PROBE_ID = "natural_text"


@lru_cache(maxsize=1)
def sentences() -> tuple[str, ...]:
    text = resources.files("headatlas.probes").joinpath("data/prose.txt").read_text(encoding="utf-8")
    return tuple(line.strip() for line in text.splitlines() if line.strip())


def sentence_stream(tokenizer: Any, gen: torch.Generator, n_tokens: int) -> list[int]:
    """At least ``n_tokens`` token ids of randomly ordered sentences, each preceded by a space."""
    pool = sentences()
    ids: list[int] = []
    while len(ids) < n_tokens:
        pick = int(torch.randint(len(pool), (1,), generator=gen))
        ids.extend(tokenizer.encode(" " + pool[pick], add_special_tokens=False))
    return ids


def generate(tokenizer: Any, settings: ProbeSettings, seed: int) -> list[ProbeBatch]:
    gen = generator(seed, salt=2)
    bos = bos_id(tokenizer)
    seqs = [
        torch.tensor([bos, *sentence_stream(tokenizer, gen, settings.text_len)[: settings.text_len]])
        for _ in range(settings.n_text)
    ]
    batches = []
    for group in chunked(seqs, settings.batch_size):
        ids = torch.stack(group)
        batches.append(ProbeBatch(input_ids=ids, attention_mask=torch.ones_like(ids), rows=all_rows(*ids.shape)))
    return batches
