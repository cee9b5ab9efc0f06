"""Full attention patterns of every head on two short probe examples, for the report and the web app.

One natural-text window (``headatlas.probes.text``) and one repeated-random-token sequence ``[BOS, x, x]``
(the induction probe of Olsson et al. 2022), each at most ~32 tokens, run once through the lens with a
:class:`~headatlas.lens.PatternTap` on every row. Each head's causal pattern is stored as its lower
triangle (row ``i`` holds weights on keys ``0..i``) rounded to 3 decimals: 270 heads × 2 × 528 numbers
for SmolLM2, about 1.5 MB of JSON.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InvalidSettingError
from ..headmap import head_name

if TYPE_CHECKING:
    from ..models.loader import LoadedModel

FORMAT = "headatlas.patterns/1"
FILENAME = "patterns.json"
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
    import torch  # here, not at the top: `serve` reads stored patterns without torch

    from ..probes.base import bos_id, generator
    from ..probes.repeated import ordinary_token_ids
    from ..probes.text import sentence_stream

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
    import torch

    from ..lens import PatternTap, session

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
        "format": FORMAT,
        "model": facts.name,
        "seed": seed,
        "n_layers": facts.n_layers,
        "n_heads": facts.n_heads,
        "examples": examples,
    }


def write_patterns(patterns: dict[str, Any], out_dir: str | Path) -> Path:
    """Write ``OUT/patterns.json`` (compact, sorted keys: same patterns, same bytes)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / FILENAME
    path.write_text(json.dumps(patterns, sort_keys=True, separators=(",", ":")) + "\n", encoding="utf-8")
    return path


def read_patterns(out_dir: str | Path) -> dict[str, Any] | None:
    """``OUT/patterns.json`` if present and well-formed, else ``None``."""
    path = Path(out_dir) / FILENAME
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("examples"), list):
        return None
    return data


@lru_cache(maxsize=8)
def _read_cached(path: str, mtime_ns: int, size: int) -> dict[str, Any] | None:
    return read_patterns(Path(path).parent)


def read_patterns_cached(out_dir: str | Path) -> dict[str, Any] | None:
    """:func:`read_patterns`, memoised on the file's path, mtime and size (the app reads one file per request).

    Callers must not mutate the returned dict.
    """
    path = Path(out_dir) / FILENAME
    try:
        stat = path.stat()
    except OSError:
        return None
    return _read_cached(str(path), stat.st_mtime_ns, stat.st_size)


def for_head(patterns: dict[str, Any] | None, name: str) -> dict[str, Any] | None:
    """Only one head's patterns (same shape), for a page that shows a single head."""
    if not patterns:
        return None
    examples = [
        {**{k: v for k, v in ex.items() if k != "heads"}, "heads": {name: ex["heads"][name]}}
        for ex in patterns["examples"]
        if name in ex.get("heads", {})
    ]
    return {**{k: v for k, v in patterns.items() if k != "examples"}, "examples": examples} if examples else None


def panel_examples(patterns: dict[str, Any]) -> list[dict[str, Any]]:
    """Example labels for the pattern panel's selector."""
    return [{"label": ex.get("label", ex.get("id", "")), "n_tokens": len(ex["tokens"])} for ex in patterns["examples"]]
