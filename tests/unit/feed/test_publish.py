"""From fixtures to the catalogue, the Atom feed and the digest (real local SMTP server); bad input."""

from __future__ import annotations

import json
import socket
from email import message_from_bytes, policy
from pathlib import Path

import feedparser
import pytest
from aiosmtpd.controller import Controller

from headatlas.cli import main
from headatlas.literature import store as paper_store
from headatlas.literature.feed.digest import Subscriber, send_digest, subscribe
from headatlas.literature.feed.store import dump_feed, list_entries
from headatlas.store import connect

from .httpserver import FIXTURES


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server, session, envelope):  # aiosmtpd handler hook
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content))
        return "250 OK"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture()
def smtp():
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield inbox, f"127.0.0.1:{controller.port}"
    finally:
        controller.stop()


def run(*args: str) -> int:
    return main(list(args))


def pending_id(db: Path, title_start: str) -> int:
    (entry,) = [e for e in list_entries(connect(db), "pending") if e.title.startswith(title_start)]
    return entry.id


def test_fixture_to_catalogue_atom_and_digest(db_path: Path, tmp_path: Path, smtp, capsys) -> None:
    inbox, address = smtp
    assert run("feed", "update", "--file", str(FIXTURES / "arxiv_new.xml"), "--db", str(db_path)) == 0
    binding = pending_id(db_path, "Binding Heads")
    headkv = pending_id(db_path, "Not All Heads")
    # HeadKV names no head type the vocabulary knows: it gets those of its closest catalogue paper
    (kv,) = [e for e in list_entries(connect(db_path)) if e.id == headkv]
    assert kv.head_types == ("retrieval", "global_retrieval") and "RazorAttention" in kv.why[-1]
    # an entry without any head type needs the curator to name one
    with connect(db_path) as conn:
        conn.execute("UPDATE feed_entries SET head_types_json = '[]' WHERE id = ?", (headkv,))
    assert run("papers", "review", "--accept", str(headkv), "--db", str(db_path)) == 2
    assert "no head type" in capsys.readouterr().err
    assert run("papers", "review", "--accept", str(binding), "--new-head", "binding head", "--db", str(db_path)) == 0
    assert run("papers", "review", "--reject", str(headkv), "--db", str(db_path)) == 0
    conn = connect(db_path)
    paper = paper_store.get_paper(conn, "2410.20001")
    assert paper.provenance.source == "ingest" and set(paper.head_types) == {"binding", "induction"}
    assert paper.summary.result.startswith("Ablating the three strongest binding heads")
    assert {e.id: e.status for e in list_entries(conn)}[headkv] == "rejected"

    feed_path = tmp_path / "feed.xml"
    assert run("feed", "atom", "--out", str(feed_path), "--db", str(db_path)) == 0
    parsed = feedparser.parse(feed_path.read_bytes())
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.version == "atom10"
    assert [e.title for e in parsed.entries] == [
        "Binding Heads: How Language Models Track Which Attribute Belongs to Which Entity"
    ]
    assert parsed.entries[0].id == "https://arxiv.org/abs/2410.20001"
    assert {t.term for t in parsed.entries[0].tags} == {"binding", "induction"}

    assert run("digest", "subscribe", "me@example.org", "--head-type", "binding", "--exclude", "vision",
               "--db", str(db_path)) == 0  # fmt: skip
    assert run("digest", "subscribe", "other@example.org", "--head-type", "retrieval", "--db", str(db_path)) == 0
    assert run("digest", "send", "--smtp", address, "--db", str(db_path)) == 0
    assert len(inbox.messages) == 1
    _sender, rcpts, raw = inbox.messages[0]
    assert rcpts == ["me@example.org"]
    msg = message_from_bytes(raw, policy=policy.default)
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    assert text.count("Binding Heads: How Language Models") == 1 and "<li><a href" in html
    assert "headatlas digest unsubscribe me@example.org" in text and "unsubscribe" in html
    # sent once: a second run sends nothing
    assert run("digest", "send", "--smtp", address, "--db", str(db_path)) == 0
    assert len(inbox.messages) == 1


def test_smtp_down_marks_nothing_sent_and_retries_later(db_path: Path, smtp) -> None:
    inbox, address = smtp
    run("feed", "update", "--file", str(FIXTURES / "arxiv_new.xml"), "--db", str(db_path))
    run("papers", "review", "--accept", str(pending_id(db_path, "Binding")), "--new-head", "binding", "--db",
        str(db_path))  # fmt: skip
    conn = connect(db_path)
    subscribe(conn, "me@example.org")
    before = dump_feed(conn)
    with pytest.raises(Exception, match="unreachable"):
        send_digest(conn, f"127.0.0.1:{free_port()}")
    assert dump_feed(conn) == before
    assert run("digest", "send", "--smtp", f"127.0.0.1:{free_port()}", "--db", str(db_path)) == 2
    report = send_digest(conn, address)
    assert report.sent == {"me@example.org": 1} and len(inbox.messages) == 1


def test_subscriber_filters() -> None:
    from headatlas.literature.feed.store import FeedEntry

    def entry(title: str, heads: tuple[str, ...]) -> FeedEntry:
        return FeedEntry(1, None, title, "", None, (), None, None, None, None, None, (), (), "accepted", 0.9, (),
                         heads, (), (), (), {}, None, "", None)  # fmt: skip

    s = Subscriber(1, "a@b.org", ("retrieval", "induction"), (), ("vision",))
    assert s.wants(entry("Retrieval heads in LLMs", ("retrieval",)))
    assert not s.wants(entry("Retrieval heads in vision transformers", ("retrieval",)))
    assert not s.wants(entry("Safety heads", ("safety",)))
    assert Subscriber(2, "c@d.org", (), ("KV cache",), ()).wants(entry("Heads and the kv cache", ()))


@pytest.mark.parametrize(
    "args, message",
    [
        (["digest", "subscribe", "not-an-email"], "invalid email address"),
        (["digest", "subscribe", "a@b.org", "--head-type", "no-such-head"], "unknown head name"),
        (["digest", "send", "--smtp", "localhost"], "HOST:PORT"),
        (["feed", "update", "--since", "2024-13-01"], "--since must be a date"),
        (["feed", "update", "--source", "reddit"], "unknown source"),
        (["feed", "update", "--file", str(FIXTURES / "billion_laughs.xml")], "hostile XML"),
        (["feed", "update", "--file", str(FIXTURES / "s2_paper.json")], "not a Daily Papers answer"),
        (["papers", "review", "--accept", "999"], "no feed entry 999"),
        (["papers", "classify", "/no/such/file.jsonl"], "cannot read"),
        (["feed", "list", "--status", "maybe"], "unknown status"),
    ],
)
def test_bad_input_is_one_line_exit_2_store_unchanged(db_path: Path, capsys, args, message) -> None:
    run("feed", "update", "--file", str(FIXTURES / "arxiv_new.xml"), "--db", str(db_path))
    before = dump_feed(connect(db_path))
    capsys.readouterr()
    assert run(*args, "--db", str(db_path)) == 2 if args[1] != "classify" else run(*args) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0]
    assert dump_feed(connect(db_path)) == before


def test_network_down_cli_message(db_path: Path, capsys) -> None:
    url = f"http://127.0.0.1:{free_port()}/api/query"
    args = ["--source", "arxiv", "--arxiv-url", url, "--delay", "0", "--retries", "0"]
    code = run("feed", "update", *args, "--since", "2024-10-01", "--until", "2024-10-02", "--db", str(db_path))
    assert code == 2
    assert "arXiv:" in capsys.readouterr().err
    assert list_entries(connect(db_path)) == []


def test_classify_command(tmp_path: Path, capsys) -> None:
    lines = [
        {"title": "Retrieval Heads in Long-Context Models", "abstract": "We find retrieval heads that copy needles."},
        {"title": "Diffusion Policies for Robot Cooking", "abstract": "We train policies from demonstrations."},
        {"abstract": "no title here"},
    ]
    path = tmp_path / "papers.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\nnot json\n")
    assert run("papers", "classify", str(path)) == 0
    captured = capsys.readouterr()
    out = [json.loads(line) for line in captured.out.splitlines()]
    assert [o["title"] for o in out] == [lines[0]["title"], lines[1]["title"]]
    assert out[0]["relevant"] is True and out[1]["relevant"] is False
    assert 0 <= out[1]["score"] < 0.5 <= out[0]["score"] <= 1
    assert out[0]["head_types"] == ["retrieval"] and "retrieval heads" in out[0]["why"]
    assert set(out[0]) == {"title", "relevant", "score", "head_types", "why"}
    assert "line 3: skipped" in captured.err and "line 4: skipped" in captured.err


def test_interactive_review_and_candidates(db_path: Path) -> None:
    from typer.testing import CliRunner

    from headatlas.cli import app

    run("feed", "update", "--file", str(FIXTURES / "arxiv_new.xml"), "--db", str(db_path))
    runner = CliRunner()
    listed = runner.invoke(app, ["feed", "candidates", "--db", str(db_path)])
    assert listed.exit_code == 0 and listed.output.startswith("binding head\t1\t#2")
    # newest first: #2 (Binding Heads, no known head type besides induction) then #1 (HeadKV)
    result = runner.invoke(app, ["papers", "review", "--db", str(db_path)], input="r\na\n")
    assert result.exit_code == 0, result.output
    statuses = {e.id: e.status for e in list_entries(connect(db_path))}
    assert statuses[2] == "rejected" and statuses[1] == "accepted"
    assert paper_store.get_paper(connect(db_path), "2410.19258").head_types == ("retrieval", "global_retrieval")


class PickyInbox(Inbox):
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # aiosmtpd handler hook
        if address.endswith("@refused.example"):
            return "550 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"


def test_refused_recipient_is_retried_next_time_others_marked(db_path: Path) -> None:
    run("feed", "update", "--file", str(FIXTURES / "arxiv_new.xml"), "--db", str(db_path))
    run("papers", "review", "--accept", str(pending_id(db_path, "Binding")), "--new-head", "binding", "--db",
        str(db_path))  # fmt: skip
    conn = connect(db_path)
    subscribe(conn, "a@refused.example")
    subscribe(conn, "b@ok.example")
    inbox = PickyInbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        report = send_digest(conn, f"127.0.0.1:{controller.port}")
    finally:
        controller.stop()
    assert report.sent == {"b@ok.example": 1} and list(report.failed) == ["a@refused.example"]
    sent = conn.execute("SELECT s.email FROM digest_sent d JOIN digest_subscribers s ON s.id = d.subscriber_id")
    assert [r[0] for r in sent] == ["b@ok.example"]
    assert [m[1] for m in inbox.messages] == [["b@ok.example"]]
    assert run("digest", "send", "--smtp", f"127.0.0.1:{free_port()}", "--dry-run", "--db", str(db_path)) == 0
