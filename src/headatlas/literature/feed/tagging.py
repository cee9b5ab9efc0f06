"""Tag a paper from its title and abstract: head types (vocabulary names and aliases), survey stages, models
studied, and candidate new head types ("X heads" phrases the vocabulary does not know).

Stages are those of Attention Heads of Large Language Models: A Survey (arXiv 2409.03752), taken from the
matched head types' vocabulary entries.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass

from ..schema import STAGES
from ..vocabulary import HeadTerm, Vocabulary, display_tag, normalise_name, vocabulary

# words that precede "heads" without naming a kind of head
_GENERIC_WORDS = """
    a an the these those this that such some many few all any other others specific individual multiple several
    certain key important most more less different top selected our their its each both one two three four five
    six seven eight nine ten dozen of and or with by to in on for from as at self-attention attention
    query queries key-value kv value prediction classification classifier output projection remaining layer
    random which similar same multi multihead multi-head decoder encoder linear mlp lm language task-specific
    detection segmentation regression policy critic value-head reward auxiliary per across between among
    relevant critical crucial salient dominant active inactive redundant unimportant pruned sparse dense
    identified discovered found named called so-called distinct separate dedicated special specialized
    functional responsible corresponding single extra additional new existing small large
"""
_GENERIC = frozenset(_GENERIC_WORDS.split())
_HEADS_PHRASE = re.compile(r"\b([A-Za-z][A-Za-z0-9-]*)[\s_-]+heads?\b", re.IGNORECASE)

_MODEL_FAMILIES: tuple[tuple[str, str], ...] = (
    ("GPT-2", r"gpt-?2"),
    ("GPT-J", r"gpt-?j"),
    ("GPT-NeoX", r"gpt-?neox"),
    ("GPT-Neo", r"gpt-?neo(?!x)"),
    ("GPT-3", r"gpt-?3(?:\.5)?"),
    ("GPT-4", r"gpt-?4o?"),
    ("Pythia", r"pythia"),
    ("Llama", r"(?:llama|llama-?[123](?:\.\d)?)"),
    ("Mistral", r"mistral"),
    ("Mixtral", r"mixtral"),
    ("Qwen", r"qwen[\d.]*"),
    ("Gemma", r"gemma(?:-?[23])?"),
    ("OPT", r"opt-\d+(?:\.\d+)?[bm]"),
    ("BERT", r"bert"),
    ("RoBERTa", r"roberta"),
    ("T5", r"(?:flan-)?t5"),
    ("Chinchilla", r"chinchilla"),
    ("Phi", r"phi-?[1234](?:\.5)?"),
    ("Falcon", r"falcon"),
    ("BLOOM", r"bloom"),
    ("OLMo", r"olmo"),
    ("Vicuna", r"vicuna"),
    ("SmolLM", r"smollm2?"),
    ("DeepSeek", r"deepseek"),
    ("Yi", r"yi-\d+b"),
    ("Baichuan", r"baichuan"),
    ("InternLM", r"internlm\d?"),
    ("LLaVA", r"llava"),
    ("ViT", r"vit"),
    ("CLIP", r"clip"),
)
_MODEL_RES = tuple(
    (name, re.compile(rf"(?<![\w-]){pattern}(?![a-z])", re.IGNORECASE)) for name, pattern in _MODEL_FAMILIES
)


@dataclass(frozen=True)
class Tags:
    """Head-type ids and the phrases that matched them, stages, model families, and unknown "X heads"."""

    head_types: tuple[str, ...]
    matched: tuple[str, ...]
    stages: tuple[str, ...]
    models: tuple[str, ...]
    candidates: tuple[str, ...]


def _phrase_words(name: str) -> list[str]:
    words = re.findall(r"[a-z0-9]+", display_tag(name).lower())
    while words and words[-1] in ("head", "heads"):
        words.pop()
    return words


class Tagger:
    """Matches every vocabulary name and alias as "<name> head(s)"; names of two or more words (e.g. "Name
    Mover", "Function Vector") also match as the bare phrase."""

    def __init__(self, vocab: Vocabulary) -> None:
        self.vocab = vocab
        self._headed: dict[tuple[str, ...], str] = {}  # words that must be followed by "head(s)"
        self._bare: dict[tuple[str, ...], str] = {}  # multi-word names that count on their own
        for term in vocab.terms.values():
            for name in dict.fromkeys((term.name, *term.aliases, term.id.replace("_", " "))):
                words = tuple(_phrase_words(name))
                if not words:
                    continue
                self._headed.setdefault(words, term.id)
                # a one-word name ("accuracy", "context") only counts when followed by "head(s)"
                if len(words) >= 2 and len("".join(words)) >= 8:
                    self._bare.setdefault(words, term.id)
                    self._bare.setdefault((*words[:-1], words[-1] + "s"), term.id)  # "function vectors"
        self._longest = max((len(k) for k in self._headed), default=1)

    def _names(self, text: str) -> dict[str, str]:
        """Head-type id -> the first phrase that named it (one pass over the words, n-gram lookups)."""
        words = re.findall(r"[a-z0-9]+", text.lower())
        found: dict[str, str] = {}
        covered = 0  # the longest name wins: "name mover heads" is not also "mover heads"
        for i in range(len(words)):
            if i < covered:
                continue
            for n in range(min(self._longest, len(words) - i), 0, -1):
                key = tuple(words[i : i + n])
                follower = words[i + n] if i + n < len(words) else ""
                if follower in ("head", "heads") and key in self._headed:
                    found.setdefault(self._headed[key], " ".join((*key, follower)))
                    covered = i + n + 1
                    break
                if key in self._bare:
                    found.setdefault(self._bare[key], " ".join(key))
                    covered = i + n
                    break
        return found

    def tag(self, title: str, abstract: str, extra_terms: Iterable[str] = ()) -> Tags:
        text = f"{title}. {abstract}. " + ". ".join(extra_terms)
        found = self._names(text)
        head_types = tuple(sorted(found))
        terms: list[HeadTerm] = [self.vocab.terms[t] for t in head_types]
        stages = tuple(s for s in STAGES if any(t.stage == s for t in terms))
        models = tuple(name for name, pattern in _MODEL_RES if pattern.search(text))
        candidates: list[str] = []
        for match in _HEADS_PHRASE.finditer(text):
            word = match.group(1)
            if word.lower() in _GENERIC or word.isdigit() or len(word) < 3:
                continue
            if self.vocab.find(word) is not None or normalise_name(word) in {normalise_name(v) for v in found.values()}:
                continue
            phrase = f"{word.lower()} head"
            if phrase not in candidates:
                candidates.append(phrase)
        return Tags(
            head_types=head_types,
            matched=tuple(found[t] for t in head_types),
            stages=stages,
            models=models,
            candidates=tuple(candidates),
        )


@functools.cache
def default_tagger() -> Tagger:
    """A tagger over the shipped vocabulary."""
    return Tagger(vocabulary())
