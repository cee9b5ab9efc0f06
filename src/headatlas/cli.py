"""``headatlas`` command line: noun-verb commands, one-line errors with exit code 2."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from .causal.cli import register as register_causal
from .errors import HeadatlasError, InvalidSettingError
from .kv.cli import kv_app
from .literature.cli import papers_app
from .literature.feed.cli import digest_app, feed_app  # also adds `papers review` / `papers classify`
from .literature.feed.proposals import accept_proposed_command
from .models.zoo import DEFAULT_MODEL, ZOO

if TYPE_CHECKING:
    from .headmap import HeadMap

app = typer.Typer(
    help="What does each attention head of this model do?",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
heads_app = typer.Typer(help="The head types headatlas detects.", no_args_is_help=True)
scans_app = typer.Typer(help="Scans recorded in the store.", no_args_is_help=True)
app.add_typer(heads_app, name="heads")
heads_app.command("accept-proposed")(accept_proposed_command)  # proposed types of the literature vocabulary
app.add_typer(scans_app, name="scans")
atlas_app = typer.Typer(help="The published atlas of verified heads (atlas/ in the repository).", no_args_is_help=True)
app.add_typer(atlas_app, name="atlas")
app.add_typer(papers_app, name="papers")
app.add_typer(feed_app, name="feed")
app.add_typer(digest_app, name="digest")
app.add_typer(kv_app, name="kv")
register_causal(app)

out = Console()
err = Console(stderr=True)

DbOption = Annotated[Path | None, typer.Option("--db", help="SQLite store (default: user data dir).")]
FormatOption = Annotated[str, typer.Option("--format", help="table, json or csv.")]


def _parse_types(value: str | None) -> list[str] | None:
    if value is None:
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


@app.command()
def scan(
    model: Annotated[str, typer.Argument(help=f"Zoo alias ({', '.join(ZOO)}), hub id, directory or .gguf.")] = (
        DEFAULT_MODEL
    ),
    out_dir: Annotated[Path, typer.Option("--out", help="Output directory.")] = Path("headatlas-out"),
    types: Annotated[str | None, typer.Option("--types", help="Comma-separated head-type ids (default: all).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of every probe set.")] = 0,
    seeds: Annotated[
        str | None,
        typer.Option("--seeds", help="Comma-separated seeds (0,1,2): scan with the first, report stability over all."),
    ] = None,
    device: Annotated[str, typer.Option(help="cpu, cuda, cuda:1 …")] = "cpu",
    dtype: Annotated[str, typer.Option(help="float32, bfloat16 or float16.")] = "float32",
    max_memory: Annotated[
        str | None,
        typer.Option(
            "--max-memory",
            help="Working memory a batched step may hold beyond the model, e.g. 1GB (default: 1/4 of free memory).",
        ),
    ] = None,
    device_map: Annotated[str | None, typer.Option("--device-map", help="'auto' spreads the model (accelerate).")] = (
        None
    ),
    needle_contexts: Annotated[
        str | None, typer.Option("--needle-contexts", help="Comma-separated haystack lengths in tokens.")
    ] = None,
    db: DbOption = None,
    no_store: Annotated[bool, typer.Option("--no-store", help="Do not record the scan in the store.")] = False,
    verify: Annotated[
        bool, typer.Option("--verify", help="Causally verify each head type (ablation vs random sets, attribution).")
    ] = False,
    strict: Annotated[
        bool,
        typer.Option("--strict", help="With --verify: up to 400 random sets, Holm correction, bootstrap CI (GPU)."),
    ] = False,
) -> None:
    """Scan MODEL and write OUT/headmap.csv, headmap.json, patterns.json and report.html."""
    from .causal.cli import print_verification
    from .causal.verify import VerifySettings
    from .headmap import check_out_dir
    from .pipeline import run_scan, scan_settings
    from .probes import ProbeSettings
    from .publish import publish
    from .store import connect

    probe_kwargs: dict[str, Any] = {}
    if needle_contexts is not None:
        try:
            probe_kwargs["needle_contexts"] = tuple(int(c) for c in needle_contexts.split(","))
            probe_kwargs["fit_to_window"] = False  # contexts the user chose must fit the model
        except ValueError:
            raise InvalidSettingError(f"--needle-contexts must be integers, got {needle_contexts!r}") from None
    if strict and not verify:
        raise InvalidSettingError("--strict needs --verify")
    stability_seeds = _parse_seeds(seeds, seed)
    budget = None if max_memory is None else parse_size(max_memory, "--max-memory")
    if stability_seeds:
        seed = stability_seeds[0]
    settings = scan_settings(seed, _parse_types(types) or None, ProbeSettings(**probe_kwargs))  # before the slow load
    check_out_dir(out_dir)  # a bad --out or store fails before the slow part
    conn = None if no_store else connect(db)
    from .models.loader import load_model

    with err.status(f"loading {model} …"):
        loaded = load_model(model, device=device, dtype=dtype, device_map=device_map)
    f = loaded.facts
    err.print(f"[bold]{f.name}[/]: {f.architecture}, {f.n_layers} layers x {f.n_heads} heads ({f.n_kv_heads} KV)")
    with Progress(
        TextColumn("{task.description:<16}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=False,
    ) as bars:
        tasks: dict[str, TaskID] = {}

        def progress(probe: str, done: int, total: int) -> None:
            if probe not in tasks:
                tasks[probe] = bars.add_task(probe, total=total)
            bars.update(tasks[probe], completed=done)

        result = run_scan(
            loaded,
            settings,
            verify=verify,
            verify_settings=VerifySettings(seed=settings.seed, strict=True) if strict else None,
            progress=progress,
            stability_seeds=stability_seeds,
            max_memory=budget,
        )
    published = publish(result, out_dir, conn)
    _print_summary(result.headmap)
    if verify:
        print_verification(out, result.headmap)
    if published.scan_id is not None:
        err.print(f"stored as scan {published.scan_id}")
    written = [published.csv, published.json, *([published.patterns] if published.patterns else []), published.report]
    err.print(f"wrote {', '.join(str(p) for p in written[:-1])} and {written[-1]}")


_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30}


def parse_size(value: str, option: str) -> int:
    """``1GB``, ``512MiB``, ``2e9`` … as bytes; anything else is a one-line error naming the option."""
    import re

    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e[0-9]+)?)\s*([a-z]*)\s*", value, re.IGNORECASE)
    unit = match.group(2).upper() if match else ""
    if match is None or unit not in _UNITS or float(match.group(1)) * _UNITS[unit] < 1:
        raise InvalidSettingError(f"{option} must be a size such as 800MB or 2GB, got {value!r}")
    return int(float(match.group(1)) * _UNITS[unit])


def _parse_seeds(value: str | None, seed: int) -> tuple[int, ...]:
    """``--seeds 0,1,2`` as a tuple of distinct non-negative integers (empty without the option)."""
    if value is None:
        return ()
    if seed != 0:
        raise InvalidSettingError("give either --seed or --seeds, not both")
    try:
        parsed = tuple(int(v) for v in _parse_types(value) or [])
    except ValueError:
        raise InvalidSettingError(f"--seeds must be comma-separated integers, got {value!r}") from None
    if len(parsed) < 2 or len(set(parsed)) != len(parsed) or min(parsed) < 0:
        raise InvalidSettingError(f"--seeds needs at least two distinct non-negative integers, got {value!r}")
    return parsed


def _print_summary(headmap: HeadMap, k: int = 3) -> None:
    table = Table(title=f"Strongest heads per type — {headmap.facts.name}")
    table.add_column("head type")
    table.add_column("members", justify="right")
    table.add_column(f"top {k} (score)")
    for type_id in headmap.head_types:
        top = ", ".join(f"{r['name']} ({r['score']:.2f})" for r in headmap.top(type_id, k))
        table.add_row(type_id, str(len(headmap.members(type_id))), top)
    out.print(table)


@heads_app.command("list")
def heads_list(fmt: FormatOption = "table") -> None:
    """The head types, their definitions and papers."""
    from .heads import head_types

    records: list[dict[str, Any]] = [
        {
            "id": t.id,
            "name": t.name,
            "stage": t.stage,
            "probe": t.probe,
            "threshold": t.threshold,
            "definition": t.definition,
            "papers": list(t.papers),
        }
        for t in head_types().values()
    ]
    if fmt == "json":
        out.print_json(json.dumps(records))
    elif fmt == "csv":
        import csv

        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(["id", "name", "stage", "probe", "threshold", "definition", "papers"])
        for r in records:
            writer.writerow(
                [
                    r["id"],
                    r["name"],
                    r["stage"],
                    r["probe"],
                    r["threshold"],
                    r["definition"],
                    "; ".join(r["papers"]),
                ]
            )
    elif fmt == "table":
        table = Table(show_lines=True)
        for column in ("id", "stage", "threshold", "definition", "papers"):
            table.add_column(column)
        for r in records:
            table.add_row(
                r["id"],
                r["stage"],
                f"{r['threshold']:g}",
                escape(r["definition"]),
                escape("\n".join(r["papers"])),
            )
        out.print(table)
    else:
        raise InvalidSettingError(f"unknown format {fmt!r}; valid formats are table, json, csv")


@scans_app.command("list")
def scans_list(db: DbOption = None, fmt: FormatOption = "table") -> None:
    """Scans recorded in the store, newest first."""
    from .store import connect, list_scans

    rows = list_scans(connect(db))
    if fmt == "json":
        out.print_json(json.dumps(rows))
        return
    table = Table()
    for column in ("id", "model", "architecture", "n_layers", "n_heads", "seed", "created_at", "out_dir"):
        table.add_column(column)
    for r in rows:
        table.add_row(
            *(
                str(r[c])
                for c in (
                    "id",
                    "model",
                    "architecture",
                    "n_layers",
                    "n_heads",
                    "seed",
                    "created_at",
                    "out_dir",
                )
            )
        )
    out.print(table)


@app.command()
def report(
    out_dir: Annotated[Path, typer.Argument(help="A scan's output directory (holding headmap.json).")],
    db: DbOption = None,
) -> None:
    """Rebuild OUT/report.html from OUT/headmap.json (and OUT/patterns.json when present)."""
    from .web.report import rebuild_report

    err.print(f"wrote {rebuild_report(out_dir, db)}")


def _compare_headmap(scan: str, db: Path | None) -> HeadMap:
    """A scan id in the store, a scan's output directory, or a headmap.json file."""
    from .headmap import HeadMap

    if scan.isdigit():
        from .store import connect, load_scan
        from .store.db import default_db_path

        path = db if db is not None else default_db_path()
        conn = connect(path, read_only=True)
        try:
            return load_scan(conn, int(scan))
        finally:
            conn.close()
    source = Path(scan)
    if source.is_dir():
        source = source / "headmap.json"
    if not source.is_file():
        raise InvalidSettingError(f"{scan!r} is neither a stored scan id nor a scan directory / headmap.json")
    try:
        return HeadMap.read(source)
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidSettingError(f"{source} is not a headatlas head map: {exc}") from None


def _compare_papers(db: Path | None, papers_file: Path | None) -> list[Any]:
    """``--papers FILE`` (JSON/YAML as `papers export` writes), else the store's catalogue, else the shipped one."""
    from .literature.catalogue import load_catalogue, load_document

    if papers_file is not None:
        try:
            text = papers_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidSettingError(f"cannot read {papers_file}: {exc}") from None
        return list(load_document(text)[0])
    from .store.db import default_db_path

    path = db if db is not None else default_db_path()
    if path.is_file():
        import sqlite3

        from .literature import store as paper_store
        from .store import connect

        conn = connect(path, read_only=True)
        try:
            stored = paper_store.all_papers(conn)
        except sqlite3.Error:
            stored = []  # a store without the catalogue's tables
        finally:
            conn.close()
        if stored:
            return stored
    return list(load_catalogue().papers)


@app.command()
def compare(
    scan: Annotated[str, typer.Argument(help="A stored scan id, a scan's output directory, or a headmap.json.")],
    db: DbOption = None,
    papers: Annotated[
        Path | None, typer.Option("--papers", help="Catalogue file (JSON/YAML) instead of the store's.")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="table or json.")] = "table",
) -> None:
    """Papers ↔ scan: the heads papers reported in this checkpoint, their rank and membership here, per type."""
    from .literature.agreement import agreement, render_text

    if fmt not in ("table", "json"):
        raise InvalidSettingError(f"--format must be table or json, got {fmt!r}")
    result = agreement(_compare_headmap(scan, db), _compare_papers(db, papers))
    if fmt == "json":
        typer.echo(json.dumps(result.to_dict(), indent=2, sort_keys=True))
    else:
        typer.echo(render_text(result))


@app.command()
def serve(
    db: DbOption = None,
    host: Annotated[str, typer.Option(help="Interface to bind (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    curate: Annotated[bool, typer.Option("--curate", help="Allow changes to the store (e.g. delete scans).")] = False,
) -> None:
    """Browse scans, head types and papers in a local web app (read-only unless --curate)."""
    from .web.app import serve as run_server

    if not 0 < port < 65536:
        raise InvalidSettingError(f"--port must be 1..65535, got {port}")
    if host not in ("127.0.0.1", "localhost", "::1"):
        err.print(f"[yellow]warning:[/] serving on {escape(host)}: anyone who can reach it can read the store")
    err.print(f"headatlas at http://{escape(host)}:{port}/ ({'curation on' if curate else 'read-only'})")
    run_server(db, host=host, port=port, curate=curate)


def _atlas_models(models: str, out_dir: Path) -> list[str]:
    """The zoo aliases of ``--models``, after checking them and that ``--out`` can be written."""
    from .headmap import check_out_dir

    chosen = [m.strip() for m in models.split(",") if m.strip()]
    unknown = [m for m in chosen if m not in ZOO]
    if unknown or not chosen:
        raise InvalidSettingError(f"unknown zoo model(s) {', '.join(unknown) or '(none)'}; valid are {', '.join(ZOO)}")
    check_out_dir(out_dir)
    return chosen


@atlas_app.command("build")
def atlas_build(
    out_dir: Annotated[Path, typer.Option("--out", help="Atlas directory.")] = Path("atlas"),
    models: Annotated[str, typer.Option("--models", help="Comma-separated zoo aliases.")] = "smollm2-135m,gemma3-270m",
) -> None:
    """Scan the zoo models with every head type and --verify; write atlas/<model>/ and atlas/README.md."""
    from .atlas import build_atlas

    readme = build_atlas(out_dir, _atlas_models(models, out_dir), say=err.print)
    err.print(f"wrote {readme}")


@atlas_app.command("strict")
def atlas_strict(
    out_dir: Annotated[Path, typer.Option("--out", help="Atlas directory.")] = Path("atlas"),
    models: Annotated[str, typer.Option("--models", help="Comma-separated zoo aliases.")] = "smollm2-135m,gemma3-270m",
    device: Annotated[str, typer.Option(help="cpu, cuda, cuda:1 … (float32 either way)")] = "cpu",
) -> None:
    """Strict set tests (up to 400 random sets, Holm, bootstrap CI) of the published members; writes strict.json.

    Models that already have a current strict.json are skipped; an interrupted run resumes where it stopped."""
    from .atlas import strict_atlas

    readme = strict_atlas(out_dir, _atlas_models(models, out_dir), say=err.print, device=device)
    err.print(f"wrote {readme}")


def _click_classes() -> tuple[type[Exception], type[Exception]]:
    """``(ClickException, UsageError)`` as the installed typer raises them.

    typer ≥ 0.2x vendors click as ``typer._click``; older releases use the ``click`` package. Both re-export
    ``BadParameter`` as ``typer.BadParameter``, so its base classes are the ones the parser really raises.
    """
    bases = {c.__name__: c for c in typer.BadParameter.__mro__}
    return bases["ClickException"], bases["UsageError"]


def _show_usage_error(exc: Exception) -> None:
    """Usage line, help hint and one ``error:`` line (click's message keeps its "Did you mean …?")."""
    ctx = getattr(exc, "ctx", None)
    message = exc.format_message()  # type: ignore[attr-defined]
    if type(exc).__name__ == "NoArgsIsHelpError":  # a group called bare: its help is the message
        print(message, file=sys.stderr)
        return
    if ctx is not None:
        print(ctx.get_usage(), file=sys.stderr)
        print(f"Try '{ctx.command_path} --help' for help.", file=sys.stderr)
    print(f"error: {message}", file=sys.stderr)


INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for a Ctrl-C


def _interrupted() -> int:
    print("error: interrupted", file=sys.stderr)
    return INTERRUPTED


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code.

    2 with a usage hint for a command line the parser refuses, one line and the error's ``exit_code`` for a
    HeadatlasError (2: bad input; 1: a partial failure such as an undelivered digest),
    the code a command returns or exits with (``typer.Exit(1)``), 130 with one line for Ctrl-C.
    """
    click_exception, usage_error = _click_classes()
    try:
        rv = app(args=list(argv) if argv is not None else None, prog_name="headatlas", standalone_mode=False)
    except HeadatlasError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except typer.Exit as exc:
        return int(exc.exit_code or 0)
    except KeyboardInterrupt:
        return _interrupted()
    except typer.Abort as exc:  # click without typer's own handling turns Ctrl-C into Abort
        if isinstance(exc.__context__, KeyboardInterrupt):
            return _interrupted()
        print("error: aborted", file=sys.stderr)
        return 1
    except usage_error as exc:
        _show_usage_error(exc)
        return int(getattr(exc, "exit_code", 2) or 2)
    except click_exception as exc:
        print(f"error: {exc.format_message()}", file=sys.stderr)  # type: ignore[attr-defined]
        return int(getattr(exc, "exit_code", 1) or 1)
    # Non-standalone typer returns the code of a ``typer.Exit`` raised in a command (and what a command returns).
    if isinstance(rv, int) and not isinstance(rv, bool):
        return _interrupted() if rv == INTERRUPTED else rv
    return 0


def entry() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    entry()
