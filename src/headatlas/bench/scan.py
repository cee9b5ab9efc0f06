"""Scan benchmark: peak memory and time of the default scan against baselines measured in the same run.

``python -m headatlas.bench scan [--model smollm2-135m] [--types a,b|all] [--verify] [--no-copies] [--per-type]``

Each side runs in a fresh child process that loads the model and then does one thing; its peak resident set
(VmHWM, weights included: what a user's machine must hold) and its wall and CPU seconds after loading are read
from the child itself.

* ``plain forward``: the model's own SDPA forward over the pattern probes' tokens (logits at the probe rows),
  no lens: the floor any scan of those tokens pays.
* ``scan``: :func:`headatlas.pipeline.run_scan` as ``headatlas scan`` runs it (default memory budget, attention
  patterns on; ``--verify`` adds verification).
* ``scan, earlier paths`` (unless ``--no-copies``): the same scan the way it ran before this round's memory and
  speed work (:func:`headatlas.causal.interventions.earlier_paths`): no memory budget, the task types' sweeps
  copying the prefix KV cache once per head setting, and (with ``--verify``) verification passes repeating the
  whole batch per setting, ``max_batch`` rows each. Its scores must equal the scan's bit for bit (verification
  figures may move in the last digits: passes group settings differently).

``--per-type`` adds one child that scans the selected types one at a time (types sharing an experiment reuse it,
as in a scan) and prints each type's seconds and its peak above the resident set before it. The last line is one
JSON object; ``ok`` says whether the scan's peak is within ``--target-mb`` (default 2000) and the two head maps
agree.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from typing import Any

from .proc import status_kb

TARGET_MB = 2000.0


def _scores(headmap: Any) -> list[Any]:
    return [(r["head_type"], r["layer"], r["head"], r["score"], r["score_se"], r["n_samples"]) for r in headmap.rows]


def run_side(side: str, model: str, types: list[str] | None, verify: bool) -> dict[str, Any]:
    """One side of the benchmark in this process (see the module docstring)."""
    import torch

    from ..causal.interventions import earlier_paths
    from ..census import ScanSettings, run_census
    from ..heads import get_head_type, head_types
    from ..models.loader import load_model
    from ..pipeline import run_scan, scan_settings
    from ..probes import PROBES, ProbeSettings
    from .census import plain_forwards
    from .scale import measure

    torch.manual_seed(0)
    loaded = load_model(model)
    result: dict[str, Any] = {"side": side, "loaded_mb": status_kb("VmRSS") / 1024}
    wall, cpu = time.perf_counter(), time.process_time()
    if side == "plain":
        chosen = types or list(head_types())
        probes = sorted({p for p in (get_head_type(t).probe for t in chosen) if p in PROBES})
        plain_forwards(loaded, [b for p in probes for b in PROBES[p](loaded.tokenizer, ProbeSettings(), 0)])
    elif side in ("scan", "copies"):
        settings = scan_settings(0, types)
        if side == "copies":
            with earlier_paths():
                headmap = run_scan(loaded, settings, verify=verify, max_memory=2**62).headmap
        else:
            headmap = run_scan(loaded, settings, verify=verify).headmap
        result["scores"] = _scores(headmap)
    elif side == "types":
        rows = {}
        for type_id in types or list(head_types()):
            row = measure(lambda t=type_id: run_census(loaded, ScanSettings(head_types=(t,))))
            rows[type_id] = {k: round(v, 3) for k, v in row.items()}
            print(f"  {type_id:<22}{row['s']:8.1f} s{row['cpu_s']:8.1f} cpu s{row['mb']:8.0f} MB", file=sys.stderr)
        result["types"] = rows
    else:
        raise ValueError(f"unknown side {side!r}")
    result.update(s=time.perf_counter() - wall, cpu_s=time.process_time() - cpu, peak_mb=status_kb("VmHWM") / 1024)
    return result


def _child(side: str, args: argparse.Namespace) -> dict[str, Any]:
    command = [sys.executable, "-m", "headatlas.bench.scan", "--child", side, "--model", args.model,
               "--types", args.types] + (["--verify"] if args.verify else [])  # fmt: skip
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"side {side!r} failed with exit code {done.returncode}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def report(sides: dict[str, dict[str, Any]], target_mb: float) -> dict[str, Any]:
    """Print the table (against the plain forward); return the JSON summary."""
    names = {"plain": "plain forward", "scan": "scan", "copies": "scan, earlier paths"}
    plain = sides["plain"]
    print(f"{'side':<22}{'wall s':>9}{'cpu s':>9}{'peak MB':>9}{'x plain':>9}{'loaded MB':>11}")
    for side, r in sides.items():
        if side == "types":
            continue
        ratio = r["peak_mb"] / plain["peak_mb"] if plain["peak_mb"] else float("nan")
        print(
            f"{names[side]:<22}{r['s']:>9.1f}{r['cpu_s']:>9.1f}{r['peak_mb']:>9.0f}{ratio:>9.2f}{r['loaded_mb']:>11.0f}"
        )
    same = None
    if "copies" in sides:
        same = sides["copies"]["scores"] == sides["scan"]["scores"]
        print(f"scores of scan and scan by the earlier paths: {'identical' if same else 'DIFFERENT'}")
        for key, label in (("s", "wall"), ("cpu_s", "CPU")):
            print(f"scan against the earlier paths ({label} time): {sides['scan'][key] / sides['copies'][key]:.2f}x")
    summary: dict[str, Any] = {
        "benchmark": "scan",
        **{
            f"{side}_{k}": round(r[k], 3)
            for side, r in sides.items()
            if side != "types"
            for k in ("s", "cpu_s", "peak_mb")
        },
        "identical_scores": same,
        "target_mb": target_mb,
        "ok": sides["scan"]["peak_mb"] <= target_mb and same is not False,
    }
    if "types" in sides:
        summary["types"] = sides["types"]["types"]
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m headatlas.bench scan", description=__doc__)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--types", default="all", help="head-type ids, or all")
    parser.add_argument("--verify", action="store_true", help="scan with causal verification")
    parser.add_argument("--no-copies", action="store_true", help="skip the scan by the earlier paths")
    parser.add_argument("--per-type", action="store_true", help="also time each type on its own")
    parser.add_argument("--target-mb", type=float, default=TARGET_MB)
    parser.add_argument("--child")
    args = parser.parse_args(argv)
    types = None if args.types == "all" else args.types.split(",")
    if args.child:
        print(json.dumps(run_side(args.child, args.model, types, args.verify)))
        return 0
    order = ["plain", "scan", *([] if args.no_copies else ["copies"]), *(["types"] if args.per_type else [])]
    sides: dict[str, dict[str, Any]] = {}
    for side in order:
        sides[side] = _child(side, args)
        print(f"  {side} done", file=sys.stderr, flush=True)
    print(json.dumps(report(sides, args.target_mb), sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
