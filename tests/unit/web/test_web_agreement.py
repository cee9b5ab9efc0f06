"""Papers ↔ scans in the web app and the report: a paper reporting heads of the planted checkpoint."""

from __future__ import annotations

import dataclasses

import pytest
from fastapi.testclient import TestClient

from headatlas.literature.catalogue import load_catalogue
from headatlas.literature.schema import ReportedHead
from headatlas.store import connect, save_scan
from headatlas.web.app import create_app
from headatlas.web.report import render_report, reported_agreement


def _paper():
    return dataclasses.replace(
        load_catalogue().get("2209.11895"),
        reported_heads=(
            ReportedHead("planted-llama", "L1H2", "induction", note="planted"),
            ReportedHead("planted-llama", "L1H3", "previous_token", note="wrong on purpose"),
        ),
    )


@pytest.fixture(scope="module")
def agreement_store(tmp_path_factory, tiny_headmap):
    from headatlas.literature.store import ensure_seeded, import_papers

    db = tmp_path_factory.mktemp("agreement") / "store.sqlite3"
    conn = connect(db)
    ensure_seeded(conn)
    import_papers(conn, [_paper()])
    scan_id = save_scan(conn, tiny_headmap, out_dir="")
    conn.close()
    return db, scan_id


def test_scan_page_and_api_show_the_heads_papers_named(agreement_store, tiny_headmap):
    db, scan_id = agreement_store
    client = TestClient(create_app(db), raise_server_exceptions=False)
    page = client.get(f"/scans/{scan_id}").text
    assert 'id="named-by-papers"' in page and 'data-type="induction"' in page
    assert f'href="/scans/{scan_id}/heads/L1H2"' in page and 'href="/papers/2209.11895"' in page
    data = client.get(f"/api/scans/{scan_id}").json()["agreement"]
    induction = next(t for t in data["types"] if t["head_type"] == "induction")
    assert induction["n_found"] == 1 and induction["reported"][0]["rank"] == 1
    previous = next(t for t in data["types"] if t["head_type"] == "previous_token")
    assert previous["missed"] == ["L1H3"]
    report = client.get(f"/scans/{scan_id}/files/report.html").text
    assert 'id="named-by-papers"' in report and "L1H3" in report


def test_report_leaves_the_section_out_when_no_paper_names_the_checkpoint(agreement_store, tiny_headmap):
    db, _ = agreement_store
    conn = connect(db, read_only=True)
    try:
        named = reported_agreement(conn, tiny_headmap)
    finally:
        conn.close()
    assert named is not None and named["papers"] == ["2209.11895"]
    assert 'id="named-by-papers"' in render_report(tiny_headmap, agreement=named)
    assert reported_agreement(None, tiny_headmap) is None  # the shipped catalogue names no planted heads
    assert 'id="named-by-papers"' not in render_report(tiny_headmap)
