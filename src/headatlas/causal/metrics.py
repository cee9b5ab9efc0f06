"""Causal metrics: one number per sample that a head's removal should change if the head does its job.

Every metric reads the logits at a few positions (``rows``) of a :class:`~headatlas.probes.ProbeBatch`
and returns one value per sample, differentiable (attribution patching takes its gradient). Each
says whether higher is better; :func:`damage` turns a before/after pair into "how much worse", so
effects of every metric point the same way (positive = the intervention hurt the model).

:data:`METRICS` holds the general metrics; a head type that needs a metric of its own carries it
(``HeadType.metric``) and adds it here when it registers. Which metric verifies a type is the type's own
``metric`` field.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .._lazy import lazy_module
from ..errors import InvalidSettingError
from ..probes import PROBES, ProbeBatch, ProbeSettings
from ..probes import needle as needle_probe
from ..probes import repeated as repeated_probe
from ..probes import text as text_probe

if TYPE_CHECKING:
    import torch

    from ..models.loader import LoadedModel
else:
    torch = lazy_module("torch")

RowsFn = Callable[[ProbeBatch], "torch.Tensor"]
"""``batch -> [B, R]`` positions whose logits the metric reads (``-1`` = padding)."""

ValueFn = Callable[["torch.Tensor", ProbeBatch, "torch.Tensor"], "torch.Tensor"]
"""``(logits [B, R, V] at rows, batch, rows [B, R]) -> [B]`` one value per sample."""

FitFn = Callable[["LoadedModel", list[ProbeBatch]], list[ProbeBatch]]
"""``(model, probe batches) -> batches`` completed with what only the model knows (e.g. its own reply token)."""


@dataclass(frozen=True)
class Metric:
    """A scalar per sample computed from logits at chosen positions."""

    name: str
    description: str
    probe: str | None  # probe whose batches it reads; None: user prompts (``answer``/``wrong`` extras)
    higher_is_better: bool
    rows: RowsFn
    value: ValueFn
    needs: tuple[str, ...] = ()  # ProbeBatch.extras keys the metric requires
    fit: FitFn | None = None  # run once on the clean model before the metric reads its probe's batches


def _targets(batch: ProbeBatch, rows: torch.Tensor) -> torch.Tensor:
    """Token each row predicts (the next one): ``[B, R]``."""
    last = batch.input_ids.shape[1] - 1
    return batch.input_ids.gather(1, (rows + 1).clamp(0, last))


def _mean_over(values: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    weight = valid.to(values.dtype)
    return (values * weight).sum(-1) / weight.sum(-1).clamp(min=1)


def _nll(logits: torch.Tensor, batch: ProbeBatch, rows: torch.Tensor) -> torch.Tensor:
    """Mean next-token negative log-likelihood over the valid rows of each sample (nats)."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    picked = logp.gather(-1, _targets(batch, rows)[..., None])[..., 0]
    return _mean_over(-picked, rows >= 0)


def _accuracy(logits: torch.Tensor, batch: ProbeBatch, rows: torch.Tensor) -> torch.Tensor:
    hits = (logits.argmax(-1) == _targets(batch, rows)).float()
    return _mean_over(hits, rows >= 0)


# -- rows -------------------------------------------------------------------------------------------
def second_copy_rows(batch: ProbeBatch) -> torch.Tensor:
    """Rows predicting x_1 … x_{p-1} of the second copy in ``[BOS, x, x]`` (x_0 is unpredictable)."""
    period = batch.extras["period"].to(batch.input_ids.device)
    width = int(period.max()) - 1
    offsets = torch.arange(width, device=period.device)[None, :]
    rows = period[:, None] + 1 + offsets
    return torch.where(offsets < (period[:, None] - 1), rows, torch.full_like(rows, -1))


def text_rows(batch: ProbeBatch) -> torch.Tensor:
    """Every real position that has a real next token."""
    length = batch.input_ids.shape[1]
    rows = torch.arange(length - 1, device=batch.input_ids.device).expand(batch.input_ids.shape[0], -1)
    real_next = batch.attention_mask[:, 1:].bool()
    return torch.where(real_next, rows, torch.full_like(rows, -1))


def needle_rows(batch: ProbeBatch) -> torch.Tensor:
    """The needle probe's rows: positions that predict each answer value token."""
    return batch.rows


def last_rows(batch: ProbeBatch) -> torch.Tensor:
    """The last real position of each sample (where a prompt's answer is predicted): ``[B, 1]``."""
    return (batch.attention_mask.sum(1) - 1)[:, None]


# -- values -----------------------------------------------------------------------------------------
def _logit_diff(logits: torch.Tensor, batch: ProbeBatch, rows: torch.Tensor) -> torch.Tensor:
    last = logits[:, 0].float()
    answer = batch.extras["answer"].to(last.device)
    wrong = batch.extras["wrong"].to(last.device)
    return last.gather(1, answer[:, None])[:, 0] - last.gather(1, wrong[:, None])[:, 0]


def _answer_logprob(logits: torch.Tensor, batch: ProbeBatch, rows: torch.Tensor) -> torch.Tensor:
    logp = torch.log_softmax(logits[:, 0].float(), dim=-1)
    return logp.gather(1, batch.extras["answer"].to(logp.device)[:, None])[:, 0]


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric(
            name="induction_loss",
            description=(
                "Mean next-token loss (nats) on the second copy of [BOS, x, x], x random tokens: only in-context"
                " copying predicts it, so heads of the induction circuit (induction, previous-token and"
                " duplicate-token heads) should raise it when removed (Olsson et al. 2022)."
            ),
            probe=repeated_probe.PROBE_ID,
            higher_is_better=False,
            rows=second_copy_rows,
            value=_nll,
        ),
        Metric(
            name="needle_loss",
            description=(
                "Mean teacher-forced loss (nats) of the needle's value tokens in the answer of a"
                " needle-in-a-haystack prompt: the answer must be copied from far back, which is what"
                " retrieval heads do (Wu et al. 2024)."
            ),
            probe=needle_probe.PROBE_ID,
            higher_is_better=False,
            rows=needle_rows,
            value=_nll,
        ),
        Metric(
            name="needle_copy_accuracy",
            description=(
                "Fraction of the needle's value tokens the model predicts top-1, teacher-forced (exact-copy"
                " accuracy of the Retrieval Head paper's test, without greedy decoding)."
            ),
            probe=needle_probe.PROBE_ID,
            higher_is_better=True,
            rows=needle_rows,
            value=_accuracy,
        ),
        Metric(
            name="text_loss",
            description=(
                "Mean next-token loss (nats) on natural prose. Sink, local and current-token heads have no"
                " task of their own to isolate: sink heads park attention on BOS (removing what they add"
                " tests whether that parking matters), local and current-token heads feed short-range"
                " syntax. Ordinary language modelling is where either shows."
            ),
            probe=text_probe.PROBE_ID,
            higher_is_better=False,
            rows=text_rows,
            value=_nll,
        ),
        Metric(
            name="logit_diff",
            description=(
                "logit(answer) - logit(wrong) at the prompt's last position, the metric of activation-patching"
                " studies such as IOI (Wang et al. 2023)."
            ),
            probe=None,
            higher_is_better=True,
            rows=last_rows,
            value=_logit_diff,
            needs=("answer", "wrong"),
        ),
        Metric(
            name="answer_logprob",
            description="Log-probability of the answer token at the prompt's last position.",
            probe=None,
            higher_is_better=True,
            rows=last_rows,
            value=_answer_logprob,
            needs=("answer",),
        ),
    )
}


def register_metric(metric: Metric) -> Metric:
    """Add a head type's own metric; the same metric again is a no-op, another one under a taken name is refused."""
    held = METRICS.get(metric.name)
    if held is not None and held is not metric:
        raise InvalidSettingError(f"metric {metric.name!r} is already registered")
    METRICS[metric.name] = metric
    return metric


def get_metric(name: str | Metric) -> Metric:
    """A metric by name (or the metric itself); unknown names raise with the valid list."""
    if isinstance(name, Metric):
        return name
    try:
        return METRICS[name]
    except KeyError:
        raise InvalidSettingError(f"unknown metric {name!r}; valid metrics are {', '.join(METRICS)}") from None


def probe_batches(loaded: LoadedModel, metric: Metric, settings: ProbeSettings, seed: int) -> list[ProbeBatch]:
    """The batches of the metric's own probe, fitted to the model when the metric needs it."""
    if metric.probe is None:
        raise InvalidSettingError(
            f"metric {metric.name} has no probe of its own: it needs a prompt (and {' and '.join(metric.needs)} tokens)"
        )
    batches = PROBES[metric.probe](loaded.tokenizer, settings, seed)
    return metric.fit(loaded, batches) if metric.fit is not None else batches


def check_fits(metric: Metric, batch: ProbeBatch) -> None:
    """Refuse a batch that lacks what the metric reads (e.g. answer tokens)."""
    missing = [k for k in metric.needs if k not in batch.extras]
    if missing:
        raise InvalidSettingError(f"metric {metric.name} needs {' and '.join(missing)} token(s) for the prompt")
    if metric.probe == repeated_probe.PROBE_ID and "period" not in batch.extras:
        raise InvalidSettingError(f"metric {metric.name} reads repeated-token batches ([BOS, x, x] with a period)")


def damage(metric: Metric, clean: torch.Tensor | float, changed: torch.Tensor | float) -> torch.Tensor | float:
    """How much worse ``changed`` is than ``clean`` under ``metric`` (positive = hurt)."""
    return (clean - changed) if metric.higher_is_better else (changed - clean)
