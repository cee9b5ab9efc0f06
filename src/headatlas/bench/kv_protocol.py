"""The kv bench's protocol, shared by both of its environments: seeded needle contexts and one method's scores
from a prefilled, compressed cache (kvpress's pipeline order: context, then question, then answer).

A context is filler prose with one needle per depth ("The secret passphrase of the <place> archive is
<w1>-<w2>-<n>.", a different place each), so one prefill serves one needle per depth and the prose that
follows it (multi-key needle in a haystack, as RULER's multikey task). Scores per needle: teacher-forced
value-token accuracy (the question, then the value, read in one pass; each value token must be the argmax
after its prefix) and exact match (every value token right, which is exactly when greedy decoding
generates the value); the prose score is the loss on the 128 filler tokens that follow the context.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

PLACES = ("harbour", "mountain", "river", "northern", "eastern", "forest", "island", "desert", "valley", "western")


@dataclass(frozen=True)
class Grid:
    """Context lengths, needle depths, contexts per length (= needles per length x depth cell), KV fractions."""

    contexts: tuple[int, ...]
    depths: tuple[float, ...]
    needles: int
    fractions: tuple[float, ...]


DEFAULT_GRID = Grid(contexts=(2048, 8192), depths=(0.1, 0.5, 0.9), needles=3, fractions=(0.75, 0.5, 0.25))


def full_grid(max_positions: int) -> Grid:
    """``--grid full`` (for a GPU): 1k-8k tokens (16k where the model's window allows), 5 depths, 5 needles."""
    lengths = tuple(n for n in (1024, 2048, 4096, 8192, 16384) if n <= max_positions)
    return Grid(contexts=lengths, depths=(0.0, 0.25, 0.5, 0.75, 1.0), needles=5, fractions=(0.75, 0.5, 0.25))


def _lines(name: str) -> list[str]:
    text = resources.files("headatlas.probes").joinpath(f"data/{name}").read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip()]


def make_contexts(
    tokenizer: Any, length: int, depths: tuple[float, ...], count: int, seed: int
) -> list[dict[str, Any]]:
    """``count`` contexts of exactly ``length`` tokens, each with one needle per depth and 129 prose tokens
    after it; deterministic for a seed (and the length, so contexts of two lengths differ)."""
    if len(depths) > len(PLACES):
        raise ValueError(f"at most {len(PLACES)} depths per context")
    rng = random.Random(f"{seed}-{length}")
    prose, words = _lines("prose.txt"), _lines("words.txt")

    def enc(text: str) -> list[int]:
        return list(tokenizer.encode(text, add_special_tokens=False))

    def filler(n: int) -> list[int]:
        ids: list[int] = []
        while len(ids) < n:
            ids += enc(" " + rng.choice(prose))
        return ids[:n]

    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    out = []
    for _ in range(count):
        places = rng.sample(PLACES, len(depths))
        needles: list[dict[str, Any]] = []
        for depth, place in zip(depths, places, strict=True):
            value = enc(f" {rng.choice(words)}-{rng.choice(words)}-{rng.randint(1000, 9999)}")
            needles.append(
                {
                    "depth": depth,
                    "ids": [*enc(f" The secret passphrase of the {place} archive is"), *value, *enc(".")],
                    "question": enc(
                        f"\n\nQuestion: What is the secret passphrase of the {place} archive?\nAnswer: It is"
                    ),
                    "value": value,
                }
            )
        hay = filler(length - len(bos) - sum(len(n["ids"]) for n in needles))
        context, last = list(bos), 0
        for n in needles:  # depths ascend: cut the haystack at each depth, in order
            cut = max(last, int(n["depth"] * len(hay)))
            context += hay[last:cut] + n["ids"]
            last = cut
        context += hay[last:]
        out.append(
            {
                "context": context,
                "needles": [{k: n[k] for k in ("depth", "question", "value")} for n in needles],
                "continuation": filler(129),  # 128 of them predicted
            }
        )
    return out


def forward(model: Any, ids: list[int], cache: Any, last_only: bool = False) -> Any:
    """One forward pass with ``cache`` (``cache=`` on transformers 5.24, ``past_key_values=`` on 5.2)."""
    import torch

    key = "cache" if "cache" in model.forward.__code__.co_varnames else "past_key_values"
    extra = {"logits_to_keep": 1} if last_only else {}
    return model(input_ids=torch.tensor([ids], device=model.device), use_cache=True, **{key: cache}, **extra)


def score_context(
    model: Any, cache: Any, sample: dict[str, Any], fwd: Callable[[Any, list[int], Any], Any] = forward
) -> tuple[list[float], float]:
    """(teacher-forced value accuracy per needle, prose loss) from one prefilled, compressed cache.

    Each needle reads a copy; the prose continuation reads the cache itself (so it is spent afterwards).
    ``fwd(model, ids, cache)`` reads tokens that follow the context (default: :func:`forward`)."""
    import torch

    forced = []
    for needle in sample["needles"]:
        value = needle["value"]
        out = fwd(model, [*needle["question"], *value[:-1]], copy.deepcopy(cache))
        predicted = out.logits[0, -len(value) :].argmax(-1).tolist()
        forced.append(sum(p == v for p, v in zip(predicted, value, strict=True)) / len(value))
    cont = sample["continuation"]
    logits = fwd(model, cont, cache).logits[0, :-1].float()
    loss = float(torch.nn.functional.cross_entropy(logits, torch.tensor(cont[1:], device=logits.device)))
    return forced, loss


def summarise(forced: list[float], losses: list[float]) -> dict[str, float]:
    """Needle scores over every needle of a cell, prose loss over its contexts."""
    return {
        "needle_exact": round(sum(f == 1.0 for f in forced) / len(forced), 4),
        "needle_forced": round(sum(forced) / len(forced), 4),
        "prose_loss": round(sum(losses) / len(losses), 4),
        "n_needles": len(forced),
    }
