"""``python -m headatlas.bench cli``: start-up time of the command line against a bare interpreter.

Each command runs as a fresh process (``python -m headatlas.cli …``), ``--repeats`` times, interleaved with the
baseline ``python -c pass`` so that machine load hits both alike: ``--help``; ``papers search "retrieval head"``
on an existing store (seeded before timing); ``serve`` on that store, timed until its first HTTP answer to ``/``;
and ``heads list``. One more run per command under ``-X importtime`` tells whether it imported torch or
transformers. Last line: JSON with the median seconds, the ratio to the baseline and ``ok`` (target: every
command < 1 s and free of torch; ``heads list`` reads the head-type registry, whose modules defer torch to
their scoring code).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from ..web.local import free_port

TARGET_S = 1.0
COMMANDS = ("help", "papers_search", "serve", "heads_list")
HEAVY = re.compile(r"\|\s+(torch|transformers)$", re.MULTILINE)


def _cli(*args: str, importtime: bool = False) -> list[str]:
    return [sys.executable, *(["-X", "importtime"] if importtime else []), "-m", "headatlas.cli", *args]


def _run(argv: list[str]) -> tuple[float, str]:
    """Wall seconds of one process to exit, and its stderr."""
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[1:])} exited {done.returncode}: {done.stderr.strip()[-500:]}")
    return elapsed, done.stderr


def _serve(db: Path, importtime: bool = False) -> tuple[float, str]:
    """Seconds from starting ``serve`` to its first HTTP 200 on ``/``, and its stderr so far."""
    port = free_port()
    with tempfile.TemporaryFile("w+") as log:
        start = time.perf_counter()
        proc = subprocess.Popen(
            _cli("serve", "--db", str(db), "--port", str(port), importtime=importtime), stdout=log, stderr=log
        )
        try:
            while True:
                if proc.poll() is not None:
                    log.seek(0)
                    raise RuntimeError(f"serve exited {proc.returncode}: {log.read()[-500:]}")
                if time.perf_counter() - start > 120:
                    raise RuntimeError("serve did not answer within 120 s")
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
                        if response.status == 200:
                            break
                except (urllib.error.URLError, ConnectionError):
                    time.sleep(0.01)
            elapsed = time.perf_counter() - start
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        log.seek(0)
        return elapsed, log.read()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m headatlas.bench cli", description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--only", help=f"comma-separated subset of {','.join(COMMANDS)} (default: all)")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    chosen = [c.strip() for c in args.only.split(",") if c.strip()] if args.only else list(COMMANDS)
    if not chosen or set(chosen) - set(COMMANDS):
        parser.error(f"--only takes names from {','.join(COMMANDS)}")

    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "store.sqlite3"
        os.environ.setdefault("NO_COLOR", "1")
        search = ("papers", "search", "retrieval head", "--db", str(db), "--format", "json")
        _run(_cli(*search))  # seeds the catalogue: the timed runs find an existing store
        every = {
            "help": lambda it=False: _run(_cli("--help", importtime=it)),
            "papers_search": lambda it=False: _run(_cli(*search, importtime=it)),
            "serve": lambda it=False: _serve(db, importtime=it),
            "heads_list": lambda it=False: _run(_cli("heads", "list", "--format", "json", importtime=it)),
        }
        commands = {name: every[name] for name in chosen}
        times: dict[str, list[float]] = {"python_pass": [], **{name: [] for name in commands}}
        for _ in range(args.repeats):
            times["python_pass"].append(_run([sys.executable, "-c", "pass"])[0])
            for name, command in commands.items():
                times[name].append(command()[0])
        heavy = {name: sorted(set(HEAVY.findall(command(True)[1]))) for name, command in commands.items()}

    median = {name: statistics.median(values) for name, values in times.items()}
    base = median["python_pass"]
    print(f"start-up, median of {args.repeats} fresh processes (python {sys.version.split()[0]})")
    for name, seconds in median.items():
        ratio = f"{seconds / base:6.1f}x" if base > 0 else ""
        imports = ", ".join(heavy.get(name, [])) or "-"
        print(f"  {name:<14} {seconds:6.3f} s  {ratio}   heavy imports: {imports}")
    result = {
        "benchmark": "cli",
        "repeats": args.repeats,
        "python_pass_s": round(base, 3),
        **{f"{name}_s": round(median[name], 3) for name in commands},
        **{f"{name}_vs_python": round(median[name] / base, 1) if base > 0 else None for name in commands},
        "imports_torch": sorted(name for name, found in heavy.items() if found),
        "target_s": TARGET_S,
        "ok": all(median[name] < TARGET_S and not heavy[name] for name in commands),
    }
    print(json.dumps(result, sort_keys=True))
    return 0
