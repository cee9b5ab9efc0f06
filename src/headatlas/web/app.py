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
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from ..errors import HeadatlasError, StoreError
from ..headmap import HeadMap
from ..heads import head_types as registry_types
from ..literature.schema import STAGES
from ..store import connect, heads_of_type, list_scans, load_scan
from ..store.db import default_db_path, transaction
from . import catalogue, schemas, views
from .patterns import for_head, panel_examples, read_patterns_cached
from .report import env

log = logging.getLogger(__name__)
MAX_ATLAS_HEADS = 60
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:;"
    " connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
"""Scripts only from /static (never inline), nothing from other origins: defence in depth behind escaping."""


class _ScanCache:
    """Parsed head maps, keyed by scan id and creation time (a scan never changes once stored; an id reused
    after a deletion comes with a new creation time, so a stale entry is never served)."""

    def __init__(self, size: int = 16) -> None:
        self.size = size
        self.items: dict[tuple[int, str], HeadMap] = {}
        self.lock = threading.Lock()

    def get(self, conn: sqlite3.Connection, scan_id: int) -> tuple[HeadMap, dict[str, Any]]:
        row = conn.execute(
            "SELECT id, model, architecture, n_layers, n_heads, n_kv_heads, seed, created_at, out_dir"
            " FROM scans WHERE id = ?",
            (scan_id,),
        ).fetchone()
        if row is None:
            raise HTTPException(404, f"no scan with id {scan_id}")
        meta = dict(row)
        key = (scan_id, str(meta["created_at"]))
        with self.lock:
            hit = self.items.get(key)
        if hit is None:
            hit = load_scan(conn, scan_id)
            with self.lock:
                if len(self.items) >= self.size:
                    self.items.pop(next(iter(self.items)))
                self.items[key] = hit
        return hit, meta

    def evict(self, scan_id: int) -> None:
        with self.lock:
            for key in [k for k in self.items if k[0] == scan_id]:
                del self.items[key]


def create_app(db_path: str | Path | None = None, *, curate: bool = False) -> FastAPI:
    """The app over the store at ``db_path`` (created and migrated if missing)."""
    path = Path(db_path) if db_path is not None else default_db_path()
    connect(path).close()  # create / migrate once, so request connections can be read-only
    app = FastAPI(
        title="headatlas",
        description="Attention heads of scanned models joined with the papers that named them.",
        docs_url=None,  # the stock docs pages load scripts from a CDN; the schema is enough offline
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    cache = _ScanCache()

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
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
            "grid": views.heatmap(headmap, type_id, link) if type_id else views.overview(headmap, link),
            "top": views.top_heads(headmap, 5),
            "members": {t: len(headmap.members(t)) for t in headmap.head_types},
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
        return {
            "type": vocab[type_id],
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

    # ---- pages --------------------------------------------------------------------------------------
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
            types=[{"id": t, "name": i.get("name", t), "stage": i.get("stage")} for t, i in hm.head_types.items()],
            **data,
        )

    @app.get("/scans/{scan_id}/heads/{name}", response_class=HTMLResponse, include_in_schema=False)
    def head_page(request: Request, scan_id: int, name: str) -> HTMLResponse:
        with db() as conn:
            data = head_data(conn, scan_id, name)
        p = data["patterns"]
        example = views.example_for_head(p, data["head"]["name"])
        return page(
            request, "head.html", pattern_examples=panel_examples(p) if p else [], initial_example=example, **data
        )

    @app.get("/head-types", response_class=HTMLResponse, include_in_schema=False)
    def types_page(request: Request) -> HTMLResponse:
        with db() as conn:
            vocab = catalogue.vocabulary(conn)
            counts = {t: len(catalogue.papers_for_head_type(conn, t)) for t in vocab}
        return page(request, "head_types.html", types=list(vocab.values()), paper_counts=counts)

    @app.get("/head-types/{type_id}", response_class=HTMLResponse, include_in_schema=False)
    def type_page(request: Request, type_id: str) -> HTMLResponse:
        with db() as conn:
            return page(request, "head_type.html", **type_data(conn, type_id))

    @app.get("/papers", response_class=HTMLResponse, include_in_schema=False)
    def papers_page(
        request: Request,
        q: str | None = None,
        head_type: str | None = None,
        year: str | None = None,
        stage: str | None = None,
    ) -> HTMLResponse:
        year_n = int(year) if year and year.isdigit() else None
        with db() as conn:
            everything = catalogue.all_papers(conn)
            found = catalogue.search_papers(conn, q, head_type or None, year_n, stage or None)
            vocab = catalogue.vocabulary(conn)
        years = sorted({p["year"] for p in everything if p.get("year")}, reverse=True)
        used = sorted({t for p in everything for t in p["head_types"]} | set(vocab))
        return page(
            request,
            "papers.html",
            papers=found,
            n_total=len(everything),
            q=q or "",
            head_type=head_type or "",
            year=year_n,
            stage=stage or "",
            years=years,
            head_types=used,
            stages=STAGES,
        )

    @app.get("/papers/{paper_id:path}", response_class=HTMLResponse, include_in_schema=False)
    def paper_page(request: Request, paper_id: str) -> HTMLResponse:
        with db() as conn:
            data = paper_data(conn, paper_id)
        return page(request, "paper.html", scored_types=list(registry_types()), **data)

    @app.post("/scans/{scan_id}/delete", include_in_schema=False)
    def delete_scan_form(scan_id: int) -> Response:
        _delete(scan_id)
        return RedirectResponse("/", status_code=303)

    def _delete(scan_id: int) -> None:
        if not curate:
            raise HTTPException(403, "read-only: start the server with --curate to change the store")
        with db(write=True) as conn:
            if conn.execute("SELECT 1 FROM scans WHERE id = ?", (scan_id,)).fetchone() is None:
                raise HTTPException(404, f"no scan with id {scan_id}")
            with transaction(conn):
                conn.execute("DELETE FROM scans WHERE id = ?", (scan_id,))
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
        }

    @app.get("/api/scans/{scan_id}/heads/{name}", tags=["scans"])
    def api_head(scan_id: int, name: str) -> dict[str, Any]:
        """One head: every score with its rank, causal effects when verified, and its attention patterns."""
        with db() as conn:
            data = head_data(conn, scan_id, name)
        return {"scan": data["scan"], "head": data["head"], "patterns": data["patterns"]}

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
        q: str | None = None, head_type: str | None = None, year: int | None = None, stage: str | None = None
    ) -> list[dict[str, Any]]:
        """Catalogue papers matching every filter given (``q``: words in title, summary, venue, tags)."""
        with db() as conn:
            return catalogue.search_papers(conn, q, head_type, year, stage)

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
