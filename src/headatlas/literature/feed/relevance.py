"""Is a paper about attention heads (what specific heads do; finding, using or steering them)?

An offline, deterministic text classifier after arxiv-sanity's recipe: tf-idf over word 1-2-grams with sublinear
term frequency, then a class-balanced logistic regression (a linear model whose probability is the score).
With ``features="embedding"`` or ``"combined"`` the logistic regression reads all-MiniLM-L6-v2 sentence embeddings
instead of (or beside) the tf-idf vector (:mod:`.embeddings`, optional package).
Positives are the catalogue's papers (title + three-part summary); negatives are ``data/negatives.tsv``, real
titles of ML/NLP papers that are not about heads (abstracts in our own words). It trains on first use in well
under a second. The held-out labelled set ``data/relevance_eval.tsv`` (real papers only) is never used for
training; the catalogue's own papers are scored by cross-validation (:func:`folds`), each by a model trained
without it.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.resources
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from ..catalogue import load_catalogue
from .tagging import Tagger, default_tagger

THRESHOLD = 0.5
"""Default score at or above which a paper counts as relevant (see :func:`operating_threshold`)."""

TARGET_RECALL = 0.9
"""The recall the operating threshold aims for: missing a head paper costs a curator more than reading an extra one."""

SUGGEST_MIN = 0.25
"""Least tf-idf cosine to a catalogue paper for its head types to be suggested. Chosen on the dev part of the
curated list (:mod:`.tag_eval`, cross-validated): at 0.2 the suggestions cost tag precision (0.92 -> 0.81) and
added no recall there."""


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
    """The held-out labelled papers (never trained on); every row is a real paper."""
    rows = [Labelled(t, a, label == "1", origin) for label, origin, t, a in _read_tsv("relevance_eval.tsv")]
    fake = [e.title for e in rows if e.origin != "real"]
    if fake:
        raise ValueError(f"relevance_eval.tsv must hold real papers only; not real: {fake}")
    return rows


def title_key(title: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", title.lower()))


def fold_of(title: str, k: int) -> int:
    """The cross-validation fold of a paper: a hash of its normalised title, so it never depends on order."""
    digest = hashlib.sha256(title_key(title).encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big") % k


def folds(k: int = 5) -> list[tuple[list[Labelled], list[Labelled]]]:
    """``k`` (train, test) splits for an honest estimate on real papers.

    Test items are the catalogue's papers of fold ``i`` (positives, real papers of the curated list) and the rows
    of ``relevance_eval.tsv`` of fold ``i``; the training set is :func:`training_set` minus the catalogue papers of
    fold ``i``. So no paper is ever scored by a model that saw it (checked here, by normalised title).
    """
    train_all = training_set()
    pool = [e for e in train_all if e.origin == "catalogue"] + evaluation_set()
    out = []
    for i in range(k):
        test = [e for e in pool if fold_of(e.title, k) == i]
        held = {title_key(e.title) for e in test}
        train = [e for e in train_all if title_key(e.title) not in held]
        if len(train) != len(train_all) - sum(e.origin == "catalogue" for e in test):
            raise ValueError(f"fold {i}: an evaluation paper is also a training negative")
        out.append((train, test))
    return out


def document(title: str, abstract: str) -> str:
    return f"{title}. {title}. {abstract}"  # the title counts twice: it is the densest statement of the topic


FEATURES = ("tfidf", "embedding", "combined")
"""What the logistic regression reads: the tf-idf vector, the sentence embedding, or both side by side."""

EMBEDDING_WEIGHT = 1.0
"""Scale of the (unit-length) embedding beside the (unit-length) tf-idf vector in ``combined``."""


class RelevanceModel:
    """tf-idf (1–2-grams, sublinear tf) and/or sentence embeddings + logistic regression (balanced classes,
    liblinear, seed 0; C=10 on tf-idf features, C=1 on embeddings alone)."""

    def __init__(
        self,
        examples: Sequence[Labelled],
        tagger: Tagger | None = None,
        *,
        features: str = "tfidf",
        embedder: object | None = None,
        threshold: float = THRESHOLD,
    ) -> None:
        if not any(e.label for e in examples) or all(e.label for e in examples):
            raise ValueError("training needs both relevant and irrelevant examples")
        if features not in FEATURES:
            raise ValueError(f"unknown features {features!r}; valid are {', '.join(FEATURES)}")
        self.kind = features
        self.threshold = threshold
        self.tagger = tagger or default_tagger()
        self.embedder = embedder
        if features != "tfidf" and embedder is None:
            from .embeddings import default_embedder

            self.embedder = default_embedder()
        self.vectorizer = TfidfVectorizer(
            ngram_range=(1, 2), sublinear_tf=True, min_df=1, stop_words="english", token_pattern=r"(?u)\b\w[\w-]+\b"
        )
        texts = [document(e.title, e.abstract) for e in examples]
        x_tfidf = self.vectorizer.fit_transform(texts)
        x = self._stack(x_tfidf, texts)
        y = np.array([int(e.label) for e in examples])
        c = 1.0 if features == "embedding" else 10.0
        self.model = LogisticRegression(C=c, class_weight="balanced", solver="liblinear", random_state=0)
        self.model.fit(x, y)
        self.features = self.vectorizer.get_feature_names_out()
        # per-n-gram weights for `why` (the embedding part, if any, has no words to show)
        self.coef = self.model.coef_[0][: len(self.features)] if features != "embedding" else np.zeros(0)
        # learned tagging: the head types of the most similar catalogue paper (tf-idf cosine)
        labelled = [i for i, e in enumerate(examples) if e.label and e.head_types]
        self._neighbours = x_tfidf[labelled]
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

    def _stack(self, x_tfidf: sp.spmatrix, texts: Sequence[str]) -> sp.spmatrix | np.ndarray:
        if self.kind == "tfidf":
            return x_tfidf
        emb = self.embedder.encode(texts)  # type: ignore[union-attr]
        if self.kind == "embedding":
            return emb
        return sp.hstack([x_tfidf, sp.csr_matrix(emb * EMBEDDING_WEIGHT)]).tocsr()

    def _matrix(self, docs: Sequence[tuple[str, str]]) -> tuple[sp.csr_matrix, sp.spmatrix | np.ndarray]:
        texts = [document(t, a) for t, a in docs]
        x_tfidf = self.vectorizer.transform(texts).tocsr()
        return x_tfidf, self._stack(x_tfidf, texts)

    def scores(self, docs: Sequence[tuple[str, str]]) -> np.ndarray:
        if not docs:
            return np.zeros(0)
        return np.asarray(self.model.predict_proba(self._matrix(docs)[1])[:, 1])

    def judge(self, docs: Sequence[tuple[str, str]], *, top: int = 5) -> list[Verdict]:
        """One :class:`Verdict` per ``(title, abstract)``."""
        if not docs:
            return []
        x, features = self._matrix(docs)
        probs = self.model.predict_proba(features)[:, 1]
        verdicts = []
        for i, (title, abstract) in enumerate(docs):
            row = x.getrow(i)
            contrib = row.data * self.coef[row.indices] if len(self.coef) else np.zeros(len(row.data))
            order = np.lexsort((row.indices, -contrib))  # largest contribution first, ties by feature index
            terms = [str(self.features[row.indices[j]]) for j in order[:top] if contrib[j] > 0]
            tags = self.tagger.tag(title, abstract)
            why = tuple(dict.fromkeys([*tags.matched, *terms]))
            score = float(probs[i])
            verdicts.append(Verdict(title, score >= self.threshold, score, tags.head_types, why))
        return verdicts


def operating_threshold(
    examples: Sequence[Labelled], *, features: str = "tfidf", embedder: object | None = None, k: int = 5
) -> float:
    """The highest threshold (0.05 steps, at most :data:`THRESHOLD`) whose recall reaches :data:`TARGET_RECALL`
    in a ``k``-fold cross-validation over ``examples`` alone: it is chosen from training data, never from the
    evaluation set."""
    scores: list[float] = []
    truth: list[bool] = []
    for i in range(k):
        train = [e for e in examples if fold_of(e.title, k) != i]
        test = [e for e in examples if fold_of(e.title, k) == i]
        if not test or len({e.label for e in train}) < 2:
            continue
        model = RelevanceModel(train, features=features, embedder=embedder)
        scores += list(model.scores([(e.title, e.abstract) for e in test]))
        truth += [e.label for e in test]
    positives = [s for s, t in zip(scores, truth, strict=True) if t]
    for step in range(int(THRESHOLD * 20), 0, -1):
        threshold = step / 20
        if positives and sum(s >= threshold for s in positives) / len(positives) >= TARGET_RECALL:
            return threshold
    return 0.05


@functools.cache
def default_model() -> RelevanceModel:
    """The model trained on the shipped data (trained once per process), with its operating threshold."""
    examples = training_set()
    return RelevanceModel(examples, threshold=operating_threshold(examples))


_KEYWORD = re.compile(r"\bheads?\b", re.IGNORECASE)


def keyword_baseline(title: str, abstract: str) -> bool:
    """The naive filter a keyword alert would use: the text mentions "head" or "heads"."""
    return bool(_KEYWORD.search(f"{title} {abstract}"))
