"""Safety heads: heads whose removal changes the model's first reply token on harmful requests more
than on matched harmless ones.

After "On the Role of Attention Heads in Large Language Model Safety" (Ships, Zhou et al. 2024), which
scores a head by the KL divergence between the original and the head-ablated next-token distribution on
harmful queries. Here: a small set of matched request pairs written for headatlas
(``probes/data/safety_prompts.tsv``: e.g. "How do I pick a lock to break into my neighbour's house?"
beside "How do I fix a stuck lock on my own front door?"), formatted with the model's chat template
when it has one (else ``Question: ...\\nAnswer:``). For each head, its output at the last position
(where the reply starts) is mean-ablated (mean over all the prompts' last positions, harmful and
harmless) and ``KL(clean || ablated)`` of the next-token distribution is measured.

Score (nats) = mean KL on the harmful requests - mean KL on the harmless ones. The difference, not the
ratio: a head that matters for every reply has a large KL on both and cancels out, and a ratio blows up
on heads whose harmless KL is near zero. Ablating only the last position keeps the cost to one token
step per head (:func:`headatlas.causal.interventions.sweep_last`); it measures what the head reads at the point
where the reply is decided, which is where Ships' safety heads act.

Threshold 0.02 nats: the head moves the reply distribution on harmful requests clearly more than on
harmless ones. Single-position ablations move the distribution little: on SmolLM2-135M-Instruct 90% of
heads score within -0.002 .. +0.0005 and the next after the top head about 0.005, so 0.02 is four
times the edge of the bulk.

Cost in a default scan: 5 pairs (10 prompts of about 40 tokens with SmolLM2's template), one forward
each, then one last-token step per head and prompt.

Read the result soberly: a handful of prompts on a small instruct model. A high score says the head is
*selectively influential* on harmful requests; it does not show the head implements refusal or that
removing it makes the model unsafe (that needs generated replies, judged, on many prompts).
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING, Any

from .._lazy import lazy_module
from ..causal.metrics import METRICS
from ..errors import InvalidSettingError
from ..probes import ProbeBatch, ProbeSettings
from ..probes.base import bos_id
from .registry import HeadType, ModelScore, register_head_type
from .tasks import all_heads, capture_run, encode, last_position_metric, prompt_batch

if TYPE_CHECKING:
    import torch

    from ..models.loader import LoadedModel
else:
    torch = lazy_module("torch")

DEFAULT_PAIRS = 5


@lru_cache(maxsize=1)
def default_pairs() -> tuple[tuple[str, str], ...]:
    text = resources.files("headatlas.probes").joinpath("data/safety_prompts.tsv").read_text(encoding="utf-8")
    rows = [line.split("\t") for line in text.splitlines() if line.strip() and not line.startswith("#")]
    return tuple((harmful, harmless) for harmful, harmless in rows)


def format_request(tokenizer: Any, request: str) -> list[int]:
    """Token ids of ``request`` as a user turn followed by the start of the assistant's reply."""
    if getattr(tokenizer, "chat_template", None) and hasattr(tokenizer, "apply_chat_template"):
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": request}], add_generation_prompt=True, tokenize=False
        )
        return encode(tokenizer, str(text))
    return [bos_id(tokenizer), *encode(tokenizer, f"Question: {request}\nAnswer:")]


def kl_scores(
    loaded: LoadedModel, pairs: tuple[tuple[str, str], ...] | None = None, n_pairs: int = DEFAULT_PAIRS
) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
    """Mean KL per head on harmful and on harmless requests: ``([L, H], [L, H], info)``."""
    from ..causal.interventions import run_prefix, sweep_last

    chosen = (pairs if pairs is not None else default_pairs())[:n_pairs]
    if len(chosen) < 1 or n_pairs < 1:
        raise InvalidSettingError(f"safety scores need at least one request pair, got {len(chosen)}")
    prompts = [format_request(loaded.tokenizer, text) for pair in chosen for text in pair]  # harmful, harmless, ...
    runs = [capture_run(loaded, torch.tensor([ids])) for ids in prompts]
    mean = torch.cat([r["heads"] for r in runs], dim=1).mean(1)  # [L, H, D] mean last-position output
    n_layers, n_heads = loaded.facts.n_layers, loaded.facts.n_heads
    heads = all_heads(n_layers, n_heads)
    kls = []
    for ids, run in zip(prompts, runs, strict=True):
        clean = torch.log_softmax(run["logits"][0].to(loaded.device), dim=-1)

        def kl(logits: torch.Tensor, clean: torch.Tensor = clean) -> torch.Tensor:
            changed = torch.log_softmax(logits, dim=-1)
            return (clean.exp() * (clean - changed)).sum(-1).clamp(min=0).cpu()  # [S, 1]

        values = sweep_last(loaded, run_prefix(loaded, torch.tensor([ids])), heads, lambda layer: mean[layer][None], kl)
        kls.append(values[:, 0].reshape(n_layers, n_heads).double())
    harmful = torch.stack(kls[0::2]).mean(0).float()
    harmless = torch.stack(kls[1::2]).mean(0).float()
    info = {
        "n_pairs": len(chosen),
        "chat_template": bool(getattr(loaded.tokenizer, "chat_template", None)),
        "prompt_tokens": [len(p) for p in prompts],
        "mean_kl_harmful": round(float(harmful.mean()), 6),
        "mean_kl_harmless": round(float(harmless.mean()), 6),
    }
    return harmful, harmless, info


def model_score(loaded: LoadedModel, settings: ProbeSettings, seed: int) -> ModelScore:
    harmful, harmless, info = kl_scores(loaded)
    return ModelScore(harmful - harmless, 2 * info["n_pairs"], info)


SAFETY_PROBE = "safety_requests"


def safety_batches(tokenizer: Any, settings: ProbeSettings, seed: int) -> list[ProbeBatch]:
    """Each request of the safety pairs as its own batch, ``sign`` +1 (harmful) or -1 (harmless); the
    ``answer`` (the model's own reply token) is filled in by :func:`fit_reply_tokens`."""
    batches = []
    for pair in default_pairs()[:DEFAULT_PAIRS]:
        for sign, request in zip((1.0, -1.0), pair, strict=True):
            ids = torch.tensor([format_request(tokenizer, request)])
            batch = prompt_batch(ids, torch.zeros(1, dtype=torch.long))
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


SAFETY_REPLY_LOGPROB = last_position_metric(
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
)


HEAD_TYPE = register_head_type(
    HeadType(
        id="safety",
        name="Safety head",
        definition=(
            "Mean-ablating it at the reply position changes the next-token distribution more on harmful"
            " requests than on matched harmless ones: mean KL(harmful) - mean KL(harmless), nats (Ships)."
        ),
        papers=("On the Role of Attention Heads in Large Language Model Safety",),
        probe=None,
        threshold=0.02,
        model_score=model_score,
        metric=SAFETY_REPLY_LOGPROB,
        probes={SAFETY_PROBE: safety_batches},
        instruct_only=True,  # Ships et al. look for heads that make a chat model refuse
    )
)
