"""Scale benchmark: how the time and memory of a scan grow with model size and with context length.

``python -m headatlas.bench scale [--sizes s1,s2,s3] [--types a,b|all] [--verify-types induction|none]
[--contexts 512,1024,2048,4096] [--tokenizer smollm2-135m|byte] [--full-probes] [--gpu-tflops 100] [--out DIR]``

Models are random-initialised checkpoints built with transformers' own config classes (:data:`SIZES`): Llama
(``s1``-``s6``, SmolLM2's head size 64, grouped-query attention, tied embeddings, 7M to 1.1B parameters) and
GPT-NeoX (``p1``-``p3``, Pythia-70M/160M/410M shapes), with the tokenizer of ``--tokenizer`` (so task types
build their prompts as on the real model; ``byte`` leaves them unavailable). Scores of random weights mean
nothing; their cost is the point.

Each size runs in a fresh child process, which builds the model and then measures: a plain SDPA forward over
the pattern probes' tokens (the baseline), the pattern census of every pattern type at once (what a scan
runs), each head type alone, and ``--verify`` of ``--verify-types``. Time is wall clock and CPU seconds;
memory is the rise of the peak resident set (VmHWM, reset before each step once freed memory has gone back
to the OS) above the resident set just before it, so the weights are not counted. Then the retrieval probe
alone on the smallest model at growing context, against a plain forward over the same tokens.

The report gives ratios against the smallest size (or context), the growth exponents ``b`` of ``y ~ x^b``
fitted per family (time and memory against parameters; the retrieval probe against context), the census
against a plain forward at every size, and a projection of the default scan of an 8B Llama in bf16 on one
GPU (:func:`project`: an extrapolation, stated with its assumptions). It writes ``scale.json`` and a PNG
(``scale.png``, needs matplotlib) under ``--out``; the last printed line is the JSON summary.

Probe sizes are reduced (:data:`QUICK`) unless ``--full-probes``. Types that share one experiment reuse it
as in a scan: ``negative_copying`` (after ``copying``), ``negative_name_mover`` and ``s_inhibition`` (after
``name_mover``) cost next to nothing."""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .proc import status_kb

SIZES: dict[str, dict[str, Any]] = {
    "s1": {"layers": 4, "d_model": 128, "heads": 2, "kv_heads": 1, "ffn": 512},
    "s2": {"layers": 8, "d_model": 256, "heads": 4, "kv_heads": 2, "ffn": 1024},
    "s3": {"layers": 16, "d_model": 512, "heads": 8, "kv_heads": 4, "ffn": 2048},
    "s4": {"layers": 30, "d_model": 576, "heads": 9, "kv_heads": 3, "ffn": 1536},  # SmolLM2-135M's shape
    "s5": {"layers": 32, "d_model": 960, "heads": 15, "kv_heads": 5, "ffn": 2560},  # SmolLM2-360M's shape
    "s6": {"layers": 16, "d_model": 2048, "heads": 32, "kv_heads": 8, "ffn": 8192},  # Llama 3.2 1B's shape
    # GPT-NeoX (Pythia's shapes: LayerNorm, parallel attention and MLP, rotary on a quarter of each head,
    # untied embeddings, no grouped-query attention)
    "p1": {"family": "gpt_neox", "layers": 6, "d_model": 512, "heads": 8, "kv_heads": 8, "ffn": 2048},
    "p2": {"family": "gpt_neox", "layers": 12, "d_model": 768, "heads": 12, "kv_heads": 12, "ffn": 3072},
    "p3": {"family": "gpt_neox", "layers": 24, "d_model": 1024, "heads": 16, "kv_heads": 16, "ffn": 4096},
}
"""Random-initialised shapes. Llama (``s*``: SmolLM2's head size 64, grouped-query attention, tied embeddings)
from 7M to 1.1B parameters with SmolLM2's 49k vocabulary, and GPT-NeoX (``p*``) at Pythia-70M, -160M and -410M."""

QUICK: dict[str, Any] = {
    "n_repeat": 4,
    "repeat_len": 50,
    "n_text": 4,
    "text_len": 128,
    "needle_contexts": (1024,),
    "needle_per_context": 1,
}
PLAIN = "(plain forward)"
CENSUS = "(pattern census)"  # every pattern type at once, as a scan runs them: one pass per probe
VERIFY = "(verify)"  # `--verify` of the types in --verify-types, after their census


def _settle() -> int:
    """Free what can be freed, give it back to the OS, reset the peak mark; the resident set in KB."""
    gc.collect()
    with contextlib.suppress(OSError):  # not glibc: peaks then also count memory freed but kept by the allocator
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")
    return status_kb("VmRSS")


def measure(fn: Any) -> dict[str, float]:
    """Wall and CPU seconds of ``fn()`` and its peak MB above the resident set before (``s``, ``cpu_s``, ``mb``).
    CPU time is the steadier figure on a shared machine; wall time is what a user waits."""
    base = _settle()
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return {
        "s": time.perf_counter() - wall,
        "cpu_s": time.process_time() - cpu,
        "mb": (status_kb("VmHWM") - base) / 1024,
    }


def build(size: dict[str, Any], tokenizer: Any, max_positions: int) -> Any:
    """A random model of ``size`` (Llama unless ``size["family"]`` says otherwise) with the lens, as a LoadedModel."""
    import torch
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM, LlamaConfig, LlamaForCausalLM

    from ..lens import install
    from ..models.facts import facts_from_config
    from ..models.loader import LoadedModel

    torch.manual_seed(0)
    bos, eos = getattr(tokenizer, "bos_token_id", 0), getattr(tokenizer, "eos_token_id", 1)
    family = size.get("family", "llama")
    if family == "llama":
        config: Any = LlamaConfig(
            vocab_size=len(tokenizer), hidden_size=size["d_model"], intermediate_size=size["ffn"],
            num_hidden_layers=size["layers"], num_attention_heads=size["heads"],
            num_key_value_heads=size["kv_heads"], head_dim=size["d_model"] // size["heads"],
            max_position_embeddings=max_positions, tie_word_embeddings=True, bos_token_id=bos, eos_token_id=eos,
        )  # fmt: skip
        model: Any = LlamaForCausalLM(config)
    elif family == "gpt_neox":
        config = GPTNeoXConfig(  # transformers' default rotates a quarter of each head, as Pythia does
            vocab_size=len(tokenizer), hidden_size=size["d_model"], intermediate_size=size["ffn"],
            num_hidden_layers=size["layers"], num_attention_heads=size["heads"], use_parallel_residual=True,
            max_position_embeddings=max_positions, tie_word_embeddings=False, bos_token_id=bos, eos_token_id=eos,
        )  # fmt: skip
        model = GPTNeoXForCausalLM(config)
    else:
        raise ValueError(f"unknown family {family!r}")
    model.eval()
    install(model)
    facts = facts_from_config(config, name=f"random-{family}", source="test", sha256=None)
    return LoadedModel(model=model, tokenizer=tokenizer, facts=facts)


def _tokenizer(where: str) -> Any:
    if where == "byte":
        from ..testing.tiny import ByteTokenizer

        return ByteTokenizer(4096)
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(where)


def run_child(
    name: str,
    types: list[str],
    contexts: list[int],
    tokenizer_dir: str,
    full: bool,
    probes: Any = None,
    verify_types: tuple[str, ...] = (),
) -> dict:
    """Scan one size type by type (and, with ``contexts``, the retrieval probe at each context); ``probes``
    (a ProbeSettings) overrides the probe sizes; ``verify_types`` adds the cost of verifying those types."""
    import torch

    from ..causal.verify import VerifySettings, verify_headmap
    from ..census import ScanSettings, run_census
    from ..heads import causal_metrics, get_head_type
    from ..probes import PROBES, ProbeSettings
    from .census import plain_forwards

    torch.manual_seed(0)
    tokenizer = _tokenizer(tokenizer_dir)
    settings = probes if probes is not None else ProbeSettings() if full else ProbeSettings(**QUICK)
    loaded = build(SIZES[name], tokenizer, max(4096, *contexts, *settings.needle_contexts))
    params = sum(p.numel() for p in loaded.model.parameters())
    result: dict[str, Any] = {
        "size": name,
        "family": SIZES[name].get("family", "llama"),
        "params": params,
        "weights_mb": sum(p.numel() * p.element_size() for p in loaded.model.parameters()) / 2**20,
        "types": {},
        "contexts": {},
    }
    pattern_types = tuple(t for t in types if get_head_type(t).score is not None)
    pattern_probes = sorted({p for p in (get_head_type(t).probe for t in types) if p in PROBES})
    batches = [b for probe in pattern_probes for b in PROBES[probe](tokenizer, settings, 0)]
    warm = ProbeSettings(n_repeat=1, repeat_len=8, n_text=1, text_len=16)  # first calls pay one-off set-up costs
    run_census(loaded, ScanSettings(head_types=("previous_token", "induction"), probes=warm))
    plain_forwards(loaded, batches[:1])
    result["types"][PLAIN] = measure(lambda: plain_forwards(loaded, batches))
    result["plain_tokens"] = sum(int(b.attention_mask.sum()) for b in batches)
    if pattern_types:
        result["types"][CENSUS] = measure(
            lambda: run_census(loaded, ScanSettings(head_types=pattern_types, probes=settings))
        )
    for type_id in types:
        holder: dict[str, Any] = {}

        def scan(type_id: str = type_id, holder: dict[str, Any] = holder) -> None:
            holder["map"] = run_census(loaded, ScanSettings(head_types=(type_id,), probes=settings))

        row: dict[str, Any] = measure(scan)
        info = holder["map"].probes.get(type_id, {})
        if isinstance(info, dict) and "unavailable" in info:
            row["unavailable"] = str(info["unavailable"])[:120]
        result["types"][type_id] = row
    if verify_types:
        headmap = run_census(loaded, ScanSettings(head_types=verify_types, probes=settings))
        metrics = causal_metrics([get_head_type(t) for t in verify_types])
        result["types"][VERIFY] = measure(
            lambda: verify_headmap(loaded, headmap, VerifySettings(seed=0), metrics=metrics)
        )
    for context in contexts:
        at = ProbeSettings(needle_contexts=(context,), needle_per_context=1)
        needle = PROBES["needle"](tokenizer, at, 0)
        plain = measure(lambda needle=needle: plain_forwards(loaded, needle))
        lens = measure(lambda at=at: run_census(loaded, ScanSettings(head_types=("retrieval",), probes=at)))
        result["contexts"][str(context)] = {"plain": plain, "scan": lens}
    return result


def _child(
    name: str, types: list[str], contexts: list[int], tokenizer_dir: str, full: bool, verify_types: list[str]
) -> dict:
    command = [sys.executable, "-m", "headatlas.bench.scale", "--child", name, "--types", ",".join(types),
               "--tokenizer-dir", tokenizer_dir, "--contexts", ",".join(map(str, contexts)) or "none",
               "--verify-types", ",".join(verify_types) or "none"]  # fmt: skip
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
    result["growth"] = fitted = growth(runs, contexts)
    print("growth exponents (y ~ x^b): CPU time and peak memory against parameters, per family")
    for family, rows in fitted["params"].items():
        for type_id, row in rows.items():
            print(f"  {family:<9}{type_id:<24}time {_b(row['time'])}  memory {_b(row['memory'])}")
    if "context" in fitted:
        ctx = fitted["context"]
        print(f"  retrieval probe against context length: time {_b(ctx['time'])}  memory {_b(ctx['memory'])}")
    if fitted["census_vs_plain"]:
        ratios = ", ".join(f"{k} {v:.2f}x" for k, v in fitted["census_vs_plain"].items())
        print(f"pattern census against a plain forward over the same tokens (CPU time): {ratios}")
    return result


def _b(value: float | None) -> str:
    return f"{value:6.2f}" if value is not None else "     -"


def fit_power(xs: list[float], ys: list[float]) -> tuple[float, float] | None:
    """``(a, b)`` of ``y = a * x**b``, least squares on the logs of the positive points; None below two points."""
    points = [(math.log(x), math.log(y)) for x, y in zip(xs, ys, strict=True) if x > 0 and y > 0]
    if len(points) < 2 or len({x for x, _ in points}) < 2:
        return None
    mx = sum(x for x, _ in points) / len(points)
    my = sum(y for _, y in points) / len(points)
    b = sum((x - mx) * (y - my) for x, y in points) / sum((x - mx) ** 2 for x, _ in points)
    return math.exp(my - b * mx), b


MIN_MB = 1.0  # peaks below this are allocator noise, left out of the memory fits


def growth(runs: list[dict], contexts: dict[str, dict]) -> dict[str, Any]:
    """Fitted exponents: per family and type, CPU seconds and peak MB against parameters; the retrieval probe's
    against context length; and, per size, the pattern census against a plain forward over the same tokens."""
    out: dict[str, Any] = {"params": {}, "census_vs_plain": {}}
    for family in dict.fromkeys(r["family"] for r in runs):
        mine = [r for r in runs if r["family"] == family]
        rows: dict[str, Any] = {}
        for type_id in mine[0]["types"]:
            if any("unavailable" in r["types"].get(type_id, {}) for r in mine):
                continue
            params = [float(r["params"]) for r in mine if type_id in r["types"]]
            cpu = fit_power(params, [r["types"][type_id]["cpu_s"] for r in mine if type_id in r["types"]])
            mb = [r["types"][type_id]["mb"] for r in mine if type_id in r["types"]]
            memory = fit_power(params, [m if m >= MIN_MB else 0.0 for m in mb])
            rows[type_id] = {
                "time": None if cpu is None else round(cpu[1], 3),
                "memory": None if memory is None else round(memory[1], 3),
            }
        out["params"][family] = rows
    for r in runs:
        if CENSUS in r["types"]:
            out["census_vs_plain"][r["size"]] = round(r["types"][CENSUS]["cpu_s"] / r["types"][PLAIN]["cpu_s"], 3)
    if len(contexts) >= 2:
        tokens = [float(c) for c in contexts]
        cpu = fit_power(tokens, [c["scan"]["cpu_s"] for c in contexts.values()])
        memory = fit_power(tokens, [c["scan"]["mb"] for c in contexts.values()])
        out["context"] = {
            "time": None if cpu is None else round(cpu[1], 3),
            "memory": None if memory is None else round(memory[1], 3),
        }
    return out


LLAMA_8B = {"params": 8.03e9, "weights_gb_bf16": 16.06}
"""Llama 3 8B: the projection's target (32 layers, d 4096, 32 query and 8 KV heads, 128k vocabulary)."""


def project(runs: list[dict], gpu_tflops: float) -> dict[str, Any] | None:
    """The default scan of an 8B Llama in bf16 on one GPU, extrapolated from the Llama sizes of this run.

    Time: the cost of each step as a multiple of the plain forward over the same probe tokens, at every Llama
    size (the two run in one process, so the ratio holds on a shared machine where the seconds do not), fitted
    against parameters and taken to 8B, times the plain forward's FLOP-bound time at 8B on a GPU sustaining
    ``gpu_tflops`` (``2 * params * tokens / FLOP/s``). The steps are the pattern census (every pattern type in
    one pass per probe, as a scan runs them) and each type scored on its own (weights-only and task types); a
    type not run at every Llama size is left out and listed. That is a floor: a scan's small steps (one head
    setting's last token) are bound by memory bandwidth and kernel launches on a GPU as much as by FLOPs.
    Memory: the weights plus the largest projected peak of one step (steps run one after another), halved for
    bf16 activations. Both are extrapolations at the measured probe sizes, not measurements.
    """
    from ..heads import get_head_type

    llama = [r for r in runs if r["family"] == "llama"]
    if len(llama) < 2:
        return None
    params = [float(r["params"]) for r in llama]
    tokens = max(llama, key=lambda r: r["params"]).get("plain_tokens")
    if not tokens or CENSUS not in llama[0]["types"]:
        return None
    plain_s = 2 * LLAMA_8B["params"] * tokens / (gpu_tflops * 1e12)
    seconds, peak_mb, per_step, left_out = 0.0, 0.0, {}, []
    for step in llama[0]["types"]:
        rows = [r["types"].get(step, {"unavailable": "not run"}) for r in llama]
        if step in (PLAIN, VERIFY):
            continue
        if any("unavailable" in row for row in rows):
            left_out.append(step)
            continue
        ratio = fit_power(
            params, [row["cpu_s"] / r["types"][PLAIN]["cpu_s"] for row, r in zip(rows, llama, strict=True)]
        )
        mb = fit_power(params, [row["mb"] if row["mb"] >= MIN_MB else 0.0 for row in rows])
        x_plain = ratio[0] * LLAMA_8B["params"] ** ratio[1] if ratio else 0.0
        m = mb[0] * LLAMA_8B["params"] ** mb[1] / 2 if mb else 0.0
        in_census = step != CENSUS and get_head_type(step).score is not None  # its time is the census's
        per_step[step] = {
            "x_plain": round(x_plain, 2), "s": round(x_plain * plain_s, 2), "peak_gb_above_weights": round(m / 1024, 2),
            "in_census": in_census,
        }  # fmt: skip
        seconds += 0.0 if in_census else x_plain * plain_s
        peak_mb = max(peak_mb, m)
    return {
        "model": "Llama 3 8B shape, bf16",
        "assumed_gpu_tflops": gpu_tflops,
        "tokens": tokens,
        "plain_forward_s": round(plain_s, 3),
        "x_plain": round(seconds / plain_s, 2),
        "scan_s": round(seconds, 2),
        "peak_gb": round(LLAMA_8B["weights_gb_bf16"] + peak_mb / 1024, 1),
        "fits_80gb": LLAMA_8B["weights_gb_bf16"] + peak_mb / 1024 <= 80,
        "types": per_step,
        "left_out": left_out,
    }


def _threads() -> int:
    import torch

    return int(torch.get_num_threads())


def plot(runs: list[dict], contexts: dict[str, dict], path: Path) -> Path | None:
    """Log-log panels: CPU time and peak memory against parameters (one line per type, one marker per family),
    and the retrieval probe against context length. None when matplotlib is missing (the ``kv`` extra has it)."""
    try:
        import matplotlib
    except ModuleNotFoundError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 5.2))
    markers = {"llama": "o", "gpt_neox": "s"}
    type_ids = list(dict.fromkeys(t for r in runs for t in r["types"]))
    palette = plt.get_cmap("tab20")  # 20 distinct colours, one per type (the default cycle repeats after 10)
    colours = {t: palette(i % 20) for i, t in enumerate(type_ids)}
    for family in dict.fromkeys(r["family"] for r in runs):
        mine = sorted((r for r in runs if r["family"] == family), key=lambda r: r["params"])
        for type_id in mine[0]["types"]:
            if any("unavailable" in r["types"].get(type_id, {}) for r in mine):
                continue
            xs = [r["params"] / 1e6 for r in mine if type_id in r["types"]]
            for ax, key in ((axes[0], "cpu_s"), (axes[1], "mb")):
                ys = [max(r["types"][type_id][key], 1e-3) for r in mine if type_id in r["types"]]
                width = 2.5 if type_id in (PLAIN, CENSUS) else 1
                style = {"marker": markers.get(family, "^"), "color": colours[type_id], "linewidth": width}
                ax.plot(xs, ys, label=f"{type_id} ({family})", **style)
    for ax, label in ((axes[0], "CPU seconds"), (axes[1], "peak MB above the weights")):
        ax.set(xscale="log", yscale="log", xlabel="parameters (millions)", ylabel=label)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=6, ncol=2)
    if contexts:
        tokens = [int(c) for c in contexts]
        for side, dashes in (("plain", "--"), ("scan", "-")):
            axes[2].plot(
                tokens, [c[side]["cpu_s"] for c in contexts.values()], dashes, marker="o", label=f"{side} CPU s"
            )
            axes[2].plot(tokens, [c[side]["mb"] for c in contexts.values()], dashes, marker="s", label=f"{side} MB")
        axes[2].set(xscale="log", yscale="log", xlabel="context (tokens)", title="retrieval probe, smallest size")
        axes[2].grid(True, which="both", alpha=0.3)
        axes[2].legend(fontsize=8)
    fig.suptitle("headatlas scan cost against model size and context (random-initialised models)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m headatlas.bench scale")
    parser.add_argument("--sizes", default="s1,s2,s3", help=f"comma-separated, of {', '.join(SIZES)}")
    parser.add_argument("--types", default="all", help="head-type ids, or all")
    parser.add_argument("--verify-types", default="induction", help="types whose --verify is timed, or none")
    parser.add_argument("--contexts", default="512,1024,2048,4096", help="retrieval contexts on the smallest size")
    parser.add_argument("--tokenizer", default="smollm2-135m", help="a model whose tokenizer to use, or byte")
    parser.add_argument("--full-probes", action="store_true", help="the scan's default probe sizes")
    parser.add_argument("--gpu-tflops", type=float, default=100.0, help="sustained bf16 TFLOP/s of the 8B projection")
    parser.add_argument("--out", default="bench-out", help="folder for scale.json and scale.png")
    parser.add_argument("--child")
    parser.add_argument("--tokenizer-dir")
    args = parser.parse_args(argv)
    sizes = args.sizes.split(",")
    if unknown := [s for s in sizes if s not in SIZES]:
        parser.error(f"unknown sizes {unknown}; valid: {', '.join(SIZES)}")
    contexts = [] if args.contexts in ("", "none") else [int(c) for c in args.contexts.split(",")]
    verify_types = [] if args.verify_types in ("", "none") else args.verify_types.split(",")
    if args.child:
        run = run_child(
            args.child, args.types.split(","), contexts, args.tokenizer_dir, args.full_probes, probes=None,
            verify_types=tuple(verify_types),
        )  # fmt: skip
        print(json.dumps(run))
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
            run = _child(name, types, contexts if i == 0 else [], where, args.full_probes, verify_types)
            context_run = context_run or run["contexts"]
            runs.append(run)
            print(f"  {name} done", file=sys.stderr, flush=True)
    summary = report(runs, context_run)
    projection = project(runs, args.gpu_tflops)
    if projection is not None:
        summary["projection_8b"] = projection
        fits = "fits" if projection["fits_80gb"] else "does not fit"
        print(
            f"projected default scan of {projection['model']} over these probes' {projection['tokens']} tokens:"
            f" {projection['x_plain']:.1f}x a plain forward, >= {projection['scan_s']:.1f} s at {args.gpu_tflops:g}"
            f" TFLOP/s sustained (a FLOP floor), peak ~{projection['peak_gb']} GB ({fits} in 80 GB)"
            + (
                f"; left out (not run at every Llama size): {', '.join(projection['left_out'])}"
                if projection["left_out"]
                else ""
            )
        )
    out = Path(args.out)
    drawn = plot(runs, context_run, out / "scale.png")
    summary["plot"] = str(drawn) if drawn else None
    print(f"plot: {drawn or 'skipped (no matplotlib; pip install -e .[kv])'}")
    out.mkdir(parents=True, exist_ok=True)
    (out / "scale.json").write_text(json.dumps({"summary": summary, "runs": runs}, sort_keys=True, indent=1))
    print(json.dumps(summary, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
