"""``python -m headatlas.bench web``: server time of the head-map page of a 270-head scan.

A SmolLM2-shaped scan (30 layers x 9 heads, the seven census types, seeded synthetic scores; or a real
``headmap.json`` with ``--headmap``) is stored in a fresh store and its pages are requested in-process through
Starlette's TestClient, so the time is the server's (routing, store, templates), not the network's. Baseline in
the same run: the scans index page, a trivial page through the same stack. Last line: JSON with
``head_map_p95_ms`` (target < 300 ms).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..headmap import HeadMap, head_name
from ..heads import head_types
from ..models.facts import ModelFacts

TYPES = ("previous_token", "duplicate_token", "induction", "current_token", "local", "sink", "retrieval")


def synthetic_headmap(n_layers: int = 30, n_heads: int = 9, seed: int = 0) -> HeadMap:
    """A scan-shaped HeadMap with seeded scores (beta-distributed, a few strong heads per type)."""
    rng = np.random.default_rng(seed)
    registry = head_types()
    facts = ModelFacts(
        name=f"bench-{n_layers}x{n_heads}", source="bench", architecture="llama", n_layers=n_layers,
        n_heads=n_heads, n_kv_heads=3, head_dim=64, d_model=576, vocab_size=49152, sliding_window=None,
        sliding_layers=(), sha256=None,
    )  # fmt: skip
    rows = []
    info = {}
    for t in TYPES:
        ht = registry[t]
        info[t] = {"name": ht.name, "definition": ht.definition, "papers": list(ht.papers), "stage": ht.stage,
                   "probe": ht.probe, "threshold": ht.threshold}  # fmt: skip
        scores = rng.beta(0.6, 4.0, size=(n_layers, n_heads))
        for layer in range(n_layers):
            for head in range(n_heads):
                s = float(scores[layer, head])
                rows.append({"layer": layer, "head": head, "head_type": t, "score": s, "score_se": 0.01,
                             "n_samples": 16, "threshold": ht.threshold, "member": s >= ht.threshold})  # fmt: skip
    return HeadMap(facts, rows, {"seed": seed}, info)


def synthetic_patterns(headmap: HeadMap, n_tokens: int = 28, seed: int = 0) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    examples = []
    for ex in ("natural_text", "repeated_tokens"):
        heads = {}
        for layer in range(headmap.facts.n_layers):
            for head in range(headmap.facts.n_heads):
                rows = []
                for i in range(n_tokens):
                    w = rng.dirichlet(np.ones(i + 1) * 0.3)
                    rows.append([round(float(x), 3) for x in w])
                heads[head_name(layer, head)] = rows
        examples.append({"id": ex, "label": ex, "tokens": [f"t{i}" for i in range(n_tokens)], "heads": heads})
    return {"format": "headatlas.patterns/1", "examples": examples}


def _time(client: Any, url: str, n: int) -> list[float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        response = client.get(url)
        out.append((time.perf_counter() - start) * 1000)
        if response.status_code != 200:
            raise RuntimeError(f"{url} answered {response.status_code}")
    return out


def _p95(values: list[float]) -> float:
    return float(np.percentile(values, 95))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m headatlas.bench web", description=__doc__)
    parser.add_argument("--headmap", type=Path, help="a real scan's headmap.json (default: synthetic 30x9)")
    parser.add_argument("--repeats", type=int, default=40)
    args = parser.parse_args(argv)

    from fastapi.testclient import TestClient

    from ..publish import write_patterns
    from ..store import connect, save_scan
    from ..web.app import create_app
    from ..web.report import render_report

    headmap = HeadMap.read(args.headmap) if args.headmap else synthetic_headmap()
    with tempfile.TemporaryDirectory() as tmp:
        out_dir = Path(tmp) / "scan"
        headmap.write(out_dir)
        patterns = synthetic_patterns(headmap)
        write_patterns(patterns, out_dir)
        conn = connect(Path(tmp) / "store.sqlite3")
        scan_id = save_scan(conn, headmap, out_dir=str(out_dir))
        conn.close()
        best = headmap.top("induction", 1)[0]["name"] if "induction" in headmap.head_types else "L0H0"
        urls = {
            "baseline_index": "/",
            "head_map_overview": f"/scans/{scan_id}",
            "head_map_induction": f"/scans/{scan_id}?type=induction",
            "head_detail": f"/scans/{scan_id}/heads/{best}",
            "head_type": "/head-types/induction",
            "papers": "/papers?q=induction",
            "compare": f"/compare?scans={scan_id}",
            "api_scan_gzip": f"/api/scans/{scan_id}",
            "api_docs": "/api/docs",
        }
        cold = []
        for _ in range(3):  # a fresh app: the head map is parsed from the store on the first request
            client = TestClient(create_app(Path(tmp) / "store.sqlite3"))
            cold.append(_time(client, urls["head_map_overview"], 1)[0])
        client = TestClient(create_app(Path(tmp) / "store.sqlite3"))
        for url in urls.values():
            _time(client, url, 3)  # warm-up
        times = {name: _time(client, url, args.repeats) for name, url in urls.items()}
        start = time.perf_counter()
        report_bytes = len(render_report(headmap, patterns).encode("utf-8"))
        report_ms = (time.perf_counter() - start) * 1000
        api = client.get(urls["api_scan_gzip"], headers={"Accept-Encoding": "gzip"})
        api_bytes = (int(api.headers.get("content-length", 0)), len(api.content))  # on the wire, unpacked

    n_heads = headmap.facts.n_head_total
    print(f"{headmap.facts.name}: {n_heads} heads x {len(headmap.head_types)} types, {args.repeats} requests each")
    for name, values in times.items():
        print(f"  {name:<20} p50 {statistics.median(values):7.2f} ms   p95 {_p95(values):7.2f} ms")
    print(f"  head map, cold cache  {statistics.median(cold):7.2f} ms (median of 3 fresh apps)")
    print(f"  report.html           {report_bytes / 1e6:.2f} MB rendered in {report_ms:.0f} ms")
    print(f"  /api/scans/N          {api_bytes[1] / 1e3:.0f} KB, {api_bytes[0] / 1e3:.0f} KB gzipped on the wire")
    base = _p95(times["baseline_index"])
    head_map = max(_p95(times["head_map_overview"]), _p95(times["head_map_induction"]))
    result = {
        "benchmark": "web",
        "heads": n_heads,
        "head_map_p95_ms": round(head_map, 2),
        "head_map_cold_ms": round(statistics.median(cold), 2),
        "head_detail_p95_ms": round(_p95(times["head_detail"]), 2),
        "baseline_index_p95_ms": round(base, 2),
        "head_map_vs_baseline": round(head_map / base, 2) if base > 0 else None,
        "report_bytes": report_bytes,
        "pages_p95_ms": {name: round(_p95(values), 2) for name, values in times.items()},
        "api_scan_bytes": api_bytes[1],
        "api_scan_gzip_bytes": api_bytes[0],
        "target_ms": 300,
        "ok": head_map < 300,
    }
    print(json.dumps(result, sort_keys=True))
    return 0
