"""Head mentions in a paper's text (``L16H19``, ``head 9.9``, ``layer 10 head 7``, ``heads 9.6 and 9.9``) as
*candidate* reported heads, each with the model the sentence names and the sentence itself, for review.

Bare ``10.7`` counts only next to the word "head(s)" (``heads 9.6, 9.9 and 10.0``), so section numbers
("Section 3.2"), versions ("v2.1", "Llama 3.1"), decimals ("0.85") and dates ("2024.10") are not heads.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .summary import split_sentences
from .tagging import _MODEL_RES

MAX_LAYER = 200
MAX_HEAD = 256

_LH = re.compile(r"(?<![\w.])L(\d{1,3})[ .]?H(\d{1,3})(?![\w])")
_LAYER_HEAD = re.compile(r"\blayer\s+(\d{1,3})\s*,?\s*head\s+(\d{1,3})\b", re.IGNORECASE)
_PAIR = r"\(?\s*(\d{1,3})\s*[.,]\s*(\d{1,3})\s*\)?"
# "head 9.9", "heads 9.6, 9.9 and 10.0", "heads (10, 7) and (11, 10)"
_HEAD_LIST = re.compile(
    rf"\bheads?\s+((?:{_PAIR})(?:\s*(?:,|and|or|&)\s*(?:{_PAIR}))*)",
    re.IGNORECASE,
)
_DOTTED = re.compile(r"\(\s*(\d{1,3})\s*,\s*(\d{1,3})\s*\)|(?<![\d.])(\d{1,3})\.(\d{1,3})(?![\d.])")


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
    for m in _HEAD_LIST.finditer(sentence):
        for pair in _DOTTED.finditer(m.group(1)):
            a, b = (pair.group(1), pair.group(2)) if pair.group(1) else (pair.group(3), pair.group(4))
            found.append((int(a), int(b)))
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
