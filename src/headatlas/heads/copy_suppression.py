"""Copy-suppression heads: attend to earlier copies of the token the model is about to predict, and push
that token down ("Copy Suppression: Comprehensively Understanding an Attention Head", McDougall et al.,
2023; GPT-2 small L10H7).

The paper's algorithm has two halves, and the score asks for both:

* **OV: suppression.** The head's :func:`negative copying <headatlas.heads.copying.copying_fractions>`
  fraction, from the weights: attending to a word lowers that word's logit.
* **QK: attention to the predicted token.** On the natural-text probe (one pass through the lens), the
  model's own top-1 next-token prediction at each position ``i``; for rows where that token occurs
  earlier in the context (keys ``1 <= j <= i``, BOS excluded), the attention mass the head puts on those
  copies, averaged over such rows.

``copy_suppression = negative_copying x attention_to_predicted``: a product, so a head must both attend
to the predicted token and suppress what it attends to. Either half alone misleads: induction heads
attend to the predicted token too (the token after the earlier copy is what they predict) but copy it,
and a negative-copying head may look elsewhere. The paper reads the prediction from the
residual stream *before* the head; the final prediction is used here, which the head itself may have
lowered, so the attention half is, if anything, an underestimate. Memory: one batch's probabilities of
every layer are held until its predictions are known (``layers x batch x heads x text_len^2`` floats).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_module, no_grad
from ..models.anatomy import anatomy
from ..probes import ProbeSettings
from ..probes import text as natural_text
from .copying import TOP_K, copying_fractions
from .registry import HeadType, ModelScore, register_head_type

if TYPE_CHECKING:
    import torch

    from ..models.loader import LoadedModel
else:
    torch = lazy_module("torch")


@no_grad
def attention_to_predicted(loaded: LoadedModel, probes: ProbeSettings, seed: int) -> tuple[torch.Tensor, int]:
    """``([L, H] mean attention on earlier copies of the predicted next token, rows scored)``."""
    from ..lens import PatternTap, session

    n_layers, n_heads = loaded.facts.n_layers, loaded.facts.n_heads
    totals = torch.zeros(n_layers, n_heads, dtype=torch.float64)
    rows_scored = 0
    base, unembed = anatomy(loaded).decoder, loaded.model.get_output_embeddings()
    for batch in natural_text.generate(loaded.tokenizer, probes, seed):
        on = batch.to(loaded.device)
        kept: dict[int, torch.Tensor] = {}  # this batch's attention probabilities, per layer, until we know the targets

        def keep(layer: int, probs: torch.Tensor, kept: dict[int, torch.Tensor] = kept) -> None:
            kept[layer] = probs

        with session(taps=[PatternTap(on.rows, keep)]):  # the probe's rows are every position
            hidden = base(input_ids=on.input_ids, attention_mask=on.attention_mask).last_hidden_state
        if len(kept) != n_layers:
            raise RuntimeError(f"the lens saw {len(kept)} of {n_layers} layers")
        # top-1 next-token prediction, one sequence at a time (full logits of a 262k vocabulary are large);
        # the final soft-cap of some models is monotonic and cannot change the argmax
        predicted = torch.stack([unembed(h).argmax(-1) for h in hidden])  # [B, T]
        positions = torch.arange(on.input_ids.shape[1], device=loaded.device)
        targets = (
            (on.input_ids[:, None, :] == predicted[:, :, None])  # key j holds the token predicted at row i
            & (positions[None, None, :] <= positions[None, :, None])
            & (positions[None, None, :] >= 1)
            & on.attention_mask[:, None, :].bool()
            & on.attention_mask[:, :, None].bool()
        )  # [B, rows, keys]
        has_target = targets.any(-1)  # [B, rows]
        rows_scored += int(has_target.sum())
        for layer, probs in kept.items():
            mass = (probs * targets[:, None].to(probs.dtype)).sum(-1)  # [B, H, rows]
            totals[layer] += (mass * has_target[:, None].to(mass.dtype)).sum((0, 2)).double().cpu()
    score = totals / rows_scored if rows_scored else torch.full_like(totals, float("nan"))
    return score.float(), rows_scored


def score(loaded: LoadedModel, probes: ProbeSettings, seed: int) -> ModelScore:
    anatomy(loaded)  # refuse unsupported architectures before any forward pass
    _, negative, ids = copying_fractions(loaded, seed)
    attention, rows = attention_to_predicted(loaded, probes, seed)
    info = {
        "kind": "weights+probe",
        "probe": natural_text.PROBE_ID,
        "rows_scored": rows,
        "token_set_size": len(ids),
        "top_k": TOP_K,
    }
    return ModelScore(score=negative * attention, n_samples=rows, info=info)


HEAD_TYPE = register_head_type(
    HeadType(
        id="copy_suppression",
        name="Copy-suppression head",
        definition=(
            "Negative copying (weights) x attention on earlier copies of the model's predicted next token "
            "(natural text): attends to the token about to be predicted and lowers its logit."
        ),
        papers=("Copy Suppression: Comprehensively Understanding an Attention Head",),
        probe=natural_text.PROBE_ID,
        threshold=0.1,
        metric="text_loss",  # ablating copy suppression raises text loss (McDougall et al. 2023)
        model_score=score,
    )
)
