"""Benchmark: a head-aware KV cache planned from a scan vs the full cache, random heads and kvpress presses.

Needle in a haystack on both zoo models (SmolLM2-135M, Gemma 3 270M), each with the policy planned from its
published scan (``atlas/<model>``), seeded. Each context holds one passphrase needle per depth (see
``kv_protocol``); the context is prefilled once (full attention) and compressed by every method, then each
needle's question is read and its value scored teacher-forced (exact match = every value token right =
what greedy decoding would generate), and the prose after the context gives a loss. Default grid: contexts
2k and 8k, depths 10/50/90 %, 3 needles per cell, KV fractions 1.0 (the full cache), 0.75, 0.5, 0.25;
``--grid full`` (for a GPU): 1k-8k (16k on Gemma 3), depths 0-100 % in 5 steps, 5 needles per cell.

Methods at each fraction: the atlas policy of each rule (retrieval, razor, razor with its compensation
token, headkv) in the real :class:`~headatlas.kv.cache.PolicyCache`; random KV heads at the same fraction
(same cache); and in an environment pinned to kvpress's range (built under ``--kv-env`` on first use:
torch 2.13.0, transformers 5.2.0, kvpress 0.5.5) StreamingLLM, SnapKV, Knorm, ExpectedAttention at
compression ratio ``1 - fraction``, DuoAttentionPress fed our exported pattern (retrieval rule) and
AtlasPress (headkv rule). That side runs alongside in its own process. Also: bytes held by the real cache
and by the full cache, greedy equality with the masked simulation, decode tokens/s. The last line printed is
one JSON object; ``--out`` gets ``kv.json`` and ``kv.png`` (and per model ``<model>/kv-bench.json``,
``kv-bench.png``); ``--publish`` also puts those two into the model's scan directory and rebuilds its
``report.html``, whose kv section shows them.

Usage: ``python -m headatlas.bench kv [--models smollm2-135m,gemma3-270m] [--grid default|full]
[--contexts 2048,8192] [--needles 3] [--fractions 0.75,0.5,0.25] [--scope cache|global] [--fill remainder|whole]
[--no-kvpress] [--publish]`` (``--scope``/``--fill``: how the atlas policies count and spend the budget,
:mod:`headatlas.kv.policy`; the kvpress presses compress the global layers only, whatever the scope).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ..kv.policy import DEFAULT_RULE
from .kv_ours import method_policies, run_ours
from .kv_presses import PRESSES
from .kv_protocol import DEFAULT_GRID, Grid, full_grid, make_contexts

PINS = ("torch==2.13.0", "transformers==5.2.0", "kvpress==0.5.5", "matplotlib", "pytest")
MODELS = ("smollm2-135m", "gemma3-270m")
ATLAS_RULES = ("atlas_retrieval", "atlas_razor", "atlas_razor_comp", "atlas_headkv")
REPORTED_RULE = f"atlas_{DEFAULT_RULE}"  # the rule a user gets by default, fixed before any needle is seen
REPO = Path(__file__).resolve().parents[3]


def kv_env_python(env: Path) -> Path:
    """The pinned kvpress environment's python; builds it (pip, from the package index) when absent."""
    python = env / "bin" / "python"
    probe = "import kvpress, transformers, matplotlib; assert transformers.__version__.startswith('5.2')"
    if python.is_file() and subprocess.run([str(python), "-c", probe], capture_output=True).returncode == 0:
        return python
    print(f"building the kvpress environment in {env} ({', '.join(PINS)}) …", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(env)], check=True)
    try:
        deps = [
            r.split(";")[0]
            for r in importlib.metadata.requires("headatlas") or []
            if "extra ==" not in r and not r.startswith(("torch", "transformers"))
        ]
    except importlib.metadata.PackageNotFoundError:
        deps = ["accelerate", "gguf", "numpy", "pandas", "platformdirs", "pyyaml", "rich", "typer", "sentencepiece"]
    subprocess.run([str(python), "-m", "pip", "install", "-q", *PINS, *deps], check=True)
    return python


def _src_env() -> dict[str, str]:
    src = str(REPO / "src")
    return {**os.environ, "PYTHONPATH": f"{src}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}


def parse_grid(args: argparse.Namespace, max_positions: int) -> Grid:
    grid = full_grid(max_positions) if args.grid == "full" else DEFAULT_GRID
    if args.contexts:
        grid = dataclasses.replace(grid, contexts=tuple(int(x) for x in args.contexts.split(",")))
    if args.depths:
        grid = dataclasses.replace(grid, depths=tuple(float(x) for x in args.depths.split(",")))
    if args.needles:
        grid = dataclasses.replace(grid, needles=int(args.needles))
    if args.fractions:
        grid = dataclasses.replace(grid, fractions=tuple(float(x) for x in args.fractions.split(",")))
    if any(not 0 < f < 1 for f in grid.fractions):
        raise ValueError(f"fractions must lie in (0, 1) (1.0, the full cache, is always run), got {grid.fractions}")
    if any(not 0 <= d <= 1 for d in grid.depths) or list(grid.depths) != sorted(grid.depths):
        raise ValueError(f"depths must ascend within [0, 1], got {grid.depths}")
    too_long = [n for n in grid.contexts if n > max_positions or n < 256]
    if too_long:
        raise ValueError(f"contexts must lie in [256, {max_positions}] for this model, got {too_long}")
    return grid


def run_model(name: str, args: argparse.Namespace, python: Path | None) -> dict[str, Any]:
    """Both sides for one model: the kvpress worker in its own process, ours here, at every context length."""
    import torch

    from ..kv.policy import read_headmap
    from ..models.loader import load_model

    scan = (args.scan if args.scan and len(args.models) == 1 else None) or REPO / "atlas" / name
    headmap = read_headmap(scan)
    start = time.perf_counter()
    loaded = load_model(name, device=args.device)
    facts = loaded.facts
    want = {k: headmap["model"][k] for k in ("n_layers", "n_heads", "n_kv_heads")}
    got = {"n_layers": facts.n_layers, "n_heads": facts.n_heads, "n_kv_heads": facts.n_kv_heads}
    if want != got:
        raise ValueError(f"model {name} {got} does not match the scan {scan} {want}")
    args.grid = parse_grid(args, facts.max_positions or 8192)
    print(f"{name} loaded in {time.perf_counter() - start:.0f} s; scan {scan}; grid {args.grid}", flush=True)
    samples = {
        n: make_contexts(loaded.tokenizer, n, args.grid.depths, args.grid.needles, args.seed)
        for n in args.grid.contexts
    }
    work = args.out.resolve() / name
    work.mkdir(parents=True, exist_ok=True)
    proc = None
    threads = max(1, (os.cpu_count() or 2) // 2) if python is not None else None
    if python is not None:
        job = {
            "seed": args.seed,
            "threads": threads,
            "model_name": name,
            "model_dir": loaded.model.config.name_or_path,
            "fractions": list(args.grid.fractions),
            "presses": args.presses.split(","),
            "samples": {str(n): s for n, s in samples.items()},
            "policies": {
                str(n): {
                    k: p.to_json()
                    for k, p in method_policies(
                        headmap, args.grid.fractions, n, args.seed, args.scope, args.fill
                    ).items()
                }
                for n in args.grid.contexts
            },
        }
        (work / "kvpress-job.json").write_text(json.dumps(job))
        (work / "kvpress-out.json").unlink(missing_ok=True)
        cmd = [
            str(python),
            "-m",
            "headatlas.bench.kv_presses",
            str(work / "kvpress-job.json"),
            str(work / "kvpress-out.json"),
        ]
        proc = subprocess.Popen(cmd, env=_src_env())
        torch.set_num_threads(threads or 1)
    t0, cpu0 = time.perf_counter(), time.process_time()
    per_length: dict[str, Any] = {}
    for n in args.grid.contexts:
        per_length[str(n)] = run_ours(loaded, headmap, samples[n], n, args)
    ours_s, ours_cpu = time.perf_counter() - t0, time.process_time() - cpu0
    kvpress: dict[str, Any] = {"skipped": True}
    if proc is not None:
        if proc.wait() != 0:
            raise RuntimeError(f"the kvpress worker failed for {name} (see above)")
        out = json.loads((work / "kvpress-out.json").read_text())
        for n, res in out["results"].items():
            per_length[n]["results"].update(res)
        kvpress = {
            "transformers": out["transformers"],
            "seconds": round(time.perf_counter() - t0, 1),
            "cpu_seconds": out.get("cpu_seconds"),
        }
    return {
        "model": name,
        "scan": str(scan),
        "grid": dataclasses.asdict(args.grid),
        "results": {n: v["results"] for n, v in per_length.items()},
        "decode_tokens_per_s": {n: v["decode_tokens_per_s"] for n, v in per_length.items()},
        "simulation_equal": {n: v["simulation_equal"] for n, v in per_length.items()},
        "full_cache_bytes": {n: v["full_cache_bytes"] for n, v in per_length.items()},
        "summary": summary(per_length, args.grid.fractions),
        "kvpress": kvpress,
        "ours_seconds": round(ours_s, 1),
        "ours_cpu_seconds": round(ours_cpu, 1),
        "seconds": round(time.perf_counter() - start, 1),
    }


def summary(per_length: dict[str, Any], fractions: tuple[float, ...]) -> dict[str, Any]:
    """Per context length and fraction: the default atlas rule (``headatlas kv plan``'s, fixed before the run)
    against the full cache, random heads and StreamingLLM (points of teacher-forced needle accuracy), and decode
    ratios. The best of the atlas rules on these same needles is reported apart, as ``best_in_hindsight``:
    picked after seeing the evaluation needles, it flatters the atlas side."""
    out: dict[str, Any] = {}
    for n, part in per_length.items():
        res, speed = part["results"], part["decode_tokens_per_s"]
        rows = {}
        for f in fractions:
            atlas = {m: res[f"{m}@{f}"] for m in ATLAS_RULES}
            chosen = atlas[REPORTED_RULE]["needle_forced"]
            best = max(atlas, key=lambda m: (atlas[m]["needle_forced"], -atlas[m]["prose_loss"]))
            full = res["full"]["needle_forced"]
            row = {
                "rule": REPORTED_RULE,
                "vs_full": round(chosen / full, 3) if full else None,
                "points_over_random": round(100 * (chosen - res[f"random_heads@{f}"]["needle_forced"]), 1),
            }
            if "needle_forced" in res.get(f"streaming_llm@{f}", {}):
                row["points_over_streaming_llm"] = round(100 * (chosen - res[f"streaming_llm@{f}"]["needle_forced"]), 1)
            row["best_in_hindsight"] = best
            row["best_in_hindsight_vs_full"] = round(atlas[best]["needle_forced"] / full, 3) if full else None
            key = f"{REPORTED_RULE}@{f}"
            row["decode_vs_full"] = round(speed[key] / speed["full"], 3) if key in speed else None
            rows[str(f)] = row
        out[n] = rows
    return out


def print_table(record: dict[str, Any]) -> None:
    name = record["model"]
    for n, res in record["results"].items():
        print(f"\n{name} @ {n} tokens")
        print(f"{'method':<28} {'exact':>6} {'forced':>7} {'prose':>7} {'kv real':>8} {'nominal':>8} {'MB held':>8}")
        for key in ["full", *sorted(k for k in res if k != "full")]:
            r = res[key]
            if "error" in r:
                print(f"{key:<28} failed: {r['error']}")
                continue
            mb = r.get("kv_bytes", float("nan")) / 1e6
            print(
                f"{key:<28} {r['needle_exact']:>6.2f} {r['needle_forced']:>7.3f} {r['prose_loss']:>7.3f} "
                f"{r.get('kv_fraction_real', float('nan')):>8.3f} {r.get('kv_fraction_nominal', float('nan')):>8.3f} "
                f"{mb:>8.1f}"
            )
        print(f"decode tokens/s: {record['decode_tokens_per_s'][n]}")
        print(f"real cache greedy == masked simulation: {record['simulation_equal'][n]}")
        for f, row in record["summary"][n].items():
            print(f"at {f}: {row}")


def draw(record: dict[str, Any], path: Path, python: Path | None) -> bool:
    """The PNG, with matplotlib here or in the kvpress environment."""
    try:
        from .kv_plot import plot

        plot(record, path)
        return True
    except ImportError:
        if python is None or not python.is_file():
            return False
        data = path.with_suffix(".plot.json")
        data.write_text(json.dumps(record))
        subprocess.run(
            [str(python), "-m", "headatlas.bench.kv_plot", str(data), str(path)], env=_src_env(), check=False
        )
        data.unlink(missing_ok=True)
        return path.is_file()


def publish(record: dict[str, Any], png: Path) -> None:
    """Put one model's record and plot into its scan directory and rebuild that scan's report."""
    from ..web.kv_section import BENCH_JSON, BENCH_PNG
    from ..web.report import rebuild_report

    scan = Path(record["scan"])
    (scan / BENCH_JSON).write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    shutil.copyfile(png, scan / BENCH_PNG)
    rebuild_report(scan)
    print(f"published to {scan} (report.html rebuilt)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m headatlas.bench kv", description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS), help="zoo models (comma-separated)")
    parser.add_argument(
        "--scan", type=Path, default=None, help="scan directory, with one model (default: atlas/<model>)"
    )
    parser.add_argument("--grid", choices=("default", "full"), default="default")
    parser.add_argument("--contexts", default=None, help="context lengths, overriding the grid's")
    parser.add_argument("--depths", default=None, help="needle depths in [0, 1], ascending")
    parser.add_argument("--needles", default=None, help="needles per length x depth cell (= contexts per length)")
    parser.add_argument("--fractions", default=None, help="KV fractions below 1.0")
    parser.add_argument("--decode-tokens", type=int, default=16)
    parser.add_argument("--device", default="cpu", help="our side's device (the kvpress side runs on the CPU)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--scope", choices=("cache", "global"), default="cache", help="the atlas budget's base (kv.policy)"
    )
    parser.add_argument(
        "--fill", choices=("remainder", "whole"), default="remainder", help="ranking rules' budget fill (kv.policy)"
    )
    parser.add_argument("--no-kvpress", action="store_true", help="skip the kvpress environment")
    parser.add_argument("--presses", default=",".join(PRESSES), help=f"of {','.join(PRESSES)}")
    parser.add_argument("--kv-env", type=Path, default=Path(".venv-kv"), help="pinned kvpress environment")
    parser.add_argument("--out", type=Path, default=Path("bench-out/kv"), help="plots and JSON go here")
    parser.add_argument("--publish", action="store_true", help="also into each scan directory + its report")
    args = parser.parse_args(argv)
    args.models = [m for m in args.models.split(",") if m]
    bad = [p for p in args.presses.split(",") if p not in PRESSES]
    if bad:
        print(f"error: unknown press {bad[0]!r}; valid presses are {', '.join(PRESSES)}", file=sys.stderr)
        return 2
    try:
        parse_grid(args, 1 << 20)  # the syntax now; each model's window when it is loaded
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from ..errors import HeadatlasError

    python = None if args.no_kvpress else kv_env_python(args.kv_env.resolve())
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    record: dict[str, Any] = {"bench": "kv", "models": {}}
    for name in args.models:
        try:
            part = run_model(name, args, python)
        except (HeadatlasError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        record["models"][name] = part
        print_table(part)
        png = args.out / name / "kv-bench.png"
        one = {"bench": "kv", "models": {name: part}}
        (args.out / name / "kv-bench.json").write_text(json.dumps(part, indent=1, sort_keys=True) + "\n")
        if draw(one, png, python) and args.publish:
            publish(part, png)
    record["seconds"] = round(time.perf_counter() - start, 1)
    png = args.out / "kv.png"
    record["plot"] = str(png) if draw(record, png, python) else None
    print(f"plot: {record['plot'] or 'skipped (no matplotlib)'}; total {record['seconds']:.0f} s")
    (args.out / "kv.json").write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    print(json.dumps(record, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
