"""Issue 19's table, feed half: each hostile input gives a counted skip or a one-line error, never a traceback,
and nothing bad reaches the store (a bad date never enters the review queue)."""

from __future__ import annotations

import json
import os
import socket
import threading
import time

import pytest

from headatlas.cli import main
from headatlas.literature.feed.digest import send_digest, subscribe
from headatlas.literature.feed.sources.arxiv import parse_arxiv_feed
from headatlas.literature.feed.sources.daily import parse_daily_papers
from headatlas.literature.feed.store import list_entries
from headatlas.literature.feed.synthetic import atom_page, make_entries
from headatlas.store import connect

DEEP = "[" * 100_000 + "]" * 100_000


def _item(i: int, **paper: object) -> dict[str, object]:
    base: dict[str, object] = {"id": f"2410.{30000 + i}", "title": f"Retrieval heads study {i}", "summary": "Heads."}
    return {"paper": {**base, **paper}}


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("authors", 5, "authors must be a list of names"),
        ("ai_keywords", 5, "ai_keywords must be a list of text"),
        ("title", "Heads \ud800 here", "title holds a lone surrogate"),
        ("publishedAt", "2024-13-45", "published '2024-13-45' is not a date"),
        ("publishedAt", "yesterday", "published 'yesterday' is not a date"),
        ("summary", ["not", "text"], "summary must be text"),
    ],
)
def test_daily_papers_bad_field_is_a_counted_skip(tmp_path, db_path, capsys, field, value, reason) -> None:
    path = tmp_path / "daily.json"
    path.write_text(json.dumps([_item(0), _item(1, **{field: value}), _item(2)]), encoding="utf-8")
    assert main(["feed", "update", "--file", str(path), "--db", str(db_path)]) == 0
    err = " ".join(capsys.readouterr().err.split())  # the console wraps long lines
    assert f"skipped item 1: {reason}" in err, err
    assert "Traceback" not in err
    assert sorted(e.title for e in list_entries(connect(db_path))) == [
        "Retrieval heads study 0",
        "Retrieval heads study 2",
    ]


@pytest.mark.parametrize("bad_day", ["2024-13-45", "yesterday"])
def test_a_bad_arxiv_date_never_enters_the_queue(tmp_path, db_path, capsys, bad_day) -> None:
    good, bad = make_entries(2)[0], make_entries(4)[2]
    xml = atom_page([good, bad], total=2, start=0).replace(f"{bad.published}T12:00:00Z".encode(), bad_day.encode())
    path = tmp_path / "page.xml"
    path.write_bytes(xml)
    assert main(["feed", "update", "--file", str(path), "--db", str(db_path)]) == 0
    assert "is not a date YYYY-MM-DD" in " ".join(capsys.readouterr().err.split())
    entries = list_entries(connect(db_path))
    assert [e.arxiv_id for e in entries] == [good.arxiv_id]
    # the queue holds only well-dated entries, so accepting every one of them works
    for e in entries:
        assert main(["papers", "review", "--accept", str(e.id), "--head-type", "induction", "--db", str(db_path)]) == 0


def test_deeply_nested_json_file_is_one_line(tmp_path, db_path, capsys) -> None:
    path = tmp_path / "deep.json"
    path.write_text(DEEP)
    assert main(["feed", "update", "--file", str(path), "--db", str(db_path)]) == 2
    assert "nested too deeply" in _one_line_error(capsys)
    with pytest.raises(ValueError):
        parse_daily_papers(5)


def test_opensearch_counts_must_be_counts() -> None:
    xml = atom_page(make_entries(1), total=1, start=0).replace(b">1</", b">99999999999999999999999</", 1)
    with pytest.raises(ValueError, match="not a count"):
        parse_arxiv_feed(xml)


@pytest.mark.parametrize(
    "args",
    [
        ["papers", "review", "--accept", "99999999999999999999"],
        ["papers", "review", "--reject", "-1"],
        ["feed", "update", "--max-results", "99999999999999999999", "--source", "arxiv"],
        ["feed", "update", "--delay", "nan", "--source", "arxiv"],
    ],
)
def test_out_of_range_numbers_are_one_line_errors(db_path, capsys, args) -> None:
    assert main([*args, "--db", str(db_path)]) == 2
    assert "must be" in _one_line_error(capsys)


def test_classify_keeps_the_batch_when_one_line_is_hostile(tmp_path, capsys) -> None:
    good = {"title": "Retrieval Heads in Long-Context Models", "abstract": "We find retrieval heads."}
    lines = [json.dumps(good), DEEP, json.dumps({"title": "Heads \ud800", "abstract": ""}), json.dumps(good)]
    path = tmp_path / "papers.jsonl"
    path.write_text("\n".join(lines) + "\n")
    assert main(["papers", "classify", str(path)]) == 0
    captured = capsys.readouterr()
    assert [json.loads(x)["title"] for x in captured.out.splitlines()] == [good["title"]] * 2
    assert "line 2: skipped, not JSON (JSON nested too deeply)" in captured.err
    assert "line 3: skipped, holds a lone surrogate" in captured.err


@pytest.mark.parametrize("command", ["atom", "export"])
def test_a_planted_temp_symlink_is_never_written_through(tmp_path, db_path, command) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    out = tmp_path / "feed.out"
    for name in ("feed.out.tmp", ".feed.out.tmp", f".feed.out.{os.getpid()}.tmp"):
        (tmp_path / name).symlink_to(victim)
    assert main(["feed", command, "--out", str(out), "--db", str(db_path)]) == 0
    assert victim.read_text() == "precious"
    assert out.read_bytes() and not out.is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")) == sorted(
        ["feed.out.tmp", ".feed.out.tmp", f".feed.out.{os.getpid()}.tmp"]
    )  # no stray temp file of ours is left


def test_atomic_write_removes_its_temp_file_on_error(tmp_path, monkeypatch) -> None:
    from headatlas import fileio

    def broken(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fileio.os, "replace", broken)
    with pytest.raises(OSError):
        fileio.write_atomic(tmp_path / "x.json", "data")
    assert list(tmp_path.iterdir()) == []


class _DripServer:
    """An SMTP 'server' that sends a ``220-`` continuation line every ``every`` seconds and never finishes."""

    def __init__(self, every: float) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.port = self.sock.getsockname()[1]
        self.every = every
        self.stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        with conn:
            while not self.stop.is_set():
                try:
                    conn.sendall(b"220-still greeting\r\n")
                except OSError:
                    return
                time.sleep(self.every)

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


def test_digest_send_to_a_dripping_server_stops_at_its_deadline(db_path) -> None:
    conn = connect(db_path)
    subscribe(conn, "a@example.org")
    conn.execute("INSERT INTO feed_entries (norm_title, title, abstract, authors_json, categories_json, keywords_json,"
                 " sources_json, status, score, why_json, head_types_json, candidates_json, stages_json, models_json,"
                 " summary_json, first_seen) VALUES ('x', 'X', '', '[]', '[]', '[]', '[]', 'accepted', 1, '[]', '[]',"
                 " '[]', '[]', '[]', '{}', 'now')")  # fmt: skip
    conn.commit()
    server = _DripServer(every=0.2)
    started = time.monotonic()
    try:
        from headatlas.errors import SourceError

        with pytest.raises(SourceError, match=r"overall deadline of 1\.5 s"):
            send_digest(conn, f"127.0.0.1:{server.port}", timeout=1.0, deadline=1.5)
    finally:
        server.close()
    assert time.monotonic() - started < 5
    assert conn.execute("SELECT COUNT(*) FROM digest_sent").fetchone()[0] == 0


def test_digest_send_partial_failure_exits_non_zero(db_path, capsys, monkeypatch) -> None:
    from headatlas.literature.feed import digest
    from headatlas.literature.feed.digest import SendReport

    monkeypatch.setattr(
        digest, "send_digest", lambda *a, **k: SendReport({"b@ok.example": 1}, {"a@x.example": "550 refused"})
    )
    assert main(["digest", "send", "--smtp", "127.0.0.1:25", "--db", str(db_path)]) != 0
    line = _one_line_error(capsys)
    assert "1 of 2 subscriber(s)" in line
