"""Head mentions in a paper's text (``L16H19``, ``head 9.9``, ``layer 10 head 7``, ``head 7 of layer 10``,
``heads 9.6 and 9.9``, ``(10, 7)``) and tables (a heads column holding ``10.7``, or a layer and a head column) as
*candidate* reported heads, each with the model the sentence (or caption) names and the sentence itself, for
review.

Bare ``10.7`` counts only next to the word "head(s)" (``heads 9.6, 9.9 and 10.0``) or in a table's heads column,
so section numbers ("Section 3.2"), versions ("v2.1", "Llama 3.1"), decimals ("0.85"), speed-ups ("2.5x") and
dates ("2024.10") are not heads; a score in parentheses after a head (``16.19 (0.94)``) is skipped.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from .summary import split_sentences
from .tagging import _MODEL_RES

MAX_LAYER = 200
MAX_HEAD = 256

_LH = re.compile(r"(?<![\w.])L(\d{1,3})[ .]?H(\d{1,3})(?![\w])")
_LAYER_HEAD = re.compile(r"\blayer\s+(\d{1,3})\s*,?\s*head\s+(\d{1,3})\b", re.IGNORECASE)
_HEAD_OF_LAYER = re.compile(r"\bhead\s+(\d{1,3})\s+(?:of|in)\s+layer\s+(\d{1,3})\b", re.IGNORECASE)
_PAIR = r"\(?\s*(\d{1,3})\s*[.,]\s*(\d{1,3})\s*\)?(?![\d.%×x])"
_SCORE = r"\s*\(\s*0?\.\d+\s*\)"  # "16.19 (0.94)": a score after a head
# "head 9.9", "heads 9.6, 9.9 and 10.0", "heads (10, 7) and (11, 10)", "heads 16.19 (0.94), 11.15 (0.92)"
_HEAD_LIST = re.compile(
    rf"\bheads?\s+((?:{_PAIR})(?:{_SCORE})?(?:\s*(?:,|and|or|&)\s*(?:{_PAIR})(?:{_SCORE})?)*)",
    re.IGNORECASE,
)
_DOTTED = re.compile(r"\(\s*(\d{1,3})\s*,\s*(\d{1,3})\s*\)|(?<![\d.])(\d{1,3})\.(\d{1,3})(?![\d.])")
_SCORE_RE = re.compile(_SCORE)


@dataclass(frozen=True)
class HeadMention:
    """``head`` as ``L<layer>H<head>``; ``model`` is the model family the sentence names ('' when none)."""

    head: str
    model: str
    sentence: str

    @property
    def layer_head(self) -> tuple[int, int]:
        layer, head = self.head[1:].split("H")
        return int(layer), int(head)


def _ok(layer: int, head: int) -> bool:
    return 0 <= layer <= MAX_LAYER and 0 <= head <= MAX_HEAD


def mentions_in(sentence: str) -> list[tuple[int, int]]:
    """``(layer, head)`` pairs one sentence states, in order, without repeats."""
    found: list[tuple[int, int]] = []
    for m in _LH.finditer(sentence):
        found.append((int(m.group(1)), int(m.group(2))))
    for m in _LAYER_HEAD.finditer(sentence):
        found.append((int(m.group(1)), int(m.group(2))))
    for m in _HEAD_OF_LAYER.finditer(sentence):
        found.append((int(m.group(2)), int(m.group(1))))
    for m in _HEAD_LIST.finditer(sentence):
        found += _dotted(_SCORE_RE.sub(" ", m.group(1)))
    return [p for p in dict.fromkeys(found) if _ok(*p)]


def _dotted(text: str) -> list[tuple[int, int]]:
    out = []
    for pair in _DOTTED.finditer(text):
        a, b = (pair.group(1), pair.group(2)) if pair.group(1) else (pair.group(3), pair.group(4))
        out.append((int(a), int(b)))
    return out


_NOT_HEADS = re.compile(r"score|acc|count|number|num\b|#|%|ratio|rate|value|weight|fraction|dim|size", re.I)


def _heads_column(name: str) -> bool:
    """A column of head names: its header says head(s) and not a measurement of them ("head score")."""
    return bool(re.search(r"\bheads?\b", name, re.IGNORECASE)) and not _NOT_HEADS.search(name)


def mentions_in_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[tuple[int, int]]:
    """``(layer, head)`` pairs a table lists: from a "layer" and a "head" column of integers, or from the cells of a
    heads column in any text form (there a bare ``10.7`` or ``9.6, 9.9`` counts). Nothing from other columns."""
    names = [" ".join(h.split()).lower() for h in header]
    layer_col = next((i for i, n in enumerate(names) if n in ("layer", "l", "layer index")), None)
    head_col = next((i for i, n in enumerate(names) if n in ("head", "h", "head index")), None)
    found: list[tuple[int, int]] = []
    for row in rows:
        cells = list(row)
        if layer_col is not None and head_col is not None and max(layer_col, head_col) < len(cells):
            layer, head = cells[layer_col].strip(), cells[head_col].strip()
            if layer.isdigit() and head.isdigit():
                found.append((int(layer), int(head)))
            continue
        for i, name in enumerate(names):
            if i < len(cells) and _heads_column(name):
                text = _SCORE_RE.sub(" ", cells[i])
                found += [(int(a), int(b)) for a, b in _LH.findall(text)]
                found += _dotted(_LH.sub(" ", text))
    return [p for p in dict.fromkeys(found) if _ok(*p)]


def extract_heads(title: str, text: str) -> list[HeadMention]:
    """Every head the text states, with the model named in its sentence (else the one named anywhere in the
    text, when exactly one is)."""
    sentences = [title, *split_sentences(text)]
    everywhere = {name for name, pattern in _MODEL_RES if any(pattern.search(s) for s in sentences)}
    paper_model = next(iter(everywhere)) if len(everywhere) == 1 else ""
    out: list[HeadMention] = []
    seen: set[tuple[str, str]] = set()
    for sentence in sentences:
        pairs = mentions_in(sentence)
        if not pairs:
            continue
        here = [name for name, pattern in _MODEL_RES if pattern.search(sentence)]
        model = here[0] if len(here) == 1 else paper_model
        for layer, head in pairs:
            key = (f"L{layer}H{head}", model)
            if key not in seen:
                seen.add(key)
                out.append(HeadMention(key[0], model, sentence))
    return out


def extract_table_heads(caption: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[HeadMention]:
    """Heads a table lists, with the model its row names (a "model" column) or else its caption names; the
    sentence kept as evidence is the caption."""
    names = [h.strip().lower() for h in header]
    model_col = next((i for i, n in enumerate(names) if n in ("model", "models", "checkpoint")), None)
    in_caption = [name for name, pattern in _MODEL_RES if pattern.search(caption)]
    caption_model = in_caption[0] if len(in_caption) == 1 else ""
    out: list[HeadMention] = []
    seen: set[tuple[str, str]] = set()
    for row in rows:
        model = caption_model
        if model_col is not None and model_col < len(row):
            here = [name for name, pattern in _MODEL_RES if pattern.search(row[model_col])]
            model = here[0] if len(here) == 1 else model
        for layer, head in mentions_in_table(header, [row]):
            key = (f"L{layer}H{head}", model)
            if key not in seen:
                seen.add(key)
                out.append(HeadMention(key[0], model, caption))
    return out
