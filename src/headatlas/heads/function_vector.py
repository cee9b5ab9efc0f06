"""Function vector heads: their mean output at the last token carries the task shown in context.

After "Function Vectors in Large Language Models" (Todd et al., 2024). For each in-context task
(:mod:`headatlas.probes.fv_tasks`: antonyms, country -> capital, upper case, next item; 10-shot
prompts) the head's mean output at the last position over clean prompts is patched, at the last
position only, into prompts whose demonstration labels are shuffled. The head's causal indirect effect
is ``P(answer | patched) - P(answer | shuffled)``; the score averages it over the shuffled prompts of
every task. One forward per head is avoided by running each shuffled prompt's prefix once and stepping
the last token for all heads together (:func:`headatlas.causal.interventions.sweep_last`); the score is exact,
not an attribution estimate.

Threshold 0.01: patching the head's mean output alone restores at least one percentage point of the
answer's probability on prompts that no longer show the task. Todd et al.'s strongest heads in 6B-scale
models reach a few points; on SmolLM2-135M the handful of heads above 0.01 stand clear of the bulk
(90% of heads lie within -0.001 .. +0.004).

Cost in a default scan: 4 tasks x 3 clean and 3 shuffled prompts (about 90 tokens each), then one
last-token step per head and shuffled prompt (12 x 270 steps on SmolLM2-135M, batched).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._lazy import lazy_module
from ..probes import ProbeBatch, ProbeSettings, fv_tasks
from .registry import HeadType, ModelScore, register_head_type
from .tasks import all_heads, capture_run, last_position_metric, prompt_batch

if TYPE_CHECKING:
    import torch

    from ..models.loader import LoadedModel
else:
    torch = lazy_module("torch")


def indirect_effects(
    loaded: LoadedModel,
    n_prompts: int = fv_tasks.DEFAULT_PROMPTS,
    seed: int = 0,
    tasks: dict[str, tuple[tuple[str, str], ...]] | None = None,
) -> tuple[torch.Tensor, int, dict[str, Any]]:
    """``(CIE [L, H], number of shuffled prompts, info)``; see the module docstring."""
    from ..causal.interventions import run_prefix, sweep_last

    data = fv_tasks.build(loaded.tokenizer, n_prompts, seed, tasks)
    n_layers, n_heads = loaded.facts.n_layers, loaded.facts.n_heads
    heads = all_heads(n_layers, n_heads)
    settings: list[tuple[int, int] | None] = [None, *heads]
    total = torch.zeros(n_layers, n_heads, dtype=torch.float64)
    count = 0
    per_task: dict[str, Any] = {}
    for task in data.tasks:
        clean = capture_run(loaded, task.clean)
        mean = clean["heads"].mean(1)  # [L, H, D] mean clean output at the last token
        batch = int(task.shuffled.shape[0])
        answer = task.answer.to(loaded.device)

        def prob(logits: torch.Tensor, answer: torch.Tensor = answer) -> torch.Tensor:
            p = torch.softmax(logits, dim=-1)  # [S, B, V]
            return p.gather(2, answer[None, :, None].expand(p.shape[0], -1, 1))[..., 0].cpu()

        probs = sweep_last(
            loaded,
            run_prefix(loaded, task.shuffled),
            settings,
            mean.__getitem__,  # layer -> [H, D], broadcast over the prompts
            prob,
        )  # [S, B]
        effect = (probs[1:] - probs[:1]).double()  # [heads, B]
        total += effect.sum(1).reshape(n_layers, n_heads)
        count += batch
        clean_p = prob(clean["logits"][None])[0]
        per_task[task.task] = {
            "p_answer_clean": round(float(clean_p.mean()), 6),
            "p_answer_shuffled": round(float(probs[0].mean()), 6),
        }
    info = {**data.info, "per_task": per_task}
    return (total / count).float(), count, info


def model_score(loaded: LoadedModel, settings: ProbeSettings, seed: int) -> ModelScore:
    score, count, info = indirect_effects(loaded, seed=seed)
    return ModelScore(score, count, info)


FV_PROBE = "fv_tasks"


def fv_batches(tokenizer: Any, settings: ProbeSettings, seed: int) -> list[ProbeBatch]:
    """Clean 10-shot prompts, one batch per task (``answer`` = the query's output)."""
    return [prompt_batch(t.clean, t.answer) for t in fv_tasks.build(tokenizer, fv_tasks.DEFAULT_PROMPTS, seed).tasks]


FV_ANSWER_LOGPROB = last_position_metric(
    "fv_answer_logprob",
    (
        "log P(answer) after 10-shot demonstrations of an in-context task (antonyms, capitals, upper case,"
        " next item); function-vector heads carry the task to the answer (Todd et al. 2024)."
    ),
    FV_PROBE,
)


HEAD_TYPE = register_head_type(
    HeadType(
        id="function_vector",
        name="Function vector head",
        definition=(
            "Its mean output at the last token of 10-shot prompts carries the task: patched into prompts with"
            " shuffled labels it raises P(correct answer) (causal indirect effect, probability)."
        ),
        papers=("Function Vectors in Large Language Models",),
        probe=None,
        threshold=0.01,
        model_score=model_score,
        metric=FV_ANSWER_LOGPROB,
        probes={FV_PROBE: fv_batches},
    )
)
