"""Is a paper about attention heads (what specific heads do; finding, using or steering them)?

An offline, deterministic text classifier after arxiv-sanity's recipe: tf-idf over word 1-2-grams with sublinear
term frequency, then a class-balanced logistic regression (a linear model whose probability is the score).
Positives are the catalogue's papers (title + three-part summary); negatives are ``data/negatives.tsv``, real
titles of ML/NLP papers that are not about heads (abstracts in our own words). It trains on first use in well
under a second. The held-out labelled set ``data/relevance_eval.tsv`` is never used for training.
"""

from __future__ import annotations

import functools
import importlib.resources
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from ..catalogue import load_catalogue
from .tagging import Tagger, default_tagger

THRESHOLD = 0.5
"""Score at or above which a paper counts as relevant."""

SUGGEST_MIN = 0.2
"""Least tf-idf cosine to a catalogue paper for its head types to be suggested."""


@dataclass(frozen=True)
class Labelled:
    title: str
    abstract: str
    label: bool
    origin: str = "real"
    head_types: tuple[str, ...] = ()


@dataclass(frozen=True)
class Verdict:
    """``score`` is the model's probability (0–1) that the paper is about attention heads; ``why`` lists the
    head names found and the n-grams that pushed the score up most."""

    title: str
    relevant: bool
    score: float
    head_types: tuple[str, ...]
    why: tuple[str, ...]

    def to_dict(self) -> dict[str, object]:
        return {
            "title": self.title,
            "relevant": self.relevant,
            "score": round(self.score, 4),
            "head_types": list(self.head_types),
            "why": list(self.why),
        }


def _read_tsv(name: str) -> list[list[str]]:
    text = importlib.resources.files("headatlas.literature.feed").joinpath(f"data/{name}").read_text("utf-8")
    return [line.split("\t") for line in text.splitlines() if line.strip() and not line.startswith("#")]


def training_set() -> list[Labelled]:
    """Catalogue papers (positives) and the shipped negatives, in a fixed order."""
    positives = [
        Labelled(p.title, p.summary.text(), True, "catalogue", p.head_types)
        for p in sorted(load_catalogue().papers, key=lambda p: p.id)
    ]
    negatives = [Labelled(title, abstract, False) for title, abstract in _read_tsv("negatives.tsv")]
    return positives + negatives


def evaluation_set() -> list[Labelled]:
    """The held-out labelled papers (never trained on)."""
    return [Labelled(t, a, label == "1", origin) for label, origin, t, a in _read_tsv("relevance_eval.tsv")]


def document(title: str, abstract: str) -> str:
    return f"{title}. {title}. {abstract}"  # the title counts twice: it is the densest statement of the topic


class RelevanceModel:
    """tf-idf (1–2-grams, sublinear tf) + logistic regression (balanced classes, C=10, liblinear, seed 0)."""

    def __init__(self, examples: Sequence[Labelled], tagger: Tagger | None = None) -> None:
        if not any(e.label for e in examples) or all(e.label for e in examples):
            raise ValueError("training needs both relevant and irrelevant examples")
        self.tagger = tagger or default_tagger()
        self.vectorizer = TfidfVectorizer(
            ngram_range=(1, 2), sublinear_tf=True, min_df=1, stop_words="english", token_pattern=r"(?u)\b\w[\w-]+\b"
        )
        x = self.vectorizer.fit_transform([document(e.title, e.abstract) for e in examples])
        y = np.array([int(e.label) for e in examples])
        self.model = LogisticRegression(C=10.0, class_weight="balanced", solver="liblinear", random_state=0)
        self.model.fit(x, y)
        self.features = self.vectorizer.get_feature_names_out()
        self.coef = self.model.coef_[0]
        # learned tagging: the head types of the most similar catalogue paper (tf-idf cosine)
        labelled = [i for i, e in enumerate(examples) if e.label and e.head_types]
        self._neighbours = x[labelled]
        self._neighbour_heads = [examples[i].head_types for i in labelled]
        self._neighbour_titles = [examples[i].title for i in labelled]

    def suggest(self, title: str, abstract: str, *, min_similarity: float = SUGGEST_MIN) -> tuple[tuple[str, ...], str]:
        """Head types of the nearest catalogue paper by tf-idf cosine, and its title; empty below
        ``min_similarity``. A learned guess for papers that name no head type the vocabulary knows."""
        if self._neighbours.shape[0] == 0:
            return (), ""
        v = self.vectorizer.transform([document(title, abstract)])
        sims = (self._neighbours @ v.T).toarray().ravel()  # rows are L2-normalised: dot = cosine
        best = int(np.argmax(sims))
        if sims[best] < min_similarity:
            return (), ""
        return self._neighbour_heads[best], self._neighbour_titles[best]

    def scores(self, docs: Sequence[tuple[str, str]]) -> np.ndarray:
        if not docs:
            return np.zeros(0)
        x = self.vectorizer.transform([document(t, a) for t, a in docs])
        return np.asarray(self.model.predict_proba(x)[:, 1])

    def judge(self, docs: Sequence[tuple[str, str]], *, top: int = 5) -> list[Verdict]:
        """One :class:`Verdict` per ``(title, abstract)``."""
        if not docs:
            return []
        x = self.vectorizer.transform([document(t, a) for t, a in docs]).tocsr()
        probs = self.model.predict_proba(x)[:, 1]
        verdicts = []
        for i, (title, abstract) in enumerate(docs):
            row = x.getrow(i)
            contrib = row.data * self.coef[row.indices]
            order = np.lexsort((row.indices, -contrib))  # largest contribution first, ties by feature index
            terms = [str(self.features[row.indices[j]]) for j in order[:top] if contrib[j] > 0]
            tags = self.tagger.tag(title, abstract)
            why = tuple(dict.fromkeys([*tags.matched, *terms]))
            score = float(probs[i])
            verdicts.append(Verdict(title, score >= THRESHOLD, score, tags.head_types, why))
        return verdicts


@functools.cache
def default_model() -> RelevanceModel:
    """The model trained on the shipped data (trained once per process)."""
    return RelevanceModel(training_set())


_KEYWORD = re.compile(r"\bheads?\b", re.IGNORECASE)


def keyword_baseline(title: str, abstract: str) -> bool:
    """The naive filter a keyword alert would use: the text mentions "head" or "heads"."""
    return bool(_KEYWORD.search(f"{title} {abstract}"))
