"""Needle in a haystack with a teacher-forced answer (Retrieval Head, Wu et al. 2024).

Each sample: BOS, filler prose, a needle sentence "The secret passphrase of the <place> archive is
<value>." at a seeded depth, more filler, a question, and the answer that repeats the value. The value
is tokenised once and the same ids are placed in the needle and in the answer, so every answer token
is an exact copy of a needle token. Rows are the positions that *predict* each answer value token.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING, Any

from .._lazy import lazy_module
from .base import ProbeBatch, ProbeSettings, bos_id, generator
from .text import sentence_stream

if TYPE_CHECKING:
    import torch
else:
    torch = lazy_module("torch")

PROBE_ID = "needle"

PLACES = ("harbour", "mountain", "river", "northern", "eastern", "forest", "island", "desert")


@lru_cache(maxsize=1)
def words() -> tuple[str, ...]:
    text = resources.files("headatlas.probes").joinpath("data/words.txt").read_text(encoding="utf-8")
    return tuple(w.strip() for w in text.splitlines() if w.strip())


def _sample(tokenizer: Any, gen: torch.Generator, context: int) -> ProbeBatch:
    def enc(text: str) -> list[int]:
        return list(tokenizer.encode(text, add_special_tokens=False))

    pool = words()
    pick = torch.randint(len(pool), (2,), generator=gen)
    number = int(torch.randint(1000, 10000, (1,), generator=gen))
    place = PLACES[int(torch.randint(len(PLACES), (1,), generator=gen))]
    value = enc(f" {pool[int(pick[0])]}-{pool[int(pick[1])]}-{number}")
    prefix = enc(f" The secret passphrase of the {place} archive is")
    needle = [*prefix, *value, *enc(".")]
    question = enc(f"\n\nQuestion: What is the secret passphrase of the {place} archive?\nAnswer: It is")
    filler_len = max(context - 1 - len(needle) - len(question) - len(value), 16)
    filler = sentence_stream(tokenizer, gen, filler_len)[:filler_len]
    depth = 0.1 + 0.8 * float(torch.rand((), generator=gen))
    cut = int(depth * filler_len)
    before = [bos_id(tokenizer), *filler[:cut]]
    ids = [*before, *needle, *filler[cut:], *question, *value]
    value_start = len(ids) - len(value)
    rows = torch.arange(value_start - 1, len(ids) - 1)  # position t predicts token t + 1
    needle_start = len(before) + len(prefix)  # first value token inside the needle
    return ProbeBatch(
        input_ids=torch.tensor([ids]),
        attention_mask=torch.ones(1, len(ids), dtype=torch.long),
        rows=rows[None],
        extras={
            "needle_span": torch.tensor([[len(before), len(before) + len(needle)]]),
            "value_span": torch.tensor([[needle_start, needle_start + len(value)]]),
            "context": torch.tensor([len(ids)]),
        },
    )


def generate(tokenizer: Any, settings: ProbeSettings, seed: int) -> list[ProbeBatch]:
    """One batch per sample: haystacks are long, so batching them buys nothing on a CPU."""
    gen = generator(seed, salt=3)
    return [
        _sample(tokenizer, gen, context)
        for context in settings.needle_contexts
        for _ in range(settings.needle_per_context)
    ]
