"""``headatlas papers …``: list, search, show, add, export and import the paper catalogue.

Every command opens the store given by ``--db`` (default: the user data dir), importing the shipped catalogue on
first use. Bad input raises a :class:`~headatlas.errors.HeadatlasError`, which the main CLI turns into a one-line
``error: …`` with exit code 2; nothing is written in that case.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..errors import CatalogueError
from ..fileio import write_atomic
from ..store import connect
from ..store.db import check_int
from . import store as paper_store
from .catalogue import dump_json, dump_yaml, load_document
from .contrib import parse_contribution
from .render import render_bibtex, render_csv, render_markdown
from .schema import Paper

papers_app = typer.Typer(help="The attention-head paper catalogue.", no_args_is_help=True)

out = Console(soft_wrap=True)
err = Console(stderr=True)

DbOption = Annotated[Path | None, typer.Option("--db", help="SQLite store (default: user data dir).")]
FormatOption = Annotated[str, typer.Option("--format", help="table, json or csv.")]
HeadTypeOption = Annotated[
    str | None, typer.Option("--head-type", help="Head-type id or any alias (e.g. induction, 'S-inhibition head').")
]
StageOption = Annotated[str | None, typer.Option("--stage", help="Survey stage: KR, ICI, LR or EP.")]
YearOption = Annotated[int | None, typer.Option("--year", help="Publication year.")]


def _open(db: Path | None) -> sqlite3.Connection:
    conn = connect(db)
    paper_store.ensure_seeded(conn)
    return conn


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CatalogueError(f"cannot read {path}: {exc}") from None


def _emit(papers: list[Paper], fmt: str, *, title: str) -> None:
    if fmt == "json":
        typer.echo(json.dumps([p.to_dict() for p in papers], ensure_ascii=False, indent=2))
    elif fmt == "csv":
        typer.echo(render_csv(papers), nl=False)
    elif fmt == "table":
        table = Table(title=title)
        for column in ("id", "date", "title", "head types", "venue"):
            table.add_column(column, overflow="fold")
        for p in papers:
            table.add_row(p.id, p.date.isoformat(), escape(p.title), ", ".join(p.head_types), escape(p.venue))
        out.print(table)
    else:
        raise CatalogueError(f"unknown format {fmt!r}; valid formats are table, json, csv")


def _check_format(fmt: str, valid: tuple[str, ...]) -> None:
    if fmt not in valid:
        raise CatalogueError(f"unknown format {fmt!r}; valid formats are {', '.join(valid)}")


@papers_app.command("list")
def papers_list(
    head_type: HeadTypeOption = None,
    stage: StageOption = None,
    year: YearOption = None,
    limit: Annotated[int | None, typer.Option("--limit", help="Show at most this many (newest first).")] = None,
    fmt: FormatOption = "table",
    db: DbOption = None,
) -> None:
    """Papers in the catalogue, newest first."""
    _check_format(fmt, ("table", "json", "csv"))
    check_int(limit, "--limit")
    check_int(year, "--year", maximum=9999)
    conn = _open(db)
    ht = paper_store.check_filters(conn, head_type, stage)
    papers = paper_store.list_papers(conn, head_type=ht, stage=stage, year=year, limit=limit)
    _emit(papers, fmt, title=f"{len(papers)} papers")


@papers_app.command("search")
def papers_search(
    query: Annotated[str, typer.Argument(help="Words to find in titles and summaries (all must match).")],
    head_type: HeadTypeOption = None,
    stage: StageOption = None,
    year: YearOption = None,
    limit: Annotated[int, typer.Option("--limit", help="Most results to show.")] = 20,
    fmt: FormatOption = "table",
    db: DbOption = None,
) -> None:
    """Full-text search (SQLite FTS5), best match first."""
    _check_format(fmt, ("table", "json", "csv"))
    check_int(limit, "--limit")
    check_int(year, "--year", maximum=9999)
    conn = _open(db)
    ht = paper_store.check_filters(conn, head_type, stage)
    hits = paper_store.search_papers(conn, query, head_type=ht, stage=stage, year=year, limit=limit)
    _emit([h.paper for h in hits], fmt, title=f"{len(hits)} papers matching {query!r}")


@papers_app.command("show")
def papers_show(
    paper_id: Annotated[str, typer.Argument(metavar="ID", help="arXiv id or catalogue slug.")],
    fmt: Annotated[str, typer.Option("--format", help="text, json or yaml.")] = "text",
    db: DbOption = None,
) -> None:
    """One paper in full."""
    _check_format(fmt, ("text", "json", "yaml"))
    conn = _open(db)
    p = paper_store.get_paper(conn, paper_id)
    if fmt == "json":
        typer.echo(json.dumps(p.to_dict(), ensure_ascii=False, indent=2))
        return
    if fmt == "yaml":
        typer.echo(dump_yaml([p]), nl=False)
        return
    vocab = paper_store.store_vocabulary(conn)
    lines = [
        f"[bold]{escape(p.title)}[/]",
        f"id: {p.id}    date: {p.date}    venue: {escape(p.venue)}",
    ]
    if p.authors:
        lines.append(f"authors: {escape(', '.join(p.authors))}")
    heads = ", ".join(f"{ht} ({vocab.get(ht).stage})" if ht in vocab else ht for ht in p.head_types)
    lines += [f"head types: {heads}", f"tags: {escape(', '.join(p.tags))}"]
    for label, values in (("methods", p.methods), ("models", p.models), ("tasks", p.tasks)):
        if values:
            lines.append(f"{label}: {escape(', '.join(values))}")
    lines += [
        f"- innovation: {escape(p.summary.innovation)}",
        f"- tasks: {escape(p.summary.tasks)}",
        f"- result: {escape(p.summary.result)}",
    ]
    for kind, url in p.links.items():
        lines.append(f"{kind}: {escape(url)}")
    for h in p.reported_heads:
        score = f" score {h.score:g}" if h.score is not None else ""
        lines.append(f"reported: {escape(h.model)} {h.head} {h.head_type}{score} {escape(h.note)}".rstrip())
    prov = p.provenance
    lines.append(f"provenance: {prov.source}, added {prov.added}" + (f"; {escape(prov.note)}" if prov.note else ""))
    for line in lines:
        out.print(line)


@papers_app.command("add")
def papers_add(
    from_issue: Annotated[Path, typer.Option("--from-issue", help="Contribution text: plain template or issue form.")],
    new_head: Annotated[bool, typer.Option("--new-head", help="Accept unknown head names as new head types.")] = False,
    db: DbOption = None,
) -> None:
    """Add a paper from a contribution form (a duplicate by arXiv id or title is merged)."""
    text = _read(from_issue)
    conn = _open(db)
    contribution = parse_contribution(text, paper_store.store_vocabulary(conn), new_head=new_head)
    result = paper_store.add_paper(conn, contribution.paper, new_terms=contribution.new_terms)
    if contribution.new_terms:
        err.print(f"new head types: {', '.join(t.id for t in contribution.new_terms)}")
    if result.merged_into:
        typer.echo(result.merge_note(contribution.paper.title))
    else:
        typer.echo(f"added {result.paper.id}")


@papers_app.command("export")
def papers_export(
    fmt: Annotated[str, typer.Option("--format", help="md, bib, json, yaml or csv.")] = "md",
    out_file: Annotated[Path | None, typer.Option("--out", help="Write here instead of stdout.")] = None,
    db: DbOption = None,
) -> None:
    """Export the whole catalogue (md reproduces the paper list's layout)."""
    _check_format(fmt, ("md", "bib", "json", "yaml", "csv"))
    conn = _open(db)
    papers = paper_store.all_papers(conn)
    renderers = {
        "md": lambda: render_markdown(papers, paper_store.store_vocabulary(conn)),
        "bib": lambda: render_bibtex(papers),
        "json": lambda: dump_json(papers, paper_store.added_terms(conn)),
        "yaml": lambda: dump_yaml(papers, paper_store.added_terms(conn)),
        "csv": lambda: render_csv(papers),
    }
    text = renderers[fmt]()
    if out_file is None:
        typer.echo(text, nl=False)
        return
    try:
        write_atomic(out_file, text)
    except OSError as exc:
        raise CatalogueError(f"cannot write {out_file}: {exc.strerror or exc}") from None
    err.print(f"wrote {len(papers)} papers to {out_file}")


@papers_app.command("import")
def papers_import(
    file: Annotated[Path, typer.Argument(help="A JSON or YAML catalogue file (as written by export).")],
    db: DbOption = None,
) -> None:
    """Import papers (all validated first; any error imports nothing)."""
    papers, terms = load_document(_read(file))
    conn = _open(db)
    n = paper_store.import_papers(conn, papers, terms)
    typer.echo(f"imported {n} papers")


@papers_app.command("heads")
def papers_heads(fmt: FormatOption = "table", db: DbOption = None) -> None:
    """The head-type vocabulary: ids, stages, aliases."""
    _check_format(fmt, ("table", "json", "csv"))
    conn = _open(db)
    terms = sorted(paper_store.store_vocabulary(conn).terms.values(), key=lambda t: t.id)
    if fmt == "json":
        typer.echo(json.dumps([t.to_dict() for t in terms], ensure_ascii=False, indent=2))
    elif fmt == "csv":
        import csv
        import io

        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["id", "name", "stage", "in_survey", "aliases", "papers", "definition"])
        for t in terms:
            writer.writerow(
                [t.id, t.name, t.stage, int(t.in_survey), ";".join(t.aliases), ";".join(t.papers), t.definition]
            )
        typer.echo(buf.getvalue(), nl=False)
    else:
        table = Table(title=f"{len(terms)} head types")
        for column in ("id", "stage", "aliases", "definition"):
            table.add_column(column, overflow="fold")
        for t in terms:
            table.add_row(t.id, t.stage, escape(", ".join(t.aliases)), escape(t.definition))
        out.print(table)
