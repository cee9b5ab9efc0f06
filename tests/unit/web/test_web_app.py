"""The web app through Starlette's TestClient: every page, the JSON API, 404s, traversal, read-only, escaping."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from headatlas.cli import main
from headatlas.store import connect, list_scans
from headatlas.web import catalogue
from headatlas.web.app import create_app


@pytest.fixture(scope="module")
def client(web_store):
    return TestClient(create_app(web_store["db"]), raise_server_exceptions=False)


@pytest.fixture()
def ids(web_store):
    return web_store["scan_ids"]


def test_every_page_renders(client, ids, tiny_headmap):
    good = ids[0]
    best = tiny_headmap.top("induction", 1)[0]["name"]
    unscored = next(t for t, v in catalogue.vocabulary(None).items() if not v["scored"])
    pages = {
        "/": [tiny_headmap.facts.name, f'href="/scans/{good}"'],
        f"/scans/{good}": ['data-kind="overview"', f'href="/scans/{good}/heads/L0H0"'],
        f"/scans/{good}?type=induction": ['data-type="induction"', "about this type and its papers"],
        f"/scans/{good}/heads/{best}": ['id="pattern-data"', "Induction head", 'id="head-scores"'],
        "/head-types": ["Induction head", "/head-types/induction"],
        "/head-types/induction": ["In-context Learning and Induction Heads", 'id="atlas-heads"'],
        f"/head-types/{unscored}": ["does not score this type yet"],  # a catalogue-only type
        "/papers": ['id="paper-search"', 'data-paper-id="2209.11895"'],
        "/papers?q=retrieval+head": ["Retrieval Head Mechanistically Explains Long-Context Factuality"],
        "/papers/2209.11895": ["In-context Learning and Induction Heads", "Matching heads in your scans"],
    }
    for url, needles in pages.items():
        r = client.get(url)
        assert r.status_code == 200, url
        assert r.headers["content-type"].startswith("text/html")
        for needle in needles:
            assert needle in r.text, (url, needle)
    # the head-type page is the atlas view: it links heads of every scan
    atlas = client.get("/head-types/sink").text
    assert all(f'href="/scans/{sid}/heads/' in atlas for sid in ids)


def test_paper_filters(client):
    everything = client.get("/api/papers").json()
    by_type = client.get("/api/papers", params={"head_type": "retrieval"}).json()
    by_year = client.get("/api/papers", params={"year": 2023}).json()
    by_stage = client.get("/api/papers", params={"stage": "KR"}).json()
    assert 0 < len(by_type) < len(everything)
    assert all("retrieval" in p["head_types"] for p in by_type)
    assert by_year and all(p["year"] == 2023 for p in by_year)
    assert by_stage and all("KR" in p["stages"] for p in by_stage)
    page = client.get("/papers", params={"head_type": "retrieval", "year": "", "stage": ""}).text
    assert f"{len(by_type)} of {len(everything)} papers" in page


def test_api_mirrors_pages_and_publishes_its_schema(client, ids, tiny_headmap):
    scans = client.get("/api/scans").json()
    assert {s["id"] for s in scans["scans"]} == set(ids)
    scan = client.get(f"/api/scans/{ids[0]}").json()
    f = tiny_headmap.facts
    assert len(scan["heads"]) == f.n_head_total * len(tiny_headmap.head_types)
    assert scan["members"]["sink"] == len(tiny_headmap.members("sink"))
    only = client.get(f"/api/scans/{ids[0]}", params={"type": "induction"}).json()
    assert {h["head_type"] for h in only["heads"]} == {"induction"}
    head = client.get(f"/api/scans/{ids[0]}/heads/L1H2").json()
    assert head["head"]["name"] == "L1H2"
    assert list(head["patterns"]["examples"][0]["heads"]) == ["L1H2"]
    ht = client.get("/api/head-types/induction").json()
    assert ht["type"]["scored"] and ht["papers"]
    assert client.get("/api/papers/2209.11895").json()["paper"]["title"] == "In-context Learning and Induction Heads"
    schema = client.get("/api/openapi.json").json()
    for path in ("/api/scans", "/api/scans/{scan_id}", "/api/scans/{scan_id}/heads/{name}", "/api/head-types",
                 "/api/head-types/{type_id}", "/api/papers", "/api/papers/{paper_id}"):  # fmt: skip
        assert path in schema["paths"], path
    assert not any(not p.startswith("/api/") for p in schema["paths"])
    assert {"ScanDetail", "HeadScore", "HeadTypeDetail", "Paper", "PaperDetail"} <= set(schema["components"]["schemas"])


@pytest.mark.parametrize(
    "url",
    ["/scans/999", "/scans/abc", "/scans/1/heads/L99H0", "/scans/1/heads/x", "/scans/1?type=nope",
     "/head-types/nope", "/papers/nope", "/papers/..%2F..%2Fetc%2Fpasswd", "/nowhere"],
)  # fmt: skip
def test_unknown_ids_give_a_404_page(client, url):
    r = client.get(url)
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("text/html")
    assert 'id="error-message"' in r.text and "Traceback" not in r.text


@pytest.mark.parametrize("url", ["/api/scans/999", "/api/scans/1/heads/L99H0", "/api/head-types/nope", "/api/papers/x"])
def test_unknown_ids_give_json_404_under_api(client, url):
    r = client.get(url)
    assert r.status_code == 404 and "detail" in r.json()


@pytest.mark.parametrize(
    "url",
    ["/static/../app.py", "/static/..%2fapp.py", "/static/%2e%2e/%2e%2e/store/db.py", "/static/..%5capp.py",
     "/static//etc/passwd", "/static/%2fetc%2fpasswd"],
)  # fmt: skip
def test_no_path_traversal_through_static(client, url):
    r = client.get(url)
    assert r.status_code == 404
    assert "def create_app" not in r.text and "root:" not in r.text


def test_static_assets_are_served(client):
    assert "renderPattern" in client.get("/static/app.js").text
    assert client.get("/static/app.css").status_code == 200


def test_hostile_strings_are_escaped_on_every_page(client, ids, hostile):
    bad = ids[1]
    urls = ["/", f"/scans/{bad}", f"/scans/{bad}/heads/L0H0", "/papers", "/papers?q=induction",
            "/papers/hostile-title-paper-2024", "/head-types/induction", "/papers?q=%3Cscript%3E"]  # fmt: skip
    for url in urls:
        html = client.get(url).text
        for raw in ("<script>window.__xss", "<img src=x", 'onerror="window'):
            assert raw not in html, (url, raw)
    assert "&lt;script&gt;window.__xss" in client.get("/papers/hostile-title-paper-2024").text
    assert "&lt;script&gt;window.__xss" in client.get("/").text  # the model name
    head = client.get(f"/scans/{bad}/heads/L0H0").text
    assert "\\u003cscript\\u003ewindow.__xss" in head  # token strings, JSON-escaped inside the data block
    reflected = client.get("/papers", params={"q": hostile["both"]}).text
    assert hostile["script"] not in reflected and "&lt;script&gt;" in reflected


def test_read_only_unless_curate(web_store, tmp_path):
    ro = TestClient(create_app(web_store["db"]))
    scan_id = web_store["scan_ids"][0]
    assert ro.delete(f"/api/scans/{scan_id}").status_code == 403
    assert ro.post(f"/scans/{scan_id}/delete").status_code == 403
    assert "Delete scan" not in ro.get(f"/scans/{scan_id}").text
    assert ro.get(f"/scans/{scan_id}").status_code == 200  # still there

    # curation on a copy of the store
    import shutil

    db = tmp_path / "copy.sqlite3"
    src = connect(web_store["db"])
    src.execute("PRAGMA wal_checkpoint(FULL)")
    src.close()
    shutil.copy(web_store["db"], db)
    rw = TestClient(create_app(db, curate=True))
    assert "Delete scan" in rw.get(f"/scans/{scan_id}").text
    assert rw.delete(f"/api/scans/{scan_id}").json() == {"deleted": scan_id}
    assert rw.get(f"/scans/{scan_id}").status_code == 404
    assert rw.delete(f"/api/scans/{scan_id}").status_code == 404
    assert scan_id not in {s["id"] for s in list_scans(connect(db))}


def test_serve_refuses_a_bad_port(capsys):
    assert main(["serve", "--port", "70000", "--db", "/nonexistent/x.sqlite3"]) == 2
    assert "--port" in capsys.readouterr().err


def test_serve_binds_loopback_by_default(monkeypatch, tmp_path):
    seen = {}

    def fake_serve(db, host, port, curate):
        seen.update(db=db, host=host, port=port, curate=curate)

    monkeypatch.setattr("headatlas.web.app.serve", fake_serve)
    assert main(["serve", "--db", str(tmp_path / "s.sqlite3")]) == 0
    assert seen["host"] == "127.0.0.1" and seen["port"] == 8000 and seen["curate"] is False


def test_security_headers(client):
    for url in ("/", "/papers", "/api/scans", "/static/app.js", "/nowhere"):
        headers = client.get(url).headers
        assert "script-src 'self'" in headers["content-security-policy"], url
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["x-frame-options"] == "DENY"
    assert " onsubmit=" not in client.get("/").text  # no inline handlers: the CSP would block them anyway


HUGE = "99999999999999999999999"


@pytest.mark.parametrize(
    "url",
    [f"/scans/{HUGE}", f"/api/scans/{HUGE}", f"/scans/{HUGE}/heads/L0H0", f"/api/scans/{HUGE}/heads/L0H0",
     f"/scans/-{HUGE}", f"/scans/{2**63}", f"/api/scans/{2**63}?type=induction"],
)  # fmt: skip
def test_huge_scan_ids_are_404_with_security_headers(client, url):
    r = client.get(url)
    assert r.status_code == 404, (url, r.status_code)
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert r.headers["x-content-type-options"] == "nosniff" and r.headers["x-frame-options"] == "DENY"


def test_a_huge_id_cannot_be_deleted_either(web_store):
    rw = TestClient(create_app(web_store["db"], curate=True), raise_server_exceptions=False)
    assert rw.delete(f"/api/scans/{HUGE}").status_code == 404


def test_an_unexpected_error_is_a_500_page_with_the_security_headers(web_store, monkeypatch):
    app_client = TestClient(create_app(web_store["db"]), raise_server_exceptions=False)

    def broken(conn):
        raise RuntimeError("boom")

    monkeypatch.setattr(catalogue, "vocabulary", broken)
    for url, kind in (("/head-types", "text/html"), ("/api/head-types", "application/json")):
        r = app_client.get(url)
        assert r.status_code == 500 and r.headers["content-type"].startswith(kind), url
        assert "boom" not in r.text and "Traceback" not in r.text
        assert "script-src 'self'" in r.headers["content-security-policy"], url
        assert r.headers["x-content-type-options"] == "nosniff" and r.headers["x-frame-options"] == "DENY"


def test_no_head_type_reads_scored_on_the_none_probe(client, ids):
    from headatlas.heads import head_types

    for t in head_types():
        html = client.get(f"/head-types/{t}").text
        assert "headatlas scores this type on" in html, t
        assert "None" not in html.split("headatlas scores this type on")[1].split("</p>")[0], t


@pytest.mark.parametrize(
    "params, message",
    [({"year": "abc"}, "year must be a year"), ({"stage": "<b>"}, "stage must be one of"),
     ({"head_type": "no_such_type"}, "no head type")],
)  # fmt: skip
def test_invalid_paper_filters_are_explained_not_ignored(client, params, message):
    everything = client.get("/api/papers").json()
    r = client.get("/papers", params=params)
    assert r.status_code == 400
    assert 'id="filter-error"' in r.text and message in r.text
    assert "<b>" not in r.text.split('id="filter-error"')[1].split("</div>")[0]  # escaped
    assert f"{len(everything)} of {len(everything)} papers" in r.text  # the bad filter is dropped, and says so
    api = client.get("/api/papers", params=params)
    assert api.status_code == 400 and message in api.json()["detail"]


def test_valid_paper_filters_still_filter(client):
    r = client.get("/papers", params={"year": "2023", "stage": "KR"})
    assert r.status_code == 200 and 'id="filter-error"' not in r.text


def test_scan_page_top_heads_follow_the_filter_and_list_every_member(client, ids, tiny_headmap):
    import re

    html = client.get(f"/scans/{ids[0]}?type=sink").text
    cards = re.findall(r'<div class="card top-heads" data-type="([a-z_]+)"', html)
    assert cards == ["sink"]
    section = html.split('data-type="sink">', 2)[-1]
    for name in tiny_headmap.members("sink"):
        assert f'/heads/{name}">{name}</a>' in section, name
    overview = client.get(f"/scans/{ids[0]}").text
    assert re.findall(r'<div class="card top-heads" data-type="([a-z_]+)"', overview) == list(tiny_headmap.head_types)


def test_search_ranks_by_relevance_without_the_catalogue_in_the_store(tmp_path):
    """A store that never imported the catalogue (the app's connections are read-only, so it cannot seed one)
    searches the shipped list: best match first (the defining paper, then bm25), not newest first."""
    bare = TestClient(create_app(tmp_path / "bare.sqlite3"))
    found = bare.get("/api/papers", params={"q": "retrieval head"}).json()
    assert found[0]["title"] == "Retrieval Head Mechanistically Explains Long-Context Factuality"
    dates = [p["date"] for p in found]
    assert dates != sorted(dates, reverse=True)  # the relevance order is not the date order
    titled = bare.get("/api/papers", params={"q": "induction"}).json()
    assert "induction" in titled[0]["title"].lower()
    assert bare.get("/api/papers", params={"q": "zzqqxx"}).json() == []


def test_papers_page_shows_type_names_and_explains_stages(client):
    html = client.get("/papers").text
    assert '<option value="previous_token">Previous-token head</option>' in html
    assert '<span class="badge" data-type="induction">Induction head</span>' in html
    assert 'title="LR: latent reasoning (survey stage)"' in html and 'class="small muted stage-legend"' in html
    assert "in-context identification" in client.get("/head-types").text


def test_scan_page_links_its_files_and_each_downloads(client, ids, web_store, tiny_headmap):
    from headatlas.web.report import report_csp

    good = ids[0]
    html = client.get(f"/scans/{good}").text
    for name in ("headmap.csv", "headmap.json", "patterns.json", "report.html"):
        assert f'href="/scans/{good}/files/{name}"' in html, name
    csv = client.get(f"/scans/{good}/files/headmap.csv")
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    assert csv.text == tiny_headmap.csv_text() and "attachment" in csv.headers["content-disposition"]
    js = client.get(f"/scans/{good}/files/headmap.json")
    assert js.json()["model"]["name"] == tiny_headmap.facts.name
    patterns = client.get(f"/scans/{good}/files/patterns.json")
    assert patterns.content == (web_store["good"] / "patterns.json").read_bytes()
    report = client.get(f"/scans/{good}/files/report.html")
    assert report.status_code == 200 and 'id="pattern-data"' in report.text
    assert report.headers["content-security-policy"] == report_csp()  # the report's pinned script may run
    api = client.get(f"/api/scans/{good}").json()
    assert set(api["files"]) == {"headmap.csv", "headmap.json", "patterns.json", "report.html"}


@pytest.mark.parametrize("name", ["store.sqlite3", "..%2Fstore.sqlite3", "headmap.parquet", "%2e%2e"])
def test_scan_files_are_only_the_four(client, ids, name):
    r = client.get(f"/scans/{ids[0]}/files/{name}")
    assert r.status_code == 404 and "SQLite" not in r.text


def test_large_responses_are_gzipped(client, ids):
    big = client.get(f"/api/scans/{ids[0]}", headers={"Accept-Encoding": "gzip"})
    assert big.headers.get("content-encoding") == "gzip" and big.json()["scan"]["id"] == ids[0]
    assert "script-src" in big.headers["content-security-policy"]
    small = client.get("/api/scans/424242", headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in small.headers  # a tiny error body is not worth compressing


def test_bibtex_for_a_paper_and_for_a_filtered_list(client, hostile):
    one = client.get("/api/bibtex", params={"id": "2404.15574"})
    assert one.status_code == 200 and one.text.startswith("@misc{wu2024retrieval,")
    assert "eprint = {2404.15574}" in one.text and "author = {Wenhao Wu and" in one.text
    assert 'id="bibtex" href="/api/bibtex?id=2209.11895"' in client.get("/papers/2209.11895").text
    listed = client.get("/api/bibtex", params={"head_type": "retrieval"}).text
    n = len(client.get("/api/papers", params={"head_type": "retrieval"}).json())
    assert listed.count("\n@") + 1 == n > 1
    keys = [line.split("{", 1)[1].rstrip(",") for line in listed.splitlines() if line.startswith("@")]
    assert len(set(keys)) == len(keys)  # unique keys
    bad = client.get("/api/bibtex", params={"id": "hostile-title-paper-2024"}).text
    assert bad.count("{") == bad.count("}") and "\\_\\_xss" in bad  # LaTeX specials escaped, braces balance
    assert client.get("/api/bibtex", params={"id": "nope"}).status_code == 404
    assert client.get("/api/bibtex", params={"year": "abc"}).status_code == 400


def test_api_docs_page_is_rendered_here_from_the_schema(client):
    r = client.get("/api/docs")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    schema = client.get("/api/openapi.json").json()
    for path in schema["paths"]:
        assert f'<span class="mono">{path}</span>' in r.text, path
    assert '<script src="http' not in r.text and "cdn" not in r.text.lower()
    assert 'href="/api/docs"' in client.get("/").text


@pytest.fixture(scope="module")
def compare_store(tmp_path_factory, tiny_headmap, snapshot_headmap, tiny_loaded):
    """Two models: the planted one (its induction member reported by a paper, plus a head outside it) and a
    deeper copy with twice the layers, so depths differ from layer numbers."""
    import copy
    import dataclasses
    from datetime import date

    from headatlas.literature.schema import Paper
    from headatlas.literature.store import ensure_seeded, import_papers
    from headatlas.store import save_scan

    deep = copy.deepcopy(tiny_headmap)
    deep.facts = dataclasses.replace(deep.facts, name="deep-planted", n_layers=4)
    deep.rows = [dict(r, layer=r["layer"] + 2) for r in tiny_headmap.rows] + [
        dict(r, score=0.0, member=False) for r in tiny_headmap.rows
    ]
    best = tiny_headmap.top("induction", 1)[0]["name"]
    paper = Paper.from_dict(
        {"id": "planted-report-2025", "title": "Heads planted on purpose", "date": "2025-01-02", "venue": "arXiv",
         "links": {"paper": "https://example.org/p"}, "tags": [], "head_types": ["induction"], "stages": ["LR"],
         "summary": {"innovation": "x", "tasks": "y", "result": "z"},
         "reported_heads": [{"model": tiny_headmap.facts.name, "head": best, "head_type": "induction"},
                            {"model": tiny_headmap.facts.name, "head": "L40H0", "head_type": "induction"}],
         "provenance": {"source": "contribution", "added": "2025-01-03"}},
        today=date(2026, 1, 1),
    )  # fmt: skip
    db = tmp_path_factory.mktemp("compare") / "store.sqlite3"
    conn = connect(db)
    ensure_seeded(conn)
    import_papers(conn, [paper])
    ids = (save_scan(conn, tiny_headmap), save_scan(conn, deep))
    conn.close()
    return {"db": db, "ids": ids, "best": best}


def test_compare_puts_models_on_one_depth_axis_with_reported_heads(compare_store, tiny_headmap):
    c = TestClient(create_app(compare_store["db"]))
    a, b = compare_store["ids"]
    data = c.get("/api/compare", params={"types": "induction"}).json()
    assert data["scans"] == [a, b] and [t["type_id"] for t in data["types"]] == ["induction"]
    small, deep = data["types"][0]["scans"]
    assert small["n_members"] == len(tiny_headmap.members("induction")) == deep["n_members"]
    # layer L in the 2-layer model is depth L/1; the same head sits at layer L+2 of 4 in the deep copy: (L+2)/3
    for m, d_small, d_deep in zip(small["members"], small["member_depths"], deep["member_depths"], strict=True):
        layer = int(m[1 : m.index("H")])
        assert d_small == pytest.approx(layer / 1) and d_deep == pytest.approx((layer + 2) / 3)
    reported = {r["head"]: r["in_scan"] for r in small["reported"]}
    assert reported == {compare_store["best"]: True, "L40H0": False} and deep["reported"] == []
    html = c.get("/compare", params={"types": "induction"}).text
    assert html.count('<circle class="reported"') == 1 and "Heads planted on purpose" in html
    assert html.count('class="compare-row"') == 2
    every = c.get("/compare").text
    assert all(f'id="compare-{t}"' in every for t in tiny_headmap.head_types)
    assert 'href="/compare"' in c.get("/").text


@pytest.mark.parametrize(
    "params", [{"scans": "1,999"}, {"scans": "x"}, {"types": "nope"}, {"scans": "99999999999999999999999"}]
)
def test_compare_refuses_unknown_scans_and_types(compare_store, params):
    c = TestClient(create_app(compare_store["db"]), raise_server_exceptions=False)
    assert c.get("/api/compare", params=params).status_code == 404
    r = c.get("/compare", params=params)
    assert r.status_code == 404 and 'id="error-message"' in r.text


def test_head_pages_link_previous_and_next_in_reading_order(client, ids, tiny_headmap):
    f = tiny_headmap.facts
    first = client.get(f"/scans/{ids[0]}/heads/L0H0").text
    assert 'id="prev-head"' not in first and f'href="/scans/{ids[0]}/heads/L0H1"' in first
    wrap = client.get(f"/scans/{ids[0]}/heads/L0H{f.n_heads - 1}").text
    assert f'id="next-head" rel="next" href="/scans/{ids[0]}/heads/L1H0"' in wrap
    last = client.get(f"/scans/{ids[0]}/heads/L{f.n_layers - 1}H{f.n_heads - 1}").text
    assert 'id="next-head"' not in last and 'id="prev-head"' in last
