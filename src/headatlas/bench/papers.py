"""``python -m headatlas.bench papers``: catalogue import throughput and FTS5 search latency at scale.

Builds N synthetic papers (default 100,000; Zipf-distributed words, 1-3 head types, dates 2016-2025, seeded),
imports them the way ``papers import FILE`` does (parse + validate + one transaction) into a temporary store,
then times ranked searches with a filter (head type, stage or year). Baseline measured in the same run: the same
queries as a ``LIKE`` scan over the stored records, i.e. what search costs without the FTS index. The last line
of output is JSON with ``search_p95_ms`` and ``import_papers_per_s``. Target: p95 < 50 ms.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from ..literature import store as paper_store
from ..literature.catalogue import dump_json, loads
from ..literature.schema import STAGES
from ..literature.vocabulary import vocabulary
from ..store import connect

_SYLLABLES = ("ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "ze", "pa", "qui", "dor", "fen", "gal", "hux", "jor")


def _words(n: int, rng: random.Random) -> list[str]:
    words: set[str] = set()
    while len(words) < n:
        words.add("".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 4))))
    return sorted(words)


def synthetic_records(n: int, seed: int = 0, n_words: int = 5000) -> list[dict[str, Any]]:
    """``n`` valid catalogue records, deterministic for a seed."""
    rng = random.Random(seed)
    words = [*_words(n_words, rng), "attention", "head", "heads", "circuit", "induction", "retrieval", "model"]
    weights = [1.0 / (rank + 1) ** 0.9 for rank in range(len(words))]  # Zipf-like word frequencies
    rng.shuffle(weights)
    cum = list(itertools.accumulate(weights))
    sentences = [
        " ".join(rng.choices(words, cum_weights=cum, k=rng.randint(8, 14))).capitalize() + "."
        for _ in range(max(1000, n // 2))
    ]  # a pool of summary sentences: cheaper than three fresh ones per paper, same word statistics
    terms = sorted(vocabulary().terms.values(), key=lambda t: t.id)
    records = []
    for i in range(n):
        year = rng.randint(2016, 2025)
        month = rng.randint(1, 12)
        title_words = rng.choices(words, cum_weights=cum, k=rng.randint(5, 11))
        parts = [rng.choice(sentences) for _ in range(3)]
        chosen = rng.sample(terms, k=rng.randint(1, 3))
        records.append(
            {
                "id": f"{year % 100:02d}{month:02d}.{i:05d}",
                "title": " ".join(title_words).capitalize() + f" (study {i})",
                "date": f"{year}-{month:02d}-{rng.randint(1, 28):02d}",
                "venue": rng.choice(("arXiv", "ICLR", "NeurIPS", "ACL", "EMNLP")),
                "links": {"paper": f"https://arxiv.org/abs/{year % 100:02d}{month:02d}.{i:05d}"},
                "tags": [t.name for t in chosen],
                "head_types": [t.id for t in chosen],
                "stages": [s for s in STAGES if any(t.stage == s for t in chosen)],
                "summary": {"innovation": parts[0], "tasks": parts[1], "result": parts[2]},
                "provenance": {"source": "ingest", "added": "2026-01-01"},
            }
        )
    return records


def _queries(n: int, records: list[dict[str, Any]], seed: int) -> list[dict[str, Any]]:
    """Words drawn from real titles (so most queries match), each with one filter."""
    rng = random.Random(seed + 1)
    terms = sorted(vocabulary().terms)
    out = []
    for _ in range(n):
        title = rng.choice(records)["title"].split(" (study")[0].lower().split()
        text = " ".join(rng.sample(title, k=min(len(title), rng.choice((1, 1, 2)))))
        kind = rng.choice(("head_type", "stage", "year"))
        filt: dict[str, Any]
        if kind == "head_type":
            filt = {"head_type": rng.choice(terms)}
        elif kind == "stage":
            filt = {"stage": rng.choice(STAGES)}
        else:
            filt = {"year": rng.randint(2016, 2025)}
        out.append({"query": text, **filt})
    return out


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m headatlas.bench papers", description=__doc__)
    parser.add_argument("--papers", type=int, default=100_000, help="synthetic papers to load")
    parser.add_argument("--queries", type=int, default=500, help="FTS queries to time")
    parser.add_argument("--baseline-queries", type=int, default=40, help="LIKE-scan queries to time")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.papers < 100 or args.queries < 1 or args.baseline_queries < 1:
        parser.error("--papers must be >= 100 and the query counts >= 1")

    t0 = time.perf_counter()
    records = synthetic_records(args.papers, args.seed)
    text = json.dumps({"format": 1, "papers": records})
    print(f"generated {len(records):,} synthetic papers in {time.perf_counter() - t0:.1f} s")

    with tempfile.TemporaryDirectory() as tmp:
        conn = connect(Path(tmp) / "bench.sqlite3")
        paper_store.ensure_seeded(conn)
        t0 = time.perf_counter()
        papers = loads(text)
        n = paper_store.import_papers(conn, papers)
        import_s = time.perf_counter() - t0
        per_s = n / import_s
        print(f"import: {n:,} papers in {import_s:.1f} s ({per_s:,.0f} papers/s, parse + validate + write)")
        assert dump_json(papers[:1])  # the export path works on synthetic data too

        queries = _queries(args.queries, records, args.seed)
        for q in queries[:20]:  # warm the page cache
            paper_store.search_papers(conn, q["query"], **{k: v for k, v in q.items() if k != "query"})
        fts_ms: list[float] = []
        hits = 0
        for q in queries:
            filters = {k: v for k, v in q.items() if k != "query"}
            t = time.perf_counter()
            found = paper_store.search_papers(conn, q["query"], **filters)
            fts_ms.append((time.perf_counter() - t) * 1000)
            hits += bool(found)
        like_ms: list[float] = []
        for q in queries[: args.baseline_queries]:
            t = time.perf_counter()
            paper_store.substring_search(conn, q["query"], q.get("head_type"), q.get("stage"), q.get("year"))
            like_ms.append((time.perf_counter() - t) * 1000)
        conn.close()

    p50, p95 = _p(fts_ms, 0.5), _p(fts_ms, 0.95)
    like_p95 = _p(like_ms, 0.95)
    print(f"FTS5 search with a filter: p50 {p50:.2f} ms, p95 {p95:.2f} ms over {len(fts_ms)} queries ({hits} hit)")
    print(f"baseline LIKE scan:        p50 {statistics.median(like_ms):.1f} ms, p95 {like_p95:.1f} ms")
    print(
        f"FTS p95 is {like_p95 / p95:.1f}x faster than the LIKE scan;"
        f" target p95 < 50 ms: {'met' if p95 < 50 else 'MISSED'}"
    )
    result = {
        "benchmark": "papers",
        "papers": args.papers,
        "queries": len(fts_ms),
        "search_p50_ms": round(p50, 3),
        "search_p95_ms": round(p95, 3),
        "like_scan_p95_ms": round(like_p95, 3),
        "speedup_vs_like_p95": round(like_p95 / p95, 2),
        "import_papers_per_s": round(per_s, 1),
        "import_s": round(import_s, 2),
    }
    print(json.dumps(result))
    return 0
