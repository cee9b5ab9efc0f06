"""How a change of one head's output moves a later layer's queries and keys, to first order (AtP*'s QK fix).

Replacing head ``n``'s output ``a_n`` (before ``o_proj``) by ``a_n + Δa`` adds ``u = W_O^n Δa`` to the
residual stream. Along the *direct* path (the blocks in between left out) a later layer reads ``u``
through its input norm and its query/key projections. For an RMS norm ``N(r) = γ ⊙ r / ρ`` with
``ρ = sqrt(mean(r²) + ε)`` and ``x̂ = r / ρ`` the first-order change of a head's query is

    Δq̃ = W_Q diag(γ) (u − x̂ (x̂ · u) / d) / ρ

(keys alike), followed by the per-head query/key norm where the model has one (its Jacobian, by
forward-mode autodiff of the model's own module) and the rotary embedding (linear; the model's own
function). ``W_Q diag(γ) W_O^n`` is a ``D × D`` virtual weight (Elhage et al. 2021, "A Mathematical
Framework for Transformer Circuits"), so no ``d``-wide vector is formed per source head.

Pre-norm blocks with an RMS input norm and rotary positions only (llama, mistral, qwen2, qwen3);
:func:`read_anatomy` refuses other architectures and :func:`qk_changes` first checks that its
reconstruction of the clean queries and keys matches what the lens received.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from ..errors import ArchitectureUnavailable
from ..models.loader import LoadedModel

SUPPORTED = frozenset({"llama", "mistral", "qwen2", "qwen3"})
RECONSTRUCTION_RTOL = 1e-3  # of the largest |q| or |k|; float32 rounding is ~1e-6, a wrong anatomy O(1)

Rotate = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class Reader:
    """How one layer reads queries and keys out of the residual stream (float32 weights)."""

    gain: torch.Tensor  # [d] γ of the input RMS norm
    eps: float
    w_q: torch.Tensor  # [H, D, d]
    w_k: torch.Tensor  # [KV, D, d]
    b_q: torch.Tensor | None  # [H, D]
    b_k: torch.Tensor | None  # [KV, D]
    q_norm: torch.nn.Module | None  # per-head norm on the projected query (qwen3)
    k_norm: torch.nn.Module | None


@dataclass(frozen=True)
class Anatomy:
    """The weights the direct paths go through, read once per call."""

    readers: tuple[Reader, ...]
    w_out: tuple[torch.Tensor, ...]  # per layer [d, H, D]: the slice of o_proj each head writes through
    rotary: torch.nn.Module  # the model's rotary embedding: (x, position_ids) -> (cos, sin)
    rotate: Rotate  # the model's apply_rotary_pos_emb


def _gain_and_eps(norm: torch.nn.Module, d: int) -> tuple[torch.Tensor, float]:
    """``γ`` and ``ε`` of an RMS norm; ``γ`` read by applying it to scaled basis vectors (``w`` or ``1 + w`` alike)."""
    eps = getattr(norm, "variance_epsilon", getattr(norm, "eps", None))
    weight = getattr(norm, "weight", None)
    if not isinstance(eps, float) or weight is None:
        raise ArchitectureUnavailable(f"AtP*'s QK fix needs an RMS input norm; {type(norm).__name__} is not one")
    probe = torch.eye(d, dtype=weight.dtype, device=weight.device) * d**0.5  # rms of each row: sqrt(1 + eps)
    with torch.no_grad():
        out = norm(probe).float()
    return out.diagonal() * (1.0 + eps) ** 0.5 / d**0.5, eps


def read_anatomy(loaded: LoadedModel) -> Anatomy:
    """The readers, output slices and rotary embedding of a supported model; others are refused by name."""
    arch = loaded.facts.architecture
    if arch not in SUPPORTED:
        raise ArchitectureUnavailable(
            f"AtP*'s QK fix does not support architecture {arch!r} (supported: {', '.join(sorted(SUPPORTED))})"
        )
    inner = getattr(loaded.model, "model", None)
    layers, rotary = getattr(inner, "layers", None), getattr(inner, "rotary_emb", None)
    if layers is None or rotary is None:
        raise ArchitectureUnavailable(f"AtP*'s QK fix needs decoder layers and a rotary embedding ({arch!r})")
    f = loaded.facts
    readers, w_out = [], []
    for block in layers:
        attn = block.self_attn
        gain, eps = _gain_and_eps(block.input_layernorm, f.d_model)
        bias_q, bias_k = attn.q_proj.bias, attn.k_proj.bias
        readers.append(
            Reader(
                gain=gain,
                eps=eps,
                w_q=attn.q_proj.weight.detach().float().view(f.n_heads, f.head_dim, f.d_model),
                w_k=attn.k_proj.weight.detach().float().view(f.n_kv_heads, f.head_dim, f.d_model),
                b_q=None if bias_q is None else bias_q.detach().float().view(f.n_heads, f.head_dim),
                b_k=None if bias_k is None else bias_k.detach().float().view(f.n_kv_heads, f.head_dim),
                q_norm=getattr(attn, "q_norm", None),
                k_norm=getattr(attn, "k_norm", None),
            )
        )
        w_out.append(attn.o_proj.weight.detach().float().view(f.d_model, f.n_heads, f.head_dim))
    rotate = getattr(sys.modules[type(layers[0].self_attn).__module__], "apply_rotary_pos_emb", None)
    if rotate is None:
        raise ArchitectureUnavailable(f"AtP*'s QK fix found no apply_rotary_pos_emb for {arch!r}")
    return Anatomy(tuple(readers), tuple(w_out), rotary, rotate)


def _through_norm(norm: torch.nn.Module | None, primal: torch.Tensor, tangent: torch.Tensor) -> torch.Tensor:
    """The tangent carried through a per-head norm at ``primal`` (identity without one)."""
    if norm is None:
        return tangent
    dtype = next(norm.parameters()).dtype
    out = torch.func.jvp(
        lambda x: norm(x).float(), (primal.to(dtype).expand_as(tangent).contiguous(),), (tangent.to(dtype),)
    )[1]
    return out.float()


def _rotated(anat: Anatomy, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """``x`` ``[..., heads, T, D]`` under the model's rotary embedding at positions ``0 … T-1``."""
    flat = x.reshape(-1, *x.shape[-3:])
    out, _ = anat.rotate(flat, flat, cos, sin)
    return out.reshape(x.shape)


@dataclass(frozen=True)
class Changes:
    """Direct-path first-order changes of one layer's queries/keys, one row per earlier head (layer-major)."""

    query: torch.Tensor  # [N, B, len(q_heads), T, D] after RoPE
    key: torch.Tensor  # [N, B, len(k_heads), T, D] after RoPE


def qk_changes(
    anat: Anatomy,
    layer: int,
    resid: torch.Tensor,
    deltas: Sequence[torch.Tensor],
    q_heads: Sequence[int],
    k_heads: Sequence[int],
    lens_qk: tuple[torch.Tensor, torch.Tensor],
) -> Changes:
    """Change of the queries of ``q_heads`` and keys of ``k_heads`` (KV heads) of ``layer`` when one head of an
    earlier layer alone changes its output by ``deltas[l][:, :, h]`` (``deltas[l]``: ``[B, T, H, D]``).

    ``resid`` ``[B, T, d]`` is the residual stream entering ``layer``; ``lens_qk`` the clean query and key
    the lens received there, against which the reconstruction is checked.
    """
    reader = anat.readers[layer]
    r = resid.float()
    d = r.shape[-1]
    rho = (r.pow(2).mean(-1, keepdim=True) + reader.eps).sqrt()  # [B, T, 1]
    x_hat = r / rho
    normed = x_hat * reader.gain
    positions = torch.arange(r.shape[1], device=r.device)[None]
    cos, sin = anat.rotary(r, positions)
    cos, sin = cos.float(), sin.float()
    _check(anat, reader, normed, cos, sin, lens_qk)

    da = torch.cat([deltas[src].float().permute(2, 0, 1, 3) for src in range(layer)])  # [N, B, T, D]
    w_o = torch.cat(anat.w_out[:layer], dim=1)  # [d, N, D]
    along = torch.einsum("btd,dnk->nbtk", x_hat, w_o)  # x̂ · W_O^n, per source
    c = (along * da).sum(-1) / d  # [N, B, T]: (x̂ · u) / d

    def change(w: torch.Tensor, bias: torch.Tensor | None, norm: torch.nn.Module | None) -> torch.Tensor:
        if w.shape[0] == 0:
            return da.new_zeros(da.shape[0], da.shape[1], 0, da.shape[2], da.shape[3])
        w_gain = w * reader.gain  # [h, D, d]
        virtual = torch.einsum("hid,dnk->hnik", w_gain, w_o)  # [h, N, D, D]
        main = torch.einsum("hnik,nbtk->nbhti", virtual, da)
        base = torch.einsum("hid,btd->bhti", w_gain, x_hat)  # the clean projection of x̂ (no bias)
        pre = (main - base[None] * c[:, :, None, :, None]) / rho[None, :, None]
        primal = base if bias is None else base + bias[None, :, None]
        return _rotated(anat, _through_norm(norm, primal, pre), cos, sin)

    q_idx = torch.tensor(list(q_heads), dtype=torch.long, device=r.device)
    k_idx = torch.tensor(list(k_heads), dtype=torch.long, device=r.device)
    return Changes(
        query=change(reader.w_q[q_idx], None if reader.b_q is None else reader.b_q[q_idx], reader.q_norm),
        key=change(reader.w_k[k_idx], None if reader.b_k is None else reader.b_k[k_idx], reader.k_norm),
    )


def _check(
    anat: Anatomy,
    reader: Reader,
    normed: torch.Tensor,
    cos: torch.Tensor,
    sin: torch.Tensor,
    lens_qk: tuple[torch.Tensor, torch.Tensor],
) -> None:
    """Refuse when the clean queries/keys rebuilt from the residual stream differ from the lens's."""
    for w, bias, norm, seen, what in (
        (reader.w_q, reader.b_q, reader.q_norm, lens_qk[0], "queries"),
        (reader.w_k, reader.b_k, reader.k_norm, lens_qk[1], "keys"),
    ):
        pre = torch.einsum("hid,btd->bhti", w, normed) + (0 if bias is None else bias[None, :, None])
        if norm is not None:
            dtype = next(norm.parameters()).dtype
            with torch.no_grad():
                pre = norm(pre.to(dtype)).float()
        rebuilt = _rotated(anat, pre, cos, sin)
        scale = float(seen.float().abs().max()) + 1e-12
        error = float((rebuilt - seen.float()).abs().max())
        if error > RECONSTRUCTION_RTOL * scale:
            raise ArchitectureUnavailable(
                f"AtP*'s QK fix cannot rebuild this model's {what} from its residual stream"
                f" (max error {error:.3g} of {scale:.3g}); it is not the pre-norm RMS/RoPE block the fix assumes"
            )
