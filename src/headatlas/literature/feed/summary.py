"""A three-part summary in the list's template (innovation / tasks / significant result), extracted from the
abstract by sentence scoring: offline and deterministic. An LLM summariser can replace it through
:class:`Summariser` (any object with that ``summarise`` method)."""

from __future__ import annotations

import re
from typing import Protocol, runtime_checkable

from ..schema import Summary

_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")
_ABBREV = re.compile(r"\b(?:e\.g|i\.e|et al|vs|Fig|Eq|cf)\.$", re.IGNORECASE)

_CUES: dict[str, tuple[tuple[str, float], ...]] = {
    "innovation": (
        (r"\bwe (?:propose|introduce|present|develop|design|identify|discover|uncover|define)\b", 3.0),
        (r"\b(?:this|our) (?:paper|work|study)\b", 1.5),
        (r"\b(?:novel|new|first)\b", 1.0),
        (r"\bwe (?:study|investigate|examine|analy[sz]e|explore)\b", 1.5),
    ),
    "tasks": (
        (r"\b(?:experiments?|evaluat\w*|benchmarks?|datasets?|tasks?)\b", 2.0),
        (r"\b(?:on|across|using|with) (?:the )?[A-Z][\w-]+", 0.5),
        (r"\bwe (?:test|apply|train|measure|analy[sz]e|examine|probe|ablate|patch)\b", 1.5),
        (r"\b(?:models?|llms?|gpt-?2|llama|pythia|bert|mistral|gemma|qwen)\b", 0.5),
    ),
    "result": (
        (r"\d+(?:\.\d+)?\s?(?:%|x|×|times|points?)", 2.5),
        (
            r"\b(?:outperform\w*|improv\w*|reduc\w*|achiev\w*|surpass\w*|boost\w*|"
            r"speed\w*|degrad\w*|drops?|fails?|restor\w*)\b",
            1.5,
        ),
        (r"\b(?:we (?:find|show|observe|demonstrate)|results? (?:show|suggest|indicate)|reveal\w*)\b", 1.5),
        (r"\bsignificant\w*\b", 1.0),
    ),
}
_CUE_RES = {slot: tuple((re.compile(p, re.IGNORECASE), w) for p, w in cues) for slot, cues in _CUES.items()}
MAX_WORDS = 20  # three slots of at most 20 words keep within the list's 60-word limit


@runtime_checkable
class Summariser(Protocol):
    """Anything that writes the three-part summary of a paper (e.g. an LLM client)."""

    def summarise(self, title: str, abstract: str) -> Summary: ...


def split_sentences(text: str) -> list[str]:
    """Sentences of an abstract; keeps "e.g." and "et al." inside their sentence."""
    parts = _SENTENCE.split(" ".join(text.split()))
    sentences: list[str] = []
    for part in parts:
        if sentences and _ABBREV.search(sentences[-1]):
            sentences[-1] = f"{sentences[-1]} {part}"
        else:
            sentences.append(part)
    return [s for s in sentences if s.strip()]


def _shorten(sentence: str, limit: int = MAX_WORDS) -> str:
    words = sentence.split()
    if len(words) <= limit:
        return sentence
    return " ".join(words[:limit]).rstrip(",;:") + " …"


def _score(slot: str, sentence: str, position: int, count: int) -> float:
    score = sum(weight for pattern, weight in _CUE_RES[slot] if pattern.search(sentence))
    # position priors: the contribution comes early, the finding late
    if slot == "innovation":
        score += 1.0 - position / max(count, 1)
    elif slot == "result":
        score += position / max(count, 1)
    else:
        score += 0.5 if 0 < position < count - 1 else 0.0
    return score


class ExtractiveSummariser:
    """Picks one distinct sentence per slot by cue-word and position scores; ties go to the earlier sentence.

    The result is deterministic. Slots without a sentence of their own (very short abstracts) reuse the best
    remaining text, and an empty abstract falls back to the title.
    """

    def summarise(self, title: str, abstract: str) -> Summary:
        sentences = split_sentences(abstract) or [title]
        chosen: dict[str, str] = {}
        used: set[int] = set()
        for slot in ("innovation", "result", "tasks"):
            ranked = sorted(
                range(len(sentences)),
                key=lambda i, s=slot: (-_score(s, sentences[i], i, len(sentences)), i),  # type: ignore[misc]
            )
            free = [i for i in ranked if i not in used]
            pick = free[0] if free else ranked[0]
            used.add(pick)
            chosen[slot] = _shorten(sentences[pick])
        return Summary(innovation=chosen["innovation"], tasks=chosen["tasks"], result=chosen["result"])


def summary_dict(summary: Summary) -> dict[str, str]:
    return {"innovation": summary.innovation, "tasks": summary.tasks, "result": summary.result}
