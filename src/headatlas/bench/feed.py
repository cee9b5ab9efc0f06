"""Feed benchmark: ingest throughput from arXiv-shaped fixtures, plus the relevance figures.

``python -m headatlas.bench feed [--entries 1000] [--page-size 100]``

Builds ``--entries`` arXiv Atom entries (``literature.feed.synthetic``), parses the answer pages with the real
parser and writes them with the real ingest path (scoring, tagging, summary, one transaction per page) into a
fresh store; then re-ingests them (idempotence: nothing added). Target: ``ingest_entries_per_s`` >= 100
(1,000 entries in under 10 s). The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from ..literature.feed.ingest import Annotator
from ..literature.feed.sources.arxiv import parse_arxiv_feed
from ..literature.feed.store import count_entries, write_page
from ..literature.feed.synthetic import atom_page, make_entries
from ..literature.store import ensure_seeded
from ..store import connect
from .relevance import measure


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m headatlas.bench feed")
    parser.add_argument("--entries", type=int, default=1000)
    parser.add_argument("--page-size", type=int, default=100)
    args = parser.parse_args(argv)
    entries = make_entries(args.entries, seed=1)
    pages = [
        atom_page(entries[i : i + args.page_size], total=len(entries), start=i)
        for i in range(0, len(entries), args.page_size)
    ]
    annotate = Annotator()  # trains the relevance model once, outside the timing
    annotate(entries[:1])
    with tempfile.TemporaryDirectory() as tmp:
        conn = connect(Path(tmp) / "bench.sqlite3")
        ensure_seeded(conn)  # a real store holds the catalogue the new entries are checked against
        start = time.perf_counter()
        added = 0
        for page in pages:
            parsed = parse_arxiv_feed(page)
            added += write_page(conn, parsed.entries, annotate, source="arxiv").added
        ingest_s = time.perf_counter() - start
        start = time.perf_counter()
        again = sum(write_page(conn, parse_arxiv_feed(p).entries, annotate, source="arxiv").added for p in pages)
        rerun_s = time.perf_counter() - start
        pending = count_entries(conn, "pending")
        conn.close()
    print(
        f"ingested {added} entries in {ingest_s:.2f}s ({added / ingest_s:.0f}/s); rerun added {again} in {rerun_s:.2f}s"
    )
    print(f"{pending} of them pending review (half of the synthetic entries are about heads)")
    relevance = measure()
    model, base = relevance["model"], relevance["keyword_baseline"]
    assert isinstance(model, dict) and isinstance(base, dict)
    print(
        f"relevance on {relevance['n_eval']} held-out papers: precision {model['precision']:.3f}"
        f" recall {model['recall']:.3f} (keyword baseline {base['precision']:.3f} / {base['recall']:.3f})"
    )
    summary = {
        "benchmark": "feed",
        "entries": added,
        "ingest_s": round(ingest_s, 3),
        "ingest_entries_per_s": round(added / ingest_s, 1),
        "rerun_added": again,
        "rerun_s": round(rerun_s, 3),
        "pending": pending,
        "precision": model["precision"],
        "recall": model["recall"],
        "baseline_precision": base["precision"],
        "baseline_recall": base["recall"],
    }
    print(json.dumps(summary))
    return 0
