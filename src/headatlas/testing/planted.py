"""A real ``LlamaForCausalLM`` whose weights are set by hand so that named heads have known roles.

Ground truth for the census and for causal checks: every planted head does its job by construction,
and the other heads attend almost uniformly and write (nearly) nothing that is read.

Layout: 2 layers x 4 query heads, 2 KV heads (GQA: query head ``h`` reads KV head ``h // 2``),
``head_dim`` 128, vocabulary of 64 (0 = BOS, 1 = EOS), MLPs zeroed. The residual stream has named
subspaces: ``tok`` (one-hot token), ``prev`` (one-hot of the previous token, written by the layer-0
previous-token head), ``out`` (one-hot of the predicted token, written by the induction head and the
only thing the unembedding reads), a ``bias`` dimension equal to 1 in every non-BOS token, a ``bos``
dimension that only BOS has, and two spare dimensions the unplanted heads write small noise into.

Every token embedding has the same norm, so the RMSNorm before attention scales every position by
the same factor and the logits below are exact up to attention leakage.

Position comes only from RoPE. With ``rotate_half`` the rotary pairs are dims ``(d, d + 64)`` with
frequency ``theta ** (-d / 64)``. A query ``R(i) u`` and key ``R(j) v`` built from the constant
``bias`` dimension give a score that depends only on ``i - j``; with ``v = u`` it peaks at ``i = j``
(current token), with ``u`` rotated back by one step at ``i - j = 1`` (previous token). The first
``len(POSITION_WEIGHTS)`` pairs carry position; with ``rope_theta = 1e12`` pairs 24-63 turn by less
than 0.01 rad over 256 positions and carry content (token identity), so content matches do not
depend on distance.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ..models.loader import LoadedModel
from .tiny import _wrap

VOCAB = 64
BOS, EOS = 0, 1
HEAD_DIM = 128
N_HEADS, N_KV = 4, 2
ROPE_THETA = 1e12
MAX_POSITIONS = 1024

# residual-stream layout
TOK, PREV, OUT = 0, VOCAB, 2 * VOCAB  # one-hot subspaces of size VOCAB
BIAS, BOS_DIM = 3 * VOCAB, 3 * VOCAB + 1
SPARE = (3 * VOCAB + 2, 3 * VOCAB + 3)
HIDDEN = 3 * VOCAB + 4

HALF = HEAD_DIM // 2
POSITION_WEIGHTS = tuple(0.7**d for d in range(10))  # weight of rotary pair d in positional scores
CONTENT = tuple(d for p in range(24, HALF) for d in (p, p + HALF))  # slow pairs: token codes + BOS key
BOS_KEY = CONTENT[VOCAB]

GAP = 16.0  # logit gap between the planted target key and every other key
UNEMBED_GAP = 12.0  # logit of the induced token over every other token

PREVIOUS, CURRENT, DUPLICATE, SINK = (0, 0), (0, 1), (0, 2), (0, 3)
INDUCTION = (1, 2)

PLANTED: dict[str, tuple[tuple[int, int], ...]] = {
    "previous_token": (PREVIOUS,),
    "current_token": (CURRENT,),
    "duplicate_token": (DUPLICATE,),
    "sink": (SINK,),
    "induction": (INDUCTION,),
    "local": (PREVIOUS, CURRENT),  # attending to i - 1 or i keeps all mass in the recent window
}
"""Head-type id -> the (layer, head) pairs planted for it. Every other head is unplanted.

``retrieval`` is not planted: the induction head copies from *every* earlier occurrence of its token,
so on the needle probe it lands inside the needle only some of the time (and no other head can)."""


def _frequencies() -> torch.Tensor:
    return ROPE_THETA ** (-torch.arange(HALF, dtype=torch.float64) / HALF)


def position_margin(max_distance: int = MAX_POSITIONS) -> float:
    """``f(0) - max_{1 <= x < max_distance} f(x)`` for ``f(x) = sum_d w_d cos(x * omega_d)``."""
    omega = _frequencies()[: len(POSITION_WEIGHTS)]
    weights = torch.tensor(POSITION_WEIGHTS, dtype=torch.float64)
    x = torch.arange(1, max_distance, dtype=torch.float64)
    f = (weights * torch.cos(x[:, None] * omega)).sum(-1)
    return float(weights.sum() - f.max())


def _position_vector(shift: int) -> torch.Tensor:
    """Unrotated query/key part over the positional pairs; ``shift`` steps of rotation back."""
    vec = torch.zeros(HEAD_DIM, dtype=torch.float64)
    omega = _frequencies()
    for d, w in enumerate(POSITION_WEIGHTS):
        vec[d] = math.sqrt(w) * math.cos(shift * omega[d])
        vec[d + HALF] = -math.sqrt(w) * math.sin(shift * omega[d])
    return vec


def build_planted_model(seed: int = 0, spare_heads: int = 0) -> LoadedModel:
    """The planted-heads model with the lens installed; ``seed`` only drives the unplanted heads' noise.

    ``spare_heads`` (even) adds that many unplanted query heads to each layer, heads 4 onward, two per extra
    KV head: layer 0's write nothing, layer 1's write noise into the spare dimensions (together as much as
    L1H0, L1H1 and L1H3 do). They give the set test of :mod:`headatlas.causal.verify` enough distinct
    random sets to reach its floor (the plain model has only 7 heads besides any one member).

    Planted (see :data:`PLANTED`): L0H0 previous-token, L0H1 current-token, L0H2 duplicate-token
    (attends to earlier copies of its token, never to itself, to BOS when there is none), L0H3 sink
    (always BOS), L1H2 induction (query: current token; key: the ``prev`` subspace that L0H0 wrote;
    value: the key's token, written to ``out`` and unembedded, so the model predicts the token that
    followed the earlier copy). L1H0, L1H1, L1H3 are unplanted: small random queries (near-uniform
    attention) and small random writes into the spare dimensions, which nothing reads.
    """
    from transformers import LlamaConfig, LlamaForCausalLM

    if spare_heads < 0 or spare_heads % 2:
        raise ValueError(f"spare_heads must be a non-negative even number, got {spare_heads}")
    config = LlamaConfig(
        vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=4, num_hidden_layers=2,
        num_attention_heads=N_HEADS + spare_heads, num_key_value_heads=N_KV + spare_heads // 2, head_dim=HEAD_DIM,
        max_position_embeddings=MAX_POSITIONS, rms_norm_eps=1e-6, tie_word_embeddings=False,
        rope_parameters={"rope_type": "default", "rope_theta": ROPE_THETA},
        bos_token_id=BOS, eos_token_id=EOS,
    )  # fmt: skip
    with torch.random.fork_rng():  # the random init is overwritten; leave the caller's RNG untouched
        model = LlamaForCausalLM(config).eval()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            param.zero_()
        for name, param in model.named_parameters():
            if name.endswith("norm.weight"):
                param.fill_(1.0)
        _set_weights(model, gen, spare_heads)
    return _wrap(model, VOCAB, "planted-llama")


def _set_weights(model: Any, gen: torch.Generator, spare_heads: int) -> None:
    embed = torch.zeros(VOCAB, HIDDEN, dtype=torch.float64)
    for t in range(VOCAB):
        embed[t, TOK + t] = 1.0
        embed[t, BOS_DIM if t == BOS else BIAS] = 1.0
    # every position holds two unit entries at layer 0, three at layer 1 (+prev), four at the end (+out)
    n0, n1, n_final = math.sqrt(HIDDEN / 2), math.sqrt(HIDDEN / 3), math.sqrt(HIDDEN / 4)
    unit0, unit1 = n0 * n0 / math.sqrt(HEAD_DIM), n1 * n1 / math.sqrt(HEAD_DIM)  # logit per unit weight product

    weights = torch.tensor(POSITION_WEIGHTS, dtype=torch.float64)
    margin, total = position_margin(), float(weights.sum())
    pos_key, pos_current, pos_previous = _position_vector(0), _position_vector(0), _position_vector(1)

    q0, k0, v0, o0 = (torch.zeros_like(w, dtype=torch.float64) for w in _proj(model, 0))
    # KV head 0 (query heads 0, 1): key = position from bias (and bos, so BOS is an ordinary key), value = token
    _block(k0, 0)[:, BIAS] = pos_key
    _block(k0, 0)[:, BOS_DIM] = pos_key
    for t in range(VOCAB):
        _block(v0, 0)[t, TOK + t] = 1.0 / n0
    position_gain = GAP / (unit0 * margin)
    _block(q0, PREVIOUS[1])[:, BIAS] = position_gain * pos_previous
    _block(q0, CURRENT[1])[:, BIAS] = position_gain * pos_current
    for t in range(VOCAB):
        _block(o0.T, PREVIOUS[1])[t, PREV + t] = 1.0  # previous-token head writes the prev subspace

    # KV head 1 (query heads 2, 3): key = position from bias only, token code, BOS flag
    _block(k0, 1)[:, BIAS] = pos_key
    for t in range(VOCAB):
        _block(k0, 1)[CONTENT[t], TOK + t] = 1.0
    _block(k0, 1)[BOS_KEY, BOS_DIM] = 1.0
    # duplicate token, in logit units: same token +c, BOS +beta, position -lam * f(i - j). The self key
    # is penalised lam * margin more than any earlier copy; BOS sits between self and earlier copies.
    lam = 2 * GAP / margin
    penalty = lam * total
    content = 2 * penalty + GAP
    beta = penalty + 2 * GAP
    dup = _block(q0, DUPLICATE[1])
    for t in range(VOCAB):
        dup[CONTENT[t], TOK + t] = content / unit0
    dup[:, BIAS] -= (lam / unit0) * pos_key
    dup[BOS_KEY, BIAS] = beta / unit0
    _block(q0, SINK[1])[BOS_KEY, BIAS] = 2 * GAP / unit0

    q1, k1, v1, o1 = (torch.zeros_like(w, dtype=torch.float64) for w in _proj(model, 1))
    # KV head 1 of layer 1: key = code of the previous token, value = the token itself
    for t in range(VOCAB):
        _block(k1, 1)[CONTENT[t], PREV + t] = 1.0
        _block(v1, 1)[t, TOK + t] = 1.0 / n1
        _block(q1, INDUCTION[1])[CONTENT[t], TOK + t] = 2 * GAP / unit1
        _block(o1.T, INDUCTION[1])[t, OUT + t] = 1.0
    # unplanted heads of layer 1: small random queries and small writes into the spare dimensions
    unplanted = [h for h in range(N_HEADS) if (1, h) != INDUCTION]
    k1[:HEAD_DIM] = torch.randn(HEAD_DIM, HIDDEN, generator=gen, dtype=torch.float64) / n1
    for h in unplanted:
        _block(q1, h)[:] = 0.1 * torch.randn(HEAD_DIM, HIDDEN, generator=gen, dtype=torch.float64) / n1
        _block(o1.T, h)[:, list(SPARE)] = 0.05 * torch.randn(HEAD_DIM, len(SPARE), generator=gen, dtype=torch.float64)
    _block(v1, 0)[:] = torch.randn(HEAD_DIM, HIDDEN, generator=gen, dtype=torch.float64) / n1
    # spare heads (after the planted model's own draws, so those do not move): random keys, values and small
    # queries in both layers; only layer 1's write anything, noise into the spare dimensions
    for h in range(N_HEADS, N_HEADS + spare_heads):
        for q, o in ((q0, None), (q1, o1)):
            _block(q, h)[:] = 0.1 * torch.randn(HEAD_DIM, HIDDEN, generator=gen, dtype=torch.float64) / n1
            if o is not None:
                scale = 0.05 * math.sqrt(3 / spare_heads)  # all of them together write as much as L1H0, H1, H3
                noise = scale * torch.randn(HEAD_DIM, len(SPARE), generator=gen, dtype=torch.float64)
                _block(o.T, h)[:, list(SPARE)] = noise
    for kv in range(N_KV, N_KV + spare_heads // 2):
        for k, v in ((k0, v0), (k1, v1)):
            _block(k, kv)[:] = torch.randn(HEAD_DIM, HIDDEN, generator=gen, dtype=torch.float64) / n1
            _block(v, kv)[:] = torch.randn(HEAD_DIM, HIDDEN, generator=gen, dtype=torch.float64) / n1

    unembed = torch.zeros(VOCAB, HIDDEN, dtype=torch.float64)
    for t in range(VOCAB):
        if t not in (BOS, EOS):
            unembed[t, OUT + t] = UNEMBED_GAP / n_final

    model.model.embed_tokens.weight.copy_(embed)
    model.lm_head.weight.copy_(unembed)
    for layer, tensors in ((0, (q0, k0, v0, o0)), (1, (q1, k1, v1, o1))):
        for param, value in zip(_proj(model, layer), tensors, strict=True):
            param.copy_(value)


def _proj(model: Any, layer: int) -> tuple[torch.Tensor, ...]:
    attn = model.model.layers[layer].self_attn
    return (attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight, attn.o_proj.weight)


def _block(weight: torch.Tensor, head: int) -> torch.Tensor:
    """Rows of one head (query head or KV head) in a projection weight ``[heads * head_dim, in]`` (a view)."""
    return weight[head * HEAD_DIM : (head + 1) * HEAD_DIM]
