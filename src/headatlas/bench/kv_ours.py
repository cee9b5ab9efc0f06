"""The kv bench's own side (headatlas's environment): the atlas policies in the real :class:`PolicyCache`,
random heads at the same fraction, and the full cache, all compressed from one prefill per context.

Also measured here: the bytes each cache holds after the prefill, decode tokens/s of the real cache against
the full ``DynamicCache``, and greedy equality of the real cache with the masked simulation of its policy.
"""

from __future__ import annotations

import functools
import random
import statistics
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from .kv_protocol import forward, score_context, summarise

RULES = ("retrieval", "razor", "headkv")


def method_policies(
    headmap: dict[str, Any],
    fractions: tuple[float, ...],
    context: int,
    seed: int,
    scope: str = "cache",
    fill: str = "remainder",
) -> dict[str, Any]:
    """``method@fraction`` -> KVPolicy: each atlas rule, razor with its compensation token, random heads
    (``scope``, ``fill``: see :func:`headatlas.kv.policy.plan`)."""
    from functools import partial

    from ..kv.policy import plan as plan_any

    plan = partial(plan_any, scope=scope, fill=fill)

    rng = random.Random(seed)
    model = headmap["model"]
    shuffled = {
        "format": headmap["format"],
        "model": model,
        "heads": [
            {"layer": la, "head": h, "head_type": "retrieval", "score": rng.random()}
            for la in range(model["n_layers"])
            for h in range(model["n_heads"])
        ],
    }
    policies: dict[str, Any] = {}
    for f in fractions:
        for rule in RULES:
            policies[f"atlas_{rule}@{f}"] = plan(headmap, rule=rule, budget=f, context=context)
        policies[f"atlas_razor_comp@{f}"] = plan(headmap, rule="razor", budget=f, context=context, compensation=True)
        policies[f"random_heads@{f}"] = plan(shuffled, rule="retrieval", budget=f, context=context)
    return policies


def filled(policy: Any, config: Any, prefill: Any, *, masked: bool = False) -> Any:
    """A PolicyCache holding what ``prefill`` (a full DynamicCache after the context) leaves under ``policy``."""
    from ..kv.cache import PolicyCache

    cache = PolicyCache(policy, config, masked=masked)
    layers: list[Any] = cache.layers
    for i, layer in enumerate(prefill.layers):
        layers[i].update(layer.keys, layer.values)
    return cache


def dynamic_from(prefill: Any, config: Any) -> Any:
    """The full cache as transformers builds it for ``config`` (sliding-window layers keep their window)."""
    from transformers import DynamicCache

    cache = DynamicCache(config=config)
    layers: list[Any] = cache.layers
    for i, layer in enumerate(prefill.layers):
        layers[i].update(layer.keys, layer.values)
    return cache


def global_nbytes(cache: Any, sliding: set[int]) -> int:
    """Bytes held by the global layers (not the model's own sliding-window layers)."""
    from ..kv.cache import cache_nbytes

    return cache_nbytes(SimpleNamespace(layers=[layer for i, layer in enumerate(cache.layers) if i not in sliding]))


def run_ours(loaded: Any, headmap: dict[str, Any], samples: list[dict[str, Any]], length: int, args: Any) -> dict:
    """Scores, bytes held, decode speed and the simulation check at one context length."""
    import torch
    from transformers import DynamicCache

    from ..kv.cache import cache_nbytes, policy_attention

    model, config = loaded.model, loaded.model.config
    sliding = {int(x) for x in headmap["model"].get("sliding_layers") or []}
    scope, fill = getattr(args, "scope", "cache"), getattr(args, "fill", "remainder")
    policies = method_policies(headmap, args.grid.fractions, length, args.seed, scope, fill)
    counted = set() if scope == "cache" else sliding  # layers outside the budget's scope
    forced: dict[str, list[float]] = {"full": [], **{k: [] for k in policies}}
    losses: dict[str, list[float]] = {k: [] for k in forced}
    nbytes: dict[str, int] = {}
    total: dict[str, int] = {}
    extra: dict[str, Any] = {}
    with torch.no_grad(), policy_attention(model):
        for i, sample in enumerate(samples):
            t0 = time.perf_counter()
            prefill = DynamicCache()
            forward(model, sample["context"], prefill, last_only=True)
            t_prefill = time.perf_counter() - t0
            makers: dict[str, Callable[[], Any]] = {"full": functools.partial(dynamic_from, prefill, config)}
            for name, policy in policies.items():
                makers[name] = functools.partial(filled, policy, config, prefill)
            for name, make in makers.items():
                cache = make()
                if i == 0:  # bytes held right after the prefill
                    nbytes[name], total[name] = global_nbytes(cache, counted), cache_nbytes(cache)
                f, loss = score_context(model, cache, sample)
                forced[name] += f
                losses[name].append(loss)
            if i == 0:
                extra["simulation_equal"] = simulation_check(model, policies, prefill, sample)
                extra["decode_tokens_per_s"] = decode_speed(model, policies, prefill, args)
            print(
                f"  [{length}] context {i + 1}/{len(samples)}: prefill {t_prefill:.0f} s, "
                f"all methods {time.perf_counter() - t0:.0f} s",
                flush=True,
            )
    results = {name: summarise(forced[name], losses[name]) for name in forced}
    for name, r in results.items():
        r["kv_bytes"] = total[name]
        r["kv_fraction_real"] = round(nbytes[name] / nbytes["full"], 4)
        if name in policies:
            r["kv_fraction_nominal"] = round(policies[name].kv_fraction(length), 4)
    return {"results": results, **extra, "full_cache_bytes": total["full"]}


def simulation_check(model: Any, policies: dict[str, Any], prefill: Any, sample: dict[str, Any]) -> dict[str, bool]:
    """Greedy tokens (16 steps after the first question) of the real cache vs the masked simulation, for the
    retrieval rule and razor with compensation at the middle fraction."""
    fractions = sorted({k.split("@")[1] for k in policies})
    middle = fractions[len(fractions) // 2]
    out = {}
    for name in (f"atlas_retrieval@{middle}", f"atlas_razor_comp@{middle}"):
        tokens = []
        for masked in (False, True):
            cache = filled(policies[name], model.config, prefill, masked=masked)
            logits = forward(model, sample["needles"][0]["question"], cache).logits
            seq = []
            for _ in range(16):
                nxt = int(logits[0, -1].argmax())
                seq.append(nxt)
                logits = forward(model, [nxt], cache).logits
            tokens.append(seq)
        out[name] = tokens[0] == tokens[1]
    return out


def decode_speed(model: Any, policies: dict[str, Any], prefill: Any, args: Any) -> dict[str, float]:
    """Decode tokens per CPU second after the same prefill: full DynamicCache vs the real cache of the retrieval
    rule at each fraction and of razor with compensation at the middle one (median of 3 interleaved repeats)."""
    fractions = sorted({k.split("@")[1] for k in policies})
    makers: dict[str, Callable[[], Any]] = {"full": functools.partial(dynamic_from, prefill, model.config)}
    for name, policy in policies.items():
        if name.startswith("atlas_retrieval@") or name == f"atlas_razor_comp@{fractions[len(fractions) // 2]}":
            makers[name] = functools.partial(filled, policy, model.config, prefill)
    runs: dict[str, list[float]] = {k: [] for k in makers}
    for _ in range(3):  # interleaved: load from other processes hits every cache alike
        for name, make in makers.items():
            cache = make()
            nxt = 2
            start = time.process_time()  # CPU time: on a shared machine, wall time measures the neighbours
            for _ in range(args.decode_tokens):
                nxt = int(forward(model, [nxt], cache).logits[0, -1].argmax())
            runs[name].append(args.decode_tokens / (time.process_time() - start))
    return {k: round(statistics.median(v), 2) for k, v in runs.items()}
