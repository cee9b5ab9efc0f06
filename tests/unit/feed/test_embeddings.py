"""The packaged all-MiniLM-L6-v2 embedder (the dev extra installs it, so these tests always run)."""

from __future__ import annotations

import numpy as np

from headatlas.literature.feed import embeddings
from headatlas.literature.feed.relevance import RelevanceModel, training_set


def test_embeddings_are_unit_vectors_and_cached() -> None:
    emb = embeddings.default_embedder()
    a = emb.encode(["Retrieval heads copy the needle.", "A recipe for bread."])
    assert a.shape == (2, 384)
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    again = emb.encode(["A recipe for bread."])
    assert np.array_equal(again[0], a[1])
    close = emb.encode(["Attention heads that retrieve needles from long context."])[0]
    assert float(close @ a[0]) > float(close @ a[1])  # meaning, not just words


def test_embedding_and_combined_models_score_like_probabilities() -> None:
    docs = [("Successor heads in GPT-2", "Attention heads that increment ordinal tokens."), ("Bread", "Flour.")]
    for kind in ("embedding", "combined"):
        scores = RelevanceModel(training_set(), features=kind).scores(docs)
        assert scores.shape == (2,) and scores[0] > scores[1]
