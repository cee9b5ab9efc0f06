"""Full text: the arXiv HTML rendering (a recorded-shape fixture from a real local HTTP server) read down to its
head-related sentences and tables, tagged and searched for heads; a missing rendering keeps the abstract."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from headatlas.cli import app
from headatlas.literature.feed.fulltext import MAX_SENTENCES, analyse, html_path, read_html
from headatlas.literature.feed.proposals import evidence_for, full_text_sentences
from headatlas.literature.feed.tagging import default_tagger
from headatlas.store import connect

from .httpserver import FIXTURES, Reply, ScriptedServer

PAGE = (FIXTURES / "arxiv_html_2501.00001.html").read_text(encoding="utf-8")


def _daily(arxiv_id: str, title: str, summary: str) -> dict:
    paper = {"id": arxiv_id, "title": title, "summary": summary, "authors": [{"name": "A B"}],
             "publishedAt": "2025-01-02T00:00:00.000Z"}  # fmt: skip
    return {"paper": paper, "publishedAt": paper["publishedAt"], "title": title, "summary": "x"}


def test_read_html_keeps_head_sentences_and_tables_only() -> None:
    text = read_html(PAGE)
    assert text is not None
    joined = " ".join(text.sentences)
    assert "In GPT-2 small, head 9.9 and L10H7 behave like the name movers of earlier work." in text.sentences
    assert "We also see grader heads that compare the two answers." in text.sentences
    for left_out in ("Language model judges grade answers", "2.5 hours", "script text", "footer", "heads 3.3"):
        assert left_out not in joined  # not about heads, or script / math / page furniture
    assert [t.caption for t in text.tables] == ["Table 1: Evaluator heads of Llama-2-7B-chat with their scores."]
    assert text.tables[0].rows == (("14", "3", "0.91"), ("16", "19", "0.88"))
    assert read_html("<html><body><p>No HTML for this paper: heads.</p></body></html>") is None
    long_page = (
        "<article class='ltx_document'>" + "".join(f"<p>Heads number {i}.</p>" for i in range(400)) + "</article>"
    )
    assert len(read_html(long_page).sentences) == MAX_SENTENCES  # type: ignore[union-attr]


def test_analyse_adds_the_full_texts_types_and_heads() -> None:
    found = analyse(default_tagger(), "Evaluator Heads in LLM Judges", "We find evaluator heads.", read_html(PAGE))
    assert "copy_suppression" in found.tags.head_types  # named only in the body
    assert "grader head" in found.tags.candidates
    heads = {(m.head, m.model) for m in found.mentions}
    assert {("L9H9", "GPT-2"), ("L10H7", "GPT-2"), ("L14H3", "Llama"), ("L16H19", "Llama")} <= heads
    assert not any(m.head in ("L3H3", "L4H4", "L3H2") for m in found.mentions)  # math, section numbers
    abstract_only = analyse(default_tagger(), "Evaluator Heads in LLM Judges", "We find evaluator heads.", None)
    assert "copy_suppression" not in abstract_only.tags.head_types and not abstract_only.mentions
    assert html_path("2501.00001") == "/html/2501.00001" and html_path("2501.00001v2") == "/html/2501.00001v2"


def test_feed_fulltext_reads_pending_papers_politely_and_falls_back(tmp_path: Path, server: ScriptedServer) -> None:
    daily = tmp_path / "daily.json"
    daily.write_text(json.dumps([
        _daily("2501.00001", "Evaluator Heads in LLM Judges", "We find evaluator heads that score answers."),
        _daily("2501.00002", "Retrieval heads without HTML", "Retrieval heads copy from long contexts."),
        _daily("2501.00003", "Induction heads behind a flaky server", "Induction heads copy tokens."),
    ]))  # fmt: skip
    db = tmp_path / "s.db"
    runner = CliRunner()
    assert runner.invoke(app, ["feed", "update", "--file", str(daily), "--db", str(db)]).exit_code == 0
    server.script("/html/2501.00001", Reply(body=PAGE.encode(), headers={"Content-Type": "text/html"}))
    server.script("/html/2501.00002", Reply(status=404, body=b"No HTML for this paper"))
    server.script("/html/2501.00003", Reply(status=503))
    args = ["feed", "fulltext", "--html-url", server.url, "--delay", "0", "--retries", "0", "--db", str(db)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "1 read, 1 without an HTML rendering (abstract kept), 1 failed" in result.output
    conn = connect(db)
    rows = {r["arxiv_id"]: r for r in conn.execute("SELECT * FROM feed_entries").fetchall()}
    ids = {a: int(r["id"]) for a, r in rows.items()}
    assert "copy_suppression" in json.loads(rows["2501.00001"]["head_types_json"])
    assert "grader head" in json.loads(rows["2501.00001"]["candidates_json"])
    assert json.loads(rows["2501.00002"]["head_types_json"]) == ["retrieval"]  # the abstract's tags stay
    evidence = {(e.kind, e.name, e.detail): e.sentence for e in evidence_for(conn, ids["2501.00001"])}
    assert evidence[("reported_head", "L16H19", "Llama")].startswith("Table 1: Evaluator heads of Llama-2-7B-chat")
    assert evidence[("reported_head", "L9H9", "GPT-2")].startswith("In GPT-2 small, head 9.9")
    kept = full_text_sentences(conn, ids["2501.00001"])
    assert kept and all("head" in s.lower() or "L10H7" in s for s in kept)
    status = dict(conn.execute("SELECT entry_id, status FROM feed_full_text").fetchall())
    assert status == {ids["2501.00001"]: "read", ids["2501.00002"]: "missing"}  # the failed one is tried again
    conn.close()
    review = runner.invoke(app, ["papers", "review", "--db", str(db)], input="q\n")
    assert "reported head (candidate) L16H19 (Llama)" in review.output
    hits = len(server.seen)
    again = runner.invoke(app, args)
    assert "0 read, 0 without an HTML rendering (abstract kept), 1 failed" in again.output
    assert len(server.seen) == hits + 1  # only the failed paper is asked for again
    bad = runner.invoke(app, [*args[:2], "--status", "nonsense", "--db", str(db)])
    assert bad.exit_code != 0
