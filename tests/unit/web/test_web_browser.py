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

    def __init__(self, browser, width: int = 1280) -> None:
        self.page = browser.new_page(viewport={"width": width, "height": 900})
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
    margin, cell = (int(page.get_attribute("#pattern-view canvas", f"data-{k}")) for k in ("margin", "cell"))
    page.hover("#pattern-view canvas", position={"x": margin + cell // 2, "y": margin + 3 * cell + cell // 2})
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


def _pages(web_store, tiny_headmap) -> dict[str, str]:
    good = web_store["scan_ids"][0]
    best = tiny_headmap.top("induction", 1)[0]["name"]
    return {
        "scans": "/", "scan": f"/scans/{good}", "scan-induction": f"/scans/{good}?type=induction",
        "head": f"/scans/{good}/heads/{best}", "head-types": "/head-types", "head-type": "/head-types/induction",
        "papers": "/papers", "papers-search": "/papers?q=retrieval+head", "paper": "/papers/2209.11895",
        "compare": "/compare", "compare-induction": "/compare?types=induction", "api-docs": "/api/docs",
        "papers-bad-filter": "/papers?year=abc", "not-found": "/scans/99999999999999999999999",
    }  # fmt: skip


@pytest.mark.parametrize("width", [1400, 390])
def test_every_page_fits_the_screen_width(browser, base_url, web_store, tiny_headmap, tmp_path, width):
    """No page scrolls sideways, at a desktop width or a phone's 390 px (wide tables and maps scroll inside
    their own box); a screenshot of each page at each width lands in test-artifacts/web-unit/."""
    w = Watched(browser, width=width)
    page = w.page
    for name, path in _pages(web_store, tiny_headmap).items():
        page.goto(base_url + path)
        page.wait_for_load_state("load")
        doc = page.evaluate("document.documentElement.scrollWidth")
        assert doc <= width, (name, doc)
        w.shot(f"{name}-{width}")
    report = write_report(tiny_headmap, tmp_path / "r")
    page.goto(report.as_uri())
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    w.shot(f"report-{width}")
    assert w.errors == [] or all("404" in e or "400" in e for e in w.errors), w.errors
    w.close()


def test_overview_palette_is_distinct_and_tooltips_list_memberships(browser, base_url, web_store, tiny_headmap):
    w = Watched(browser)
    page = w.page
    page.goto(f"{base_url}/scans/{web_store['scan_ids'][0]}")
    swatches = page.eval_on_selector_all(
        "#overview-legend .legend-item .swatch", "els => els.map(e => getComputedStyle(e).backgroundColor)"
    )
    assert len(swatches) == len(tiny_headmap.head_types) == len(set(swatches))
    fills = set(page.eval_on_selector_all("svg.heatmap rect.cell", "els => els.map(e => e.getAttribute('fill'))"))
    legend = set(
        page.eval_on_selector_all("#overview-legend .legend-item .swatch", "els => els.map(e => e.style.background)")
    )
    assert len(fills) > 1 and "strongest in" in page.text_content(".strongest-rule")
    titles = page.eval_on_selector_all("svg.heatmap rect.cell title", "els => els.map(e => e.textContent)")
    assert any(t.count(";") >= 1 and "member of:" in t for t in titles)  # a head in several types lists them all
    assert legend and w.errors == []
    w.close()


def test_compare_view_in_chromium(browser, base_url, web_store, tiny_headmap):
    w = Watched(browser)
    page = w.page
    page.goto(f"{base_url}/compare?types=induction")
    assert page.locator("section.compare-type").count() == 1
    assert page.locator("tr.compare-row").count() == len(web_store["scan_ids"])
    member = tiny_headmap.members("induction")[0]
    page.click(f"tr.compare-row svg circle.member-dot[data-head='{member}']")
    page.wait_for_url(f"**/heads/{member}")
    page.goto(f"{base_url}/compare")
    page.select_option("#compare-form select[name=types]", "sink")
    page.click("#compare-form button")
    page.wait_for_url("**/compare?types=sink**")
    assert page.locator("section.compare-type[data-type='sink']").count() == 1
    assert w.errors == [] and all(u.startswith(base_url) for u in w.requests)
    w.close()


def test_downloads_and_the_served_report(browser, base_url, web_store):
    w = Watched(browser)
    page = w.page
    good = web_store["scan_ids"][0]
    page.goto(f"{base_url}/scans/{good}")
    with page.expect_download() as info:
        page.click("#downloads a:text('headmap.csv')")
    assert info.value.suggested_filename.endswith("headmap.csv")
    with page.expect_download() as info:
        page.click("#downloads a:text('patterns.json')")
    assert info.value.suggested_filename.endswith("patterns.json")
    page.click("#downloads a:text('report.html')")
    page.wait_for_selector("#pattern-view canvas")  # the report's pinned script runs under the header CSP
    assert w.errors == []
    w.close()


def test_head_page_sorts_steps_and_labels_tokens(browser, base_url, web_store, tiny_headmap):
    w = Watched(browser)
    page = w.page
    good = web_store["scan_ids"][0]
    page.goto(f"{base_url}/scans/{good}/heads/L0H1")
    assert page.get_attribute("#prev-head", "href").endswith("/heads/L0H0")
    page.click("#next-head")
    page.wait_for_url("**/heads/L0H2")
    page.click("#head-scores th:text('score')")
    scores = page.eval_on_selector_all("#head-scores tr td:nth-child(2)", "els => els.map(e => e.textContent)")
    values = [float(s) for s in scores if s != "–"]
    assert values == sorted(values, reverse=True) and len(values) > 2
    page.click("#head-scores th:text('score')")
    again = page.eval_on_selector_all("#head-scores tr td:nth-child(2)", "els => els.map(e => e.textContent)")
    assert [float(s) for s in again if s != "–"] == sorted(values)
    page.wait_for_selector("#pattern-view canvas")
    width = page.evaluate("document.querySelector('#pattern-view canvas').width")
    margin, cell = (int(page.get_attribute("#pattern-view canvas", f"data-{k}")) for k in ("margin", "cell"))
    n = page.locator("#pattern-view .tok").count()
    assert margin > 0 and width == margin + n * cell  # room for the token labels on both axes
    assert w.errors == []
    w.close()


def test_bad_filters_and_huge_ids_in_chromium(browser, base_url):
    w = Watched(browser)
    page = w.page
    r = page.goto(f"{base_url}/papers?stage=%3Cb%3E")
    assert r.status == 400 and page.is_visible("#filter-error")
    assert page.evaluate("document.querySelector('select[name=stage]').value") == ""
    r = page.goto(f"{base_url}/scans/99999999999999999999999/heads/L0H0")
    assert r.status == 404 and "no scan" in page.text_content("#error-message")
    assert "script-src 'self'" in r.headers["content-security-policy"]
    w.close()


def test_head_page_shows_each_types_evidence_on_its_own_probe(browser, base_url, web_store, tiny_patterns):
    """The planted induction head is also a retrieval member: its retrieval row links to the needle sample, drawn
    with the rows the score reads, the needle's value marked and the left-out keys summed in ⋯ columns."""
    needle = next(i for i, ex in enumerate(tiny_patterns["examples"]) if ex.get("probe") == "needle")
    ex = tiny_patterns["examples"][needle]
    assert "L1H2" in ex["heads"] and None in ex["positions"]
    w = Watched(browser)
    page = w.page
    page.goto(f"{base_url}/scans/{web_store['scan_ids'][0]}/heads/L1H2")
    page.wait_for_selector("#pattern-view canvas")
    assert page.evaluate("document.getElementById('pattern-example').value") != str(needle)  # opens on induction
    page.click("#head-scores a.evidence-link[data-type=retrieval]")
    assert page.evaluate("document.getElementById('pattern-example').value") == str(needle)
    canvas = page.locator("#pattern-view canvas")
    margin, cell, row = (int(canvas.get_attribute(f"data-{k}")) for k in ("margin", "cell", "row"))
    assert row >= cell  # few rows are drawn taller
    assert page.evaluate("document.querySelector('#pattern-view canvas').height") == margin + len(ex["rows"]) * row
    assert page.evaluate("document.querySelector('#pattern-view canvas').width") == margin + len(ex["tokens"]) * cell
    assert page.locator("#pattern-view .tok.gap").count() == ex["positions"].count(None)
    assert page.locator("#pattern-view .tok.marked").count() == len(ex["marked"]["needle value"])
    assert "Retrieval head: 1 member" in page.text_content("#pattern-note")
    last = ex["rows"][-1]
    page.hover(f"#pattern-view .tok[data-index='{last}']")
    readout = page.text_content("#pattern-view .readout")
    assert readout.startswith(f"query {ex['positions'][last]} ")  # positions in the sample, not column numbers
    w.shot("head-evidence-1400")
    page.set_viewport_size({"width": 390, "height": 900})
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    w.shot("head-evidence-390")
    assert w.errors == []
    w.close()
