"""Shared pieces of the task-defined head types (IOI, function vectors, safety, semantic induction):
captures of a clean run, direct logit effects, task prompts as metric batches, a per-model memo.

Their per-head interventions run on the one intervention engine, :mod:`headatlas.causal.interventions`
(a cached prefix and a one-step sweep of many head settings: :func:`~headatlas.causal.interventions.sweep_last`).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any

from .._lazy import lazy_module, no_grad
from ..causal.metrics import METRICS, FitFn, Metric, ValueFn
from ..errors import ArchitectureUnavailable, UnsupportedArchitectureError
from ..models.anatomy import Anatomy, anatomy
from ..probes import ProbeBatch

if TYPE_CHECKING:
    import torch

    from ..causal.interventions import HeadRef
    from ..models.loader import LoadedModel
else:
    torch = lazy_module("torch")


@no_grad
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
    from ..lens import PatternTap, session

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
    (attention and MLP, with the family's norms: see :mod:`headatlas.models.anatomy`), and checked against
    the reported ``normed`` output.
    """
    parts = _parts(loaded)
    layer = loaded.facts.n_layers - 1
    out = parts.out(layer)
    flat = last_heads.to(before.device, before.dtype).flatten(1)
    attn = torch.nn.functional.linear(flat, out.weight.reshape(parts.d_model, -1), out.bias)
    x = parts.finish_block(layer, before, attn)
    check = parts.final_norm(x).float()
    error = float((check - normed.float()).abs().max()) / max(float(normed.float().abs().max()), 1e-6)
    if error > 1e-3:
        raise UnsupportedArchitectureError(
            f"could not rebuild the final residual stream of {loaded.facts.architecture!r} (relative error {error:.2g})"
        )
    return x.float().cpu()


def _parts(loaded: LoadedModel) -> Anatomy:
    try:
        return anatomy(loaded)
    except ArchitectureUnavailable as error:
        raise ArchitectureUnavailable(f"direct effects: {error}") from error


@no_grad
def direct_effects(
    loaded: LoadedModel, heads: torch.Tensor, final: torch.Tensor, directions: torch.Tensor
) -> torch.Tensor:
    """Direct logit attribution of each head's last-position output along ``directions``: ``[B, L, H]``.

    ``heads`` is ``[L, B, H, D]`` (outputs before ``W_O``), ``final`` ``[B, d]`` the residual entering the
    final norm of the run whose norm scales are frozen, ``directions`` ``[B, d]`` unembedding directions
    (e.g. ``U[IO] - U[S]``). Head ``h`` of layer ``l`` writes ``W_O[:, h] a_h`` into the residual stream;
    through the final norm with its ``1/rms`` frozen at the run's value, its direct contribution to the
    logit difference is ``(g * W_O[:, h] a_h) · direction / rms`` (a LayerNorm also centres what the head
    writes, and its bias is no head's). A post-attention norm (Gemma 2/3, OLMo 2) is frozen the same way
    (its ``1/rms`` of the layer's whole attention output). Linear in ``a_h``, so the effect of replacing
    ``a_h`` by ``a'_h`` on the direct path is the difference of two such terms.
    """
    parts = _parts(loaded)
    device, dtype = loaded.device, torch.float32
    final_norm = parts.read_norm(parts.final_norm)
    rms = final_norm.scale(final.to(device))  # [B]
    read = directions.to(device, dtype) * final_norm.gain.to(device) / rms[:, None]  # [B, d]
    if final_norm.centred:
        read = read - read.mean(-1, keepdim=True)
    n_layers, batch, n_heads, _ = heads.shape
    out = torch.zeros(batch, n_layers, n_heads)
    for layer in range(n_layers):
        w_o = parts.out(layer)
        a = heads[layer].to(device, dtype)  # [B, H, D]
        written = torch.einsum("dhk,bhk->bhd", w_o.weight.float(), a)  # [B, H, d]
        post = parts.norm(layer, "attn_out_norm")
        if post is not None:
            total = written.sum(1)
            if w_o.bias is not None:
                total = total + w_o.bias.float()
            post_norm = parts.read_norm(post)
            written = written * post_norm.gain.to(device) / post_norm.scale(total)[:, None, None]
            if post_norm.centred:
                written = written - written.mean(-1, keepdim=True)
        out[:, layer] = torch.einsum("bhd,bd->bh", written, read).cpu()
    return out


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
