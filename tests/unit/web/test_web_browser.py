"""The app and the report in real headless Chromium (Debian's, driven by Playwright): pages load without script
errors, a heatmap click opens the head, the pattern viewer reacts to hover, hostile strings never execute."""

from __future__ import annotations

from pathlib import Path

import pytest

from headatlas.web.app import create_app
from headatlas.web.local import chromium, serve_in_thread
from headatlas.web.report import write_report

ARTIFACTS = Path(__file__).resolve().parents[3] / "test-artifacts" / "web-unit"


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


@pytest.fixture(scope="module")
def base_url(web_store):
    with serve_in_thread(create_app(web_store["db"])) as url:
        yield url


class Watched:
    """A page that records script errors, dialogs and every URL it requests."""

    def __init__(self, browser) -> None:
        self.page = browser.new_page(viewport={"width": 1280, "height": 900})
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self.requests: list[str] = []
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        self.page.on("request", lambda r: self.requests.append(r.url))

    def shot(self, name: str) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)

    def close(self) -> None:
        self.page.close()


def test_pages_click_through_in_chromium(browser, base_url, web_store, tiny_headmap):
    w = Watched(browser)
    page = w.page
    good = web_store["scan_ids"][0]
    for name, path in [("scans", "/"), ("head-types", "/head-types"), ("papers", "/papers"),
                       ("paper", "/papers/2209.11895"), ("head-type", "/head-types/induction")]:  # fmt: skip
        assert page.goto(base_url + path).status == 200
        w.shot(name)

    # head map: filter by type, click the strongest induction head's cell, land on its detail page
    page.goto(f"{base_url}/scans/{good}")
    page.click("#type-filter a[data-type='induction']")
    page.wait_for_url(f"**/scans/{good}?type=induction")
    w.shot("scan-induction")
    best = tiny_headmap.top("induction", 1)[0]["name"]
    page.click(f"svg.heatmap rect.cell[data-head='{best}']")
    page.wait_for_url(f"**/scans/{good}/heads/{best}")
    assert page.text_content("#head-name") == best
    # the pattern viewer draws a canvas and explains a token on hover
    page.wait_for_selector("#pattern-view canvas")
    assert page.text_content("#pattern-head") == best
    page.hover("#pattern-view .tok[data-index='5']")
    assert page.text_content("#pattern-view .readout").startswith("query 5 ")
    page.select_option("#pattern-example", "1")
    page.hover("#pattern-view .tok[data-index='9']")
    assert page.text_content("#pattern-view .readout").startswith("query 9 ")
    w.shot("head")

    # head type -> its papers
    page.goto(f"{base_url}/head-types/induction")
    page.click("text=search these papers")
    page.wait_for_url("**/papers?head_type=induction")
    assert page.locator("#paper-list .paper").count() > 3

    # search papers through the form
    page.goto(f"{base_url}/papers")
    page.fill("#paper-search input[name=q]", "retrieval head")
    page.click("#paper-search button")
    page.wait_for_url("**/papers?q=retrieval+head**")
    assert "Retrieval Head Mechanistically Explains" in page.text_content("#paper-list")

    assert w.errors == [] and w.dialogs == []
    # unknown ids: a 404 page, not a traceback
    assert page.goto(f"{base_url}/scans/{good}/heads/L99H0").status == 404
    assert "outside this model" in page.text_content("#error-message")
    assert all(u.startswith(base_url) for u in w.requests), [u for u in w.requests if not u.startswith(base_url)]
    w.close()


def test_hostile_strings_never_run_in_chromium(browser, base_url, web_store):
    w = Watched(browser)
    page = w.page
    bad = web_store["scan_ids"][1]
    for path in ["/", f"/scans/{bad}", f"/scans/{bad}/heads/L0H0", "/papers", "/papers/hostile-title-paper-2024",
                 "/head-types/induction", "/papers?q=%3Cscript%3Ewindow.__xss%3D1%3C%2Fscript%3E"]:  # fmt: skip
        page.goto(base_url + path)
        page.wait_for_load_state("load")
        assert page.evaluate("typeof window.__xss") == "undefined", path
    page.goto(f"{base_url}/papers/hostile-title-paper-2024")
    assert page.text_content("#paper-title").startswith("Induction heads <script>")  # shown as text
    page.goto(f"{base_url}/scans/{bad}/heads/L0H0")
    page.select_option("#pattern-example", "0")
    assert page.text_content("#pattern-view .tok[data-index='1']").startswith("<script>")
    page.hover("#pattern-view .tok[data-index='2']")
    assert page.evaluate("typeof window.__xss") == "undefined"
    w.shot("hostile-head")
    assert w.dialogs == [] and w.errors == []
    w.close()


def test_report_works_offline_in_chromium(browser, tmp_path, tiny_headmap, tiny_patterns, hostile_headmap,
                                          hostile_patterns):  # fmt: skip
    report = write_report(tiny_headmap, tmp_path / "good", patterns=tiny_patterns)
    w = Watched(browser)
    page = w.page
    page.goto(report.as_uri())
    page.wait_for_selector("#pattern-view canvas")
    target = tiny_headmap.top("previous_token", 1)[0]["name"]
    page.click(f"#overview svg.heatmap rect.cell[data-head='{target}']")
    assert page.text_content("#pattern-head") == target
    assert page.locator(f"rect.cell.selected[data-head='{target}']").count() >= 1
    page.hover("#pattern-view canvas", position={"x": 20, "y": 60})
    assert "weight" in page.text_content(".tip")
    w.shot("report")
    assert all(u.startswith(("file:", "data:")) for u in w.requests), w.requests  # self-contained
    hostile = write_report(hostile_headmap, tmp_path / "bad", patterns=hostile_patterns)
    page.goto(hostile.as_uri())
    page.wait_for_selector("#pattern-view canvas")
    page.select_option("#pattern-example", "0")
    page.hover("#pattern-view .tok[data-index='1']")
    assert page.evaluate("typeof window.__xss") == "undefined"
    assert w.errors == [] and w.dialogs == []
    # the CSP pins the report's own script: a script smuggled into the file does not run, the viewer still does
    smuggled = tmp_path / "smuggled.html"
    text = report.read_text(encoding="utf-8").replace("</body>", "<script>window.__injected = 1;</script></body>")
    smuggled.write_text(text, encoding="utf-8")
    page.goto(smuggled.as_uri())
    page.wait_for_selector("#pattern-view canvas")
    assert page.evaluate("typeof window.__injected") == "undefined"
    w.close()
