"""Causal metrics and metric probes of the task-defined head types, registered into
:mod:`headatlas.causal.metrics` so that ``scan --verify`` can check them like the pattern types.

* ``name_mover``, ``s_inhibition``: ``ioi_logit_diff`` = logit(IO) - logit(S) on clean IOI prompts
  (higher is better): removing the circuit's heads should lower it.
* ``negative_name_mover``: ``ioi_logit_diff_reversed`` = logit(S) - logit(IO), the direction these heads
  push: removing them should *raise* IO - S, i.e. lower this metric.
* ``function_vector``: ``fv_answer_logprob`` = log P(answer) on clean 10-shot prompts of the in-context tasks.
* ``semantic_induction``: ``relation_tail_logprob`` = log P(tail) where a relation's tail is due.
* ``safety`` has none: its score is already a KL between ablated and clean runs, and the behaviour it is
  about (refusing) needs generated, judged replies, which headatlas does not do.
"""

from __future__ import annotations

from typing import Any

import torch

from ..causal.metrics import DEFAULT_METRIC, METRICS, Metric
from ..probes import PROBES, ProbeBatch, ProbeSettings, fv_tasks
from ..probes import ioi as ioi_probe
from . import semantic_induction

FV_PROBE = "fv_tasks"
RELATION_PROBE = "semantic_relations"


def _prompt_batch(ids: torch.Tensor, answer: torch.Tensor, wrong: torch.Tensor | None = None) -> ProbeBatch:
    extras = {"answer": answer} if wrong is None else {"answer": answer, "wrong": wrong}
    rows = torch.full((ids.shape[0], 1), ids.shape[1] - 1)
    return ProbeBatch(input_ids=ids, attention_mask=torch.ones_like(ids), rows=rows, extras=extras)


def fv_batches(tokenizer: Any, settings: ProbeSettings, seed: int) -> list[ProbeBatch]:
    """Clean 10-shot prompts, one batch per task (``answer`` = the query's output)."""
    return [_prompt_batch(t.clean, t.answer) for t in fv_tasks.build(tokenizer, fv_tasks.DEFAULT_PROMPTS, seed).tasks]


def relation_batches(tokenizer: Any, settings: ProbeSettings, seed: int) -> list[ProbeBatch]:
    """Semantic-induction sentences, one batch per template (``answer`` = the tail)."""
    return [_prompt_batch(ids, tails) for ids, tails, _, _ in semantic_induction.build(tokenizer, seed=seed)]


def _reversed_logit_diff(logits: torch.Tensor, batch: ProbeBatch, rows: torch.Tensor) -> torch.Tensor:
    return -METRICS["logit_diff"].value(logits, batch, rows)


_LAST = METRICS["logit_diff"].rows
_NEW_METRICS = (
    Metric(
        name="ioi_logit_diff",
        description=(
            "logit(IO) - logit(S) at the end of clean IOI prompts ('When Mary and John went to the store, John"
            " gave a drink to' -> Mary); name movers and S-inhibition heads raise it (Wang et al. 2023)."
        ),
        probe=ioi_probe.PROBE_ID,
        higher_is_better=True,
        rows=_LAST,
        value=METRICS["logit_diff"].value,
        needs=("answer", "wrong"),
    ),
    Metric(
        name="ioi_logit_diff_reversed",
        description=(
            "logit(S) - logit(IO) on clean IOI prompts: negative name movers push this way, so removing them"
            " should lower it (raise IO - S)."
        ),
        probe=ioi_probe.PROBE_ID,
        higher_is_better=True,
        rows=_LAST,
        value=_reversed_logit_diff,
        needs=("answer", "wrong"),
    ),
    Metric(
        name="fv_answer_logprob",
        description=(
            "log P(answer) after 10-shot demonstrations of an in-context task (antonyms, capitals, upper case,"
            " next item); function-vector heads carry the task to the answer (Todd et al. 2024)."
        ),
        probe=FV_PROBE,
        higher_is_better=True,
        rows=_LAST,
        value=METRICS["answer_logprob"].value,
        needs=("answer",),
    ),
    Metric(
        name="relation_tail_logprob",
        description=(
            "log P(tail) where a relation's tail is due after its head word ('The opposite of the word hot is"
            " the word' -> cold); semantic induction heads raise it (Ren et al. 2024)."
        ),
        probe=RELATION_PROBE,
        higher_is_better=True,
        rows=_LAST,
        value=METRICS["answer_logprob"].value,
        needs=("answer",),
    ),
)

PROBES.setdefault(ioi_probe.PROBE_ID, ioi_probe.generate)
PROBES.setdefault(FV_PROBE, fv_batches)
PROBES.setdefault(RELATION_PROBE, relation_batches)
for _metric in _NEW_METRICS:
    METRICS.setdefault(_metric.name, _metric)
for _type, _name in (
    ("name_mover", "ioi_logit_diff"),
    ("negative_name_mover", "ioi_logit_diff_reversed"),
    ("s_inhibition", "ioi_logit_diff"),
    ("function_vector", "fv_answer_logprob"),
    ("semantic_induction", "relation_tail_logprob"),
):
    DEFAULT_METRIC.setdefault(_type, _name)
