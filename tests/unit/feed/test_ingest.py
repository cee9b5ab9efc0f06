"""Ingest: incremental, idempotent, de-duplicated across sources and versions, crash-safe."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest

from headatlas.errors import InvalidSettingError, SourceError
from headatlas.literature.feed.ingest import Annotator, ingest_files, update_arxiv, update_daily
from headatlas.literature.feed.model import Entry
from headatlas.literature.feed.sources import ArxivClient, DailyPapersClient
from headatlas.literature.feed.store import dump_feed, get_cursor, list_entries, write_page
from headatlas.literature.feed.synthetic import atom_page, make_entries
from headatlas.store import connect

from .httpserver import FIXTURES, Reply, ScriptedServer


@pytest.fixture(scope="module")
def annotate() -> Annotator:
    return Annotator()


def paged_route(entries: list[Entry], delay: float = 0.0):
    def route(q: dict[str, str]) -> Reply:
        start, size = int(q["start"]), int(q["max_results"])
        return Reply(200, atom_page(entries[start : start + size], total=len(entries), start=start), delay=delay)

    return route


def count(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT COUNT(*) FROM feed_entries").fetchone()[0])


def test_fixture_update_fills_pending_and_rerun_adds_nothing(server: ScriptedServer, db_path, annotate) -> None:
    server.route("/api/query", lambda q: Reply.fixture("arxiv_page1.xml" if q["start"] == "0" else "arxiv_page2.xml"))
    conn = connect(db_path)
    client = ArxivClient(server.url + "/api/query", delay=0, backoff=0)
    first = update_arxiv(conn, client, since=date(2024, 4, 1), until=date(2024, 10, 31), page_size=3, annotate=annotate)
    assert first.added == 4 and first.skipped == ["entry http://arxiv.org/abs/2404.00001v1: missing title"]
    status = {e.title[:20]: e.status for e in list_entries(conn)}
    # the seed catalogue already holds DuoAttention, the safety-heads paper and Retrieval Head
    assert status["DuoAttention: Effici"] == "catalogued"
    assert status["Scaling Vision Trans"] == "irrelevant"
    assert get_cursor(conn, "arxiv") == "2024-10-31"
    before = dump_feed(conn).replace("feed_skipped", "")
    again = update_arxiv(conn, client, since=date(2024, 4, 1), until=date(2024, 10, 31), page_size=3, annotate=annotate)
    assert again.added == 0 and again.updated == 0 and again.unchanged == 4
    assert count(conn) == 4
    entries_before = before.split("feed_cursors")[0]
    assert dump_feed(conn).split("feed_cursors")[0] == entries_before


def test_incremental_uses_the_cursor(server: ScriptedServer, db_path, annotate) -> None:
    entries = make_entries(6)
    server.route("/api/query", paged_route(entries))
    conn = connect(db_path)
    client = ArxivClient(server.url + "/api/query", delay=0, backoff=0)
    update_arxiv(conn, client, since=date(2024, 10, 1), until=date(2024, 10, 20), annotate=annotate)
    update_arxiv(conn, client, until=date(2024, 11, 2), annotate=annotate)
    queries = [h.query["search_query"] for h in server.hits("/api/query")]
    assert queries[0].endswith("submittedDate:[202410010000 TO 202410202359]")
    assert queries[1].endswith("submittedDate:[202410210000 TO 202411022359]")
    assert get_cursor(conn, "arxiv") == "2024-11-02"
    assert count(conn) == 6


def test_versions_and_sources_collapse_to_one_row(db_path, annotate) -> None:
    conn = connect(db_path)
    base = Entry(
        source="arxiv",
        title="Binding Heads in Small Transformers",
        abstract="v1 text about binding heads.",
        arxiv_id="2501.01234",
        version=1,
        published="2025-01-03",
    )
    v2 = replace(base, version=2, abstract="v2 text about binding heads in GPT-2.", updated="2025-02-01")
    daily = replace(base, source="daily", version=None, keywords=("binding heads",))
    venue = Entry(source="s2", title="Binding heads in small transformers", abstract="", venue="ICLR 2025")
    write_page(conn, [base], annotate, source="arxiv")
    write_page(conn, [v2, daily], annotate, source="arxiv")
    write_page(conn, [venue], annotate, source="s2")
    write_page(conn, [base], annotate, source="arxiv")  # an old version arriving late changes nothing
    (row,) = list_entries(conn)
    assert row.version == 2 and row.abstract.startswith("v2") and row.venue == "ICLR 2025"
    assert row.sources == ("arxiv", "daily", "s2") and row.keywords == ("binding heads",)
    assert row.candidates == ("binding head",)


def test_duplicates_within_one_page(db_path, annotate) -> None:
    conn = connect(db_path)
    a = make_entries(1)[0]
    result = write_page(conn, [a, replace(a, version=5), replace(a, source="daily")], annotate, source="arxiv")
    assert result.added == 1 and count(conn) == 1
    assert list_entries(conn)[0].version == 5


def test_daily_papers_day_by_day_with_skips(server: ScriptedServer, db_path, annotate) -> None:
    server.route("/api/daily_papers", lambda q: Reply.fixture("daily_2024-10-14.json"))
    conn = connect(db_path)
    client = DailyPapersClient(server.url, delay=0, backoff=0)
    result = update_daily(conn, client, since=date(2024, 10, 14), until=date(2024, 10, 15), annotate=annotate)
    assert result.added == 2 and result.unchanged == 2 and len(result.skipped) == 2
    assert get_cursor(conn, "daily") == "2024-10-15"
    reasons = [r[0] for r in conn.execute("SELECT reason FROM feed_skipped")]
    assert reasons == ["item 2: missing or malformed paper.id None"] * 2


def test_network_down_leaves_the_store_unchanged(server: ScriptedServer, db_path, annotate) -> None:
    conn = connect(db_path)
    write_page(conn, make_entries(2), annotate, source="arxiv", cursor="2024-10-01")
    before = dump_feed(conn)
    server.script("/api/query", Reply(503))
    client = ArxivClient(server.url + "/api/query", delay=0, backoff=0, retries=1)
    with pytest.raises(SourceError):
        update_arxiv(conn, client, until=date(2024, 10, 5), annotate=annotate)
    assert dump_feed(conn) == before


def test_file_ingest_and_bad_files(tmp_path: Path, db_path, annotate) -> None:
    conn = connect(db_path)
    result = ingest_files(conn, [FIXTURES / "arxiv_page1.xml", FIXTURES / "daily_2024-10-14.json"], annotate=annotate)
    assert result.added == 4 and result.updated == 1  # DuoAttention from both sources is one row
    before = dump_feed(conn)
    bad = tmp_path / "bad.json"
    bad.write_text('{"not": "a list"}')
    with pytest.raises(InvalidSettingError, match="not a Daily Papers answer"):
        ingest_files(conn, [FIXTURES / "arxiv_page2.xml", bad], annotate=annotate)
    with pytest.raises(SourceError, match="hostile"):
        ingest_files(conn, [FIXTURES / "billion_laughs.xml"], annotate=annotate)
    assert dump_feed(conn) == before


CRASH_SCRIPT = textwrap.dedent(
    """
    import sys
    from datetime import date
    from headatlas.literature.feed.ingest import update_arxiv
    from headatlas.literature.feed.sources import ArxivClient
    from headatlas.store import connect

    conn = connect(sys.argv[1])
    client = ArxivClient(sys.argv[2] + "/api/query", delay=0, backoff=0)
    print("ready", flush=True)
    update_arxiv(conn, client, since=date(2024, 1, 1), until=date(2024, 12, 31), page_size=20)
    print("done", flush=True)
    """
)


def test_killed_mid_run_then_rerun_has_no_duplicates(server: ScriptedServer, db_path, annotate) -> None:
    entries = make_entries(200, seed=3)
    # repeated ids across pages: the same works come back as later versions
    entries += [replace(e, version=(e.version or 1) + 1) for e in entries[:40]]
    server.route("/api/query", paged_route(entries, delay=0.15))
    connect(db_path).close()
    proc = subprocess.Popen(
        [sys.executable, "-c", CRASH_SCRIPT, str(db_path), server.url],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )
    try:
        watcher = sqlite3.connect(db_path, timeout=5)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            n = watcher.execute("SELECT COUNT(*) FROM feed_entries").fetchone()[0]
            if n >= 40:
                break
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    conn = connect(db_path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    partial = count(conn)
    assert 40 <= partial < 200 and partial % 20 == 0  # whole pages only
    assert get_cursor(conn, "arxiv") is None  # the window was not completed
    update_arxiv(
        conn,
        ArxivClient(server.url + "/api/query", delay=0, backoff=0),
        since=date(2024, 1, 1),
        until=date(2024, 12, 31),
        page_size=20,
        annotate=annotate,
    )
    assert count(conn) == 200
    dupes = conn.execute("SELECT arxiv_id FROM feed_entries GROUP BY arxiv_id HAVING COUNT(*) > 1").fetchall()
    assert dupes == []
    complete = conn.execute(
        "SELECT COUNT(*) FROM feed_entries WHERE summary_json != '' AND why_json != '' AND score BETWEEN 0 AND 1"
    ).fetchone()[0]
    assert complete == 200
    assert all(json.loads(r[0]) for r in conn.execute("SELECT summary_json FROM feed_entries"))
    assert get_cursor(conn, "arxiv") == "2024-12-31"
    versions = dict(conn.execute("SELECT arxiv_id, version FROM feed_entries").fetchall())
    assert all(versions[e.arxiv_id] == e.version for e in entries[200:])


def test_enrich_from_semantic_scholar(server: ScriptedServer, db_path, annotate) -> None:
    from headatlas.literature.feed.ingest import enrich
    from headatlas.literature.feed.sources import SemanticScholarClient

    conn = connect(db_path)
    entry = replace(make_entries(1)[0], arxiv_id="2410.10819", title="A pending paper about retrieval heads")
    write_page(conn, [entry], annotate, source="arxiv")
    conn.execute("UPDATE feed_entries SET status = 'pending'")
    conn.commit()
    body = b"[" + (FIXTURES / "s2_paper.json").read_bytes() + b"]"
    server.script("/graph/v1/paper/batch", Reply(429, headers={"Retry-After": "0"}), Reply(200, body))
    client = SemanticScholarClient(server.url, delay=0, backoff=0)
    assert enrich(conn, client) == 1
    (row,) = list_entries(conn)
    assert row.venue == "International Conference on Learning Representations" and row.citation_count == 57
    assert enrich(conn, client) == 0  # nothing new the second time
    assert len(server.hits("/graph/v1/paper/batch")) == 3
    # a venue-only record (no arXiv id) is matched by its exact title
    server.route("/graph/v1/paper/search/match", lambda q: Reply.fixture("s2_match.json"))
    venue_only = Entry(source="dblp", title="Retrieval head mechanistically explains long-context factuality",
                       abstract="", venue="ICLR 2025")  # fmt: skip
    write_page(conn, [venue_only], annotate, source="dblp")
    conn.execute("UPDATE feed_entries SET status = 'pending'")
    conn.commit()
    assert enrich(conn, client) == 1
    row = next(e for e in list_entries(conn) if e.title.startswith("Retrieval head"))
    assert row.arxiv_id == "2404.15574" and row.citation_count == 112 and row.venue == "ICLR 2025"


def test_cut_off_run_keeps_the_cursor(server: ScriptedServer, db_path, annotate) -> None:
    entries = make_entries(10)
    server.route("/api/query", paged_route(entries))
    conn = connect(db_path)
    client = ArxivClient(server.url + "/api/query", delay=0, backoff=0)
    result = update_arxiv(conn, client, since=date(2024, 10, 1), until=date(2024, 11, 2), page_size=4,
                          max_results=8, annotate=annotate)  # fmt: skip
    assert result.added == 8 and "only 8 of 10" in result.skipped[-1]
    assert get_cursor(conn, "arxiv") is None
    update_arxiv(conn, client, since=date(2024, 10, 1), until=date(2024, 11, 2), page_size=4, annotate=annotate)
    assert count(conn) == 10 and get_cursor(conn, "arxiv") == "2024-11-02"


NON_LATIN = [
    "注意力头的因果分析",
    "语言模型中的检索头",
    "رؤوس الانتباه في النماذج اللغوية",
    "ראשי קשב במודלי שפה",
    "Механизм внимания в трансформерах",
    "Κεφαλές προσοχής σε γλωσσικά μοντέλα",
    "언어 모델의 어텐션 헤드",
]


def test_daily_papers_with_seven_non_latin_titles_stores_seven(tmp_path, db_path, annotate) -> None:
    items = [
        {"paper": {"id": f"2410.{20000 + i}", "title": t, "summary": "Attention heads of language models.",
                   "publishedAt": "2024-10-14T00:00:00.000Z"}}
        for i, t in enumerate(NON_LATIN)
    ]  # fmt: skip
    path = tmp_path / "daily.json"
    path.write_text(json.dumps(items, ensure_ascii=False), encoding="utf-8")
    conn = connect(db_path)
    result = ingest_files(conn, [path], annotate=annotate)
    assert result.added == 7 and result.merged == []
    assert sorted(e.title for e in list_entries(conn)) == sorted(NON_LATIN)
    # the same titles under new ids (no arXiv match) merge by title, and each merge names both titles
    for item in items:
        item["paper"]["id"] = item["paper"]["id"].replace("2410.", "2411.")
    path.write_text(json.dumps(items, ensure_ascii=False), encoding="utf-8")
    again = ingest_files(conn, [path], annotate=annotate)
    assert again.added == 0 and len(again.merged) == 7
    assert all(note.count(title) == 2 for note, title in zip(again.merged, NON_LATIN, strict=True))
    assert count(conn) == 7


def test_a_shared_doi_is_one_work_whatever_the_titles(db_path, annotate) -> None:
    conn = connect(db_path)
    first = Entry(source="arxiv", title="Heads, take one", abstract="a", arxiv_id="2401.00001", doi="10.5555/H.1")
    venue = Entry(source="daily", title="A different venue title", abstract="b", doi="10.5555/h.1")
    write_page(conn, [first], annotate, source="arxiv")
    result = write_page(conn, [venue], annotate, source="daily")
    assert result.added == 0 and result.updated == 1 and result.merged == []
    assert count(conn) == 1


def test_already_catalogued_means_in_this_stores_catalogue_not_only_the_shipped_one(db_path, annotate) -> None:
    """A paper added to the store (never in the shipped YAML) makes a new feed entry of the same work
    'catalogued', matched by arXiv id or, without one, by title key."""
    from headatlas.literature.catalogue import load_catalogue
    from headatlas.literature.store import add_paper, ensure_seeded

    conn = connect(db_path)
    ensure_seeded(conn)
    base = load_catalogue().papers[0]
    add_paper(conn, replace(base, id="2502.01234", title="Store-only heads", links={}))
    add_paper(conn, replace(base, id="titled-heads-2025", title="Heads known by title only", links={}))
    by_id, by_title, new = make_entries(3, seed=5)
    by_id = replace(by_id, arxiv_id="2502.01234", title="A renamed preprint of store-only heads")
    by_title = replace(by_title, arxiv_id=None, title="Heads Known By Title-Only")
    write_page(conn, [by_id, by_title, new], annotate, source="arxiv")
    found = {e.title: (e.status, e.catalogue_id) for e in list_entries(conn)}
    assert found[by_id.title] == ("catalogued", "2502.01234")
    assert found[by_title.title] == ("catalogued", "titled-heads-2025")
    assert found[new.title][1] is None
