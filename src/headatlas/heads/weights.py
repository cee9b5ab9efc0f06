"""Weights-only OV circuits: what a head writes into the logits when it attends to a token.

For query head ``h`` of layer ``l`` and source token ``t`` the circuit is

    OV_h(t) = U · N_final( P_l( W_O[:, h] · (W_V[kv(h)] · N_l(x_l(t)) + b_V) ) )   (logits over tokens)

read from the model's own modules, found per family by :mod:`headatlas.models.anatomy` (GPT-2's fused
``Conv1D``, NeoX's interleaved QKV and Phi-3's stacked QKV included): ``N_l`` is layer ``l``'s input norm
(none in OLMo 2), ``W_V[kv(h)]`` the value projection of the KV head that query head ``h`` reads
(``kv(h) = h // (heads / kv_heads)``, as ``repeat_kv`` does), ``W_O[:, h]`` the slice of the output
projection that head ``h`` writes through, ``P_l`` the post-attention norm of Gemma 2/3 and OLMo 2
(identity elsewhere), ``N_final`` the final norm and ``U`` the unembedding (tied or not). Norm scales
that are one scalar per token do not change rankings within a token's logits; the norms' per-channel
gains do, so they are applied (read from the norm modules), and so is a LayerNorm's centring.

The source ``x_l(t)`` is the *effective embedding* (as in "Successor Heads" and "Copy Suppression",
which read tokens through the first MLP because it acts as an extension of the embedding): the
residual stream after layer 0 when the token is alone, i.e. ``e + Attn_0(e)`` with layer-0 attention
attending to the token itself, then ``+ MLP_0`` (of that, or of ``e`` where attention and MLP run in
parallel: GPT-J, NeoX), with the block's norms. ``e`` comes from the model's token-embedding module, so
Gemma's ``sqrt(d_model)`` scale is included and GPT-2's learned position embedding is not (it carries no
token, as in the papers' ``W_E``). Heads of layer 0 read ``e`` itself, since that is what they see.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING, Any

from .._lazy import lazy_module, no_grad
from ..errors import ArchitectureUnavailable, InvalidSettingError
from ..models.anatomy import Anatomy, anatomy, is_centred, layer_norm_gain
from ..probes import text
from ..probes.base import generator

if TYPE_CHECKING:
    import torch

    from ..models.loader import LoadedModel
else:
    torch = lazy_module("torch")


@dataclass(frozen=True)
class Circuits:
    """A model's parts (:class:`~headatlas.models.anatomy.Anatomy`) and the norm gains its OV circuits read
    through, checked once per model."""

    parts: Anatomy
    final_gain: torch.Tensor  # [d_model], see norm_gain
    final_centred: bool  # the final norm subtracts the mean (LayerNorm)
    post_gains: tuple[torch.Tensor | None, ...]  # per layer: the post-attention norm's gain (Gemma, OLMo 2), or None
    post_centred: tuple[bool, ...]

    @property
    def dtype(self) -> torch.dtype:
        return self.parts.unembed.dtype

    @property
    def device(self) -> torch.device:
        return self.parts.unembed.device


def circuits(loaded: LoadedModel) -> Circuits:
    """The model's OV-circuit parts; an architecture without an adapter is refused by name."""
    parts = anatomy(loaded)
    d_model, unembed = parts.d_model, parts.unembed
    post = [parts.norm(layer, "attn_out_norm") for layer in range(parts.n_layers)]
    return Circuits(
        parts=parts,
        final_gain=norm_gain(parts.final_norm, d_model, unembed.dtype, unembed.device),
        final_centred=is_centred(parts.final_norm, d_model, unembed.device),
        post_gains=tuple(None if n is None else norm_gain(n, d_model, unembed.dtype, unembed.device) for n in post),
        post_centred=tuple(n is not None and is_centred(n, d_model, unembed.device) for n in post),
    )


def head_outputs(circ: Circuits, layer: int, x: torch.Tensor) -> torch.Tensor:
    """What each query head of ``layer`` writes (through its slice of ``W_O``, before any post-attention
    norm) when it attends with weight 1 to a position whose residual stream is ``x`` [N, d]: ``[H, N, d]``."""
    parts = circ.parts
    values = parts.values(layer, x)[:, parts.kv_of_head.to(x.device)]  # [N, H, D], bias included
    w_out = parts.out(layer).weight.float()  # [d, H, D]
    return torch.einsum("nhk,dhk->hnd", values, w_out)


@no_grad
def embeddings(circ: Circuits, ids: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """``(raw, effective)`` embeddings of ``ids``, each ``[N, d]`` in the model's dtype (see module doc)."""
    parts = circ.parts
    raw = parts.embed(torch.tensor(ids, device=circ.device))
    attended = head_outputs(circ, 0, raw).sum(0)  # layer 0 attending to the token itself
    bias = parts.out(0).bias
    if bias is not None:
        attended = attended + bias.float()
    norm = parts.norm(0, "attn_out_norm")
    x = raw.float() + (attended if norm is None else norm(attended.to(circ.dtype)).float())
    effective = x + parts.mlp_out(0, (raw if parts.parallel(0) else x).to(circ.dtype)).float()
    return raw, effective.to(circ.dtype)


@no_grad
def norm_gain(norm: torch.nn.Module, d_model: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """The per-channel gain of a norm, scaled to a largest magnitude of 1: ``[d]``.

    Up to one positive scalar (irrelevant to rankings), an RMS norm is ``norm(x) = gain * x / rms(x)``; its gain
    is read by applying the module to the basis vectors, which covers Llama's ``w`` and Gemma's ``1 + w`` alike.
    A LayerNorm's gain is its weight (its centring is applied separately, its bias is no head's). An RMS norm
    that mixes channels is refused.
    """
    if is_centred(norm, d_model, device):
        gain = layer_norm_gain(norm, d_model, device)
        return gain / gain.abs().max().clamp(min=1e-30)
    out = norm(torch.eye(d_model, dtype=dtype, device=device)).float()
    gain = out.diagonal()
    if float((out - torch.diag(gain)).abs().max()) > 1e-6 * float(gain.abs().max()):
        raise ArchitectureUnavailable(f"{type(norm).__name__} is not a per-channel norm")
    return gain / gain.abs().max().clamp(min=1e-30)


def _centre(x: torch.Tensor) -> torch.Tensor:
    return x - x.mean(-1, keepdim=True)


@no_grad
def ov_logits(circ: Circuits, layer: int, source: torch.Tensor, candidates: list[int]) -> torch.Tensor:
    """Rank-equivalent OV-circuit logits of each head of ``layer`` on ``candidates``: ``[H, N, C]`` float32.

    ``source`` is the residual stream the head reads (``embeddings()[0]`` for layer 0, ``[1]`` after).
    The norms after the head (a post-attention norm, the final norm) enter through their per-channel
    gains (and, for a LayerNorm, its centring, which is linear); their per-token scalar ``1 / rms`` is
    left out, which rescales each source row of the logits by a positive number and so changes no ranking
    within a row. Biases after the head (the norms', the unembedding's) are the same whatever the head
    writes and are left out too.
    """
    parts = circ.parts
    values = parts.values(layer, source)[:, parts.kv_of_head.to(source.device)]  # [N, H, D], bias included
    post, post_centred = circ.post_gains[layer], circ.post_centred[layer]
    cand = torch.tensor(candidates, device=circ.device)
    w_out = parts.out(layer).weight.float().reshape(parts.d_model, -1)  # [d, H * D]
    if not (circ.final_centred or post_centred):  # RMS norms: one combined gain
        gain = circ.final_gain if post is None else circ.final_gain * post
        readout = (parts.unembed[cand].float() * gain) @ w_out  # [C, H * D]
    else:  # transpose of (final gain, centring) after (post gain, centring): gain, centre, gain, centre
        rows = parts.unembed[cand].float() * circ.final_gain
        rows = _centre(rows) if circ.final_centred else rows
        if post is not None:
            rows = rows * post
            rows = _centre(rows) if post_centred else rows
        readout = rows @ w_out
    readout = readout.view(len(candidates), parts.n_heads, parts.head_dim)
    return torch.einsum("nhk,chk->hnc", values, readout)


def ov_logits_by_layer(loaded: LoadedModel, ids: list[int], candidates: list[int]) -> Iterator[torch.Tensor]:
    """Layer by layer, ``[H, N, C]`` rank-equivalent OV-circuit logits on ``candidates`` for each of ``ids``."""
    circ = circuits(loaded)
    raw, effective = embeddings(circ, ids)
    for layer in range(circ.parts.n_layers):
        yield ov_logits(circ, layer, raw if layer == 0 else effective, candidates)


@lru_cache(maxsize=1)
def common_words() -> tuple[str, ...]:
    """Common English words and names written for this project: the words of the natural-text probe's
    prose (3+ letters), its word list, and ``data/names.txt`` (first names, places). Sorted, unique."""
    words = set(re.findall(r"[A-Za-z]{3,}", " ".join(text.sentences())))
    for package, name in (("headatlas.probes", "data/words.txt"), ("headatlas.heads", "data/names.txt")):
        content = resources.files(package).joinpath(name).read_text(encoding="utf-8")
        words.update(line.strip() for line in content.splitlines() if line.strip())
    return tuple(sorted(words))


def word_tokens(tokenizer: Any, n: int = 500, seed: int = 0, minimum: int = 50) -> list[int]:
    """A seeded sample of at most ``n`` common words that are one token each (sorted ids, unique).

    Each word of :func:`common_words` is tried space-prefixed (its form inside a sentence) and kept
    when the tokenizer encodes it to exactly one token; fewer than ``minimum`` such tokens is an error.
    A tokenizer without token strings (the byte-level test tokenizer, which has no word tokens)
    contributes every non-special id instead.
    """
    if n < 2:
        raise InvalidSettingError(f"the token set needs at least 2 tokens, got n={n}")
    if hasattr(tokenizer, "convert_ids_to_tokens"):
        found = set()
        for word in common_words():
            ids = tokenizer.encode(" " + word, add_special_tokens=False)
            if len(ids) == 1:
                found.add(int(ids[0]))
        if len(found) < minimum:
            raise InvalidSettingError(
                f"only {len(found)} of {len(common_words())} common words are single tokens in this tokenizer; "
                f"need at least {minimum}"
            )
        pool = sorted(found)
    else:
        special = set(getattr(tokenizer, "all_special_ids", []) or [])
        pool = [i for i in range(len(tokenizer)) if i not in special]
    order = torch.randperm(len(pool), generator=generator(seed, salt=7))[: min(n, len(pool))]
    return sorted(pool[int(i)] for i in order)


def own_token_ranks(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For square ``[..., N, N]`` logits (rows: source tokens, columns: the same tokens), how many other
    candidates reach each row's own logit, from the top and from the bottom: two ``[..., N]`` tensors.

    Ties count against the own token, so a head that writes nothing (all logits equal) is never a copier.
    """
    own = logits.diagonal(dim1=-2, dim2=-1)[..., None]
    return (logits >= own).sum(-1) - 1, (logits <= own).sum(-1) - 1
