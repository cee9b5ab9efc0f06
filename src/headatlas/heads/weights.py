"""Weights-only OV circuits: what a head writes into the logits when it attends to a token.

For query head ``h`` of layer ``l`` and source token ``t`` the circuit is

    OV_h(t) = U · N_final( P_l( W_O[:, h] · (W_V[kv(h)] · N_l(x_l(t)) + b_V) ) )   (logits over tokens)

read from the model's own modules: ``N_l`` is layer ``l``'s input norm, ``W_V[kv(h)]`` the value
projection of the KV head that query head ``h`` reads (``kv(h) = h // (heads / kv_heads)``, as
``repeat_kv`` does), ``W_O[:, h]`` the slice of the output projection that head ``h`` writes through,
``P_l`` Gemma 3's post-attention norm (identity for Llama), ``N_final`` the final norm and ``U`` the
unembedding (tied or not). Norm scales that are one scalar per token do not change rankings within a
token's logits; the norms' per-channel gains do, so they are applied (read from the norm modules).

The source ``x_l(t)`` is the *effective embedding* (as in "Successor Heads" and "Copy Suppression",
which read tokens through the first MLP because it acts as an extension of the embedding): the
residual stream after layer 0 when the token is alone, i.e. ``e + Attn_0(e)`` with layer-0 attention
attending to the token itself, then ``+ MLP_0`` of that (with its norms). ``e`` comes from the model's
embedding module, so Gemma's ``sqrt(d_model)`` scale is included. Heads of layer 0 read ``e`` itself,
since that is what they see.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import torch

from ..errors import ArchitectureUnavailable, InvalidSettingError
from ..models.loader import LoadedModel
from ..probes import text
from ..probes.base import generator

LLAMA_STYLE = frozenset({"llama", "mistral", "qwen2", "qwen3"})  # pre-norm blocks: attention, then MLP
GEMMA_STYLE = frozenset({"gemma3_text"})  # sandwich norms around attention and MLP, scaled embedding
SUPPORTED = LLAMA_STYLE | GEMMA_STYLE


@dataclass(frozen=True)
class Anatomy:
    """The modules an OV circuit passes through, checked once per model."""

    embed: torch.nn.Module
    layers: Any  # the decoder layers (a ModuleList)
    final_norm: torch.nn.Module
    unembed: torch.Tensor  # [vocab, d_model]
    final_gain: torch.Tensor  # [d_model], see norm_gain
    post_gains: tuple[torch.Tensor, ...]  # per layer: Gemma's post-attention norm gain (empty for Llama)
    sandwich: bool  # Gemma-style post-attention and pre/post-feedforward norms
    n_heads: int
    n_kv_heads: int
    head_dim: int

    @property
    def kv_of_head(self) -> torch.Tensor:
        """Query head -> the KV head it reads (GQA / MQA grouping)."""
        return torch.arange(self.n_heads) // (self.n_heads // self.n_kv_heads)

    @property
    def dtype(self) -> torch.dtype:
        return self.unembed.dtype

    @property
    def device(self) -> torch.device:
        return self.unembed.device


def anatomy(loaded: LoadedModel) -> Anatomy:
    """Find the modules of a supported architecture; anything else is refused by name."""
    facts = loaded.facts
    arch = facts.architecture
    supported = ", ".join(sorted(SUPPORTED))
    if arch not in SUPPORTED:
        raise ArchitectureUnavailable(
            f"weights-only head scores do not support architecture {arch!r} (supported: {supported})"
        )
    model = loaded.model
    inner = getattr(model, "model", None)
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    embed, layers, final_norm = (getattr(inner, name, None) for name in ("embed_tokens", "layers", "norm"))
    if embed is None or layers is None or final_norm is None or head is None:
        raise ArchitectureUnavailable(
            f"weights-only head scores need embed_tokens, layers, norm and an output embedding; "
            f"{type(model).__name__} ({arch!r}) lacks one"
        )
    if getattr(head, "bias", None) is not None:
        raise ArchitectureUnavailable(f"weights-only head scores do not support an unembedding bias ({arch!r})")
    if facts.n_heads % facts.n_kv_heads:
        raise ArchitectureUnavailable(f"{facts.n_heads} query heads do not divide over {facts.n_kv_heads} KV heads")
    return Anatomy(
        embed=embed,
        layers=layers,
        final_norm=final_norm,
        unembed=head.weight,
        final_gain=norm_gain(final_norm, facts.d_model, head.weight.dtype, head.weight.device),
        post_gains=tuple(
            norm_gain(block.post_attention_layernorm, facts.d_model, head.weight.dtype, head.weight.device)
            for block in (layers if arch in GEMMA_STYLE else ())
        ),
        sandwich=arch in GEMMA_STYLE,
        n_heads=facts.n_heads,
        n_kv_heads=facts.n_kv_heads,
        head_dim=facts.head_dim,
    )


def head_outputs(anat: Anatomy, layer: int, x: torch.Tensor) -> torch.Tensor:
    """What each query head of ``layer`` writes (through its slice of ``o_proj``, before any post-attention
    norm) when it attends with weight 1 to a position whose residual stream is ``x`` [N, d]: ``[H, N, d]``."""
    block = anat.layers[layer]
    attn = block.self_attn
    values = attn.v_proj(block.input_layernorm(x)).float()  # [N, kv * D], bias included
    values = values.view(x.shape[0], anat.n_kv_heads, anat.head_dim)[:, anat.kv_of_head.to(x.device)]  # [N, H, D]
    w_out = attn.o_proj.weight.float().view(-1, anat.n_heads, anat.head_dim)  # [d, H, D]
    return torch.einsum("nhk,dhk->hnd", values, w_out)


def _post_attention(anat: Anatomy, layer: int, out: torch.Tensor) -> torch.Tensor:
    if not anat.sandwich:
        return out
    return anat.layers[layer].post_attention_layernorm(out.to(anat.dtype)).float()


def _mlp_block(anat: Anatomy, layer: int, x: torch.Tensor) -> torch.Tensor:
    """The MLP's contribution to the residual stream at ``x`` [N, d], with the block's own norms."""
    block = anat.layers[layer]
    if anat.sandwich:
        return block.post_feedforward_layernorm(block.mlp(block.pre_feedforward_layernorm(x))).float()
    return block.mlp(block.post_attention_layernorm(x)).float()


@torch.no_grad()
def embeddings(anat: Anatomy, ids: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """``(raw, effective)`` embeddings of ``ids``, each ``[N, d]`` in the model's dtype (see module doc)."""
    raw = anat.embed(torch.tensor(ids, device=anat.device))
    attended = head_outputs(anat, 0, raw).sum(0)  # layer 0 attending to the token itself
    if anat.layers[0].self_attn.o_proj.bias is not None:
        attended = attended + anat.layers[0].self_attn.o_proj.bias.float()
    x = raw.float() + _post_attention(anat, 0, attended)
    effective = x + _mlp_block(anat, 0, x.to(anat.dtype))
    return raw, effective.to(anat.dtype)


@torch.no_grad()
def norm_gain(norm: torch.nn.Module, d_model: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """The per-channel gain of an RMS norm, read by applying the module to the basis vectors: ``[d]``.

    Up to one positive scalar (irrelevant to rankings), ``norm(x) = gain * x / rms(x)``; this covers
    Llama's ``w`` and Gemma's ``1 + w`` alike. A norm that mixes channels is refused.
    """
    out = norm(torch.eye(d_model, dtype=dtype, device=device)).float()
    gain = out.diagonal()
    if float((out - torch.diag(gain)).abs().max()) > 1e-6 * float(gain.abs().max()):
        raise ArchitectureUnavailable(f"{type(norm).__name__} is not a per-channel norm")
    return gain / gain.abs().max().clamp(min=1e-30)


@torch.no_grad()
def ov_logits(anat: Anatomy, layer: int, source: torch.Tensor, candidates: list[int]) -> torch.Tensor:
    """Rank-equivalent OV-circuit logits of each head of ``layer`` on ``candidates``: ``[H, N, C]`` float32.

    ``source`` is the residual stream the head reads (``embeddings()[0]`` for layer 0, ``[1]`` after).
    The norms after the head (Gemma's post-attention norm, the final norm) enter through their
    per-channel gains; their per-token scalar ``1 / rms`` is left out, which rescales each source row of
    the logits by a positive number and so changes no ranking within a row.
    """
    block = anat.layers[layer]
    attn = block.self_attn
    n = source.shape[0]
    values = attn.v_proj(block.input_layernorm(source)).float()  # [N, kv * D], bias included
    values = values.view(n, anat.n_kv_heads, anat.head_dim)[:, anat.kv_of_head.to(source.device)]  # [N, H, D]
    gain = anat.final_gain * anat.post_gains[layer] if anat.sandwich else anat.final_gain
    cand = torch.tensor(candidates, device=anat.device)
    readout = (anat.unembed[cand].float() * gain) @ attn.o_proj.weight.float()  # [C, H * D]
    readout = readout.view(len(candidates), anat.n_heads, anat.head_dim)
    return torch.einsum("nhk,chk->hnc", values, readout)


def ov_logits_by_layer(loaded: LoadedModel, ids: list[int], candidates: list[int]) -> Iterator[torch.Tensor]:
    """Layer by layer, ``[H, N, C]`` rank-equivalent OV-circuit logits on ``candidates`` for each of ``ids``."""
    anat = anatomy(loaded)
    raw, effective = embeddings(anat, ids)
    for layer in range(len(anat.layers)):
        yield ov_logits(anat, layer, raw if layer == 0 else effective, candidates)


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
