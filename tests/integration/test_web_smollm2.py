"""The atlas on the real SmolLM2-135M: report size and shape, then the web app in headless Chromium the way a
new user goes through it (scan -> strongest induction head -> its pattern -> its type -> the induction papers)."""

from __future__ import annotations

from pathlib import Path

import pytest

from headatlas.capture import capture_patterns
from headatlas.census import ScanSettings, run_census
from headatlas.probes import ProbeSettings
from headatlas.publish import write_patterns
from headatlas.store import connect, save_scan
from headatlas.web.app import create_app
from headatlas.web.local import chromium, serve_in_thread
from headatlas.web.report import catalogue_papers, write_report

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "web-smollm2"
SMALL = ProbeSettings(n_repeat=2, repeat_len=16, n_text=2, text_len=32, needle_contexts=(256,), needle_per_context=1)
TYPES = ("previous_token", "duplicate_token", "induction", "current_token", "local", "sink", "retrieval")


@pytest.mark.slow
def test_smollm2_report_and_web_app_in_chromium(smollm2, tmp_path):
    from headatlas.literature.store import ensure_seeded

    headmap = run_census(smollm2, ScanSettings(probes=SMALL, head_types=TYPES))
    out = tmp_path / "out"
    headmap.write(out)
    patterns = capture_patterns(smollm2, seed=0)
    write_patterns(patterns, out)
    assert all(len(ex["heads"]) == 270 for ex in patterns["examples"])
    conn = connect(tmp_path / "store.sqlite3")
    ensure_seeded(conn)
    report = write_report(headmap, out, papers=catalogue_papers(conn, headmap))
    html = report.read_text(encoding="utf-8")
    assert report.stat().st_size < 5_000_000
    assert html.count('<rect class="cell') == 270 * (len(TYPES) + 1)  # one map per type plus the overview
    scan_id = save_scan(conn, headmap, out_dir=str(out))
    conn.close()

    best = headmap.top("induction", 1)[0]["name"]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    with serve_in_thread(create_app(tmp_path / "store.sqlite3")) as base, chromium() as browser:
        page = browser.new_page(viewport={"width": 1300, "height": 900})
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

        def shot(name: str) -> None:
            page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)

        page.goto(base + "/")
        assert "smollm2-135m" in page.text_content("#scans")
        shot("1-scans")
        page.click(f"#scans a[href='/scans/{scan_id}']")
        page.wait_for_url(f"**/scans/{scan_id}")
        assert page.locator("svg.heatmap rect.cell").count() == 270
        shot("2-overview")
        page.click("#type-filter a[data-type='induction']")
        page.wait_for_url("**?type=induction")
        shot("3-induction-map")
        page.click(f"svg.heatmap rect.cell[data-head='{best}']")
        page.wait_for_url(f"**/scans/{scan_id}/heads/{best}")
        assert page.text_content("#head-name") == best
        page.wait_for_selector("#pattern-view canvas")
        assert page.input_value("#pattern-example") == "1"  # the repeated-token example shows the induction stripe
        page.hover("#pattern-view .tok[data-index='20']")
        readout = page.text_content("#pattern-view .readout")
        assert readout.startswith("query 20 ")
        shot("4-head")
        page.click("#head-scores a[href='/head-types/induction']")
        page.wait_for_url("**/head-types/induction")
        assert "In-context Learning and Induction Heads" in page.text_content("#type-papers")
        assert best in page.text_content("#atlas-heads")
        shot("5-head-type")
        page.click("text=search these papers")
        page.wait_for_url("**/papers?head_type=induction")
        n_induction = page.locator("#paper-list .paper").count()
        assert n_induction >= 5
        page.fill("#paper-search input[name=q]", "retrieval head")
        page.select_option("#paper-search select[name=head_type]", "")
        page.click("#paper-search button")
        page.wait_for_url("**q=retrieval+head**")
        assert "Retrieval Head Mechanistically Explains Long-Context Factuality" in page.text_content("#paper-list")
        shot("6-papers-search")
        page.click("#paper-list .paper a >> nth=0")
        page.wait_for_url("**/papers/**")
        assert page.text_content("#paper-title")
        shot("7-paper")
        page.goto(base + "/head-types")
        shot("8-head-types")
        assert page.goto(base + "/scans/9999").status == 404
        shot("9-not-found")
        page.goto(report.as_uri())
        page.wait_for_selector("#pattern-view canvas")
        shot("10-report")
    assert [e for e in errors if "404" not in e] == []
