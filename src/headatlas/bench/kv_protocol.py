"""The kv bench's protocol, shared by both of its environments: seeded needle and prose samples, and one
method's scores from a prefilled cache (kvpress's pipeline order: context, then question, then answer)."""

from __future__ import annotations

import copy
import random
from importlib import resources
from typing import Any

DEPTHS = (0.1, 0.5, 0.9)
PLACES = ("harbour", "mountain", "river", "northern", "eastern", "forest", "island", "desert")


def _lines(name: str) -> list[str]:
    text = resources.files("headatlas.probes").joinpath(f"data/{name}").read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip()]


def make_samples(tokenizer: Any, context: int, needles: int, seed: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Needle samples (token ids) and one prose sample, deterministic for a seed."""
    rng = random.Random(seed)
    prose, words = _lines("prose.txt"), _lines("words.txt")

    def enc(text: str) -> list[int]:
        return list(tokenizer.encode(text, add_special_tokens=False))

    def filler(n: int) -> list[int]:
        ids: list[int] = []
        while len(ids) < n:
            ids += enc(" " + rng.choice(prose))
        return ids[:n]

    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    samples = []
    for depth in DEPTHS:
        for _ in range(needles):
            place = rng.choice(PLACES)
            value = enc(f" {rng.choice(words)}-{rng.choice(words)}-{rng.randint(1000, 9999)}")
            needle = [*enc(f" The secret passphrase of the {place} archive is"), *value, *enc(".")]
            question = enc(f"\n\nQuestion: What is the secret passphrase of the {place} archive?\nAnswer: It is")
            hay = filler(context - len(bos) - len(needle) - len(question))
            cut = int(depth * len(hay))
            samples.append(
                {
                    "depth": depth,
                    "context": [*bos, *hay[:cut], *needle, *hay[cut:]],
                    "question": question,
                    "value": value,
                }
            )
    text = [*bos, *filler(context + 128)]  # the continuation: 129 tokens, 128 of them predicted
    return samples, {"context": text[:context], "continuation": text[context:]}


def forward(model: Any, ids: list[int], cache: Any) -> Any:
    import torch

    key = "cache" if "cache" in model.forward.__code__.co_varnames else "past_key_values"
    return model(input_ids=torch.tensor([ids]), use_cache=True, **{key: cache})


def answer(model: Any, cache: Any, sample: dict[str, Any]) -> tuple[bool, float]:
    """(exact match of the greedy value, teacher-forced value-token accuracy) from a prefilled cache."""
    value = sample["value"]
    forced_cache = copy.deepcopy(cache)
    out = forward(model, sample["question"], cache)
    generated = []
    for _ in range(len(value)):
        nxt = int(out.logits[0, -1].argmax())
        generated.append(nxt)
        out = forward(model, [nxt], cache)
    out = forward(model, [*sample["question"], *value[:-1]], forced_cache)
    predicted = out.logits[0, -len(value) :].argmax(-1).tolist()
    return generated == value, sum(p == v for p, v in zip(predicted, value, strict=True)) / len(value)


def prose_loss(model: Any, cache: Any, prose: dict[str, Any]) -> float:
    import torch

    cont = prose["continuation"]
    out = forward(model, cont, cache)
    logits = out.logits[0, :-1].float()
    return float(torch.nn.functional.cross_entropy(logits, torch.tensor(cont[1:])))


def score_rows(rows: list[tuple[bool, float]], loss: float) -> dict[str, float]:
    return {
        "needle_exact": round(sum(r[0] for r in rows) / len(rows), 4),
        "needle_forced": round(sum(r[1] for r in rows) / len(rows), 4),
        "prose_loss": round(loss, 4),
    }
