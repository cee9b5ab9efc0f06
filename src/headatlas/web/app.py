"""``headatlas serve``: the local web app joining scans, head types and papers (FastAPI + Jinja2).

Every page has a JSON twin under ``/api/`` (schema at ``/api/openapi.json``). The app reads the store
through read-only connections, one per request; curation (deleting a scan) exists only when the app
is created with ``curate=True``. Unknown ids give a 404 page (or JSON under ``/api/``), never a traceback.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from ..errors import HeadatlasError, StoreError
from ..headmap import HeadMap, head_name
from ..literature.schema import STAGES
from ..store import connect, delete_scan, heads_of_type, list_scans, load_scan, scan_info
from ..store.db import SQLITE_MAX_INT, default_db_path
from . import catalogue, schemas, views
from .patterns import example_of_type, for_head, panel_examples, read_patterns_cached
from .report import catalogue_papers, env, render_report, report_csp, reported_agreement

log = logging.getLogger(__name__)
MAX_ATLAS_HEADS = 60
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:;"
    " connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
"""Scripts only from /static (never inline), nothing from other origins: defence in depth behind escaping."""


SCAN_FILES = {
    "headmap.csv": "text/csv; charset=utf-8",
    "headmap.json": "application/json",
    "patterns.json": "application/json",
    "report.html": "text/html; charset=utf-8",
}
"""What a scan page offers for download: the head map from the store, the patterns from its output directory,
and its report rendered from both."""
GZIP_MIN_BYTES = 1024


def _no_such_scan(scan_id: int) -> HTTPException:
    return HTTPException(404, f"no scan with id {scan_id}")


def _check_scan_id(scan_id: int) -> None:
    """404 for an id outside SQLite's integer range: it names nothing (and would overflow the driver)."""
    if not 0 <= scan_id <= SQLITE_MAX_INT:
        raise _no_such_scan(scan_id)


class _ScanCache:
    """Parsed head maps, keyed by scan id and creation time (a scan never changes once stored; an id reused
    after a deletion comes with a new creation time, so a stale entry is never served)."""

    def __init__(self, size: int = 16) -> None:
        self.size = size
        self.items: dict[tuple[int, str], HeadMap] = {}
        self.shaped: dict[tuple[int, str, str], Any] = {}  # views of a cached head map (grids, top heads)
        self.lock = threading.Lock()

    def get(self, conn: sqlite3.Connection, scan_id: int) -> tuple[HeadMap, dict[str, Any]]:
        _check_scan_id(scan_id)
        meta = scan_info(conn, scan_id)
        if meta is None:
            raise _no_such_scan(scan_id)
        key = (scan_id, str(meta["created_at"]))
        with self.lock:
            hit = self.items.get(key)
        if hit is None:
            hit = load_scan(conn, scan_id)
            with self.lock:
                if len(self.items) >= self.size:
                    self._drop(next(iter(self.items)))
                self.items[key] = hit
        return hit, meta

    def view(self, meta: dict[str, Any], name: str, make: Any) -> Any:
        """``make()`` once per cached scan and ``name`` (what pages read of a scan never changes either)."""
        key = (int(meta["id"]), str(meta["created_at"]), name)
        with self.lock:
            if key in self.shaped:
                return self.shaped[key]
        value = make()
        with self.lock:
            if key[:2] in self.items:
                self.shaped[key] = value
        return value

    def _drop(self, key: tuple[int, str]) -> None:
        del self.items[key]
        for k in [k for k in self.shaped if k[:2] == key]:
            del self.shaped[k]

    def evict(self, scan_id: int) -> None:
        with self.lock:
            for key in [k for k in self.items if k[0] == scan_id]:
                self._drop(key)


def create_app(db_path: str | Path | None = None, *, curate: bool = False) -> FastAPI:
    """The app over the store at ``db_path`` (created and migrated if missing)."""
    path = Path(db_path) if db_path is not None else default_db_path()
    connect(path).close()  # create / migrate once, so request connections can be read-only
    app = FastAPI(
        title="headatlas",
        description="Attention heads of scanned models joined with the papers that named them.",
        docs_url=None,  # the stock docs pages load scripts from a CDN; /api/docs renders the schema here
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    cache = _ScanCache()
    # inside the headers middleware (added first = innermost): it sees each response whole, so a small one
    # stays plain; /api/scans/N is ~0.9 MB of JSON
    app.add_middleware(GZipMiddleware, minimum_size=GZIP_MIN_BYTES, compresslevel=5)

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Any) -> Response:
        """Every response carries the headers, errors included: an exception no handler took becomes the 500
        page here (Starlette's own 500 is answered outside this middleware, so it would go out bare)."""
        try:
            response: Response = await call_next(request)
        except Exception:
            log.exception("error serving %s", request.url.path)
            response = error_response(request, 500, "internal error; the server log has the details")
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault("X-Frame-Options", "DENY")
        return response

    app.state.db_path = path
    app.state.curate = curate
    static_dir = resources.files("headatlas.web").joinpath("static")
    app.mount("/static", StaticFiles(directory=str(static_dir)), name="static")

    @contextmanager
    def db(write: bool = False) -> Iterator[sqlite3.Connection]:
        conn = connect(path) if write else connect(path, read_only=True)
        try:
            yield conn
        finally:
            conn.close()

    def page(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        html = (
            env()
            .get_template(template)
            .render(standalone=False, curate=curate, request_path=request.url.path, **context)
        )
        return HTMLResponse(html, status_code=status)

    def scan_or_404(conn: sqlite3.Connection, scan_id: int) -> tuple[HeadMap, dict[str, Any]]:
        return cache.get(conn, scan_id)

    def head_or_404(headmap: HeadMap, name: str) -> tuple[int, int]:
        try:
            return views.parse_head(name, headmap.facts.n_layers, headmap.facts.n_heads)
        except HeadatlasError as exc:
            raise HTTPException(404, str(exc)) from None

    # ---- data shaping shared by pages and the API ---------------------------------------------------
    def type_names(conn: sqlite3.Connection | None = None) -> dict[str, str]:
        """Display names of head types by id (the vocabulary's)."""
        if conn is None:
            with db() as own:
                return type_names(own)
        return {t: str(v["name"]) for t, v in catalogue.vocabulary(conn).items()}

    def scans_data(conn: sqlite3.Connection) -> dict[str, Any]:
        scans = list_scans(conn)
        models: dict[str, dict[str, Any]] = {}
        for s in scans:
            m = models.setdefault(
                s["model"],
                {"model": s["model"], "architecture": s["architecture"], "n_layers": s["n_layers"],
                 "n_heads": s["n_heads"], "n_kv_heads": s["n_kv_heads"], "scans": []},
            )  # fmt: skip
            m["scans"].append(s["id"])
        return {"scans": scans, "models": list(models.values())}

    def scan_data(conn: sqlite3.Connection, scan_id: int, type_id: str | None) -> dict[str, Any]:
        headmap, meta = scan_or_404(conn, scan_id)
        if type_id is not None and type_id not in headmap.head_types:
            raise HTTPException(404, f"head type {type_id!r} is not in scan {scan_id}")
        link = f"/scans/{scan_id}/heads/{{name}}"
        return {
            "scan": meta,
            "headmap": headmap,
            "type_id": type_id,
            "grid": cache.view(
                meta,
                f"grid:{type_id}",
                lambda: views.heatmap(headmap, type_id, link) if type_id else views.overview(headmap, link),
            ),
            "top": cache.view(
                meta, f"top:{type_id}", lambda: views.top_heads(headmap, 5, [type_id] if type_id else None)
            ),
            "members": cache.view(meta, "members", lambda: views.member_counts(headmap)),
            "agreement": reported_agreement(conn, headmap),  # papers <-> this scan: heads named in this checkpoint
        }

    def head_data(conn: sqlite3.Connection, scan_id: int, name: str) -> dict[str, Any]:
        headmap, meta = scan_or_404(conn, scan_id)
        layer, head = head_or_404(headmap, name)
        detail = views.head_detail(headmap, layer, head)
        patterns = read_patterns_cached(meta["out_dir"]) if meta.get("out_dir") else None
        return {"scan": meta, "headmap": headmap, "head": detail, "patterns": for_head(patterns, detail["name"])}

    def type_data(conn: sqlite3.Connection, type_id: str) -> dict[str, Any]:
        vocab = catalogue.vocabulary(conn)
        if type_id not in vocab:
            raise HTTPException(404, f"no head type {type_id!r}")
        heads = heads_of_type(conn, type_id)
        info = dict(vocab[type_id])
        if info.get("scored"):
            info["scored_on"] = views.scored_on(type_id, info.get("probe"))
        return {
            "type": info,
            "papers": catalogue.papers_for_head_type(conn, type_id),
            "defining": sorted(catalogue.defining_ids(conn, type_id)),
            "heads": heads[:MAX_ATLAS_HEADS],
            "n_heads": len(heads),
            "models": sorted({h["model"] for h in heads}),
        }

    def paper_data(conn: sqlite3.Connection, paper_id: str) -> dict[str, Any]:
        paper = catalogue.get_paper(conn, paper_id)
        if paper is None:
            raise HTTPException(404, f"no paper with id {paper_id!r}")
        matching = {t: heads_of_type(conn, t)[:10] for t in paper["head_types"]}
        scanned_models = {s["model"]: s["id"] for s in list_scans(conn)}
        reported = []
        for r in paper.get("reported_heads") or []:
            entry = dict(r)
            sid = scanned_models.get(str(entry.get("model")))
            entry["scan_id"] = sid
            reported.append(entry)
        return {"paper": paper, "links": catalogue.paper_links(paper), "matching": matching, "reported": reported}

    def compare_data(conn: sqlite3.Connection, types: str | None, scans: str | None) -> dict[str, Any]:
        """``types`` and ``scans``: comma-separated ids (default: every type of the chosen scans; the newest scan
        of each model). A paper's reported heads are drawn on the scan of the same model."""
        stored = list_scans(conn)
        if scans:
            wanted = [s.strip() for s in scans.split(",") if s.strip()]
            bad = [s for s in wanted if not s.isdigit() or not any(x["id"] == int(s) for x in stored)]
            if bad:
                raise HTTPException(404, f"no scan with id {bad[0]!r}")
            ids = list(dict.fromkeys(int(s) for s in wanted))
        else:
            newest: dict[str, int] = {}
            for s in stored:  # newest first
                newest.setdefault(s["model"], s["id"])
            ids = sorted(newest.values())
        loaded = [(meta, hm) for hm, meta in (scan_or_404(conn, i) for i in ids)]
        present = list(dict.fromkeys(t for _, hm in loaded for t in hm.head_types))
        if types:
            type_ids = list(dict.fromkeys(t.strip() for t in types.split(",") if t.strip()))
            unknown = [t for t in type_ids if t not in present]
            if unknown:
                raise HTTPException(404, f"head type {unknown[0]!r} is in none of the compared scans")
        else:
            type_ids = present
        reported = [
            {**r, "paper_id": p["id"], "paper_title": p["title"]}
            for p in catalogue.all_papers(conn)
            for r in p.get("reported_heads") or []
        ]
        return {
            "types": views.compare_view(loaded, type_ids, reported),
            "scan_ids": ids,
            "type_ids": type_ids,
            "all_scans": stored,
            "all_types": [{"id": t, "name": next(hm.head_types[t].get("name", t) for _, hm in loaded
                                                 if t in hm.head_types)} for t in present],
        }  # fmt: skip

    # ---- pages --------------------------------------------------------------------------------------
    @app.get("/compare", response_class=HTMLResponse, include_in_schema=False)
    def compare_page(request: Request, types: str | None = None, scans: str | None = None) -> HTMLResponse:
        with db() as conn:
            data = compare_data(conn, types, scans)
        colors = views.type_colors([t["id"] for t in data["all_types"]])
        return page(
            request, "compare.html", colors=colors, strip_width=views.COMPARE_WIDTH,
            strip_height=views.COMPARE_HEIGHT, **data,
        )  # fmt: skip

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index(request: Request) -> HTMLResponse:
        with db() as conn:
            return page(request, "index.html", **scans_data(conn))

    @app.get("/scans/{scan_id}", response_class=HTMLResponse, include_in_schema=False)
    def scan_page(request: Request, scan_id: int, type: str | None = None) -> HTMLResponse:
        with db() as conn:
            data = scan_data(conn, scan_id, type or None)
        hm = data["headmap"]
        return page(
            request,
            "scan.html",
            facts=views.facts_rows(hm),
            verification=views.verification_rows(hm),
            files=files_of(data["scan"]),
            types=[{"id": t, "name": i.get("name", t), "stage": i.get("stage")} for t, i in hm.head_types.items()],
            **data,
        )

    @app.get("/scans/{scan_id}/heads/{name}", response_class=HTMLResponse, include_in_schema=False)
    def head_page(request: Request, scan_id: int, name: str) -> HTMLResponse:
        with db() as conn:
            data = head_data(conn, scan_id, name)
        p = data["patterns"]
        example = views.example_for_head(p, data["head"]["name"], views.head_types_of(data["head"]))
        names = {t: str(i.get("name", t)) for t, i in data["headmap"].head_types.items()}
        evidence = {t: example_of_type(p, t, data["head"]["name"]) for t in names}
        n_heads = data["headmap"].facts.n_heads
        index = data["head"]["layer"] * n_heads + data["head"]["head"]
        total = data["headmap"].facts.n_head_total
        prev_head, next_head = (  # reading order: L0H0, L0H1, … L1H0, …
            head_name(i // n_heads, i % n_heads) if 0 <= i < total else None for i in (index - 1, index + 1)
        )
        return page(
            request, "head.html", pattern_examples=panel_examples(p, names) if p else [], initial_example=example,
            evidence=evidence, prev_head=prev_head, next_head=next_head, **data,
        )  # fmt: skip

    @app.get("/head-types", response_class=HTMLResponse, include_in_schema=False)
    def types_page(request: Request) -> HTMLResponse:
        with db() as conn:
            vocab = catalogue.vocabulary(conn)
            counts = {t: len(catalogue.papers_for_head_type(conn, t)) for t in vocab}
        return page(request, "head_types.html", types=list(vocab.values()), paper_counts=counts)

    @app.get("/head-types/{type_id}", response_class=HTMLResponse, include_in_schema=False)
    def type_page(request: Request, type_id: str) -> HTMLResponse:
        with db() as conn:
            return page(request, "head_type.html", type_names=type_names(conn), **type_data(conn, type_id))

    def paper_filters(
        conn: sqlite3.Connection, head_type: str | None, year: str | None, stage: str | None
    ) -> tuple[dict[str, Any], list[str]]:
        """The paper filters checked: ``({head_type, year, stage}, errors)``; an invalid filter is dropped and
        explained in ``errors`` (the page shows them, the API answers 400), never silently ignored."""
        errors = []
        year_n = None
        if year:
            if year.strip().isdigit() and 1000 <= int(year.strip()) <= 9999:
                year_n = int(year.strip())
            else:
                errors.append(f"year must be a year such as 2024, got {year!r}")
        if stage and stage not in STAGES:
            errors.append(f"stage must be one of {', '.join(STAGES)}, got {stage!r}")
            stage = None
        if head_type and head_type not in catalogue.vocabulary(conn):
            errors.append(f"no head type {head_type!r}; the head-types page lists them")
            head_type = None
        return {"head_type": head_type or None, "year": year_n, "stage": stage or None}, errors

    @app.get("/papers", response_class=HTMLResponse, include_in_schema=False)
    def papers_page(
        request: Request,
        q: str | None = None,
        head_type: str | None = None,
        year: str | None = None,
        stage: str | None = None,
    ) -> HTMLResponse:
        with db() as conn:
            filters, errors = paper_filters(conn, head_type, year, stage)
            everything = catalogue.all_papers(conn)
            found = catalogue.search_papers(conn, q, **filters)
            vocab = catalogue.vocabulary(conn)
        years = sorted({p["year"] for p in everything if p.get("year")}, reverse=True)
        used = sorted({t for p in everything for t in p["head_types"]} | set(vocab))
        names = {t: vocab[t]["name"] if t in vocab else t for t in used}
        return page(
            request,
            "papers.html",
            status=400 if errors else 200,
            errors=errors,
            papers=found,
            n_total=len(everything),
            q=q or "",
            head_type=filters["head_type"] or "",
            year=filters["year"],
            stage=filters["stage"] or "",
            years=years,
            head_types=sorted(used, key=lambda t: names[t].lower()),
            type_names=names,
            stages=STAGES,
        )

    @app.get("/papers/{paper_id:path}", response_class=HTMLResponse, include_in_schema=False)
    def paper_page(request: Request, paper_id: str) -> HTMLResponse:
        with db() as conn:
            data = paper_data(conn, paper_id)
        return page(
            request, "paper.html", scored_types=list(catalogue.registry_types()), type_names=type_names(), **data
        )

    def files_of(meta: dict[str, Any]) -> dict[str, str]:
        """Download links of a scan: the files it has (patterns only when its output directory holds them)."""
        has_patterns = bool(meta.get("out_dir")) and (Path(str(meta["out_dir"])) / "patterns.json").is_file()
        return {n: f"/scans/{meta['id']}/files/{n}" for n in SCAN_FILES if n != "patterns.json" or has_patterns}

    @app.get("/scans/{scan_id}/files/{name}", include_in_schema=False)
    def scan_file(scan_id: int, name: str) -> Response:
        if name not in SCAN_FILES:
            raise HTTPException(404, f"a scan has no file {name!r}; it has {', '.join(SCAN_FILES)}")
        with db() as conn:
            headmap, meta = scan_or_404(conn, scan_id)
            papers = catalogue_papers(conn, headmap) if name == "report.html" else None
            named = reported_agreement(conn, headmap) if name == "report.html" else None
        stem = "".join(c if c.isalnum() or c in "-_." else "-" for c in str(meta["model"]))[:80]
        disposition = {"Content-Disposition": f'attachment; filename="{stem}-scan{scan_id}-{name}"'}
        out_dir = Path(str(meta["out_dir"])) if meta.get("out_dir") else None
        if name == "patterns.json":
            if out_dir is None or not (out_dir / name).is_file():
                raise HTTPException(404, f"scan {scan_id} has no patterns.json in its output directory")
            return FileResponse(out_dir / name, media_type=SCAN_FILES[name], headers=disposition)
        if name == "headmap.json":
            return Response(headmap.json_text(), media_type=SCAN_FILES[name], headers=disposition)
        if name == "headmap.csv":
            return Response(headmap.csv_text(), media_type=SCAN_FILES[name], headers=disposition)
        patterns = read_patterns_cached(out_dir) if out_dir is not None else None
        html = render_report(headmap, patterns, papers, named)
        return HTMLResponse(html, headers={"Content-Security-Policy": report_csp()})  # the report's own script

    @app.get("/api/bibtex", tags=["papers"], response_class=PlainTextResponse)
    def api_bibtex(
        id: Annotated[list[str] | None, Query(description="paper ids (repeat for more); default: the filters")] = None,
        q: str | None = Query(None, description="words; every one must match"),
        head_type: str | None = Query(None, description="a head-type id"),
        year: str | None = Query(None, description="a year, e.g. 2024"),
        stage: str | None = Query(None, description="a survey stage: KR, ICI, LR or EP"),
    ) -> PlainTextResponse:
        """BibTeX for the given papers, or for every paper the filters select (as ``/api/papers``)."""
        with db() as conn:
            if id:
                papers = [catalogue.get_paper(conn, i) for i in id]
                missing = [i for i, p in zip(id, papers, strict=True) if p is None]
                if missing:
                    raise HTTPException(404, f"no paper with id {missing[0]!r}")
                chosen = [p for p in papers if p is not None]
            else:
                filters, errors = paper_filters(conn, head_type, year, stage)
                if errors:
                    raise HTTPException(400, "; ".join(errors))
                chosen = catalogue.search_papers(conn, q, **filters)
        name = chosen[0]["id"] if len(chosen) == 1 else "headatlas-papers"
        safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in str(name))[:80]
        return PlainTextResponse(
            catalogue.bibtex(chosen),
            media_type="text/plain; charset=utf-8",
            headers={"Content-Disposition": f'inline; filename="{safe}.bib"'},
        )

    @app.get("/api/docs", response_class=HTMLResponse, include_in_schema=False)
    def api_docs(request: Request) -> HTMLResponse:
        return page(request, "api_docs.html", api=views.openapi_docs(app.openapi()))

    @app.post("/scans/{scan_id}/delete", include_in_schema=False)
    def delete_scan_form(scan_id: int) -> Response:
        _delete(scan_id)
        return RedirectResponse("/", status_code=303)

    def _delete(scan_id: int) -> None:
        if not curate:
            raise HTTPException(403, "read-only: start the server with --curate to change the store")
        _check_scan_id(scan_id)
        with db(write=True) as conn:
            if not delete_scan(conn, scan_id):
                raise _no_such_scan(scan_id)
        cache.evict(scan_id)

    # ---- JSON API -----------------------------------------------------------------------------------
    @app.get("/api/scans", tags=["scans"], response_model=schemas.ScanList)
    def api_scans() -> dict[str, Any]:
        """Every stored scan (newest first) and the models they cover."""
        with db() as conn:
            return scans_data(conn)

    @app.get("/api/scans/{scan_id}", tags=["scans"], response_model=schemas.ScanDetail)
    def api_scan(scan_id: int, type: str | None = Query(None, description="a head-type id")) -> dict[str, Any]:
        """A scan's head map: model facts, head types, member counts, top heads, and the scores."""
        with db() as conn:
            data = scan_data(conn, scan_id, type or None)
        hm: HeadMap = data["headmap"]
        rows = hm.rows if type is None else [r for r in hm.rows if r["head_type"] == type]
        return {
            "scan": data["scan"],
            "model": hm.facts.to_dict(),
            "head_types": hm.head_types,
            "members": data["members"],
            "top": data["top"],
            "heads": [{"name": f"L{r['layer']}H{r['head']}", **r} for r in rows],
            "verification": hm.verification,
            "files": files_of(data["scan"]),
            "agreement": data["agreement"],
        }

    @app.get("/api/scans/{scan_id}/heads/{name}", tags=["scans"])
    def api_head(scan_id: int, name: str) -> dict[str, Any]:
        """One head: every score with its rank, causal effects when verified, and its attention patterns."""
        with db() as conn:
            data = head_data(conn, scan_id, name)
        return {"scan": data["scan"], "head": data["head"], "patterns": data["patterns"]}

    @app.get("/api/compare", tags=["scans"])
    def api_compare(
        types: str | None = Query(None, description="comma-separated head-type ids (default: all)"),
        scans: str | None = Query(None, description="comma-separated scan ids (default: newest per model)"),
    ) -> dict[str, Any]:
        """One head type across scanned models: per scan its members, best head and depth (layer / (layers - 1)),
        and a paper's reported heads for the same model."""
        with db() as conn:
            data = compare_data(conn, types, scans)
        out = []
        for t in data["types"]:
            rows = []
            for r in t["scans"]:
                if r["missing"]:
                    rows.append({"scan_id": r["scan"]["id"], "model": r["model"], "missing": True})
                    continue
                rows.append(
                    {"scan_id": r["scan"]["id"], "model": r["model"], "missing": False, "n_layers": r["n_layers"],
                     "n_heads": r["n_heads"], "n_members": r["n_members"], "members": r["members"],
                     "member_depths": [views.depth(views.parse_head(m, r["n_layers"], r["n_heads"])[0], r["n_layers"])
                                       for m in r["members"]],
                     "best": r["best"], "best_depth": r["best_depth"], "mean_depth": r["mean_depth"],
                     "reported": r["reported"]}
                )  # fmt: skip
            out.append({"type_id": t["type_id"], "name": t["name"], "scans": rows})
        return {"scans": data["scan_ids"], "types": out}

    @app.delete("/api/scans/{scan_id}", tags=["curation"])
    def api_delete_scan(scan_id: int) -> dict[str, Any]:
        """Delete a scan (only with ``--curate``; 403 otherwise)."""
        _delete(scan_id)
        return {"deleted": scan_id}

    @app.get("/api/head-types", tags=["head types"], response_model=list[schemas.HeadTypeInfo])
    def api_types() -> list[dict[str, Any]]:
        """The head-type vocabulary: registry types headatlas scores, plus catalogue types."""
        with db() as conn:
            return list(catalogue.vocabulary(conn).values())

    @app.get("/api/head-types/{type_id}", tags=["head types"], response_model=schemas.HeadTypeDetail)
    def api_type(type_id: str) -> dict[str, Any]:
        """A head type: definition, stage, aliases, papers, and member heads across every scanned model."""
        with db() as conn:
            return type_data(conn, type_id)

    @app.get("/api/papers", tags=["papers"], response_model=list[schemas.Paper])
    def api_papers(
        q: str | None = Query(None, description="words; every one must match; results ranked by relevance"),
        head_type: str | None = Query(None, description="a head-type id (see /api/head-types)"),
        year: str | None = Query(None, description="a year, e.g. 2024"),
        stage: str | None = Query(None, description="a survey stage: KR, ICI, LR or EP"),
    ) -> list[dict[str, Any]]:
        """Catalogue papers matching every filter given, best match first when ``q`` is given (FTS5 bm25 over
        title and summary; ties by newest), newest first otherwise. An invalid filter answers 400."""
        with db() as conn:
            filters, errors = paper_filters(conn, head_type, year, stage)
            if errors:
                raise HTTPException(400, "; ".join(errors))
            return catalogue.search_papers(conn, q, **filters)

    @app.get("/api/papers/{paper_id:path}", tags=["papers"], response_model=schemas.PaperDetail)
    def api_paper(paper_id: str) -> dict[str, Any]:
        """A paper with its links, reported heads, and matching heads in the stored scans."""
        with db() as conn:
            data = paper_data(conn, paper_id)
        return {"paper": data["paper"], "matching": data["matching"], "reported": data["reported"]}

    # ---- errors -------------------------------------------------------------------------------------
    def error_response(request: Request, status: int, message: str) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": message}, status_code=status)
        return page(request, "error.html", status=status, status_code=status, message=message)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        message = exc.detail if isinstance(exc.detail, str) else "not found"
        return error_response(request, exc.status_code, message)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": jsonable_encoder(exc.errors())}, status_code=422)
        return error_response(request, 404, "not found: this address does not name a page")

    @app.exception_handler(StoreError)
    async def store_error(request: Request, exc: StoreError) -> Response:
        return error_response(request, 503, str(exc))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("error serving %s", request.url.path)
        return error_response(request, 500, "internal error; the server log has the details")

    return app


def serve(db_path: str | Path | None, host: str = "127.0.0.1", port: int = 8000, curate: bool = False) -> None:
    """Run the app with uvicorn until interrupted."""
    import uvicorn

    uvicorn.run(create_app(db_path, curate=curate), host=host, port=port, log_level="info")
