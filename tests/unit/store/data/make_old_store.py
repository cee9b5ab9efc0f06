"""Write a small store with an older headatlas, for the test that opens old stores (``test_old_stores.py``).

Run against a checkout of the older version: ``PYTHONPATH=<checkout>/src python make_old_store.py OUT.sqlite3``.
It uses only public store functions that every version since the feed landed has: one scan with two head types,
the seeded catalogue plus a contributed paper with a Chinese title and an added head type, three feed entries (two
with non-Latin titles, which an old title key could not tell apart), one accepted, and a subscriber who was sent it.
"""

from __future__ import annotations

import sqlite3
import sys
from dataclasses import replace
from datetime import date

from headatlas.headmap import HeadMap
from headatlas.literature import store as paper_store
from headatlas.literature.catalogue import load_catalogue
from headatlas.literature.feed.digest import subscribe
from headatlas.literature.feed.model import Entry
from headatlas.literature.feed.review import accept
from headatlas.literature.feed.store import Annotation, write_page
from headatlas.literature.vocabulary import new_term
from headatlas.store import connect, save_scan

SUMMARY = {"innovation": "A head that copies.", "tasks": "Copying.", "result": "It copies."}


def headmap() -> HeadMap:
    rows = [
        {"layer": layer, "head": head, "head_type": t, "score": 0.1 * (layer + head + k), "score_se": 0.01,
         "n_samples": 8, "threshold": 0.25, "member": 0.1 * (layer + head + k) >= 0.25}
        for k, t in enumerate(("induction", "previous_token")) for layer in range(2) for head in range(2)
    ]  # fmt: skip
    model = {"name": "tiny/old-store", "source": "test", "architecture": "LlamaForCausalLM", "n_layers": 2,
             "n_heads": 2, "n_kv_heads": 1, "head_dim": 4, "d_model": 8, "vocab_size": 32, "sliding_layers": [],
             "sliding_window": None, "sha256": "0" * 64}  # fmt: skip
    types = {t: {"name": t, "threshold": 0.25} for t in ("induction", "previous_token")}
    settings = {"seed": 0, "head_types": list(types)}
    return HeadMap.from_dict({"model": model, "settings": settings, "head_types": types, "heads": rows})


def main(out: str) -> None:
    conn = connect(out)
    save_scan(conn, headmap(), out_dir="scans/old")
    paper_store.ensure_seeded(conn)
    base = load_catalogue().papers[0]
    term = new_term("Old Store Head")
    paper_store.add_head_term(conn, term)
    paper_store.add_paper(
        conn,
        replace(base, id="old-store-paper-2024", title="注意力头的因果分析", head_types=(term.id,), tags=(), links={}),
    )
    entries = [
        Entry(source="arxiv", title=title, abstract="Attention heads that copy tokens.", arxiv_id=arxiv_id,
              version=1, published=f"2025-01-0{i + 1}", authors=("A. Author",))
        for i, (title, arxiv_id) in enumerate(
            [("Copy heads in tiny models", "2501.00001"), ("复制头", "2501.00002"), ("Копирующие головы", "2501.00003")]
        )
    ]  # fmt: skip
    note = Annotation(True, 0.9, ("copy",), ("induction",), (), ("ICI",), (), SUMMARY)
    ids = write_page(conn, entries, lambda es: [note] * len(es), source="arxiv", cursor="2025-01-03").added_ids
    accept(conn, ids[0], today=date(2025, 1, 10))
    subscriber = subscribe(conn, "reader@example.org", head_types=["induction"])
    with conn:  # what `digest send` records after the server took the message
        conn.execute("INSERT INTO digest_sent VALUES (?, ?, '2025-01-10T00:00:00Z')", (subscriber.id, ids[0]))
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.execute("PRAGMA journal_mode = DELETE")  # one self-contained file
    conn.close()
    check = sqlite3.connect(out)
    check.execute("VACUUM")
    check.close()


if __name__ == "__main__":
    main(sys.argv[1])
