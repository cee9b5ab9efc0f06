"""In-context tasks for function-vector heads (Function Vectors in Large Language Models, Todd et al. 2024).

Tasks written for headatlas (``data/fv_tasks.tsv``): antonyms, country -> capital, lower -> upper case,
next item of a sequence. A prompt shows ``N_SHOTS`` demonstrations then a query, in Todd et al.'s
format ``Q: x\\nA: y\\n\\n ... Q: x_q\\nA:``; the answer is ``y_q``. Its *shuffled* twin keeps the
demonstration inputs and outputs but permutes the outputs among the demonstrations (no demonstration
keeps its own label), so the prompt no longer shows the task.

Prompts are built from token pieces, so every prompt has the same length. An item is used only when
its input and output are one token each, in the form the prompt uses (space-prefixed, or bare after a
piece ending in a space when that keeps more items: byte-level toy tokenizers). A task with fewer
than ``MIN_ITEMS`` usable items is dropped; items and tasks dropped are counted, and no usable task
left is an error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING, Any

from .._lazy import lazy_module
from ..errors import InvalidSettingError, TaskUnavailable
from .base import bos_id, generator

if TYPE_CHECKING:
    import torch
else:
    torch = lazy_module("torch")

N_SHOTS = 10
MIN_ITEMS = N_SHOTS + 2  # demonstrations and a query, with a little room to vary them
DEFAULT_PROMPTS = 3  # per task (each costs one last-token step per head; see heads.function_vector)


@lru_cache(maxsize=1)
def default_tasks() -> dict[str, tuple[tuple[str, str], ...]]:
    text = resources.files("headatlas.probes").joinpath("data/fv_tasks.tsv").read_text(encoding="utf-8")
    tasks: dict[str, list[tuple[str, str]]] = {}
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        task, x, y = line.split("\t")
        tasks.setdefault(task, []).append((x, y))
    return {k: tuple(v) for k, v in tasks.items()}


@dataclass(frozen=True)
class Task:
    """One task as this tokenizer sees it: usable items as (input id, output id)."""

    name: str
    form: str
    items: tuple[tuple[int, int], ...]
    dropped: int


def _single(tokenizer: Any, text: str) -> int | None:
    ids = tokenizer.encode(text, add_special_tokens=False)
    return int(ids[0]) if len(ids) == 1 else None


def task_items(tokenizer: Any, name: str, pairs: tuple[tuple[str, str], ...]) -> Task:
    """Keep the pairs whose input and output are single tokens; the form keeping more wins (space on a tie)."""
    best: Task | None = None
    for form in ("space", "bare"):
        prefix = " " if form == "space" else ""
        kept = []
        for x, y in pairs:
            xi, yi = _single(tokenizer, prefix + x), _single(tokenizer, prefix + y)
            if xi is not None and yi is not None:
                kept.append((xi, yi))
        kept = list(dict.fromkeys(kept))
        first_output: dict[int, int] = {}
        for xi, yi in kept:
            first_output.setdefault(xi, yi)  # one output per input
        unique = list(first_output.items())
        task = Task(name, form, tuple(unique), len(pairs) - len(unique))
        if best is None or len(task.items) > len(best.items):
            best = task
    assert best is not None
    return best


@dataclass
class TaskPrompts:
    """Clean and shuffled prompts of one task, ``[P, T]`` each, and the answer token of each."""

    task: str
    clean: torch.Tensor
    shuffled: torch.Tensor
    answer: torch.Tensor  # [P]


@dataclass
class FVSet:
    tasks: list[TaskPrompts]
    info: dict[str, Any] = field(default_factory=dict)


def _pieces(tokenizer: Any, form: str) -> tuple[list[int], list[int], list[int]]:
    """Token ids of ``Q:``, ``\\nA:`` and the blank line between demonstrations, in the item form."""
    gap = " " if form == "bare" else ""
    enc = lambda text: [int(i) for i in tokenizer.encode(text, add_special_tokens=False)]  # noqa: E731
    return enc("Q:" + gap), enc("\nA:" + gap), enc("\n\n")


def _derangement(n: int, gen: torch.Generator) -> torch.Tensor:
    while True:
        perm = torch.randperm(n, generator=gen)
        if bool((perm != torch.arange(n)).all()):
            return perm


def build(
    tokenizer: Any,
    n_prompts: int = DEFAULT_PROMPTS,
    seed: int = 0,
    tasks: dict[str, tuple[tuple[str, str], ...]] | None = None,
) -> FVSet:
    """``n_prompts`` clean/shuffled prompt pairs per usable task (deterministic in ``seed``)."""
    if not isinstance(n_prompts, int) or n_prompts < 1:
        raise InvalidSettingError(f"n_prompts must be a positive integer, got {n_prompts!r}")
    source = tasks if tasks is not None else default_tasks()
    bos = bos_id(tokenizer)
    out: list[TaskPrompts] = []
    info: dict[str, Any] = {"n_shots": N_SHOTS, "prompts_per_task": n_prompts, "tasks": {}, "tasks_dropped": []}
    for t_index, (name, pairs) in enumerate(source.items()):
        task = task_items(tokenizer, name, pairs)
        info["tasks"][name] = {"form": task.form, "items": len(task.items), "dropped": task.dropped}
        if len(task.items) < MIN_ITEMS:
            info["tasks_dropped"].append(name)
            continue
        q, a, gap = _pieces(tokenizer, task.form)
        gen = generator(seed, salt=100 + t_index)
        clean: list[list[int]] = []
        shuffled: list[list[int]] = []
        answers: list[int] = []
        for _ in range(n_prompts):
            chosen = [task.items[i] for i in torch.randperm(len(task.items), generator=gen)[: N_SHOTS + 1].tolist()]
            demos, (xq, yq) = chosen[:N_SHOTS], chosen[N_SHOTS]
            perm = _derangement(N_SHOTS, gen).tolist()
            for labels, sink in (([y for _, y in demos], clean), ([demos[i][1] for i in perm], shuffled)):
                ids = [bos]
                for (x, _), y in zip(demos, labels, strict=True):
                    ids += [*q, x, *a, y, *gap]
                sink.append([*ids, *q, xq, *a])
            answers.append(yq)
        out.append(TaskPrompts(name, torch.tensor(clean), torch.tensor(shuffled), torch.tensor(answers)))
    if not out:
        counts = ", ".join(f"{k}: {v['items']}" for k, v in info["tasks"].items())
        raise TaskUnavailable(
            f"no function-vector task has {MIN_ITEMS} items that are one token in this tokenizer"
            f" (single-token items per task: {counts})"
        )
    return FVSet(out, info)
