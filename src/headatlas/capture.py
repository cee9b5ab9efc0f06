"""Full attention patterns of every head on two short probe examples, captured for the report and the web app.

One natural-text window (``headatlas.probes.text``) and one repeated-random-token sequence ``[BOS, x, x]``
(the induction probe of Olsson et al. 2022), each at most ~32 tokens, run once through the lens with a
:class:`~headatlas.lens.PatternTap` on every row. Each head's causal pattern is stored as its lower
triangle (row ``i`` holds weights on keys ``0..i``) rounded to 3 decimals: 270 heads × 2 × 528 numbers
for SmolLM2, about 1.2 MB of JSON. Given the scan's head map, the examples also say which types they are
the evidence of, and :mod:`headatlas.evidence` adds one example per other probe (the needle, IOI …) with the
patterns of the types' strongest members. Part of a scan (:func:`headatlas.pipeline.run_scan`); ``web/`` only
reads the stored file.
"""

from __future__ import annotations

import json
from typing import Any

import torch

from .errors import InvalidSettingError
from .evidence import evidence_examples, shared_types
from .headmap import PATTERN_DIGITS, PATTERNS_FORMAT, HeadMap, head_name
from .lens import PatternTap, session
from .models.loader import LoadedModel
from .probes import ProbeSettings
from .probes.base import bos_id, generator, token_strings
from .probes.repeated import ordinary_token_ids
from .probes.text import sentence_stream


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


def capture_patterns(
    loaded: LoadedModel,
    seed: int = 0,
    n_tokens: int = 28,
    headmap: HeadMap | None = None,
    probes: ProbeSettings | None = None,
) -> dict[str, Any]:
    """Every head's attention on each probe example, captured through the lens (no second hook).

    With the scan's ``headmap`` (and its ``probes`` settings), each type's evidence on its own probe too.
    """
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
                    [round(float(w), PATTERN_DIGITS) for w in probs[head, i, : i + 1].tolist()] for i in range(length)
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
    if headmap is not None:
        of_probe = shared_types(headmap)
        for example in examples:  # the two shared examples are the natural_text and repeated_tokens probes
            example.update(probe=example["id"], types=of_probe.get(example["id"], []))
        examples += evidence_examples(loaded, headmap, probes or ProbeSettings(), seed)
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
