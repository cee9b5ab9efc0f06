"""Fixtures of the paper-catalogue tests: a seeded store and a CLI runner that captures output."""

from __future__ import annotations

import pytest

from headatlas.cli import main
from headatlas.literature.store import dump_store, ensure_seeded
from headatlas.store import connect


@pytest.fixture()
def seeded_db(tmp_path):
    path = tmp_path / "papers.sqlite3"
    conn = connect(path)
    ensure_seeded(conn)
    conn.close()
    return path


@pytest.fixture()
def cli(capsys):
    """Run ``headatlas ARGS``; returns (exit code, stdout, stderr)."""

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


@pytest.fixture()
def dump():
    """The store's catalogue tables as text, to prove a failed command wrote nothing."""

    def read(path) -> str:
        conn = connect(path)
        try:
            return dump_store(conn)
        finally:
            conn.close()

    return read
