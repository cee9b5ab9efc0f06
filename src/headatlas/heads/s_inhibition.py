"""S-inhibition heads (IOI): tell the name movers not to attend to the repeated subject S.

Score (nats): how much patching the head's end-position output from the ABC-corrupted prompt (no
repeated name) into the clean prompt lowers the receivers' preference for IO over S, the attention
log-odds ``log A[end, IO] - log (A[end, S1] + A[end, S2])``, averaged over the receivers (the three
strongest name movers of the same run) and the prompts. Only the end position is patched, so only the
receivers' queries change: path patching to the name-mover queries, with the components between sender
and receiver left free (see :mod:`headatlas.heads.ioi_circuit` for why that is sound). Heads in or above
the top receiver's layer cannot reach it and score 0; so does every head when no name mover attends to IO.

Threshold 0.1: removing the head's signal moves the name movers' IO:S attention odds by about 10%
(e^0.1 = 1.105), well above the spread of unrelated heads (on SmolLM2-135M the bulk is below 0.03).
(Interpretability in the Wild, Wang et al. 2023.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..probes import ProbeSettings
from ..probes import ioi as ioi_probe
from .ioi_circuit import ioi_result
from .name_mover import IOI_LOGIT_DIFF, IOI_PROBES, PAPERS
from .registry import HeadType, ModelScore, register_head_type

if TYPE_CHECKING:
    from ..models.loader import LoadedModel


def model_score(loaded: LoadedModel, settings: ProbeSettings, seed: int) -> ModelScore:
    result = ioi_result(loaded, seed)
    return ModelScore(result.s_inhibition, result.n_prompts, {**result.info, "probe": ioi_probe.PROBE_ID})


HEAD_TYPE = register_head_type(
    HeadType(
        id="s_inhibition",
        name="S-inhibition head",
        definition=(
            "Moves the 'S is repeated' signal to the end of an IOI prompt, steering name movers' queries"
            " from S to IO: drop in their IO-vs-S attention log-odds when its output is patched from ABC prompts."
        ),
        papers=PAPERS,
        probe=None,
        threshold=0.1,
        model_score=model_score,
        metric=IOI_LOGIT_DIFF,
        probes=IOI_PROBES,
    )
)
