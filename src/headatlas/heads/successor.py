"""Successor heads: attending to an ordinal token, the head promotes the next one ("Monday" -> "Tuesday").

Weights only, after "Successor Heads: Recurring, Interpretable Attention Heads In The Wild" (Gould et
al., 2023): for each ordinal task (digits 1-20, number words one-twenty, ordinal words first-tenth,
weekdays, months, capital letters) the head's OV circuit maps each item's effective embedding to logits
over that task's tokens (:mod:`headatlas.heads.weights`); the score is the fraction of (item, next item)
pairs, pooled over the tasks, where the next item ranks first. Chance is about ``1 / task size``; a
copying head scores 0, since it ranks the item itself first.

Only items that are one token in this tokenizer are used. Each task takes the form (space-prefixed,
as inside a sentence, or bare) that keeps more items; dropped items are counted in the scan's probe
info, and a pair counts only when both of its items were kept. Fewer than ``MIN_PAIRS`` pairs in all
is an error.

Causal check (``successor_logprob``): comma-separated lists that count through a task ("<BOS> Monday,
Tuesday, Wednesday, Thursday," -> " Friday"; bare forms "1,2,3,4," -> "5"); removing successor heads
should lower log P(next item), the incrementation behaviour Gould et al. ablate.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._lazy import lazy_module
from ..errors import InvalidSettingError, TaskUnavailable
from ..models.anatomy import anatomy
from ..probes import ProbeBatch, ProbeSettings
from ..probes.base import bos_id
from .registry import HeadType, ModelScore, register_head_type
from .tasks import encode, last_position_metric, prompt_batch, single_token
from .weights import ov_logits_by_layer

if TYPE_CHECKING:
    import torch

    from ..models.loader import LoadedModel
else:
    torch = lazy_module("torch")

_NUMBER_WORDS = (
    "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen",
    "eighteen nineteen twenty",
)
_MONTHS = (
    "January February March April May June July",
    "August September October November December",
)


def _words(*lines: str) -> tuple[str, ...]:
    return tuple(" ".join(lines).split(" "))


TASKS: dict[str, tuple[str, ...]] = {
    "digits": tuple(str(i) for i in range(1, 21)),
    "number_words": _words(*_NUMBER_WORDS),
    "ordinals": _words("first second third fourth fifth sixth seventh eighth ninth tenth"),
    "days": _words("Monday Tuesday Wednesday Thursday Friday Saturday Sunday"),
    "months": _words(*_MONTHS),
    "letters": tuple(string.ascii_uppercase),
}
MIN_PAIRS = 8
CONTEXT_ITEMS = 4  # items shown before the one the model should predict


@dataclass(frozen=True)
class Task:
    """One ordinal sequence as this tokenizer sees it."""

    name: str
    form: str  # "space" or "bare"
    token_ids: tuple[int | None, ...]  # per item; None where the item is not one token

    @property
    def kept(self) -> list[int]:
        return [t for t in self.token_ids if t is not None]

    @property
    def pairs(self) -> list[tuple[int, int]]:
        """(index in ``kept`` of an item, index of its successor) for consecutive items both kept."""
        position = {i: n for n, i in enumerate(i for i, t in enumerate(self.token_ids) if t is not None)}
        return [
            (position[i], position[i + 1])
            for i in range(len(self.token_ids) - 1)
            if i in position and i + 1 in position
        ]

    @property
    def dropped(self) -> int:
        return sum(t is None for t in self.token_ids)


def build_tasks(tokenizer: Any, tasks: dict[str, tuple[str, ...]] = TASKS) -> list[Task]:
    """The ordinal ``tasks`` in this tokenizer's single tokens; raises when fewer than ``MIN_PAIRS`` pairs remain."""
    built = []
    for name, items in tasks.items():
        spaced = Task(name, "space", tuple(single_token(tokenizer, " " + item) for item in items))
        bare = Task(name, "bare", tuple(single_token(tokenizer, item) for item in items))
        best = spaced if len(spaced.pairs) >= len(bare.pairs) else bare
        if len(set(best.kept)) != len(best.kept):  # two items sharing a token cannot be told apart
            best = Task(name, best.form, tuple(None for _ in items))
        built.append(best)
    n_pairs = sum(len(t.pairs) for t in built)
    if n_pairs < MIN_PAIRS:
        dropped = sum(t.dropped for t in built)
        raise TaskUnavailable(
            f"successor: only {n_pairs} ordinal pairs are single tokens in this tokenizer "
            f"({dropped} of {sum(len(v) for v in tasks.values())} items dropped); need at least {MIN_PAIRS}"
        )
    return built


def counting_prompts(tokenizer: Any) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per task with a run of ``CONTEXT_ITEMS + 1`` kept items: ``(ids [P, T], next items [P])``, one prompt per
    window (every start whose window is all single tokens)."""
    out = []
    separator = encode(tokenizer, ",")  # a list reads naturally; without commas models rarely continue it
    for task in build_tasks(tokenizer):
        ids, answers = [], []
        for start in range(len(task.token_ids) - CONTEXT_ITEMS):
            window = task.token_ids[start : start + CONTEXT_ITEMS + 1]
            if any(t is None for t in window):
                continue
            context = [piece for t in window[:-1] for piece in (t, *separator)]
            ids.append([bos_id(tokenizer), *context])
            answers.append(window[-1])
        if ids:
            out.append((torch.tensor(ids), torch.tensor(answers)))
    if not out:
        raise InvalidSettingError(
            f"successor: no ordinal task has {CONTEXT_ITEMS + 1} consecutive single-token items in this tokenizer"
        )
    return out


def successor_fractions(
    loaded: LoadedModel, tasks: dict[str, tuple[str, ...]] = TASKS
) -> tuple[torch.Tensor, list[Task]]:
    """``([L, H] fraction of ordinal pairs whose successor ranks first among its task's tokens, tasks)``."""
    anat = anatomy(loaded)
    all_tasks = build_tasks(loaded.tokenizer, tasks)
    built = [t for t in all_tasks if t.pairs]
    union = sorted({token for t in built for token in t.kept})  # every task's tokens, scored in one go
    where = {token: i for i, token in enumerate(union)}
    per_task = []
    for task in built:
        index = torch.tensor([where[token] for token in task.kept])
        source, target = (torch.tensor(side) for side in zip(*task.pairs, strict=True))
        per_task.append((index, source, target))
    hits = []
    for logits in ov_logits_by_layer(loaded, union, union):  # [H, U, U]
        layer_hits = torch.zeros(anat.n_heads)
        for index, source, target in per_task:
            rows = logits.cpu()[:, index[source]][:, :, index]  # [H, pairs, task size]
            wanted = rows.gather(-1, target[None, :, None].expand(rows.shape[0], -1, 1))
            unique_first = (rows >= wanted).sum(-1) == 1  # the successor beats every other item (ties fail)
            layer_hits += unique_first.float().sum(-1)
        hits.append(layer_hits)
    return torch.stack(hits) / sum(len(t.pairs) for t in built), all_tasks


def score(loaded: LoadedModel, probes: ProbeSettings, seed: int) -> ModelScore:
    fractions, tasks = successor_fractions(loaded)
    n_pairs = sum(len(t.pairs) for t in tasks)
    info = {
        "kind": "weights",
        "tasks": {
            t.name: {"form": t.form, "kept": len(t.kept), "dropped": t.dropped, "pairs": len(t.pairs)} for t in tasks
        },
        "items_dropped": sum(t.dropped for t in tasks),
    }
    return ModelScore(score=fractions, n_samples=n_pairs, info=info)


COUNTING_PROBE = "ordinal_counting"


def counting_batches(tokenizer: Any, settings: ProbeSettings, seed: int) -> list[ProbeBatch]:
    """Ordinal counting prompts, one batch per task (``answer`` = the next item); fixed, so ``seed`` is unused."""
    return [prompt_batch(ids, answers) for ids, answers in counting_prompts(tokenizer)]


SUCCESSOR_LOGPROB = last_position_metric(
    "successor_logprob",
    (
        "log P(next item) after four items of a comma-separated ordinal list (' Monday, Tuesday, Wednesday,"
        " Thursday,' -> ' Friday'; '1,2,3,4,' -> '5'); successor heads raise it (Gould et al. 2023)."
    ),
    COUNTING_PROBE,
)


HEAD_TYPE = register_head_type(
    HeadType(
        id="successor",
        name="Successor head",
        definition=(
            "Weights only: fraction of ordinal pairs (numbers, number words, ordinals, days, months, letters) "
            "whose successor ranks first among the task's tokens in the head's OV-circuit logits."
        ),
        papers=("Successor Heads: Recurring, Interpretable Attention Heads In The Wild",),
        probe=None,
        threshold=0.5,
        model_score=score,
        metric=SUCCESSOR_LOGPROB,
        probes={COUNTING_PROBE: counting_batches},
    )
)
