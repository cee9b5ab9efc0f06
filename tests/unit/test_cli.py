"""CLI contract: one-line errors with exit code 2 for bad input, nothing written on failure."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from headatlas.cli import main
from headatlas.heads import head_types

ATLAS = Path(__file__).resolve().parents[2] / "atlas"


def run(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["scan", "no-such-model"], "valid aliases|zoo alias"),
        (["scan", "missing/file.gguf"], "GGUF file not found"),
        (["scan", "--types", "induction,bogus"], "valid head types are"),
        (["scan", "--seed", "-3"], "non-negative"),
        (["scan", "--needle-contexts", "10"], "needle_contexts"),
        (["scan", "--needle-contexts", "1k"], "integers"),
        (["scan", "--dtype", "float8"], "valid dtypes"),
        (["scan", "--seeds", "0"], "at least two distinct"),
        (["scan", "--max-memory", "12XB"], "--max-memory must be a size"),
        (["scan", "--strict"], "--strict needs --verify"),
        (["scan", "--max-memory", "0"], "--max-memory must be a size"),
        (["scan", "--seeds", "0,0"], "at least two distinct"),
        (["scan", "--seeds", "0,x"], "comma-separated integers"),
        (["scan", "--seeds", "0,1", "--seed", "2"], "either --seed or --seeds"),
        (["heads", "list", "--format", "yaml"], "valid formats"),
        (["atlas", "build", "--models", "nope"], "unknown zoo model"),
        (["atlas", "strict", "--models", "nope"], "unknown zoo model"),
        (["atlas", "strict", "--out", "{empty}"], "has no headmap.json; run `headatlas atlas build` first"),
        (["atlas", "strict", "--out", "{screened}", "--models", "gemma3-270m", "--device", "cuda:0"], "CUDA is not"),
    ],
)
def test_bad_input_is_one_line_exit_2(capsys, tmp_path, argv, message):
    out_dir = tmp_path / "out"
    (tmp_path / "empty" / "smollm2-135m").mkdir(parents=True)
    screened = tmp_path / "screened" / "gemma3-270m"  # the published screen, not yet strict
    screened.mkdir(parents=True)
    (screened / "headmap.json").write_bytes((ATLAS / "gemma3-270m" / "headmap.json").read_bytes())
    argv = [a.replace("{empty}", str(tmp_path / "empty")).replace("{screened}", str(screened.parent)) for a in argv]
    code, _, err = run(capsys, *argv, *(["--out", str(out_dir), "--no-store"] if argv[0] == "scan" else []))
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert __import__("re").search(message, lines[0]), lines[0]
    assert not out_dir.exists()
    assert [p.name for p in screened.iterdir()] == ["headmap.json"]


def test_out_pointing_at_a_file_and_unwritable_store(capsys, tmp_path):
    target = tmp_path / "taken"
    target.write_text("keep me")
    code, _, err = run(capsys, "scan", "--out", str(target))
    assert code == 2 and "is a file" in err and target.read_text() == "keep me"
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    code, _, err = run(capsys, "scan", "--out", str(tmp_path / "o"), "--db", str(blocker / "x.db"))
    assert code == 2 and "cannot open the store" in err
    assert not (tmp_path / "o").exists()


def test_heads_list_comes_from_the_registry(capsys):
    code, out, _ = run(capsys, "heads", "list", "--format", "json")
    assert code == 0
    listed = json.loads(out)
    assert [h["id"] for h in listed] == list(head_types())
    assert all(h["papers"] and h["definition"] for h in listed)


def test_scans_list_on_an_empty_store(capsys, db_path):
    code, out, _ = run(capsys, "scans", "list", "--db", str(db_path), "--format", "json")
    assert code == 0 and json.loads(out) == []


@pytest.mark.parametrize(
    ("argv", "message", "hint"),
    [
        (["scna"], "No such command 'scna'. Did you mean 'scan'", "headatlas --help"),
        (["cache"], "No such command 'cache'", "headatlas --help"),
        (["papers", "lst"], "No such command 'lst'. Did you mean 'list'?", "headatlas papers --help"),
        (["scan", "--bogus"], "--bogus", "headatlas scan --help"),
        (["papers", "list", "--limt", "3"], "--limit", "headatlas papers list --help"),
        (["papers", "search"], "Missing argument", "headatlas papers search --help"),
        (["papers", "list", "--limit", "abc"], "Invalid value for '--limit'", "headatlas papers list --help"),
    ],
)
def test_usage_errors_print_the_hint_and_exit_2(capsys, argv, message, hint):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert "Traceback" not in err
    lines = err.splitlines()
    assert lines[0].startswith("Usage: headatlas")
    assert f"Try '{hint}' for help." in lines
    assert lines[-1].startswith("error: ") and message in lines[-1], err


def test_the_usage_error_classes_are_the_ones_typer_raises():
    """Whether typer vendors click (``typer._click``) or uses the click package, main() catches its classes."""
    import typer

    from headatlas.cli import _click_classes

    click_exception, usage_error = _click_classes()
    assert issubclass(typer.BadParameter, usage_error) and issubclass(usage_error, click_exception)
    assert usage_error.__module__ == typer.BadParameter.__module__


def test_ctrl_c_exits_130_with_one_line(capsys, monkeypatch, db_path):
    import headatlas.store

    def interrupted(*_args, **_kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(headatlas.store, "list_scans", interrupted)
    code, _, err = run(capsys, "scans", "list", "--db", str(db_path))
    assert code == 130
    assert err.splitlines() == ["error: interrupted"]


def test_a_failing_command_reaches_the_exit_code(capsys, monkeypatch, db_path):
    """`digest send` with a subscriber that failed exits 1 (typer.Exit(1)), not 0."""
    from headatlas.literature.feed import digest

    def one_failed(*_args, **_kwargs):
        return digest.SendReport(sent={"a@example.org": 2}, failed={"b@example.org": "connection refused"})

    monkeypatch.setattr(digest, "send_digest", one_failed)
    code, _, err = run(capsys, "digest", "send", "--db", str(db_path))
    assert code == 1
    assert "failed for b@example.org" in err


def test_help_exits_0(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == 0 and "papers" in out


_REPORT_HEAVY = """
import sys
from headatlas.cli import main
code = main(sys.argv[1:])
print("HEAVY", ",".join(m for m in ("torch", "transformers") if m in sys.modules))
sys.exit(code)
"""

FIXTURES = __import__("pathlib").Path(__file__).parent / "feed" / "fixtures"


def _heavy_modules(*argv: str, script: str = _REPORT_HEAVY) -> list[str]:
    """Run ``script`` (by default ``headatlas ARGV``) in a fresh interpreter; the heavy modules it imported."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    import headatlas

    src = str(Path(headatlas.__file__).resolve().parents[1])  # this tree's code, whatever is installed
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", script, *argv], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    line = done.stdout.strip().splitlines()[-1]
    assert line.startswith("HEAVY"), done.stdout
    return [m for m in line.removeprefix("HEAVY").strip().split(",") if m]


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["papers", "search", "retrieval head", "--format", "json", "--db"],
        ["papers", "list", "--limit", "3", "--db"],
        ["papers", "heads", "--db"],
        ["feed", "update", "--file", str(FIXTURES / "daily_2024-10-14.json"), "--db"],
        ["feed", "list", "--db"],
        ["digest", "send", "--dry-run", "--db"],
    ],
    ids=lambda argv: " ".join(argv[:2]),
)
def test_the_paper_half_imports_no_torch(tmp_path, argv):
    if argv[-1] == "--db":
        argv = [*argv, str(tmp_path / "store.sqlite3")]
    assert _heavy_modules(*argv) == []


def test_heads_list_imports_no_torch():
    """Listing head types reads their registrations: every built-in type module defers torch to its scoring code."""
    assert _heavy_modules("heads", "list", "--format", "json") == []


def test_serve_answers_without_torch(tmp_path):
    """What `headatlas serve` runs (the CLI module, the app, its index page) imports neither torch nor transformers."""
    script = f"""
import sys
import headatlas.cli
from fastapi.testclient import TestClient
from headatlas.web.app import create_app
assert TestClient(create_app({str(tmp_path / "s.sqlite3")!r})).get("/").status_code == 200
print("HEAVY", ",".join(m for m in ("torch", "transformers") if m in sys.modules))
"""
    assert _heavy_modules(script=script) == []
