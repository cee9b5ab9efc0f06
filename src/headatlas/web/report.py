"""``OUT/report.html``: one self-contained page per scan (styles, script and data inline; opens offline)."""

from __future__ import annotations

import base64
import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Any

import jinja2

from ..errors import InvalidSettingError
from ..headmap import HeadMap, write_atomic
from . import views
from .kv_section import with_kv_section
from .patterns import panel_examples, read_patterns

REPORT_NAME = "report.html"


def environment() -> jinja2.Environment:
    """The Jinja environment of the report and the app: packaged templates, autoescape on everywhere."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("headatlas.web", "templates"),
        autoescape=True,
        trim_blocks=False,
        lstrip_blocks=False,
    )
    env.globals["colorbar"] = views.colorbar_css()
    env.globals["strongest_rule"] = views.STRONGEST_RULE
    env.globals["stage_names"] = views.STAGE_NAMES
    env.filters["num"] = views.fmt_num
    return env


_ENV: jinja2.Environment | None = None


def env() -> jinja2.Environment:
    global _ENV
    if _ENV is None:
        _ENV = environment()
    return _ENV


def _initial_head(headmap: HeadMap) -> tuple[str, str | None]:
    """The head the pattern panel opens on, with its type: the strongest induction head, else the best head of
    the first type."""
    for type_id in ("induction", *headmap.head_types):
        if type_id in headmap.head_types:
            top = headmap.top(type_id, 1)
            if top:
                return str(top[0]["name"]), type_id
    return "L0H0", None


def report_csp() -> str:
    """Content-Security-Policy of report.html: nothing loads from anywhere, and the only script that may run
    is the report's own (pinned by its SHA-256), so a string that slipped past escaping could not execute."""
    digest = base64.b64encode(hashlib.sha256(views.asset("app.js").encode("utf-8")).digest()).decode("ascii")
    return (
        f"default-src 'none'; script-src 'sha256-{digest}'; style-src 'unsafe-inline'; img-src data:;"
        " base-uri 'none'; form-action 'none'"
    )


def _safe_url(url: Any) -> str | None:
    """Only http(s) URLs become links (a ``javascript:`` URL in a catalogue entry stays text)."""
    return url if isinstance(url, str) and url.startswith(("https://", "http://")) else None


def report_context(
    headmap: HeadMap,
    patterns: dict[str, Any] | None = None,
    papers: dict[str, list[dict[str, Any]]] | None = None,
    k: int = 5,
    agreement: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Everything report.html shows. ``papers``: catalogue papers per head type (default: the registry's titles);
    ``agreement``: :func:`reported_agreement` (the section is left out without one)."""
    counts = {t: len(headmap.members(t)) for t in headmap.head_types}
    type_names = {t: str(i.get("name", t)) for t, i in headmap.head_types.items()}
    initial, initial_type = _initial_head(headmap)
    types = []
    for type_id, info in headmap.head_types.items():
        listed = (papers or {}).get(type_id)
        if not listed:
            listed = [{"title": title, "url": None, "year": None} for title in info.get("papers", [])]
        listed = [{**p, "url": _safe_url(p.get("url"))} for p in listed]
        types.append(
            {
                "id": type_id,
                "name": info.get("name", type_id),
                "stage": info.get("stage", ""),
                "definition": info.get("definition", ""),
                "threshold": info.get("threshold"),
                "probe": info.get("probe"),
                "scored_on": views.scored_on(type_id, info.get("probe"), headmap.probes.get(type_id)),
                "n_members": counts[type_id],
                "grid": views.heatmap(headmap, type_id),
                "top": views.top_heads(headmap, k, [type_id])[type_id],
                "papers": listed,
            }
        )
    return {
        "standalone": True,
        "css": views.asset("app.css"),
        "js": views.asset("app.js"),
        "csp": report_csp(),
        "model_name": headmap.facts.name,
        "facts": views.facts_rows(headmap),
        "settings": headmap.settings,
        "settings_json": json.dumps(headmap.settings, indent=1, sort_keys=True),
        "probes": headmap.probes,
        "type_names": type_names,
        "overview": views.overview(headmap),
        "types": types,
        "n_heads_total": headmap.facts.n_head_total,
        "has_causal": views.has_causal_columns(headmap),
        "verification": views.verification_rows(headmap),
        "patterns": patterns,
        "pattern_examples": panel_examples(patterns, type_names) if patterns else [],
        "initial_head": initial,
        "initial_example": views.example_for_head(patterns, initial, [initial_type] if initial_type else []),
        "agreement": agreement,
    }


def render_report(
    headmap: HeadMap,
    patterns: dict[str, Any] | None = None,
    papers: dict[str, list[dict[str, Any]]] | None = None,
    agreement: dict[str, Any] | None = None,
) -> str:
    """The report page. It shows what ``headmap.json`` holds (numbers rounded as written), so rebuilding it from the
    files (``headatlas report DIR``) gives the same bytes as the scan that wrote them."""
    as_written = HeadMap.from_dict(json.loads(headmap.json_text()))
    context = report_context(as_written, patterns, papers, agreement=agreement)
    return env().get_template("report.html").render(**context)


def write_report(
    headmap: HeadMap,
    out_dir: str | Path,
    patterns: dict[str, Any] | None = None,
    papers: dict[str, list[dict[str, Any]]] | None = None,
    agreement: dict[str, Any] | None = None,
) -> Path:
    """Write ``OUT/report.html``. ``patterns`` defaults to ``OUT/patterns.json`` when that exists."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if patterns is None:
        patterns = read_patterns(out)
    path = out / REPORT_NAME
    write_atomic(path, with_kv_section(render_report(headmap, patterns, papers, agreement), out, env()))
    return path


def atlas_compare_context(
    headmaps: dict[str, HeadMap], type_ids: list[str], papers: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The atlas's compare page: the web app's compare view (:func:`views.compare_view`) of every model of the
    atlas (by its folder name), with the heads ``papers`` report (default: the shipped catalogue's) ringed."""
    from .catalogue import all_papers

    listed = all_papers(None) if papers is None else papers
    reported = [
        {**r, "paper_id": p["id"], "paper_title": p["title"]} for p in listed for r in p.get("reported_heads") or []
    ]
    scans = [({"id": None, "model": name}, hm) for name, hm in headmaps.items()]
    return {
        "standalone": True,
        "css": views.asset("app.css"),
        "js": views.asset("app.js"),
        "csp": report_csp(),
        "model_name": "the atlas, " + ", ".join(headmaps),
        "models": [
            {"dir": name, "n_layers": hm.facts.n_layers, "n_heads": hm.facts.n_heads} for name, hm in headmaps.items()
        ],
        "types": views.compare_view(scans, type_ids, reported),
        "colors": views.type_colors(type_ids),
        "strip_width": views.COMPARE_WIDTH,
        "strip_height": views.COMPARE_HEIGHT,
    }


def render_atlas_compare(
    headmaps: dict[str, HeadMap], type_ids: list[str], papers: list[dict[str, Any]] | None = None
) -> str:
    """An atlas's ``compare.html``: per head type, its models side by side on a depth axis (self-contained, opens
    offline; each model links to its ``report.html``)."""
    return env().get_template("atlas_compare.html").render(**atlas_compare_context(headmaps, type_ids, papers))


def catalogue_papers(conn: sqlite3.Connection | None, headmap: HeadMap) -> dict[str, list[dict[str, Any]]]:
    """Catalogue papers for each head type of ``headmap`` (registry titles where the catalogue has none)."""
    from .catalogue import papers_for_head_type

    return {t: papers_for_head_type(conn, t) for t in headmap.head_types}


def reported_agreement(conn: sqlite3.Connection | None, headmap: HeadMap) -> dict[str, Any] | None:
    """Papers ↔ scan (:mod:`headatlas.literature.agreement`) over the catalogue's papers (the store's, else the
    shipped one); None when no paper reports heads of this checkpoint."""
    from ..literature.agreement import agreement
    from .catalogue import all_papers

    result = agreement(headmap, all_papers(conn))
    return result.to_dict() if result.types or result.unscored else None


def rebuild_report(out_dir: str | Path, db_path: str | Path | None = None) -> Path:
    """``headatlas report OUT``: rebuild ``OUT/report.html`` from ``OUT/headmap.json`` and ``OUT/patterns.json``.

    Papers come from the store's catalogue when a store exists (none is created for this).
    """
    from ..store import connect
    from ..store.db import default_db_path

    out = Path(out_dir)
    source = out / "headmap.json"
    if not source.is_file():
        raise InvalidSettingError(f"{out} has no headmap.json; run `headatlas scan --out {out}` first")
    try:
        headmap = HeadMap.read(source)
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidSettingError(f"{source} is not a headatlas head map: {exc}") from None
    store = Path(db_path) if db_path is not None else default_db_path()
    conn = connect(store, read_only=True) if store.is_file() else None
    try:
        papers = catalogue_papers(conn, headmap)
        named = reported_agreement(conn, headmap)
    finally:
        if conn is not None:
            conn.close()
    return write_report(headmap, out, papers=papers, agreement=named)
