"""Tag a paper from its title and abstract: head types (vocabulary names and aliases, lists such as "subject,
relation and mixed heads", and describing phrases from ``data/head_cues.yaml``), each with the sentence that
supports it, survey stages, models studied, and proposed new head types ("X heads" phrases the vocabulary does
not know, also with their sentence).

Stages are those of Attention Heads of Large Language Models: A Survey (arXiv 2409.03752), taken from the
matched head types' vocabulary entries.
"""

from __future__ import annotations

import functools
import importlib.resources
import re
from collections.abc import Iterable
from dataclasses import dataclass

from ..schema import STAGES
from ..vocabulary import HeadTerm, Vocabulary, display_tag, normalise_name, vocabulary
from .stems import same_root
from .summary import split_sentences

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
    evidence: tuple[tuple[str, str], ...] = ()
    """``(head-type id or proposed name, supporting sentence)`` for every head type and candidate."""

    def sentence_for(self, name: str) -> str:
        return next((sentence for key, sentence in self.evidence if key == name), "")


_FUNCTION_WORDS = frozenset({"in", "of", "to", "on", "for", "at", "by", "with", "the", "a", "an"})
_LIST_END = re.compile(r"\b(?:heads|roles)\b", re.IGNORECASE)
_PAREN_LIST = re.compile(r"\(([^)]{3,120}[,/][^)]*)\)")
_SPLIT_ITEMS = re.compile(r"\s*,\s*|\s+(?:and|or)\s+|\s*/\s*", re.IGNORECASE)
_HEADS_FOR = re.compile(
    r"\bheads?\s+(?:that\s+are\s+)?(?:tied|linked|related|dedicated|devoted)\s+to\s+(.{3,80}?)(?:[.;:]|$)|"
    r"\bheads?\s+(?:responsible|important|crucial|critical)\s+for\s+(.{3,80}?)(?:[.;:]|$)",
    re.IGNORECASE,
)
_ABOUT_HEADS = re.compile(r"\b(?:heads?|attention|circuits?)\b", re.IGNORECASE)


def _words(text: str) -> tuple[str, ...]:
    return tuple(re.findall(r"[a-z0-9]+", text.lower()))


@functools.cache
def shipped_cues() -> dict[str, tuple[str, ...]]:
    """Describing phrases per head-type id (``literature/data/head_cues.yaml``)."""
    import yaml

    text = importlib.resources.files("headatlas.literature").joinpath("data/head_cues.yaml").read_text("utf-8")
    raw = yaml.safe_load(text) or {}
    if not isinstance(raw, dict) or not all(isinstance(v, list) for v in raw.values()):
        raise ValueError("data/head_cues.yaml must map head-type ids to lists of phrases")
    return {str(k): tuple(str(v) for v in values) for k, values in raw.items()}


def _phrase_words(name: str) -> list[str]:
    words = re.findall(r"[a-z0-9]+", display_tag(name).lower())
    while words and words[-1] in ("head", "heads"):
        words.pop()
    return words


DESCRIBE_WINDOW = 8
"""Most words a description may span: every word of a type's name, by root, within this many words of a sentence
that mentions heads ("the heads that summarise and read it" after "sentiment direction")."""


class Tagger:
    """Matches every vocabulary name and alias as "<name> head(s)"; names of two or more words (e.g. "Name
    Mover", "Function Vector") also match as the bare phrase, unless a function word sits inside ("chain of
    thought" is a phrase of its own, not the chain-of-thought head). Names of two or more content words are also
    matched by description: each word by its root (:mod:`.stems`), all within :data:`DESCRIBE_WINDOW` words of one
    sentence that mentions heads, words already part of a name match left out ("heads that locate the queried rule
    and move it" describes the queried-rule locating and the queried-rule mover heads)."""

    def __init__(self, vocab: Vocabulary, cues: dict[str, tuple[str, ...]] | None = None) -> None:
        self.vocab = vocab
        self._cues: dict[tuple[str, ...], str] = {}
        for head_id, phrases in (shipped_cues() if cues is None else cues).items():
            if head_id in vocab:
                for phrase in phrases:
                    self._cues.setdefault(_words(phrase), head_id)
        self._longest_cue = max((len(k) for k in self._cues), default=1)
        self._headed: dict[tuple[str, ...], str] = {}  # words that must be followed by "head(s)"
        self._bare: dict[tuple[str, ...], str] = {}  # multi-word names that count on their own
        self._described: dict[tuple[str, ...], str] = {}  # multi-word names matched word by word, by root
        for term in vocab.terms.values():
            for name in dict.fromkeys((term.name, *term.aliases, term.id.replace("_", " "))):
                words = tuple(_phrase_words(name))
                if not words:
                    continue
                self._headed.setdefault(words, term.id)
                # a one-word name ("accuracy", "context") only counts when followed by "head(s)"
                if len(words) >= 2 and len("".join(words)) >= 8 and not _FUNCTION_WORDS.intersection(words):
                    self._bare.setdefault(words, term.id)
                    self._bare.setdefault((*words[:-1], words[-1] + "s"), term.id)  # "function vectors"
                    if all(len(w) > 1 for w in words):
                        self._described.setdefault(words, term.id)
        self._longest = max((len(k) for k in self._headed), default=1)

    def _names(self, text: str, used: set[int] | None = None) -> dict[str, str]:
        """Head-type id -> the first phrase that named it (one pass over the words, n-gram lookups); the positions
        of the matched words are added to ``used``."""
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
            if used is not None and i < covered:
                used.update(range(i, covered))
        return found

    def _described_in(self, sentence: str, used: set[int]) -> dict[str, str]:
        """Head types whose name's words all appear, by root, within :data:`DESCRIBE_WINDOW` words of a sentence
        that mentions heads; positions in ``used`` (part of a name match) are left out."""
        words = re.findall(r"[a-z0-9]+", sentence.lower())
        if not {"head", "heads"}.intersection(words):
            return {}
        free = [(i, w) for i, w in enumerate(words) if i not in used and w not in ("head", "heads")]
        found: dict[str, str] = {}
        for name, head_id in self._described.items():
            if head_id in found:
                continue
            hits = [[i for i, w in free if same_root(w, part)] for part in name]
            if not all(hits):
                continue
            for start in sorted({i for positions in hits for i in positions}):
                end = start + DESCRIBE_WINDOW
                chosen = [next((i for i in positions if start <= i < end), -1) for positions in hits]
                if -1 not in chosen and len(set(chosen)) == len(chosen):
                    found[head_id] = " ".join(words[min(chosen) : max(chosen) + 1])
                    break
        return found

    def _item_id(self, item: str) -> str | None:
        """The head type a list item names ("mixed", "previous-token", "induction-style"), trying its last words."""
        words = [w for w in _words(item) if w not in ("style", "like", "type")]
        while words and words[-1] in ("head", "heads", "role", "roles"):
            words.pop()
        for n in range(min(3, len(words)), 0, -1):
            key = tuple(words[-n:])
            if key in self._headed:
                return self._headed[key]
        return None

    def _listed(self, sentence: str) -> dict[str, str]:
        """Head types named as items of a list that ends in "heads"/"roles" ("subject, relation and mixed heads")
        or given in parentheses ("heads (positional, syntactic, rare words)")."""
        found: dict[str, str] = {}
        lists: list[list[str]] = []
        for match in _LIST_END.finditer(sentence):
            pieces = _SPLIT_ITEMS.split(sentence[: match.start()].rstrip())
            items = []
            for piece in reversed(pieces):
                items.append(piece)
                if len(_words(piece)) > 3:
                    break  # the clause before the list: keep only its last words (the first item)
            if len(items) >= 2:
                lists.append(items)
        lists += [_SPLIT_ITEMS.split(m.group(1)) for m in _PAREN_LIST.finditer(sentence)]
        # "heads tied to accuracy and to language coherence", "heads responsible for safety"
        for m in _HEADS_FOR.finditer(sentence):
            tail = m.group(1) or m.group(2)
            items = [re.sub(r"^(?:to|the)\s+", "", item) for item in _SPLIT_ITEMS.split(tail)]
            lists.append([re.split(r"\s+(?:in|of|on|across|during|when|while|with|by|from)\s+", i)[0] for i in items])
        for items in lists:
            for item in items:
                head_id = self._item_id(item)
                if head_id is not None:
                    found.setdefault(head_id, item.strip())
        return found

    def _cued(self, sentence: str) -> dict[str, str]:
        words = _words(sentence)
        found: dict[str, str] = {}
        for i in range(len(words)):
            for n in range(min(self._longest_cue, len(words) - i), 0, -1):
                key = tuple(words[i : i + n])
                if key in self._cues:
                    found.setdefault(self._cues[key], " ".join(key))
                    break
        return found

    def tag(self, title: str, abstract: str, extra_terms: Iterable[str] = ()) -> Tags:
        sentences = [title, *split_sentences(abstract), *(t for t in extra_terms if t.strip())]
        about_heads = any(_ABOUT_HEADS.search(sentence) for sentence in sentences)
        found: dict[str, str] = {}
        evidence: dict[str, str] = {}
        for sentence in sentences:
            used: set[int] = set()
            names = self._names(sentence, used)
            hits = self._cued(sentence) if about_heads else {}
            hits.update(self._described_in(sentence, used))
            hits.update(self._listed(sentence))
            hits.update(names)  # a name beats a list item, which beats a description or a describing phrase
            for head_id, phrase in hits.items():
                if head_id not in found:
                    found[head_id] = phrase
                    evidence[head_id] = sentence
        head_types = tuple(sorted(found))
        terms: list[HeadTerm] = [self.vocab.terms[t] for t in head_types]
        stages = tuple(s for s in STAGES if any(t.stage == s for t in terms))
        text = " ".join(sentences)
        models = tuple(name for name, pattern in _MODEL_RES if pattern.search(text))
        candidates: list[str] = []
        known_phrases = {normalise_name(v) for v in found.values()}
        for sentence in sentences:
            for match in _HEADS_PHRASE.finditer(sentence):
                word = match.group(1)
                if word.lower() in _GENERIC or word.isdigit() or len(word) < 3:
                    continue
                if re.match(r"\s*\(?L?\d", sentence[match.end() :]):
                    continue  # "ablating head L14H3": a head reference, not a kind of head
                if self.vocab.find(word) is not None or normalise_name(word) in known_phrases:
                    continue
                phrase = f"{word.lower()} head"
                if phrase not in candidates:
                    candidates.append(phrase)
                    evidence[phrase] = sentence
        return Tags(
            head_types=head_types,
            matched=tuple(found[t] for t in head_types),
            stages=stages,
            models=models,
            candidates=tuple(candidates),
            evidence=tuple((k, evidence[k]) for k in (*head_types, *candidates)),
        )


@functools.cache
def default_tagger() -> Tagger:
    """A tagger over the shipped vocabulary."""
    return Tagger(vocabulary())
