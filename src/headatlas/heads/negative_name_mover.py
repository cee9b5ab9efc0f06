"""Negative name mover heads (IOI): attend to the indirect object but write *against* it.

Score (logits): minus the name-mover direct effect, i.e. how much the head's direct path lowers
``logit(IO) - logit(S)`` at the end position, clean vs ABC-corrupted output (see
:mod:`headatlas.heads.ioi_circuit`), for heads putting at least ``ATTN_MIN`` (0.1) of their end-position
attention on IO; 0 for the others. Wang et al. found two such heads in GPT-2 small (10.7, 11.10), later
recognised as copy-suppression heads.

Threshold 0.2, as for name movers: the head's direct path lowers the IO-vs-S log-odds by 0.2 nats.
(Interpretability in the Wild, Wang et al. 2023.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..causal.metrics import METRICS
from ..probes import ProbeBatch, ProbeSettings
from ..probes import ioi as ioi_probe
from .ioi_circuit import ATTN_MIN, ioi_result
from .name_mover import IOI_PROBES, PAPERS
from .registry import HeadType, ModelScore, register_head_type
from .tasks import last_position_metric

if TYPE_CHECKING:
    import torch

    from ..models.loader import LoadedModel


def _reversed_logit_diff(logits: torch.Tensor, batch: ProbeBatch, rows: torch.Tensor) -> torch.Tensor:
    return -METRICS["logit_diff"].value(logits, batch, rows)


IOI_LOGIT_DIFF_REVERSED = last_position_metric(
    "ioi_logit_diff_reversed",
    (
        "logit(S) - logit(IO) on clean IOI prompts: negative name movers push this way, so removing them"
        " should lower it (raise IO - S)."
    ),
    ioi_probe.PROBE_ID,
    value=_reversed_logit_diff,
    needs=("answer", "wrong"),
)


def model_score(loaded: LoadedModel, settings: ProbeSettings, seed: int) -> ModelScore:
    result = ioi_result(loaded, seed)
    return ModelScore(
        -result.gated, result.n_prompts, {**result.info, "attn_min": ATTN_MIN, "probe": ioi_probe.PROBE_ID}
    )


HEAD_TYPE = register_head_type(
    HeadType(
        id="negative_name_mover",
        name="Negative name mover head",
        definition=(
            "At the end of an IOI prompt, attends to the indirect object and directly lowers"
            " logit(IO) - logit(S): minus the name-mover direct effect (logits)."
        ),
        papers=PAPERS,
        probe=None,
        threshold=0.2,
        model_score=model_score,
        metric=IOI_LOGIT_DIFF_REVERSED,
        probes=IOI_PROBES,
    )
)
