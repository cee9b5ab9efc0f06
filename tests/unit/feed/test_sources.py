"""Source clients against recorded-shape fixtures served by a real local HTTP server."""

from __future__ import annotations

import time
from datetime import date

import pytest

from headatlas.errors import SourceError
from headatlas.literature.feed.model import parse_arxiv_id
from headatlas.literature.feed.sources import (
    ArxivClient,
    DailyPapersClient,
    Fetcher,
    SemanticScholarClient,
    parse_arxiv_feed,
)
from headatlas.literature.feed.sources.http import parse_retry_after
from headatlas.literature.identity import title_key as normalise_title

from .httpserver import FIXTURES, Reply, ScriptedServer


def fast_arxiv(server: ScriptedServer, **kw) -> ArxivClient:
    return ArxivClient(server.url + "/api/query", delay=kw.pop("delay", 0.0), backoff=0.0, timeout=2.0, **kw)


def test_parse_arxiv_ids_and_titles() -> None:
    assert parse_arxiv_id("http://arxiv.org/abs/2409.03752v2") == ("2409.03752", 2)
    assert parse_arxiv_id("2409.03752") == ("2409.03752", None)
    assert parse_arxiv_id("http://arxiv.org/abs/cs/0112017v1") == ("cs/0112017", 1)
    assert parse_arxiv_id("arXiv:1706.03762v7") == ("1706.03762", 7)
    assert parse_arxiv_id("not an id") is None
    assert normalise_title("What does BERT look at? An Analysis of BERT’s Attention") == normalise_title(
        "What Does BERT Look At?  An analysis of BERT's attention"
    )


def test_parse_arxiv_fixture_fields() -> None:
    page = parse_arxiv_feed((FIXTURES / "arxiv_page1.xml").read_bytes())
    assert page.total == 5 and page.start == 0 and len(page.entries) == 3
    duo = page.entries[0]
    assert duo.arxiv_id == "2410.10819" and duo.version == 2
    assert duo.title == "DuoAttention: Efficient Long-Context LLM Inference with Retrieval and Streaming Heads"
    assert duo.authors == ("Guangxuan Xiao", "Jiaming Tang", "Song Han")
    assert duo.published == "2024-10-14" and duo.updated == "2024-10-20"
    assert duo.categories == ("cs.CL", "cs.LG")
    assert duo.comment == "ICLR 2025 camera ready"
    assert "retrieval heads" in duo.abstract and "\n" not in duo.abstract
    page2 = parse_arxiv_feed((FIXTURES / "arxiv_page2.xml").read_bytes())
    assert [e.arxiv_id for e in page2.entries] == ["2404.15574"]
    assert page2.skipped and "missing title" in page2.skipped[0]


@pytest.mark.parametrize("name", ["billion_laughs.xml", "external_entity.xml"])
def test_hostile_xml_is_refused(name: str) -> None:
    with pytest.raises(SourceError, match="hostile XML"):
        parse_arxiv_feed((FIXTURES / name).read_bytes())


def test_arxiv_error_entry_raises() -> None:
    with pytest.raises(SourceError, match="incorrect id format"):
        parse_arxiv_feed((FIXTURES / "arxiv_error.xml").read_bytes())


def test_arxiv_pages_through_the_server(server: ScriptedServer) -> None:
    server.route(
        "/api/query",
        lambda q: Reply.fixture("arxiv_page1.xml" if q["start"] == "0" else "arxiv_page2.xml"),
    )
    client = fast_arxiv(server)
    pages = list(client.search("abs:heads", since=date(2024, 4, 1), until=date(2024, 10, 31), page_size=3))
    assert [len(p.entries) for p in pages] == [3, 1]
    starts = [s.query["start"] for s in server.hits("/api/query")]
    assert starts == ["0", "3"]
    sent = server.hits("/api/query")[0].query
    assert sent["search_query"] == "(abs:heads) AND submittedDate:[202404010000 TO 202410312359]"
    assert sent["sortBy"] == "submittedDate" and sent["max_results"] == "3"


def test_arxiv_waits_between_calls(server: ScriptedServer) -> None:
    server.route(
        "/api/query",
        lambda q: Reply.fixture("arxiv_page1.xml" if q["start"] == "0" else "arxiv_page2.xml"),
    )
    client = fast_arxiv(server, delay=0.4)
    list(client.search("abs:heads", page_size=3))
    first, second = server.hits("/api/query")
    assert second.at - first.at >= 0.38


def test_retry_after_on_429_is_honoured(server: ScriptedServer) -> None:
    server.script("/api/query", Reply(429, b"slow down", {"Retry-After": "1"}), Reply.fixture("arxiv_page2.xml"))
    client = fast_arxiv(server)
    start = time.monotonic()
    page = client.page("abs:heads", 3, 3)
    assert page.entries[0].arxiv_id == "2404.15574"
    hits = server.hits("/api/query")
    assert len(hits) == 2 and hits[1].at - hits[0].at >= 0.95
    assert time.monotonic() - start < 5


def test_backoff_is_exponential_on_500s() -> None:
    waits: list[float] = []
    s = ScriptedServer()
    try:
        s.script("/x", Reply(500), Reply(502), Reply(503), Reply(200, b"ok"))
        with Fetcher(s.url, name="t", backoff=0.5, retries=4, sleep=waits.append) as fetcher:
            assert fetcher.request("GET", "/x").text == "ok"
    finally:
        s.close()
    assert waits == [0.5, 1.0, 2.0]


def test_timeout_then_success(server: ScriptedServer) -> None:
    server.script("/api/query", Reply.fixture("arxiv_page2.xml", delay=1.5), Reply.fixture("arxiv_page2.xml"))
    client = ArxivClient(server.url + "/api/query", delay=0, backoff=0, timeout=0.5)
    assert client.page("q", 3, 3).entries
    assert len(server.hits("/api/query")) == 2


def test_a_source_that_never_answers_in_time_names_the_timeout(server: ScriptedServer) -> None:
    server.script("/api/query", Reply.fixture("arxiv_page2.xml", delay=1.5))  # the last reply repeats
    client = ArxivClient(server.url + "/api/query", delay=0, backoff=0, retries=1, timeout=0.5)
    with pytest.raises(SourceError, match=r"failed after 2 attempts: timed out after 0\.5 s"):
        client.page("q", 3, 3)


def test_truncated_and_garbled_bodies_are_retried(server: ScriptedServer) -> None:
    server.script(
        "/api/query",
        Reply.fixture("arxiv_page1.xml", truncate=True),
        Reply(200, b"<feed><entry>", {"Content-Type": "application/atom+xml"}),
        Reply.fixture("arxiv_page1.xml"),
    )
    assert len(fast_arxiv(server).page("q", 0, 3).entries) == 3
    assert len(server.hits("/api/query")) == 3


def test_gives_up_with_a_clear_error(server: ScriptedServer) -> None:
    server.script("/api/query", Reply(503))
    with pytest.raises(SourceError, match=r"failed after 3 attempts: HTTP 503"):
        fast_arxiv(server, retries=2).page("q", 0, 3)
    assert len(server.hits("/api/query")) == 3


def test_network_down_is_a_source_error() -> None:
    s = ScriptedServer()
    url = s.url
    s.close()
    with pytest.raises(SourceError, match="connection failed"):
        ArxivClient(url, delay=0, backoff=0, retries=1, timeout=1).page("q", 0, 1)


def test_hostile_xml_is_not_retried(server: ScriptedServer) -> None:
    server.script("/api/query", Reply.fixture("billion_laughs.xml"))
    with pytest.raises(SourceError, match="hostile"):
        fast_arxiv(server).page("q", 0, 3)
    assert len(server.hits("/api/query")) == 1


def test_client_error_is_not_retried(server: ScriptedServer) -> None:
    server.script("/api/query", Reply(400, b"bad query"))
    with pytest.raises(SourceError, match="HTTP 400"):
        fast_arxiv(server).page("q", 0, 3)
    assert len(server.hits("/api/query")) == 1


def test_retry_after_http_date() -> None:
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == pytest.approx(10.0)
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("soon") is None


def test_daily_papers_day_and_search(server: ScriptedServer) -> None:
    server.route("/api/daily_papers", lambda q: Reply.fixture("daily_2024-10-14.json"))
    server.route("/api/papers/search", lambda q: Reply.fixture("daily_2024-10-14.json"))
    client = DailyPapersClient(server.url, delay=0, backoff=0)
    answer = client.day(date(2024, 10, 14))
    assert server.hits("/api/daily_papers")[0].query["date"] == "2024-10-14"
    assert [e.arxiv_id for e in answer.entries] == ["2410.10819", "2410.10888"]
    duo = answer.entries[0]
    assert duo.source == "daily" and duo.published == "2024-10-14"
    assert "retrieval heads" in duo.keywords and duo.extra["upvotes"] == 23
    assert answer.skipped == ["item 2: missing or malformed paper.id None"]
    client.search("retrieval heads", limit=5)
    assert server.hits("/api/papers/search")[0].query == {"q": "retrieval heads", "limit": "5"}


def test_daily_papers_broken_json_retried_then_fails(server: ScriptedServer) -> None:
    server.script("/api/daily_papers", Reply(200, b'[{"paper": {"id": "24'))
    client = DailyPapersClient(server.url, delay=0, backoff=0, retries=1)
    with pytest.raises(SourceError, match="broken JSON"):
        client.day(date(2024, 10, 14))
    assert len(server.hits("/api/daily_papers")) == 2


def test_semantic_scholar_enrichment(server: ScriptedServer) -> None:
    server.route("/graph/v1/paper/ARXIV:2410.10819", lambda q: Reply.fixture("s2_paper.json"))
    server.route("/graph/v1/paper/search/match", lambda q: Reply.fixture("s2_match.json"))
    client = SemanticScholarClient(server.url, delay=0, backoff=0)
    duo = client.by_arxiv("2410.10819")
    assert duo is not None and duo.venue == "International Conference on Learning Representations"
    assert duo.citation_count == 57 and duo.arxiv_id == "2410.10819"
    assert "citationCount" in server.hits("/graph/v1/paper/ARXIV:2410.10819")[0].query["fields"]
    match = client.match_title("Retrieval head mechanistically explains long-context factuality")
    assert match is not None and match.arxiv_id == "2404.15574" and match.venue is None  # arXiv is no venue
    assert client.match_title("A different paper entirely") is None
    assert client.by_arxiv("9999.99999") is None  # the server answers 404


def test_semantic_scholar_batch(server: ScriptedServer) -> None:
    body = b"[" + (FIXTURES / "s2_paper.json").read_bytes() + b", null]"
    server.route("/graph/v1/paper/batch", lambda q: Reply(200, body))
    client = SemanticScholarClient(server.url, delay=0, backoff=0)
    found = client.batch(["2410.10819", "2501.00000"])
    assert list(found) == ["2410.10819"]
    assert server.hits("/graph/v1/paper/batch")[0].body == b'{"ids":["ARXIV:2410.10819","ARXIV:2501.00000"]}'
