"""Full attention patterns of every head on two short probe examples, captured for the report and the web app.

One natural-text window (``headatlas.probes.text``) and one repeated-random-token sequence ``[BOS, x, x]``
(the induction probe of Olsson et al. 2022), each at most ~32 tokens, run once through the lens with a
:class:`~headatlas.lens.PatternTap` on every row. Each head's causal pattern is stored as its lower
triangle (row ``i`` holds weights on keys ``0..i``) rounded to 3 decimals: 270 heads × 2 × 528 numbers
for SmolLM2, about 1.5 MB of JSON. Part of a scan (:func:`headatlas.pipeline.run_scan`); ``web/`` only
reads the stored file.
"""

from __future__ import annotations

import json
from typing import Any

import torch

from .errors import InvalidSettingError
from .headmap import PATTERNS_FORMAT, head_name
from .lens import PatternTap, session
from .models.loader import LoadedModel
from .probes.base import bos_id, generator
from .probes.repeated import ordinary_token_ids
from .probes.text import sentence_stream

DIGITS = 3


def token_strings(tokenizer: Any, ids: list[int]) -> list[str]:
    """Each token as the text it stands for (``decode`` of the single id), else its vocabulary entry."""
    out = []
    for i in ids:
        text: str | None = None
        if hasattr(tokenizer, "decode"):
            try:
                text = tokenizer.decode([i])
            except Exception:  # tokenizers differ in what they accept; fall back below
                text = None
        if text is None and hasattr(tokenizer, "convert_ids_to_tokens"):
            text = str(tokenizer.convert_ids_to_tokens(i))
        out.append(text if text is not None else f"<{i}>")
    return out


def probe_examples(loaded: LoadedModel, seed: int = 0, n_tokens: int = 28) -> list[dict[str, Any]]:
    """The two probe examples: natural text (BOS + ``n_tokens - 1`` tokens) and [BOS, x, x] with |x| = (n-1)//2."""
    if not 8 <= n_tokens <= 64:
        raise InvalidSettingError(f"pattern examples must have 8 to 64 tokens, got {n_tokens}")
    tok = loaded.tokenizer
    bos = bos_id(tok)
    text_ids = [bos, *sentence_stream(tok, generator(seed, salt=101), n_tokens - 1)[: n_tokens - 1]]
    pool = ordinary_token_ids(tok)
    half = (n_tokens - 1) // 2
    x = pool[torch.randperm(len(pool), generator=generator(seed, salt=102))[:half]].tolist()
    repeat_ids = [bos, *x, *x]
    return [
        {"id": "natural_text", "label": "natural text", "ids": text_ids},
        {"id": "repeated_tokens", "label": f"repeated random tokens [BOS, x, x], |x| = {half}", "ids": repeat_ids},
    ]


def capture_patterns(loaded: LoadedModel, seed: int = 0, n_tokens: int = 28) -> dict[str, Any]:
    """Every head's attention on each probe example, captured through the lens (no second hook)."""
    facts = loaded.facts
    examples = []
    for example in probe_examples(loaded, seed, n_tokens):
        ids = torch.tensor([example["ids"]], device=loaded.device)
        length = ids.shape[1]
        per_layer: dict[int, torch.Tensor] = {}

        def keep(layer: int, probs: torch.Tensor, store: dict[int, torch.Tensor] = per_layer) -> None:
            store[layer] = probs[0].detach().float().cpu()  # [H, T, T]

        rows = torch.arange(length, device=loaded.device)[None, :]
        with torch.no_grad(), session(taps=[PatternTap(rows, keep)]):
            loaded.model(input_ids=ids, attention_mask=torch.ones_like(ids), logits_to_keep=1)
        heads: dict[str, list[list[float]]] = {}
        for layer in range(facts.n_layers):
            probs = per_layer[layer]
            for head in range(facts.n_heads):
                heads[head_name(layer, head)] = [
                    [round(float(w), DIGITS) for w in probs[head, i, : i + 1].tolist()] for i in range(length)
                ]
        examples.append(
            {
                "id": example["id"],
                "label": example["label"],
                "token_ids": example["ids"],
                "tokens": token_strings(loaded.tokenizer, example["ids"]),
                "heads": heads,
            }
        )
    return {
        "format": PATTERNS_FORMAT,
        "model": facts.name,
        "seed": seed,
        "n_layers": facts.n_layers,
        "n_heads": facts.n_heads,
        "examples": examples,
    }


def patterns_text(patterns: dict[str, Any]) -> str:
    """``patterns.json`` as written: compact, sorted keys (same patterns, same bytes)."""
    return json.dumps(patterns, sort_keys=True, separators=(",", ":")) + "\n"
