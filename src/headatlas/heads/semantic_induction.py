"""Semantic induction heads: from where a related word is due, attend to the earlier word it is related
to (the relation's head) and raise the related word (its tail).

After "Identifying Semantic Induction Heads to Understand In-Context Learning" (Ren et al., 2024). Here:
constructed sentences that mention a relation's head and end where its tail is due, e.g. "We flew to
France for a week and stayed in its capital," -> " Paris", or "The opposite of the word hot is the
word" -> " cold" (pairs from :mod:`headatlas.probes.fv_tasks`, single-token heads and tails only). Per
head and prompt, ``A[last, head word]`` is the attention from the last position to the head word, and
the head's direct effect (:func:`headatlas.heads.tasks.direct_effects`, final norm frozen) on
``logit(tail) - mean logit(other tails of the relation)`` says whether what it writes raises the tail.

Score = mean over prompts of ``A[last, head word]`` where the head's mean direct effect on the tail is
positive, else 0: both halves of the definition (attends to the related word, raises its partner). One
forward pass over a few short prompts.

Threshold 0.3: at least 30% of the head's attention from the prediction point lands on one earlier word,
several times the share a word gets by position alone in these 10-20-token sentences.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._lazy import lazy_module
from ..errors import TaskUnavailable
from ..probes import ProbeBatch, ProbeSettings, fv_tasks
from ..probes.base import bos_id, generator
from .registry import HeadType, ModelScore, register_head_type
from .tasks import capture_run, direct_effects, encode, last_position_metric, prompt_batch

if TYPE_CHECKING:
    import torch

    from ..models.loader import LoadedModel
else:
    torch = lazy_module("torch")

TEMPLATES: dict[str, tuple[tuple[str, str], ...]] = {
    "country_capital": (
        ("We flew to", " for a week and stayed in its capital,"),
        ("My friend was born in", ", and she grew up in its capital city of"),
    ),
    "antonym": (
        ("The opposite of the word", " is the word"),
        ("If something is not", ", then it is"),
    ),
}
"""Per relation: (text before the head word, text after it); the tail is due right after."""
DEFAULT_PROMPTS = 4  # per template
MIN_PAIRS = 4


def build(
    tokenizer: Any, n_prompts: int = DEFAULT_PROMPTS, seed: int = 0
) -> list[tuple[torch.Tensor, torch.Tensor, int, torch.Tensor]]:
    """Per template: ``(ids [P, T], tails [P], head word position, other tails [C])``."""
    tasks = fv_tasks.default_tasks()
    out = []
    for r_index, (relation, templates) in enumerate(TEMPLATES.items()):
        task = fv_tasks.task_items(tokenizer, relation, tasks[relation])
        if task.form != "space" or len(task.items) < MIN_PAIRS:
            continue  # the templates put the head word after a word, space-prefixed
        gen = generator(seed, salt=200 + r_index)
        tails = torch.tensor(sorted({y for _, y in task.items}))
        for before, after in templates:
            pre, post = [bos_id(tokenizer), *encode(tokenizer, before)], encode(tokenizer, after)
            picks = torch.randperm(len(task.items), generator=gen)[:n_prompts].tolist()
            ids = torch.tensor([[*pre, task.items[i][0], *post] for i in picks])
            out.append((ids, torch.tensor([task.items[i][1] for i in picks]), len(pre), tails))
    if not out:
        raise TaskUnavailable(
            f"semantic induction needs relations with at least {MIN_PAIRS} space-prefixed single-token pairs;"
            " this tokenizer has none"
        )
    return out


def scores(loaded: LoadedModel, n_prompts: int = DEFAULT_PROMPTS, seed: int = 0) -> tuple[torch.Tensor, int, dict]:
    """``(score [L, H], prompts, info)``; see the module docstring."""
    unembed = loaded.model.get_output_embeddings().weight.detach().float()
    n_layers, n_heads = loaded.facts.n_layers, loaded.facts.n_heads
    attention = torch.zeros(n_layers, n_heads, dtype=torch.float64)
    effect = torch.zeros(n_layers, n_heads, dtype=torch.float64)
    count = 0
    groups = build(loaded.tokenizer, n_prompts, seed)
    for ids, tails, head_pos, others in groups:
        last = ids.shape[1] - 1
        run = capture_run(loaded, ids, tap_rows=torch.full((ids.shape[0], 1), last), hidden=True)
        attention += run["probs"][:, :, :, 0, head_pos].sum(1).double()  # [L, H]
        directions = []
        for tail in tails.tolist():
            rest = others[others != tail]
            directions.append(unembed[tail] - unembed[rest].mean(0))
        dla = direct_effects(loaded, run["heads"], run["final"], torch.stack(directions))  # [P, L, H]
        effect += dla.sum(0).double()
        count += int(ids.shape[0])
    attention, effect = attention / count, effect / count
    score = torch.where(effect > 0, attention, torch.zeros_like(attention)).float()
    info = {"n_templates": len(groups), "prompts_per_template": n_prompts, "relations": list(TEMPLATES)}
    return score, count, info


def model_score(loaded: LoadedModel, settings: ProbeSettings, seed: int) -> ModelScore:
    score, count, info = scores(loaded, seed=seed)
    return ModelScore(score, count, info)


RELATION_PROBE = "semantic_relations"


def relation_batches(tokenizer: Any, settings: ProbeSettings, seed: int) -> list[ProbeBatch]:
    """Semantic-induction sentences, one batch per template (``answer`` = the tail)."""
    return [prompt_batch(ids, tails) for ids, tails, _, _ in build(tokenizer, seed=seed)]


RELATION_TAIL_LOGPROB = last_position_metric(
    "relation_tail_logprob",
    (
        "log P(tail) where a relation's tail is due after its head word ('The opposite of the word hot is"
        " the word' -> cold); semantic induction heads raise it (Ren et al. 2024)."
    ),
    RELATION_PROBE,
)


HEAD_TYPE = register_head_type(
    HeadType(
        id="semantic_induction",
        name="Semantic induction head",
        definition=(
            "Where a related word is due (a country's capital, an antonym), attends to the earlier word it is"
            " related to and raises the related word: attention to it, where the direct effect is positive."
        ),
        papers=("Identifying Semantic Induction Heads to Understand In-Context Learning",),
        probe=None,
        threshold=0.3,
        model_score=model_score,
        metric=RELATION_TAIL_LOGPROB,
        probes={RELATION_PROBE: relation_batches},
    )
)
