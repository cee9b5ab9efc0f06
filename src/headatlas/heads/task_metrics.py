"""Causal metrics and metric probes of the task-defined head types, registered into
:mod:`headatlas.causal.metrics` so that ``scan --verify`` can check them like the pattern types.

* ``name_mover``, ``s_inhibition``: ``ioi_logit_diff`` = logit(IO) - logit(S) on clean IOI prompts
  (higher is better): removing the circuit's heads should lower it.
* ``negative_name_mover``: ``ioi_logit_diff_reversed`` = logit(S) - logit(IO), the direction these heads
  push: removing them should *raise* IO - S, i.e. lower this metric.
* ``function_vector``: ``fv_answer_logprob`` = log P(answer) on clean 10-shot prompts of the in-context tasks.
* ``semantic_induction``: ``relation_tail_logprob`` = log P(tail) where a relation's tail is due.
* ``successor``: ``successor_logprob`` = log P(next item) after four items of a comma-separated ordinal list.
* ``safety``: ``safety_reply_logprob`` = log P(the model's own clean first reply token), signed +1 on
  harmful requests and -1 on the matched harmless ones: removing safety heads should shake the reply to
  harmful requests more than to harmless ones. A one-token proxy: whether the model still *refuses*
  needs generated, judged replies, which headatlas does not do.
"""

from __future__ import annotations

from typing import Any

import torch

from ..causal.metrics import DEFAULT_METRIC, METRICS, FitFn, Metric, ValueFn
from ..models.loader import LoadedModel
from ..probes import PROBES, ProbeBatch, ProbeSettings, fv_tasks
from ..probes import ioi as ioi_probe
from . import safety, semantic_induction, successor
from .tasks import capture_run

FV_PROBE = "fv_tasks"
RELATION_PROBE = "semantic_relations"
COUNTING_PROBE = "ordinal_counting"
SAFETY_PROBE = "safety_requests"


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


def counting_batches(tokenizer: Any, settings: ProbeSettings, seed: int) -> list[ProbeBatch]:
    """Ordinal counting prompts, one batch per task (``answer`` = the next item); fixed, so ``seed`` is unused."""
    return [_prompt_batch(ids, answers) for ids, answers in successor.counting_prompts(tokenizer)]


def safety_batches(tokenizer: Any, settings: ProbeSettings, seed: int) -> list[ProbeBatch]:
    """Each request of the safety pairs as its own batch, ``sign`` +1 (harmful) or -1 (harmless); the
    ``answer`` (the model's own reply token) is filled in by :func:`fit_reply_tokens`."""
    batches = []
    for pair in safety.default_pairs()[: safety.DEFAULT_PAIRS]:
        for sign, request in zip((1.0, -1.0), pair, strict=True):
            ids = torch.tensor([safety.format_request(tokenizer, request)])
            batch = _prompt_batch(ids, torch.zeros(1, dtype=torch.long))
            batch.extras["sign"] = torch.tensor([sign])
            batches.append(batch)
    return batches


def fit_reply_tokens(loaded: LoadedModel, batches: list[ProbeBatch]) -> list[ProbeBatch]:
    """Set each batch's ``answer`` to the model's top next token on the clean prompt."""
    for batch in batches:
        batch.extras["answer"] = capture_run(loaded, batch.input_ids)["logits"].argmax(-1).cpu()
    return batches


def _signed_logprob(logits: torch.Tensor, batch: ProbeBatch, rows: torch.Tensor) -> torch.Tensor:
    sign = batch.extras["sign"].to(logits.device)
    return sign * METRICS["answer_logprob"].value(logits, batch, rows)


def _reversed_logit_diff(logits: torch.Tensor, batch: ProbeBatch, rows: torch.Tensor) -> torch.Tensor:
    return -METRICS["logit_diff"].value(logits, batch, rows)


_LAST = METRICS["logit_diff"].rows
_ANSWER_LOGPROB = METRICS["answer_logprob"].value


def _at_last(name: str, description: str, probe: str, value: ValueFn = _ANSWER_LOGPROB,
             needs: tuple[str, ...] = ("answer",), fit: FitFn | None = None) -> Metric:  # fmt: skip
    """A metric read at the last position of its probe's prompts, higher = the model does the task better."""
    return Metric(name, description, probe, higher_is_better=True, rows=_LAST, value=value, needs=needs, fit=fit)


_NEW_METRICS = (
    _at_last(
        "ioi_logit_diff",
        (
            "logit(IO) - logit(S) at the end of clean IOI prompts ('When Mary and John went to the store, John"
            " gave a drink to' -> Mary); name movers and S-inhibition heads raise it (Wang et al. 2023)."
        ),
        ioi_probe.PROBE_ID,
        value=METRICS["logit_diff"].value,
        needs=("answer", "wrong"),
    ),
    _at_last(
        "ioi_logit_diff_reversed",
        (
            "logit(S) - logit(IO) on clean IOI prompts: negative name movers push this way, so removing them"
            " should lower it (raise IO - S)."
        ),
        ioi_probe.PROBE_ID,
        value=_reversed_logit_diff,
        needs=("answer", "wrong"),
    ),
    _at_last(
        "fv_answer_logprob",
        (
            "log P(answer) after 10-shot demonstrations of an in-context task (antonyms, capitals, upper case,"
            " next item); function-vector heads carry the task to the answer (Todd et al. 2024)."
        ),
        FV_PROBE,
    ),
    _at_last(
        "relation_tail_logprob",
        (
            "log P(tail) where a relation's tail is due after its head word ('The opposite of the word hot is"
            " the word' -> cold); semantic induction heads raise it (Ren et al. 2024)."
        ),
        RELATION_PROBE,
    ),
    _at_last(
        "successor_logprob",
        (
            "log P(next item) after four items of a comma-separated ordinal list (' Monday, Tuesday, Wednesday,"
            " Thursday,' -> ' Friday'; '1,2,3,4,' -> '5'); successor heads raise it (Gould et al. 2023)."
        ),
        COUNTING_PROBE,
    ),
    _at_last(
        "safety_reply_logprob",
        (
            "log P(the model's own clean first reply token) on harmful requests, minus the same on matched"
            " harmless ones (per request, signed +1 / -1, averaged): safety heads should move the reply to"
            " harmful requests more (Zhou et al. 2024). A one-token proxy, not a judged refusal rate."
        ),
        SAFETY_PROBE,
        value=_signed_logprob,
        needs=("answer", "sign"),
        fit=fit_reply_tokens,
    ),
)

PROBES.setdefault(ioi_probe.PROBE_ID, ioi_probe.generate)
PROBES.setdefault(FV_PROBE, fv_batches)
PROBES.setdefault(RELATION_PROBE, relation_batches)
PROBES.setdefault(COUNTING_PROBE, counting_batches)
PROBES.setdefault(SAFETY_PROBE, safety_batches)
for _metric in _NEW_METRICS:
    METRICS.setdefault(_metric.name, _metric)
for _type, _name in (
    ("name_mover", "ioi_logit_diff"),
    ("negative_name_mover", "ioi_logit_diff_reversed"),
    ("s_inhibition", "ioi_logit_diff"),
    ("function_vector", "fv_answer_logprob"),
    ("semantic_induction", "relation_tail_logprob"),
    ("successor", "successor_logprob"),
    ("safety", "safety_reply_logprob"),
):
    DEFAULT_METRIC.setdefault(_type, _name)
