"""Scale benchmark: how the time and memory of a scan grow with model size and with context length.

``python -m headatlas.bench scale [--sizes s1,s2,s3] [--types a,b|all] [--contexts 512,1024,2048,4096]
[--tokenizer smollm2-135m|byte] [--full-probes]``

Models are random-initialised Llama-family checkpoints (transformers' ``LlamaConfig``, SmolLM2's head size
64 and 3:1 grouped-query attention, tied embeddings) of growing depth and width (:data:`SIZES`), with the
tokenizer of ``--tokenizer`` (so task types build their prompts as on the real model; ``byte`` leaves them
unavailable). Scores of random weights mean nothing; their cost is the point.

Each size runs in a fresh child process, which builds the model and then scans one head type at a time:
time is wall clock; memory is the rise of the peak resident set (VmHWM, reset before each type once freed
memory has gone back to the OS) above the resident set just before that type, so the weights are not
counted. A plain SDPA forward over the pattern probes' tokens is the baseline of each size. Then the
retrieval probe alone on the smallest model at growing context, against a plain forward over the same
tokens. Ratios are against the smallest size (or context) of the same run; the last line is one JSON object.
Probe sizes are reduced (:data:`QUICK`) unless ``--full-probes``. Types that share one experiment reuse it
as in a scan: ``negative_copying`` (after ``copying``), ``negative_name_mover`` and ``s_inhibition`` (after
``name_mover``) cost next to nothing. Pattern types also compute full-vocabulary logits at every probe row
(the probe's top-1 diagnostic), which with a 49k vocabulary is most of their memory at small sizes.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

SIZES: dict[str, dict[str, int]] = {
    "s1": {"layers": 4, "d_model": 128, "heads": 2, "kv_heads": 1, "ffn": 512},
    "s2": {"layers": 8, "d_model": 256, "heads": 4, "kv_heads": 2, "ffn": 1024},
    "s3": {"layers": 16, "d_model": 512, "heads": 8, "kv_heads": 4, "ffn": 2048},
    "s4": {"layers": 30, "d_model": 576, "heads": 9, "kv_heads": 3, "ffn": 1536},  # SmolLM2-135M's shape
}
QUICK: dict[str, Any] = {
    "n_repeat": 4,
    "repeat_len": 50,
    "n_text": 4,
    "text_len": 128,
    "needle_contexts": (1024,),
    "needle_per_context": 1,
}
PLAIN = "(plain forward)"


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _settle() -> int:
    """Free what can be freed, give it back to the OS, reset the peak mark; the resident set in KB."""
    gc.collect()
    with contextlib.suppress(OSError):  # not glibc: peaks then also count memory freed but kept by the allocator
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")
    return _status_kb("VmRSS")


def measure(fn: Any) -> dict[str, float]:
    """Wall and CPU seconds of ``fn()`` and its peak MB above the resident set before (``s``, ``cpu_s``, ``mb``).
    CPU time is the steadier figure on a shared machine; wall time is what a user waits."""
    base = _settle()
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return {
        "s": time.perf_counter() - wall,
        "cpu_s": time.process_time() - cpu,
        "mb": (_status_kb("VmHWM") - base) / 1024,
    }


def build(size: dict[str, int], tokenizer: Any, max_positions: int) -> Any:
    """A random Llama of ``size`` with the lens installed, as a LoadedModel."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from ..lens import install
    from ..models.facts import facts_from_config
    from ..models.loader import LoadedModel

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=size["d_model"], intermediate_size=size["ffn"],
        num_hidden_layers=size["layers"], num_attention_heads=size["heads"], num_key_value_heads=size["kv_heads"],
        head_dim=size["d_model"] // size["heads"], max_position_embeddings=max_positions, tie_word_embeddings=True,
        bos_token_id=getattr(tokenizer, "bos_token_id", 0), eos_token_id=getattr(tokenizer, "eos_token_id", 1),
    )  # fmt: skip
    model = LlamaForCausalLM(config).eval()
    install(model)
    facts = facts_from_config(config, name="random-llama", source="test", sha256=None)
    return LoadedModel(model=model, tokenizer=tokenizer, facts=facts)


def _tokenizer(where: str) -> Any:
    if where == "byte":
        from ..testing.tiny import ByteTokenizer

        return ByteTokenizer(4096)
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(where)


def run_child(
    name: str, types: list[str], contexts: list[int], tokenizer_dir: str, full: bool, probes: Any = None
) -> dict:
    """Scan one size type by type (and, with ``contexts``, the retrieval probe at each context); ``probes``
    (a ProbeSettings) overrides the probe sizes."""
    import torch

    from ..census import ScanSettings, run_census
    from ..heads import get_head_type
    from ..probes import PROBES, ProbeSettings
    from .census import plain_forwards

    torch.manual_seed(0)
    tokenizer = _tokenizer(tokenizer_dir)
    settings = probes if probes is not None else ProbeSettings() if full else ProbeSettings(**QUICK)
    loaded = build(SIZES[name], tokenizer, max(4096, *contexts, *settings.needle_contexts))
    params = sum(p.numel() for p in loaded.model.parameters())
    result: dict[str, Any] = {"size": name, "params": params, "types": {}, "contexts": {}}
    pattern_probes = sorted({p for p in (get_head_type(t).probe for t in types) if p in PROBES})
    batches = [b for probe in pattern_probes for b in PROBES[probe](tokenizer, settings, 0)]
    warm = ProbeSettings(n_repeat=1, repeat_len=8, n_text=1, text_len=16)  # first calls pay one-off set-up costs
    run_census(loaded, ScanSettings(head_types=("previous_token", "induction"), probes=warm))
    plain_forwards(loaded, batches[:1])
    result["types"][PLAIN] = measure(lambda: plain_forwards(loaded, batches))
    for type_id in types:
        holder: dict[str, Any] = {}

        def scan(type_id: str = type_id, holder: dict[str, Any] = holder) -> None:
            holder["map"] = run_census(loaded, ScanSettings(head_types=(type_id,), probes=settings))

        row: dict[str, Any] = measure(scan)
        info = holder["map"].probes.get(type_id, {})
        if isinstance(info, dict) and "unavailable" in info:
            row["unavailable"] = str(info["unavailable"])[:120]
        result["types"][type_id] = row
    for context in contexts:
        at = ProbeSettings(needle_contexts=(context,), needle_per_context=1)
        needle = PROBES["needle"](tokenizer, at, 0)
        plain = measure(lambda needle=needle: plain_forwards(loaded, needle))
        lens = measure(lambda at=at: run_census(loaded, ScanSettings(head_types=("retrieval",), probes=at)))
        result["contexts"][str(context)] = {"plain": plain, "scan": lens}
    return result


def _child(name: str, types: list[str], contexts: list[int], tokenizer_dir: str, full: bool) -> dict:
    command = [sys.executable, "-m", "headatlas.bench.scale", "--child", name, "--types", ",".join(types),
               "--tokenizer-dir", tokenizer_dir, "--contexts", ",".join(map(str, contexts)) or "none"]  # fmt: skip
    if full:
        command.append("--full-probes")
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["?"])[-1]
        raise RuntimeError(f"size {name} failed: {tail}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def _ratio(value: float, first: float) -> str:
    return f"{value / first:.2f}" if first > 0 else "-"


def report(runs: list[dict], contexts: dict[str, dict]) -> dict[str, Any]:
    """Print the tables (wall s, CPU s, peak MB, each with its ratio to the first size); return the JSON summary."""
    first = runs[0]
    print("sizes: " + ", ".join(f"{r['size']} = {SIZES[r['size']]} ({r['params'] / 1e6:.1f}M params)" for r in runs))
    header = "".join(f"{r['size'] + ' s':>9}{'cpu s':>8}{'x':>6}{'MB':>7}{'x':>6}" for r in runs)
    print(f"{'head type':<24}{header}")
    summary: dict[str, Any] = {}
    for type_id in first["types"]:
        cells, row = "", {}
        for r in runs:
            t, t0 = r["types"][type_id], first["types"][type_id]
            cells += f"{t['s']:>9.2f}{t['cpu_s']:>8.2f}{_ratio(t['cpu_s'], t0['cpu_s']):>6}"
            cells += f"{t['mb']:>7.0f}{_ratio(t['mb'], t0['mb']):>6}"
            row[r["size"]] = {k: round(t[k], 3) for k in ("s", "cpu_s", "mb")}
        note = " (n/a)" if "unavailable" in first["types"][type_id] else ""
        print(f"{type_id + note:<24}{cells}")
        summary[type_id] = row
    result: dict[str, Any] = {
        "benchmark": "scale",
        "params": {r["size"]: r["params"] for r in runs},
        "types": summary,
        "unavailable": sorted(t for t, v in first["types"].items() if "unavailable" in v),
        "threads": _threads(),
        "cpu_count": os.cpu_count(),
    }
    if contexts:
        c0 = next(iter(contexts.values()))
        print(f"retrieval probe on {first['size']} by context (x: against {next(iter(contexts))} tokens)")
        print(f"{'tokens':<8}{'plain cpu s':>12}{'scan cpu s':>12}{'scan/plain':>11}{'x':>6}"
              f"{'plain MB':>10}{'scan MB':>9}{'x':>6}")  # fmt: skip
        for context, c in contexts.items():
            plain, scan = c["plain"], c["scan"]
            print(
                f"{context:<8}{plain['cpu_s']:>12.2f}{scan['cpu_s']:>12.2f}{_ratio(scan['cpu_s'], plain['cpu_s']):>11}"
                f"{_ratio(scan['cpu_s'], c0['scan']['cpu_s']):>6}{plain['mb']:>10.0f}{scan['mb']:>9.0f}"
                f"{_ratio(scan['mb'], c0['scan']['mb']):>6}"
            )
        result["contexts"] = {
            k: {side: {m: round(v, 3) for m, v in c[side].items()} for side in ("plain", "scan")}
            for k, c in contexts.items()
        }
    return result


def _threads() -> int:
    import torch

    return int(torch.get_num_threads())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m headatlas.bench scale")
    parser.add_argument("--sizes", default="s1,s2,s3", help=f"comma-separated, of {', '.join(SIZES)}")
    parser.add_argument("--types", default="all", help="head-type ids, or all")
    parser.add_argument("--contexts", default="512,1024,2048,4096", help="retrieval contexts on the smallest size")
    parser.add_argument("--tokenizer", default="smollm2-135m", help="a model whose tokenizer to use, or byte")
    parser.add_argument("--full-probes", action="store_true", help="the scan's default probe sizes")
    parser.add_argument("--child")
    parser.add_argument("--tokenizer-dir")
    args = parser.parse_args(argv)
    sizes = args.sizes.split(",")
    if unknown := [s for s in sizes if s not in SIZES]:
        parser.error(f"unknown sizes {unknown}; valid: {', '.join(SIZES)}")
    contexts = [] if args.contexts in ("", "none") else [int(c) for c in args.contexts.split(",")]
    if args.child:
        print(json.dumps(run_child(args.child, args.types.split(","), contexts, args.tokenizer_dir, args.full_probes)))
        return 0

    from ..heads import head_types

    types = list(head_types()) if args.types == "all" else args.types.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        where = "byte"
        if args.tokenizer != "byte":
            from ..models.loader import load_model

            load_model(args.tokenizer).tokenizer.save_pretrained(tmp)
            where = tmp
        runs = []
        context_run: dict[str, dict] = {}
        for i, name in enumerate(sizes):
            run = _child(name, types, contexts if i == 0 else [], where, args.full_probes)
            context_run = context_run or run["contexts"]
            runs.append(run)
            print(f"  {name} done", file=sys.stderr, flush=True)
    print(json.dumps(report(runs, context_run), sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
