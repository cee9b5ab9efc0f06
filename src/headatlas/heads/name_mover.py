"""Name mover heads (IOI): at the end of an IOI prompt, attend to the indirect object and copy it.

Score (logits): the head's direct effect on ``logit(IO) - logit(S)`` at the end position, clean minus
ABC-corrupted (patching its output from the corrupted into the clean run along the path head -> logits
only, final norm frozen; see :mod:`headatlas.heads.ioi_circuit`), counted only for heads that put at
least ``ATTN_MIN`` (0.1) of their end-position attention on IO and 0 for the others: the definition asks
for both "attends to IO" and "writes IO". Heads with a large direct effect that do not attend to IO
are listed in the scan's info as ``direct_without_io_attention``.

Threshold 0.2: the head's direct path alone moves the IO-vs-S log-odds by 0.2 nats (odds x 1.22). On
SmolLM2-135M the clean logit difference is about 4.4, so a member carries at least ~5% of it directly.
(Interpretability in the Wild, Wang et al. 2023.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..causal.metrics import METRICS
from ..probes import ProbeSettings
from ..probes import ioi as ioi_probe
from .ioi_circuit import ATTN_MIN, ioi_result
from .registry import HeadType, ModelScore, register_head_type
from .tasks import last_position_metric

if TYPE_CHECKING:
    from ..models.loader import LoadedModel

PAPERS = ("Interpretability in the Wild: a Circuit for Indirect Object Identification in GPT-2 small",)


IOI_PROBES = {ioi_probe.PROBE_ID: ioi_probe.generate}

IOI_LOGIT_DIFF = last_position_metric(
    "ioi_logit_diff",
    (
        "logit(IO) - logit(S) at the end of clean IOI prompts ('When Mary and John went to the store, John"
        " gave a drink to' -> Mary); name movers and S-inhibition heads raise it (Wang et al. 2023)."
    ),
    ioi_probe.PROBE_ID,
    value=METRICS["logit_diff"].value,
    needs=("answer", "wrong"),
)


def model_score(loaded: LoadedModel, settings: ProbeSettings, seed: int) -> ModelScore:
    result = ioi_result(loaded, seed)
    return ModelScore(
        result.gated, result.n_prompts, {**result.info, "attn_min": ATTN_MIN, "probe": ioi_probe.PROBE_ID}
    )


HEAD_TYPE = register_head_type(
    HeadType(
        id="name_mover",
        name="Name mover head",
        definition=(
            "At the end of an IOI prompt, attends to the indirect object and directly raises"
            " logit(IO) - logit(S): direct effect (logits) of its clean vs ABC-corrupted output."
        ),
        papers=PAPERS,
        probe=None,
        threshold=0.2,
        model_score=model_score,
        metric=IOI_LOGIT_DIFF,
        probes=IOI_PROBES,
    )
)
