"""Where each decoder family keeps the parts a head's circuits pass through.

Weights-only scores (OV circuits) and direct effects read a model's modules, not its forward pass: the
token embedding, each block's norms, per-head query/key/value/output weights, the MLP, the final norm and
the unembedding. Families name and pack these differently: GPT-2 fuses Q, K and V into one transposed
``Conv1D`` (``c_attn``), GPT-NeoX (Pythia) into one ``Linear`` whose rows run head by head (``q_h, k_h,
v_h`` for each head ``h``), Phi-3 stacks them (all queries, all keys, all values); OLMo 2 normalises
the attention output instead of its input; GPT-J and NeoX run attention and MLP in parallel. One table,
:data:`FAMILIES`, records this per transformers ``model_type``; :class:`Anatomy` gives everyone the same
view: per-head weights as ``[heads, head_dim, d_model]`` (``W_Q``, ``W_K``, ``W_V``, rows as in
``nn.Linear``) and ``[d_model, heads, head_dim]`` (``W_O``), views into the model's own parameters.

A family not in the table is refused with :class:`~headatlas.errors.ArchitectureUnavailable`, naming it
and the families handled.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._lazy import lazy_module, no_grad
from ..errors import ArchitectureUnavailable

if TYPE_CHECKING:
    import torch

    from .loader import LoadedModel
else:
    torch = lazy_module("torch")

LAYOUTS = ("separate", "stacked", "interleaved", "conv1d")
"""How Q, K and V are stored: three ``Linear`` s; one ``Linear`` with all queries, then keys, then values
(Phi-3); one ``Linear`` with ``[q, k, v]`` of each head in turn (GPT-NeoX); GPT-2's ``Conv1D`` (weight
``[in, out]``, columns ``[q | k | v]``), whose output projection is a ``Conv1D`` too."""


@dataclass(frozen=True)
class Family:
    """Attribute names of one family's modules (``None``: the family has no such norm)."""

    decoder: str = "model"  # attribute of the causal LM holding the decoder stack
    embed: str = "embed_tokens"
    layers: str = "layers"
    final_norm: str = "norm"
    attention: str = "self_attn"
    qkv: tuple[str, ...] = ("q_proj", "k_proj", "v_proj")  # one name when fused
    layout: str = "separate"
    out: str = "o_proj"
    attn_norm: str | None = "input_layernorm"  # before attention
    attn_out_norm: str | None = None  # on attention's output, before the residual add (Gemma 2/3, OLMo 2)
    mlp: str = "mlp"
    mlp_norm: str | None = "post_attention_layernorm"  # before the MLP
    mlp_out_norm: str | None = None  # on the MLP's output (Gemma 2/3, OLMo 2)
    parallel: bool | str = False  # attention and MLP both read the block input (or: the block's flag naming it)
    moe: bool = False  # the MLP (a mixture of experts) takes [batch, T, d]
    norm_eps: float | None = None  # for norms that keep their eps in code, not in an attribute (OLMo)


_LLAMA = Family()
_SANDWICH = Family(
    attn_out_norm="post_attention_layernorm",
    mlp_norm="pre_feedforward_layernorm",
    mlp_out_norm="post_feedforward_layernorm",
)
_OLMO2 = Family(
    attn_norm=None, attn_out_norm="post_attention_layernorm", mlp_norm=None, mlp_out_norm="post_feedforward_layernorm"
)
FAMILIES: dict[str, Family] = {
    "llama": _LLAMA,
    "mistral": _LLAMA,
    "qwen2": _LLAMA,  # value (and query/key) biases
    "qwen3": _LLAMA,  # per-head query/key norms (not part of an OV circuit)
    "starcoder2": _LLAMA,  # LayerNorm, biases everywhere
    "gemma": _LLAMA,  # scaled embedding inside embed_tokens, (1 + w) RMS gain
    "smollm3": _LLAMA,
    "mixtral": Family(moe=True),
    "qwen2_moe": Family(moe=True),
    "qwen3_moe": Family(moe=True),
    "phi3": Family(qkv=("qkv_proj",), layout="stacked"),
    "gemma2": _SANDWICH,
    "gemma3_text": _SANDWICH,
    "olmo": Family(norm_eps=1e-5),  # parameter-free LayerNorms with a fixed eps
    "olmo2": _OLMO2,
    "olmo3": _OLMO2,
    "cohere": Family(mlp_norm="input_layernorm", parallel=True),  # mean-centred norms without bias
    "gpt2": Family(decoder="transformer", embed="wte", layers="h", final_norm="ln_f", attention="attn",
                   qkv=("c_attn",), layout="conv1d", out="c_proj", attn_norm="ln_1", mlp_norm="ln_2"),
    "gpt_neox": Family(decoder="gpt_neox", embed="embed_in", final_norm="final_layer_norm", attention="attention",
                       qkv=("query_key_value",), layout="interleaved", out="dense",
                       parallel="use_parallel_residual"),  # NeoX's post_attention_layernorm is the MLP's input norm
    "gptj": Family(decoder="transformer", embed="wte", layers="h", final_norm="ln_f", attention="attn",
                   out="out_proj", attn_norm="ln_1", mlp_norm="ln_1", parallel=True),
    "phi": Family(final_norm="final_layernorm", out="dense", mlp_norm="input_layernorm", parallel=True),
}  # fmt: skip


@dataclass(frozen=True)
class Weights:
    """Per-head weights: ``weight`` ``[heads, head_dim, d_model]`` (Q/K/V) or ``[d_model, heads, head_dim]`` (O);
    ``bias`` ``[heads, head_dim]`` (Q/K/V) or ``[d_model]`` (O), ``None`` when the family has none."""

    weight: torch.Tensor
    bias: torch.Tensor | None


@dataclass(frozen=True)
class NormReading:
    """A norm as ``gain * (x - mean(x) if centred) / sqrt(mean(that^2) + eps) (+ bias)``, read from the module."""

    gain: torch.Tensor  # [d] float32: Llama's w, Gemma's 1 + w, LayerNorm's weight
    eps: float
    centred: bool  # LayerNorm subtracts the mean first; RMS norms do not

    def scale(self, x: torch.Tensor) -> torch.Tensor:
        """The per-row divisor the norm applies to ``x`` [..., d]: ``[...]``."""
        if self.centred:
            x = x - x.mean(-1, keepdim=True)
        return torch.sqrt(x.pow(2).mean(-1) + self.eps)


class Anatomy:
    """One model's parts in the common shape (see the module doc)."""

    def __init__(self, loaded: LoadedModel) -> None:
        facts = loaded.facts
        arch = facts.architecture
        family = FAMILIES.get(arch)
        if family is None:
            raise ArchitectureUnavailable(
                f"no weights adapter for architecture {arch!r} (handled: {', '.join(sorted(FAMILIES))})"
            )
        model = loaded.model
        self.family, self.architecture = family, arch
        self.decoder = _part(model, family.decoder, arch)
        self.embed = _part(self.decoder, family.embed, arch)
        self.layers = _part(self.decoder, family.layers, arch)
        self.final_norm = _part(self.decoder, family.final_norm, arch)
        head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
        if head is None:
            raise ArchitectureUnavailable(f"{type(model).__name__} ({arch!r}) has no output embedding")
        self.unembed: torch.Tensor = head.weight  # [vocab, d]; a bias (GPT-J, Phi) is not part of any head's circuit
        self.n_heads, self.n_kv_heads, self.head_dim = facts.n_heads, facts.n_kv_heads, facts.head_dim
        self.d_model, self.n_layers = facts.d_model, len(self.layers)
        if self.n_heads % self.n_kv_heads:
            raise ArchitectureUnavailable(f"{self.n_heads} query heads do not divide over {self.n_kv_heads} KV heads")
        for name in (family.attention, family.mlp):
            _part(self.layers[0], name, arch)

    # -- the pieces of one block --------------------------------------------------------------------
    def block(self, layer: int) -> Any:
        return self.layers[layer]

    def attention(self, layer: int) -> Any:
        return getattr(self.layers[layer], self.family.attention)

    def norm(self, layer: int, which: str) -> torch.nn.Module | None:
        """The block's ``attn_norm``, ``attn_out_norm``, ``mlp_norm`` or ``mlp_out_norm`` (``None``: absent)."""
        name = getattr(self.family, which)
        return None if name is None else getattr(self.layers[layer], name)

    def parallel(self, layer: int) -> bool:
        flag = self.family.parallel
        return bool(getattr(self.layers[layer], flag)) if isinstance(flag, str) else flag

    def query(self, layer: int) -> Weights:
        return self._qkv(layer, 0)

    def key(self, layer: int) -> Weights:
        return self._qkv(layer, 1)

    def value(self, layer: int) -> Weights:
        return self._qkv(layer, 2)

    def out(self, layer: int) -> Weights:
        """``W_O`` ``[d, H, D]``: head ``h`` writes ``W_O[:, h] @ a_h`` into the residual stream; one bias per layer."""
        proj = getattr(self.attention(layer), self.family.out)
        weight = proj.weight.T if self.family.layout == "conv1d" else proj.weight  # Conv1D stores [in, out]
        return Weights(weight.view(self.d_model, self.n_heads, self.head_dim), proj.bias)

    def _qkv(self, layer: int, which: int) -> Weights:
        attn, layout, dim = self.attention(layer), self.family.layout, self.head_dim
        heads = (self.n_heads, self.n_kv_heads, self.n_kv_heads)
        if layout == "separate":
            proj = getattr(attn, self.family.qkv[which])
            bias = None if proj.bias is None else proj.bias.view(heads[which], dim)
            return Weights(proj.weight.view(heads[which], dim, self.d_model), bias)
        proj = getattr(attn, self.family.qkv[0])
        weight, bias = (proj.weight.T, proj.bias) if layout == "conv1d" else (proj.weight, proj.bias)  # [out, in]
        if layout == "interleaved":  # rows: head 0's q, k, v, then head 1's …
            return Weights(
                weight.view(self.n_heads, 3, dim, self.d_model)[:, which],
                None if bias is None else bias.view(self.n_heads, 3, dim)[:, which],
            )
        start = sum(heads[:which]) * dim  # stacked / conv1d: all queries, then all keys, then all values
        rows = slice(start, start + heads[which] * dim)
        return Weights(
            weight[rows].view(heads[which], dim, self.d_model),
            None if bias is None else bias[rows].view(heads[which], dim),
        )

    @property
    def kv_of_head(self) -> torch.Tensor:
        """Query head -> the KV head it reads (GQA / MQA grouping, as ``repeat_kv`` does)."""
        return torch.arange(self.n_heads) // (self.n_heads // self.n_kv_heads)

    # -- running parts of a block on residual vectors -------------------------------------------------
    def values(self, layer: int, x: torch.Tensor) -> torch.Tensor:
        """The value vector of each KV head at a position whose residual stream is ``x`` [N, d]: ``[N, KV, D]``
        (input norm and bias included; float32)."""
        norm = self.norm(layer, "attn_norm")
        normed = x if norm is None else norm(x)
        v = self.value(layer)
        flat = torch.nn.functional.linear(
            normed,
            v.weight.reshape(-1, self.d_model),
            None if v.bias is None else v.bias.reshape(-1),
        )
        return flat.float().view(x.shape[0], self.n_kv_heads, self.head_dim)

    def attention_out(self, layer: int, attended: torch.Tensor) -> torch.Tensor:
        """The layer's attention output ``attended`` [..., d] (after ``W_O``, bias included) through the
        family's post-attention norm, if any."""
        norm = self.norm(layer, "attn_out_norm")
        return attended if norm is None else norm(attended)

    def mlp_out(self, layer: int, x: torch.Tensor) -> torch.Tensor:
        """What the block's MLP adds to the residual stream when its input is ``x`` [N, d] (with its norms)."""
        block = self.layers[layer]
        pre, post = self.norm(layer, "mlp_norm"), self.norm(layer, "mlp_out_norm")
        h = x if pre is None else pre(x)
        mlp = getattr(block, self.family.mlp)
        h = mlp(h[None])[0] if self.family.moe else mlp(h)
        return h if post is None else post(h)

    def finish_block(self, layer: int, before: torch.Tensor, attended: torch.Tensor) -> torch.Tensor:
        """The residual stream after block ``layer`` from its input ``before`` [N, d] and its attention output
        ``attended`` [N, d] (after ``W_O``, bias included), in the model's dtype."""
        mid = before + self.attention_out(layer, attended)
        return mid + self.mlp_out(layer, before if self.parallel(layer) else mid)

    def read_norm(self, norm: torch.nn.Module) -> NormReading:
        """``norm``'s gain, eps and centring (see :func:`read_norm`)."""
        return read_norm(norm, self.d_model, self.unembed.device, self.family.norm_eps)


def _part(owner: Any, name: str, arch: str) -> Any:
    found = getattr(owner, name, None)
    if found is None:
        raise ArchitectureUnavailable(
            f"{type(owner).__name__} ({arch!r}) has no {name!r}; its layout is not the family's"
        )
    return found


def anatomy(loaded: LoadedModel) -> Anatomy:
    """The model's parts; an architecture without an adapter is refused by name."""
    return Anatomy(loaded)


@no_grad
def is_centred(norm: torch.nn.Module, d_model: int, device: torch.device) -> bool:
    """Whether ``norm`` subtracts the mean (LayerNorm): it then maps a constant vector to what it maps zero to."""
    if isinstance(norm, torch.nn.LayerNorm):
        return True
    dtype = next((p.dtype for p in norm.parameters()), torch.float32)
    ones, zeros = (
        torch.ones(1, d_model, dtype=dtype, device=device),
        torch.zeros(1, d_model, dtype=dtype, device=device),
    )
    return bool(torch.allclose(norm(ones).float(), norm(zeros).float()))


def layer_norm_gain(norm: torch.nn.Module, d_model: int, device: torch.device) -> torch.Tensor:
    """The per-channel weight of a centred norm (ones when it has none): ``[d]`` float32."""
    weight = getattr(norm, "weight", None)
    return torch.ones(d_model, device=device) if weight is None else weight.detach().float().to(device)


@no_grad
def read_norm(norm: torch.nn.Module, d_model: int, device: torch.device, eps: float | None = None) -> NormReading:
    """``gain``, ``eps`` and centring of a per-channel norm. An RMS norm's gain is read by applying it to the
    basis vectors (each of mean square ``1/d``), which covers Llama's ``w`` and Gemma's ``1 + w`` alike."""
    if eps is None:
        eps = float(getattr(norm, "variance_epsilon", getattr(norm, "eps", 1e-6)))
    if is_centred(norm, d_model, device):
        return NormReading(layer_norm_gain(norm, d_model, device), eps, centred=True)
    dtype = next((p.dtype for p in norm.parameters()), torch.float32)
    diag = norm(torch.eye(d_model, device=device, dtype=dtype)).float().diagonal()
    return NormReading(diag * (1.0 / d_model + eps) ** 0.5, eps, centred=False)
