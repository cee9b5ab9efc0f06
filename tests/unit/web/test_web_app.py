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
