"""Shared pieces of the task-defined head types (IOI, function vectors, safety, semantic induction):
captures of a clean run, direct logit effects, task prompts as metric batches, a per-model memo.

Their per-head interventions run on the one intervention engine, :mod:`headatlas.causal.interventions`
(a cached prefix and a one-step sweep of many head settings: :func:`~headatlas.causal.interventions.sweep_last`).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Hashable
from typing import Any

import torch

from ..causal.interventions import HeadRef
from ..causal.metrics import METRICS, FitFn, Metric, ValueFn
from ..errors import UnsupportedArchitectureError
from ..lens import PatternTap, session
from ..models.loader import LoadedModel
from ..probes import ProbeBatch


@torch.no_grad()
def capture_run(
    loaded: LoadedModel,
    ids: torch.Tensor,
    *,
    tap_rows: torch.Tensor | None = None,
    hidden: bool = False,
) -> dict[str, Any]:
    """One unmodified forward pass of equal-length prompts ``ids`` [B, T].

    Returns ``heads`` (every head's output at the last position, ``[L, B, H, D]``), ``logits`` at the last
    position ``[B, V]``, ``probs`` (with ``tap_rows`` [B, R]: the attention of those rows, ``[L, B, H, R, K]``)
    and, with ``hidden``, ``final`` (the residual stream entering the final norm at the last position, ``[B, d]``).
    """
    ids = ids.to(loaded.device)
    heads: dict[int, torch.Tensor] = {}
    probs: dict[int, torch.Tensor] = {}

    def hook(layer: int, out: torch.Tensor) -> None:
        heads[layer] = out[:, -1].detach().float().cpu()

    def tap(layer: int, p: torch.Tensor) -> None:
        probs[layer] = p.detach().cpu()

    taps = [] if tap_rows is None else [PatternTap(tap_rows.to(loaded.device), tap)]
    with session(taps=taps, hooks=[hook]):
        out = loaded.model(input_ids=ids, logits_to_keep=1, output_hidden_states=hidden)
    n_layers = loaded.facts.n_layers
    result: dict[str, Any] = {
        "heads": torch.stack([heads[layer] for layer in range(n_layers)]),
        "logits": out.logits[:, -1].float().cpu(),
    }
    if tap_rows is not None:
        result["probs"] = torch.stack([probs[layer] for layer in range(n_layers)])
    if hidden:
        states = out.hidden_states  # embeddings, outputs of layers 0 .. L-2, then the *normed* final stream
        result["final"] = _final_residual(loaded, states[-2][:, -1], heads[n_layers - 1], states[-1][:, -1])
    return result


def _final_residual(
    loaded: LoadedModel, before: torch.Tensor, last_heads: torch.Tensor, normed: torch.Tensor
) -> torch.Tensor:
    """The residual stream entering the final norm at one position, ``[B, d]``.

    transformers reports the final norm's *output* as the last hidden state, so the last block is redone
    here at that position from its input ``before`` and its heads' outputs ``last_heads`` [B, H, D]
    (attention and MLP, with Gemma's sandwich norms), and checked against the reported ``normed`` output.
    """
    inner = loaded.model.model
    block = inner.layers[loaded.facts.n_layers - 1]
    dtype = before.dtype
    attn = block.self_attn.o_proj(last_heads.to(before.device, dtype).flatten(1))
    if getattr(block, "pre_feedforward_layernorm", None) is not None:  # Gemma: norms around both sublayers
        mid = before + block.post_attention_layernorm(attn)
        x = mid + block.post_feedforward_layernorm(block.mlp(block.pre_feedforward_layernorm(mid)))
    else:
        mid = before + attn
        x = mid + block.mlp(block.post_attention_layernorm(mid))
    check = inner.norm(x).float()
    error = float((check - normed.float()).abs().max()) / max(float(normed.float().abs().max()), 1e-6)
    if error > 1e-3:
        raise UnsupportedArchitectureError(
            f"could not rebuild the final residual stream of {loaded.facts.architecture!r} (relative error {error:.2g})"
        )
    return x.float().cpu()


@torch.no_grad()
def direct_effects(
    loaded: LoadedModel, heads: torch.Tensor, final: torch.Tensor, directions: torch.Tensor
) -> torch.Tensor:
    """Direct logit attribution of each head's last-position output along ``directions``: ``[B, L, H]``.

    ``heads`` is ``[L, B, H, D]`` (outputs before ``o_proj``), ``final`` ``[B, d]`` the residual entering the
    final norm of the run whose norm scales are frozen, ``directions`` ``[B, d]`` unembedding directions
    (e.g. ``U[IO] - U[S]``). Head ``h`` of layer ``l`` writes ``W_O[:, h] a_h`` into the residual stream;
    through the final RMS norm with its ``1/rms`` frozen at the run's value, its direct contribution to the
    logit difference is ``(g * W_O[:, h] a_h) · direction / rms``. Gemma's post-attention norm is frozen
    the same way (its ``1/rms`` of the layer's whole attention output). Linear in ``a_h``, so the effect of
    replacing ``a_h`` by ``a'_h`` on the direct path is the difference of two such terms.
    """
    model = loaded.model
    inner = getattr(model, "model", None)
    layers = getattr(inner, "layers", None)
    final_norm = getattr(inner, "norm", None)
    if layers is None or final_norm is None:
        raise UnsupportedArchitectureError(
            f"direct effects need model.layers and model.norm; {type(model).__name__} has neither"
        )
    d_model = final.shape[-1]
    device, dtype = loaded.device, torch.float32
    gain, eps = _norm_gain(final_norm, d_model, device)
    rms = torch.sqrt(final.to(device).pow(2).mean(-1) + eps)  # [B]
    read = directions.to(device, dtype) * gain / rms[:, None]  # [B, d]
    n_layers, batch, n_heads, head_dim = heads.shape
    out = torch.zeros(batch, n_layers, n_heads)
    for layer in range(n_layers):
        block = layers[layer]
        w_o = block.self_attn.o_proj.weight.float().view(d_model, n_heads, head_dim)  # [d, H, D]
        a = heads[layer].to(device, dtype)  # [B, H, D]
        written = torch.einsum("dhk,bhk->bhd", w_o, a)  # [B, H, d]
        post = getattr(block, "post_attention_layernorm", None)
        if getattr(block, "pre_feedforward_layernorm", None) is not None and post is not None:  # Gemma sandwich
            total = written.sum(1)
            if block.self_attn.o_proj.bias is not None:
                total = total + block.self_attn.o_proj.bias.float()
            post_gain, post_eps = _norm_gain(post, d_model, device)
            post_rms = torch.sqrt(total.pow(2).mean(-1) + post_eps)  # [B]
            written = written * post_gain / post_rms[:, None, None]
        out[:, layer] = torch.einsum("bhd,bd->bh", written, read).cpu()
    return out


def _norm_gain(norm: torch.nn.Module, d_model: int, device: torch.device) -> tuple[torch.Tensor, float]:
    """``(g, eps)`` of an RMS norm ``g * x / sqrt(mean(x^2) + eps)`` (Llama's ``w``, Gemma's ``1 + w``), read by
    applying it to the basis vectors (each of mean square ``1/d``)."""
    eps = float(getattr(norm, "variance_epsilon", getattr(norm, "eps", 1e-6)))
    weight = next(norm.parameters())
    diag = norm(torch.eye(d_model, device=device, dtype=weight.dtype)).float().diagonal()
    return diag * (1.0 / d_model + eps) ** 0.5, eps


# -- per-model memo -----------------------------------------------------------------------------------
_MEMO: weakref.WeakKeyDictionary[Any, dict[Hashable, Any]] = weakref.WeakKeyDictionary()


def memoised(loaded: LoadedModel, key: Hashable, make: Callable[[], Any]) -> Any:
    """Compute ``make()`` once per model and key, so types sharing one experiment (the three IOI types) run it
    once per scan. Keyed weakly on the model object."""
    slot = _MEMO.setdefault(loaded.model, {})
    if key not in slot:
        slot[key] = make()
    return slot[key]


def all_heads(n_layers: int, n_heads: int, below: int | None = None) -> list[HeadRef]:
    """Every head, layer-major; with ``below``, only heads of layers ``< below``."""
    top = n_layers if below is None else min(below, n_layers)
    return [(layer, head) for layer in range(top) for head in range(n_heads)]


def single_token(tokenizer: Any, text: str) -> int | None:
    """The id of ``text`` when this tokenizer makes it exactly one token, else ``None``."""
    ids = tokenizer.encode(text, add_special_tokens=False)
    return int(ids[0]) if len(ids) == 1 else None


def encode(tokenizer: Any, text: str) -> list[int]:
    return [int(i) for i in tokenizer.encode(text, add_special_tokens=False)]


# -- the causal metrics of task types -----------------------------------------------------------------
def prompt_batch(ids: torch.Tensor, answer: torch.Tensor, wrong: torch.Tensor | None = None) -> ProbeBatch:
    """Task prompts as a metric's probe batch, read at the last position (``answer``, optionally ``wrong``)."""
    extras = {"answer": answer} if wrong is None else {"answer": answer, "wrong": wrong}
    rows = torch.full((ids.shape[0], 1), ids.shape[1] - 1)
    return ProbeBatch(input_ids=ids, attention_mask=torch.ones_like(ids), rows=rows, extras=extras)


def last_position_metric(
    name: str,
    description: str,
    probe: str,
    value: ValueFn | None = None,
    needs: tuple[str, ...] = ("answer",),
    fit: FitFn | None = None,
) -> Metric:
    """A metric read at the last position of its probe's prompts, higher = the model does the task better
    (default value: log P(answer))."""
    return Metric(
        name,
        description,
        probe,
        higher_is_better=True,
        rows=METRICS["logit_diff"].rows,
        value=value if value is not None else METRICS["answer_logprob"].value,
        needs=needs,
        fit=fit,
    )
