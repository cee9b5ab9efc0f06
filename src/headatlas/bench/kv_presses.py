"""The kv bench's kvpress side, run in the environment pinned to kvpress's range (transformers 5.2.0, kvpress
0.5.5): StreamingLLM, SnapKV, Knorm, ExpectedAttention, DuoAttentionPress fed our exported pattern, and
AtlasPress (our policy as a press).

One prefill per context serves every press: the prefill runs once with forward hooks that record each
attention layer's inputs and outputs, then each press's own ``forward_hook`` (kvpress's code, unchanged) is
called with those records on a copy of the prefilled cache, layer by layer, exactly as kvpress calls it at
the end of each layer's prefill forward. A press compresses after its layer has attended, so the prefill's
activations do not depend on the press and the replay is what a live prefill under the press computes
(``tests/kvpress_env`` checks it against kvpress's own context manager). As kvpress does for Gemma 3, the
model's sliding-window layers are not compressed.

Usage (by ``python -m headatlas.bench kv``): ``python -m headatlas.bench.kv_presses JOB.json OUT.json``.
"""

from __future__ import annotations

import copy
import functools
import inspect
import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from .kv_protocol import forward, score_context, summarise

PRESSES = ("streaming_llm", "snapkv", "knorm", "expected_attention", "duo_attention", "atlas_press")


def attention_layers(model: Any) -> list[Any]:
    """The attention modules kvpress hooks: every layer's ``self_attn`` except sliding-window ones, each given
    the model's rotary embedding as kvpress's ``BasePress.__call__`` does."""
    inner = model.model.language_model if hasattr(model.model, "language_model") else model.model
    modules = [layer.self_attn for layer in inner.layers if not getattr(layer.self_attn, "is_sliding", False)]
    rotary = inner.rotary_emb
    if "layer_type" in inspect.signature(rotary.forward).parameters:
        # Gemma 3's one rotary module serves both layer types; the compressed (global) layers use "full_attention"
        # (kvpress 0.5.5 calls it without a layer type, which fails on transformers 5.2)
        rotary = _GlobalRotary(rotary)
    for module in modules:
        module.rotary_emb = rotary
    return modules


class _GlobalRotary(torch.nn.Module):
    """A rotary module that takes a layer type, called as one that does not: the global layers' embedding."""

    def __init__(self, rotary: Any) -> None:
        super().__init__()
        self.rotary = rotary

    def forward(self, x: Any, position_ids: Any) -> Any:
        return self.rotary(x, position_ids, layer_type="full_attention")


@contextmanager
def recording(model: Any) -> Iterator[dict[int, tuple[dict[str, Any], Any]]]:
    """Record (kwargs, output) of each compressible attention layer during one forward (the prefill)."""
    records: dict[int, tuple[dict[str, Any], Any]] = {}
    hooks = []

    def hook(module: Any, args: Any, kwargs: dict[str, Any], output: Any) -> None:
        records[module.layer_idx] = (dict(kwargs), output)

    for module in attention_layers(model):
        hooks.append(module.register_forward_hook(hook, with_kwargs=True))
    try:
        yield records
    finally:
        for h in hooks:
            h.remove()


def replay(press: Any, model: Any, prefill: Any, records: dict[int, tuple[dict[str, Any], Any]]) -> Any:
    """A copy of ``prefill`` compressed by ``press``: its ``forward_hook`` on each recorded layer, in order."""
    cache = copy.deepcopy(prefill)
    press.post_init_from_model(model)
    for module in attention_layers(model):
        module.masked_key_indices = None  # what kvpress's attention patch does when a prefill starts
        kwargs, output = records[module.layer_idx]
        press.forward_hook(module, [], {**kwargs, "past_key_values": cache}, output)
    return cache


def pruned_forward(model: Any, ids: list[int], cache: Any, start: int) -> Any:
    """Read ``ids`` after a context of ``start`` tokens whose compressed layers may hold fewer keys.

    As kvpress's pipeline does: RoPE positions are the true ones (``position_ids``), while ``cache_position``
    counts the keys held, so transformers' causal mask fits the compressed layout. A model with sliding-window
    layers (Gemma 3) keeps those uncompressed, so one ``cache_position`` cannot fit both: the sliding layers
    get transformers' own mask at the true positions, the compressed layers all held keys plus a causal block.
    """
    import torch

    q = len(ids)
    input_ids = torch.tensor([ids], device=model.device)
    positions = torch.arange(start, start + q, device=model.device)
    held = cache.layers[attention_layers(model)[0].layer_idx].keys.shape[2]
    kwargs: dict[str, Any] = {"cache_position": torch.arange(held, held + q, device=model.device)}
    if any(getattr(m, "is_sliding", False) for m in _all_attention(model)):
        from transformers.masking_utils import create_sliding_window_causal_mask

        embeds = model.get_input_embeddings()(input_ids)
        sliding = create_sliding_window_causal_mask(
            config=model.config,
            inputs_embeds=embeds,
            attention_mask=None,
            cache_position=positions,
            past_key_values=cache,
            position_ids=positions[None],
        )
        full = torch.ones(q, held + q, dtype=torch.bool, device=model.device)
        full[:, held:] = torch.ones(q, q, dtype=torch.bool, device=model.device).tril()
        kwargs = {
            "cache_position": positions,
            "attention_mask": {"full_attention": full[None, None], "sliding_attention": sliding},
        }
    return model(input_ids=input_ids, past_key_values=cache, position_ids=positions[None], use_cache=True, **kwargs)


def _all_attention(model: Any) -> list[Any]:
    inner = model.model.language_model if hasattr(model.model, "language_model") else model.model
    return [layer.self_attn for layer in inner.layers]


def held_fractions(model: Any, cache: Any, length: int) -> tuple[float, float]:
    """(tokens the tensors hold, tokens attention may still read) / full, over the compressed layers."""
    modules = attention_layers(model)
    held = sum(cache.layers[m.layer_idx].keys.shape[2] for m in modules)
    masked = 0
    for m in modules:
        idx = getattr(m, "masked_key_indices", None)
        if idx is not None:
            masked += int(idx[0].numel())
    heads = cache.layers[modules[0].layer_idx].keys.shape[1]
    return held / (len(modules) * length), (held * heads - masked) / (len(modules) * length * heads)


def make_presses(job: dict[str, Any], fraction: float, work: Path) -> dict[str, tuple[Any, Any]]:
    """name -> (press, context manager serving our DuoAttention pattern or None)."""
    from kvpress import DuoAttentionPress, ExpectedAttentionPress, KnormPress, SnapKVPress, StreamingLLMPress

    from ..kv.duo import export_duo
    from ..kv.policy import KVPolicy
    from ..kv.press import AtlasPress

    policies = job["policies"][str(job["length"])]
    retrieval = KVPolicy.from_json(policies[f"atlas_retrieval@{fraction}"])
    headkv = KVPolicy.from_json(policies[f"atlas_headkv@{fraction}"])
    duo_dir = export_duo(retrieval, work / f"duo-{job['model_name']}-{job['length']}-{fraction}")
    n_streaming = sum(not h.full for h in retrieval.planned)
    return {
        "streaming_llm": (StreamingLLMPress(compression_ratio=1 - fraction), None),
        "snapkv": (SnapKVPress(compression_ratio=1 - fraction), None),
        "knorm": (KnormPress(compression_ratio=1 - fraction), None),
        "expected_attention": (ExpectedAttentionPress(compression_ratio=1 - fraction), None),
        # kvpress streams round(ratio x table size) heads, the lowest gates: exactly the policy's streaming heads
        "duo_attention": (DuoAttentionPress(head_compression_ratio=n_streaming / len(retrieval.heads)), duo_dir),
        "atlas_press": (AtlasPress(headkv), None),
    }


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    path_in, path_out = Path(args[0]), Path(args[1])
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, DynamicCache

    from ..kv.press import local_duo_pattern

    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    job = json.loads(path_in.read_text())
    torch.manual_seed(job["seed"])
    if job.get("threads"):
        torch.set_num_threads(int(job["threads"]))
    model = AutoModelForCausalLM.from_pretrained(job["model_dir"], dtype=torch.float32).eval()
    model.set_attn_implementation("sdpa")  # kvpress wraps transformers' own attention functions
    work = path_out.parent
    all_results: dict[str, Any] = {}
    for length_key, samples in job["samples"].items():
        length = int(length_key)
        job["length"] = length
        per: dict[str, dict[str, list[float]]] = {}
        fractions_held: dict[str, tuple[float, float]] = {}
        presses_by_f = {f: make_presses(job, f, work) for f in job["fractions"]}
        failed: dict[str, str] = {}
        for i, sample in enumerate(samples):
            t0 = time.perf_counter()
            prefill = DynamicCache(config=model.config)  # sliding layers as such: the masks need it (Gemma 3)
            with torch.no_grad(), recording(model) as records:
                forward(model, sample["context"], prefill, last_only=True)
            t_prefill = time.perf_counter() - t0
            for f, presses in presses_by_f.items():
                for name, (press, duo_dir) in presses.items():
                    if name not in job["presses"]:
                        continue
                    key = f"{name}@{f}"
                    if key in failed:
                        continue
                    try:
                        with torch.no_grad(), local_duo_pattern(duo_dir, model) if duo_dir else _nothing():
                            cache = replay(press, model, prefill, records)
                            if i == 0:
                                fractions_held[key] = held_fractions(model, cache, length)
                            fwd = functools.partial(pruned_forward, start=len(sample["context"]))
                            forced, loss = score_context(model, cache, sample, fwd)
                    except Exception as exc:  # a press that fails on this model is reported, the others go on
                        failed[key] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
                        print(f"  kvpress {key} failed: {failed[key]}", flush=True)
                        continue
                    cell = per.setdefault(key, {"forced": [], "loss": []})
                    cell["forced"] += forced
                    cell["loss"].append(loss)
            del records
            print(
                f"  [kvpress {length}] context {i + 1}/{len(samples)}: prefill {t_prefill:.0f} s, "
                f"all presses {time.perf_counter() - t0:.0f} s",
                flush=True,
            )
        results: dict[str, dict[str, Any]] = {}
        for key, cell in per.items():
            results[key] = summarise(cell["forced"], cell["loss"])
            results[key]["kv_fraction_real"] = round(fractions_held[key][0], 4)
            results[key]["kv_fraction_attended"] = round(fractions_held[key][1], 4)
        for key, error in failed.items():
            results[key] = {"error": error}
        all_results[length_key] = results
    out = {
        "results": all_results,
        "transformers": transformers.__version__,
        "cpu_seconds": round(time.process_time(), 1),
    }
    path_out.write_text(json.dumps(out))
    return 0


@contextmanager
def _nothing() -> Iterator[None]:
    yield


if __name__ == "__main__":
    sys.exit(main())
