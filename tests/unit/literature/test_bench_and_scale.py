"""The papers benchmark runs end to end (tiny size) and search stays exact-or-bounded on a larger store."""

from __future__ import annotations

import json

from headatlas.bench.papers import main, synthetic_records
from headatlas.literature import store as paper_store
from headatlas.literature.catalogue import loads
from headatlas.store import connect


def test_benchmark_smoke(capsys):
    assert main(["--papers", "2000", "--queries", "30", "--baseline-queries", "5"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    result = json.loads(last)
    assert result["papers"] == 2000
    assert result["search_p95_ms"] > 0 and result["import_papers_per_s"] > 0
    assert result["speedup_vs_like_p95"] > 0


def test_synthetic_records_are_deterministic_and_valid():
    a, b = synthetic_records(300, seed=3), synthetic_records(300, seed=3)
    assert a == b
    assert synthetic_records(300, seed=4) != a
    assert len({r["id"] for r in a}) == 300
    assert len(loads(json.dumps(a))) == 300


def test_bounded_window_still_finds_defining_papers_and_honours_filters(tmp_path, monkeypatch):
    conn = connect(tmp_path / "big.sqlite3")
    records = synthetic_records(1500, seed=1)
    paper_store.import_papers(conn, loads(json.dumps(records)))
    word = records[0]["title"].split()[0].lower()
    head_type, year = records[0]["head_types"][0], int(records[0]["date"][:4])
    stage = records[0]["stages"][0]
    monkeypatch.setattr(paper_store, "MAX_RANKED", 50)  # most queries now exceed the window
    hits = paper_store.search_papers(conn, "retrieval head", limit=10)
    assert hits[0].paper.id == "2404.15574"  # a seed paper, far below the window of newest matches
    filtered = paper_store.search_papers(conn, word, head_type=head_type, year=year, limit=50)
    assert records[0]["id"] in {h.paper.id for h in filtered}
    assert all(head_type in h.paper.head_types and h.paper.year == year for h in filtered)
    staged = paper_store.search_papers(conn, word, stage=stage, limit=50)
    assert staged and all(stage in h.paper.stages for h in staged)
    assert len(paper_store.search_papers(conn, word, limit=500)) <= 50 + 3  # the window, plus defining papers


def test_replacing_a_paper_keeps_the_index_consistent(tmp_path):
    conn = connect(tmp_path / "s.sqlite3")
    paper_store.ensure_seeded(conn)
    paper = paper_store.get_paper(conn, "2404.15574")
    changed = paper.to_dict()
    changed["summary"]["innovation"] = "Zyxwv names a brand new kind of head."
    paper_store.import_papers(conn, loads(json.dumps([changed])))
    assert [h.paper.id for h in paper_store.search_papers(conn, "zyxwv")] == ["2404.15574"]
    # the old text is gone from the index (contentless FTS5 'delete' got the exact old values)
    assert paper_store.search_papers(conn, "mechanistically explains long context factuality")[0].paper.id == (
        "2404.15574"
    )
    assert paper_store.search_papers(conn, "discovers retrieval heads copy") == []
    check = conn.execute("INSERT INTO papers_fts (papers_fts, rank) VALUES ('integrity-check', 1)")
    assert check is not None


def test_migration_0002_rebuilds_the_index_of_an_older_store(tmp_path):
    path = tmp_path / "old.sqlite3"
    conn = connect(path)
    paper_store.ensure_seeded(conn)
    # turn the store back into its 0001 shape: a content FTS table without facets
    conn.execute("DROP TABLE papers_fts")
    conn.execute("CREATE VIRTUAL TABLE papers_fts USING fts5(title, summary, tokenize = 'porter unicode61')")
    conn.execute("INSERT INTO papers_fts (rowid, title, summary) SELECT rowid, title, '' FROM papers")
    conn.execute("DELETE FROM migrations WHERE component = 'papers' AND name = '0002_fts_facets'")
    conn.commit()
    conn.close()
    conn = connect(path)  # applies 0002 again
    hits = paper_store.search_papers(conn, "retrieval head", head_type="retrieval")
    assert hits[0].paper.id == "2404.15574"
    conn.execute("INSERT INTO papers_fts (papers_fts, rank) VALUES ('integrity-check', 1)")
