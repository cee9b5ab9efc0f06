"""``headatlas feed …``, ``headatlas digest …`` and the ``papers review`` / ``papers classify`` commands.

Bad input raises a :class:`~headatlas.errors.HeadatlasError` before anything is written; the main CLI prints it
as one line and exits with code 2.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sqlite3
import sys
from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ...errors import DeliveryError, HeadatlasError, InvalidSettingError
from ...fileio import has_surrogates, loads_json, write_atomic
from ...store import connect
from ...store.db import check_int
from ..cli import papers_app
from .store import STATUSES, IngestResult, list_entries

feed_app = typer.Typer(help="Ingest new papers, review them, publish a feed.", no_args_is_help=True)
digest_app = typer.Typer(help="Email digests of accepted papers.", no_args_is_help=True)

out = Console(soft_wrap=True)
err = Console(stderr=True)
log = logging.getLogger(__name__)

DbOption = Annotated[Path | None, typer.Option("--db", help="SQLite store (default: user data dir).")]


def _open(db: Path | None) -> sqlite3.Connection:
    return connect(db)


def _day(value: str | None, what: str) -> date | None:
    if value is None:
        return None
    try:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            raise ValueError(value)
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidSettingError(f"{what} must be a date YYYY-MM-DD, got {value!r}") from None


def _report(name: str, result: IngestResult) -> None:
    err.print(f"{name}: {result.added} new, {result.updated} updated, {result.unchanged} already known")
    for note in result.merged:
        err.print(f"  {escape(note)}")
    for reason in result.skipped:
        err.print(f"  skipped {escape(reason)}")


@feed_app.command("update")
def feed_update(
    source: Annotated[str, typer.Option("--source", help="arxiv, daily or all.")] = "all",
    since: Annotated[str | None, typer.Option("--since", help="First day YYYY-MM-DD (default: after last run).")] = (
        None
    ),
    until: Annotated[str | None, typer.Option("--until", help="Last day YYYY-MM-DD (default: today).")] = None,
    files: Annotated[
        list[Path] | None, typer.Option("--file", help="Ingest a saved arXiv .xml or Daily Papers .json instead.")
    ] = None,
    arxiv_url: Annotated[str, typer.Option("--arxiv-url", envvar="HEADATLAS_ARXIV_URL")] = (
        "http://export.arxiv.org/api/query"
    ),
    hf_url: Annotated[str, typer.Option("--hf-url", envvar="HEADATLAS_HF_URL")] = "https://huggingface.co",
    delay: Annotated[float, typer.Option("--delay", help="Seconds between arXiv calls (arXiv asks for 3).")] = 3.0,
    max_results: Annotated[int, typer.Option("--max-results", help="Most arXiv entries per run.")] = 2000,
    retries: Annotated[int, typer.Option("--retries", help="Retries per call (exponential backoff).")] = 4,
    db: DbOption = None,
) -> None:
    """Fetch new papers, score, tag and summarise them; relevant ones wait in the review queue."""
    from .ingest import Annotator, ingest_files, update_arxiv, update_daily
    from .sources import ArxivClient, DailyPapersClient

    if source not in ("arxiv", "daily", "all"):
        raise InvalidSettingError(f"unknown source {source!r}; valid sources are arxiv, daily, all")
    first, last = _day(since, "--since"), _day(until, "--until")
    if first and last and first > last:
        raise InvalidSettingError(f"--since {first} is after --until {last}")
    if not 0 <= delay <= 3600:
        raise InvalidSettingError(f"--delay must be 0..3600 seconds, got {delay}")
    check_int(max_results, "--max-results", maximum=1_000_000)
    check_int(retries, "--retries", minimum=0, maximum=100)
    conn = _open(db)
    from .. import store as paper_store
    from .tagging import Tagger

    paper_store.ensure_seeded(conn)  # tag with the store's vocabulary: head types curators added count too
    annotate = Annotator(tagger=Tagger(paper_store.store_vocabulary(conn)))
    if files:
        _report("files", ingest_files(conn, files, annotate=annotate))
        return
    if source in ("arxiv", "all"):
        client = ArxivClient(arxiv_url, delay=delay, retries=retries)
        try:
            with err.status("arXiv …"):
                result = update_arxiv(conn, client, since=first, until=last, max_results=max_results, annotate=annotate)
        finally:
            client.close()
        _report("arXiv", result)
    if source in ("daily", "all"):
        daily = DailyPapersClient(hf_url, retries=retries)
        try:
            with err.status("Daily Papers …"):
                result = update_daily(conn, daily, since=first, until=last, annotate=annotate)
        finally:
            daily.close()
        _report("Daily Papers", result)
    pending = len(list_entries(conn, "pending"))
    err.print(f"{pending} paper(s) pending review: headatlas papers review")


@feed_app.command("enrich")
def feed_enrich(
    s2_url: Annotated[str, typer.Option("--s2-url", envvar="HEADATLAS_S2_URL")] = "https://api.semanticscholar.org",
    db: DbOption = None,
) -> None:
    """Fill venue and citation counts of pending and accepted papers from Semantic Scholar."""
    from .ingest import enrich
    from .sources import SemanticScholarClient

    client = SemanticScholarClient(s2_url, api_key=os.environ.get("S2_API_KEY"))
    try:
        changed = enrich(_open(db), client)
    finally:
        client.close()
    err.print(f"{changed} entr{'y' if changed == 1 else 'ies'} updated")


@feed_app.command("fulltext")
def feed_fulltext(
    status: Annotated[str, typer.Option("--status", help="Comma-separated statuses to read.")] = "pending,accepted",
    limit: Annotated[int | None, typer.Option("--limit", help="Read at most this many papers.")] = None,
    again: Annotated[bool, typer.Option("--again", help="Read papers already read (or found missing) too.")] = False,
    html_url: Annotated[str, typer.Option("--html-url", envvar="HEADATLAS_ARXIV_HTML_URL")] = "https://arxiv.org",
    delay: Annotated[float, typer.Option("--delay", help="Seconds between calls (arXiv asks for 3).")] = 3.0,
    retries: Annotated[int, typer.Option("--retries", help="Retries per call (exponential backoff).")] = 4,
    db: DbOption = None,
) -> None:
    """Read the arXiv HTML of pending and accepted papers: head types, proposed types and candidate reported
    heads from their head-related sentences and tables (the abstract's stay when there is no HTML)."""
    from .. import store as paper_store
    from .fulltext import read_full_texts
    from .sources.http import Fetcher
    from .tagging import Tagger

    statuses = [s.strip() for s in status.split(",") if s.strip()]
    bad = [s for s in statuses if s not in STATUSES]
    if bad or not statuses:
        raise InvalidSettingError(f"unknown status {bad or status!r}; valid are {', '.join(STATUSES)}")
    if not 0 <= delay <= 3600:
        raise InvalidSettingError(f"--delay must be 0..3600 seconds, got {delay}")
    check_int(retries, "--retries", minimum=0, maximum=100)
    if limit is not None:
        check_int(limit, "--limit", minimum=1, maximum=1_000_000)
    if not html_url.startswith(("https://", "http://")):
        raise InvalidSettingError(f"--html-url must be an http(s) URL, got {html_url!r}")
    conn = _open(db)
    paper_store.ensure_seeded(conn)
    fetcher = Fetcher(html_url, name="arXiv HTML", min_interval=delay, retries=retries)
    try:
        with err.status("arXiv HTML …"):
            run = read_full_texts(
                conn, fetcher, Tagger(paper_store.store_vocabulary(conn)), statuses=statuses, limit=limit, again=again
            )
    finally:
        fetcher.close()
    err.print(
        f"full text: {run.read} read, {run.missing} without an HTML rendering (abstract kept), {len(run.failed)}"
        f" failed; {run.new_head_types} head type(s) added, {run.new_reported} candidate reported head(s)"
    )
    for line in run.failed:
        err.print(f"  failed {escape(line)}")


@feed_app.command("list")
def feed_list(
    status: Annotated[str | None, typer.Option("--status", help=f"One of {', '.join(STATUSES)}.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="table or json.")] = "table",
    db: DbOption = None,
) -> None:
    """Ingested papers with their status, score and head types."""
    if status is not None and status not in STATUSES:
        raise InvalidSettingError(f"unknown status {status!r}; valid are {', '.join(STATUSES)}")
    if fmt not in ("table", "json"):
        raise InvalidSettingError(f"unknown format {fmt!r}; valid formats are table, json")
    entries = list_entries(_open(db), status)
    if fmt == "json":
        typer.echo(json.dumps([e.to_dict() for e in entries], ensure_ascii=False, indent=2))
        return
    table = Table()
    for column in ("id", "status", "score", "published", "title", "head types"):
        table.add_column(column, overflow="fold")
    for e in entries:
        table.add_row(
            str(e.id), e.status, f"{e.score:.2f}", e.published or "", escape(e.title), ", ".join(e.head_types)
        )
    out.print(table)


@feed_app.command("candidates")
def feed_candidates(db: DbOption = None) -> None:
    """Candidate new head types: "X heads" phrases of pending papers that the vocabulary does not know."""
    counts: dict[str, list[int]] = {}
    for e in list_entries(_open(db), "pending"):
        for name in e.candidates:
            counts.setdefault(name, []).append(e.id)
    if not counts:
        err.print("no candidate head types")
        return
    for name, ids in sorted(counts.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        typer.echo(f"{name}\t{len(ids)}\t{', '.join(f'#{i}' for i in ids)}")


@feed_app.command("atom")
def feed_atom(
    out_path: Annotated[Path, typer.Option("--out", help="Where to write the Atom feed.")] = Path("feed.xml"),
    db: DbOption = None,
) -> None:
    """Write an Atom feed of accepted papers."""
    from .atom import render_atom

    data = render_atom(_open(db))
    _write(out_path, data)
    err.print(f"wrote {out_path}")


@feed_app.command("export")
def feed_export(
    out_path: Annotated[Path | None, typer.Option("--out", help="File (default: stdout).")] = None,
    status: Annotated[str | None, typer.Option("--status")] = None,
    db: DbOption = None,
) -> None:
    """Export ingested papers as JSON."""
    from .atom import export_json

    if status is not None and status not in STATUSES:
        raise InvalidSettingError(f"unknown status {status!r}; valid are {', '.join(STATUSES)}")
    text = export_json(_open(db), status)
    if out_path is None:
        typer.echo(text, nl=False)
    else:
        _write(out_path, text.encode("utf-8"))


def _write(path: Path, data: bytes) -> None:
    try:
        write_atomic(path, data)
    except OSError as exc:
        raise InvalidSettingError(f"cannot write {path}: {exc.strerror or exc}") from None


def _title_of(conn: sqlite3.Connection, entry_id: int) -> str:
    from .store import get_entry

    entry = get_entry(conn, entry_id)
    return entry.title if entry is not None else "?"


# ----- papers review / classify (registered on the catalogue's `papers` app) -----


def _show(e: object, conn: sqlite3.Connection | None = None) -> None:
    from .proposals import describe
    from .store import FeedEntry

    assert isinstance(e, FeedEntry)
    out.print(f"[bold]#{e.id}[/] {escape(e.title)}  [dim]({e.published or '?'}, score {e.score:.2f})[/]")
    out.print(f"  heads: {', '.join(e.head_types) or '-'}   stages: {', '.join(e.stages) or '-'}")
    if e.candidates:
        out.print(f"  candidate new head types: {escape(', '.join(e.candidates))}")
    out.print(f"  why: {escape('; '.join(e.why))}")
    for line in describe(conn, e.id) if conn is not None else ():
        out.print(f"  evidence: {escape(line)}")
    for key, label in (("innovation", "Innovation"), ("tasks", "Tasks"), ("result", "Significant Result")):
        out.print(f"  - {label}: {escape(e.summary.get(key, ''))}")


@papers_app.command("review")
def papers_review(
    accept_ids: Annotated[list[int] | None, typer.Option("--accept", help="Accept this feed entry id.")] = None,
    reject_ids: Annotated[list[int] | None, typer.Option("--reject", help="Reject this feed entry id.")] = None,
    head_types: Annotated[
        list[str] | None, typer.Option("--head-type", help="Head types of the accepted paper (replace the tags).")
    ] = None,
    new_heads: Annotated[list[str] | None, typer.Option("--new-head", help="Add a new head type by name.")] = None,
    db: DbOption = None,
) -> None:
    """Accept or reject papers waiting in the feed's review queue (interactive without --accept/--reject)."""
    from .review import accept, reject

    for entry_id in [*(accept_ids or ()), *(reject_ids or ())]:
        check_int(entry_id, "--accept/--reject")
    conn = _open(db)
    if accept_ids or reject_ids:
        overlap = set(accept_ids or ()) & set(reject_ids or ())
        if overlap:
            raise InvalidSettingError(f"entry {sorted(overlap)[0]} is both accepted and rejected")
        for entry_id in reject_ids or ():
            reject(conn, entry_id)
            err.print(f"rejected #{entry_id}")
        for entry_id in accept_ids or ():
            entry_title = _title_of(conn, entry_id)
            result = accept(conn, entry_id, head_types=head_types or (), new_heads=new_heads or ())
            merged = f" ({escape(result.merge_note(entry_title))})" if result.merged_into else ""
            err.print(f"accepted #{entry_id} as catalogue paper {result.paper.id}{merged}")
        return
    pending = list_entries(conn, "pending")
    if not pending:
        err.print("nothing pending")
        return
    for e in pending:
        _show(e, conn)
        try:
            choice = typer.prompt("  [a]ccept, [r]eject, [s]kip, [q]uit", default="s").strip().lower()[:1]
        except (typer.Abort, EOFError):
            break
        if choice == "q":
            break
        if choice == "r":
            reject(conn, e.id)
        elif choice == "a":
            try:
                result = accept(conn, e.id)
            except HeadatlasError as exc:
                names = typer.prompt(f"  {exc}\n  head types (comma-separated, blank to skip)", default="")
                if not names.strip():
                    continue
                result = accept(conn, e.id, new_heads=[n.strip() for n in names.split(",") if n.strip()])
            err.print(f"  accepted as {result.paper.id}")


@papers_app.command("classify")
def papers_classify(
    path: Annotated[Path, typer.Argument(help='JSON lines: {"title": …, "abstract": …} per line.')],
) -> None:
    """Score each paper: is it about attention heads? One JSON object per input line."""
    from .relevance import default_model

    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidSettingError(f"cannot read {path}: {exc}") from None
    docs: list[tuple[str, str]] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            item = loads_json(line)
        except ValueError as exc:
            err.print(f"line {number}: skipped, not JSON ({escape(str(exc))})")
            continue
        title = item.get("title") if isinstance(item, dict) else None
        abstract = item.get("abstract", item.get("summary", "")) if isinstance(item, dict) else None
        if not isinstance(title, str) or not title.strip() or not isinstance(abstract, str):
            err.print(f"line {number}: skipped, needs a text 'title' (and optional text 'abstract')")
            continue
        if has_surrogates(title) or has_surrogates(abstract):
            err.print(f"line {number}: skipped, holds a lone surrogate (not valid Unicode text)")
            continue
        docs.append((title.strip(), abstract))
    for verdict in default_model().judge(docs):
        sys.stdout.write(json.dumps(verdict.to_dict(), ensure_ascii=False) + "\n")


# ----- digest -----


@digest_app.command("subscribe")
def digest_subscribe(
    email: Annotated[str, typer.Argument(help="Address to send the digest to.")],
    head_types: Annotated[list[str] | None, typer.Option("--head-type", help="Only these head types (any).")] = None,
    keywords: Annotated[list[str] | None, typer.Option("--keyword", help="Only papers mentioning one of these.")] = (
        None
    ),
    exclude: Annotated[list[str] | None, typer.Option("--exclude", help="Never papers mentioning this.")] = None,
    db: DbOption = None,
) -> None:
    """Subscribe (or change the filters of) an address."""
    from .digest import subscribe

    s = subscribe(_open(db), email, head_types=head_types or (), keywords=keywords or (), exclude=exclude or ())
    err.print(
        f"subscribed {s.email}: head types {', '.join(s.head_types) or 'any'};"
        f" keywords {', '.join(s.keywords) or 'any'}; excluding {', '.join(s.exclude) or 'nothing'}"
    )


@digest_app.command("unsubscribe")
def digest_unsubscribe(email: Annotated[str, typer.Argument()], db: DbOption = None) -> None:
    """Remove a subscription."""
    from .digest import unsubscribe

    if not unsubscribe(_open(db), email):
        raise InvalidSettingError(f"{email!r} is not subscribed")
    err.print(f"unsubscribed {email}")


@digest_app.command("send")
def digest_send(
    smtp: Annotated[str, typer.Option("--smtp", help="SMTP server HOST:PORT.")] = "localhost:25",
    sender: Annotated[str, typer.Option("--from", help="Sender address.")] = "headatlas@localhost",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what would be sent; send nothing.")] = False,
    db: DbOption = None,
) -> None:
    """Send every subscriber the accepted papers they have not had yet."""
    from .digest import send_digest

    report = send_digest(_open(db), smtp, sender=sender, dry_run=dry_run)
    verb = "would send" if dry_run else "sent"
    for email, n in report.sent.items():
        err.print(f"{verb} {n} paper(s) to {email}")
    for email, reason in report.failed.items():
        err.print(f"failed for {email}: {escape(reason)} (will retry next time)")
    if not report.sent and not report.failed:
        err.print("nothing to send")
    if report.failed:
        n = len(report.failed)
        total = n + len(report.sent)
        raise DeliveryError(f"digest not delivered to {n} of {total} subscriber(s); they will get it on the next send")
