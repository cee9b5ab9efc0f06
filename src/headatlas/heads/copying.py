"""Copying and negative copying heads, scored from the weights alone (no forward pass).

For a seeded set of common words and names that are single tokens (:func:`weights.word_tokens`, up to 500), each
head's OV circuit maps every token's effective embedding to logits over the same token set
(:mod:`headatlas.heads.weights`). ``copying`` is the fraction of tokens whose own token is among the
``k = 5`` highest of those logits: the head, attending to a word, promotes that word ("A Mathematical
Framework for Transformer Circuits"; positive copying in name movers, IOI). ``negative_copying`` is the
fraction in the ``k`` lowest: the head suppresses the word it attends to, as copy-suppression and
negative name-mover heads do ("Copy Suppression: Comprehensively Understanding an Attention Head").

Ranks are taken among the token set rather than the whole vocabulary: this keeps the cost at
``N x N`` per head on a CPU, and keeps rare or untrained vocabulary rows (large unembedding norms)
from crowding every head's top-k. Chance level is ``k / N`` (1 % by default). The McDougall et al.
recipe ranks among the full vocabulary; this is the cheaper, stricter-on-noise variant.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any

from .._lazy import lazy_module
from ..models.anatomy import anatomy
from ..probes import ProbeSettings
from .registry import HeadType, ModelScore, register_head_type
from .weights import ov_logits_by_layer, own_token_ranks, word_tokens

if TYPE_CHECKING:
    import torch

    from ..models.loader import LoadedModel
else:
    torch = lazy_module("torch")

TOKEN_SET_SIZE = 500
TOP_K = 5


Fractions = tuple["torch.Tensor", "torch.Tensor", list[int]]
_CACHE: weakref.WeakKeyDictionary[Any, dict[tuple, Fractions]] = weakref.WeakKeyDictionary()


def _weights_state(model: Any) -> tuple[int, ...]:
    """Changes whenever a parameter is replaced or edited in place (torch bumps ``_version``)."""
    return tuple(id(p) for p in model.parameters()) + tuple(int(p._version) for p in model.parameters())


def clear_cache() -> None:
    """Forget every cached result (e.g. to check that a recomputation gives the same bytes)."""
    _CACHE.clear()


def copying_fractions(loaded: LoadedModel, seed: int, n: int = TOKEN_SET_SIZE, k: int = TOP_K) -> Fractions:
    """``(positive, negative, token_ids)``: per head ``[L, H]`` the fraction of tokens ranked in the top /
    bottom ``k`` of their own OV-circuit logits, over the token set ``token_ids``.

    ``copying``, ``negative_copying`` and ``copy_suppression`` all read this; it is computed once per
    model state and settings (the cache forgets a model with the model, and any edit of its weights).
    """
    anatomy(loaded)  # refuse unsupported architectures before touching the tokenizer
    key = (seed, n, k, id(loaded.tokenizer), _weights_state(loaded.model))
    cached = _CACHE.setdefault(loaded.model, {})
    if key not in cached:
        cached.clear()
        cached[key] = _compute(loaded, seed, n, k)
    positive, negative, ids = cached[key]
    return positive.clone(), negative.clone(), list(ids)


def _compute(loaded: LoadedModel, seed: int, n: int, k: int) -> Fractions:
    ids = word_tokens(loaded.tokenizer, n=n, seed=seed)
    positive, negative = [], []
    for logits in ov_logits_by_layer(loaded, ids, ids):  # [H, N, N]
        above, below = own_token_ranks(logits)
        positive.append((above < k).float().mean(-1))
        negative.append((below < k).float().mean(-1))
    return torch.stack(positive), torch.stack(negative), ids


def _info(ids: list[int], k: int) -> dict:
    return {"kind": "weights", "token_set_size": len(ids), "top_k": k, "chance": round(k / len(ids), 6)}


def score_copying(loaded: LoadedModel, probes: ProbeSettings, seed: int) -> ModelScore:
    positive, _, ids = copying_fractions(loaded, seed)
    return ModelScore(score=positive, n_samples=len(ids), info=_info(ids, TOP_K))


def score_negative_copying(loaded: LoadedModel, probes: ProbeSettings, seed: int) -> ModelScore:
    _, negative, ids = copying_fractions(loaded, seed)
    return ModelScore(score=negative, n_samples=len(ids), info=_info(ids, TOP_K))


COPYING = register_head_type(
    HeadType(
        id="copying",
        name="Copying head (OV circuit)",
        definition=(
            "Weights only: fraction of common word tokens whose own token is in the top 5 (among the token set) "
            "of the head's OV-circuit logits, read through the effective embedding."
        ),
        papers=(
            "A Mathematical Framework for Transformer Circuits",
            "Interpretability in the Wild: a Circuit for Indirect Object Identification in GPT-2 small",
        ),
        probe=None,
        threshold=0.5,
        metric="induction_loss",  # writing the attended token into the logits completes the second copy
        model_score=score_copying,
    )
)

NEGATIVE_COPYING = register_head_type(
    HeadType(
        id="negative_copying",
        name="Negative copying head (OV circuit)",
        definition=(
            "Weights only: fraction of common word tokens whose own token is in the bottom 5 (among the token set) "
            "of the head's OV-circuit logits: attending to a word suppresses it."
        ),
        papers=(
            "Copy Suppression: Comprehensively Understanding an Attention Head",
            "Interpretability in the Wild: a Circuit for Indirect Object Identification in GPT-2 small",
        ),
        probe=None,
        threshold=0.5,
        metric="text_loss",  # negative copying lowers overconfident repeats on ordinary text
        model_score=score_negative_copying,
    )
)
