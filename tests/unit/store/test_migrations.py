"""Components register their migrations with the store; the store names none of them."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from headatlas.errors import StoreError
from headatlas.store import db as store_db

SRC = Path(__file__).resolve().parents[3] / "src"


def _run(code: str, db: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    done = subprocess.run([sys.executable, "-c", code, str(db)], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr


def _tables(db: Path) -> set[str]:
    conn = sqlite3.connect(db)
    try:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        conn.close()


def test_a_store_gets_the_tables_of_the_components_its_process_imported(tmp_path) -> None:
    db = tmp_path / "store.sqlite3"
    _run("import sys; from headatlas.store import connect; connect(sys.argv[1]).close()", db)
    first = _tables(db)
    assert {"scans", "head_scores", "migrations"} <= first
    assert not first & {"papers", "feed_entries", "feed_evidence"}  # the store imports no other component
    code = "import sys; import headatlas.literature.store, headatlas.literature.feed.store; "
    code += "from headatlas.store import connect; "
    _run(code + "connect(sys.argv[1]).close()", db)
    assert {"papers", "papers_fts", "head_types", "feed_entries", "feed_evidence"} <= _tables(db)
    conn = sqlite3.connect(db)
    components = {r[0] for r in conn.execute("SELECT component FROM migrations")}
    assert components == {"scans", "papers", "feed", "feed_tags"}


def test_registered_lists_each_components_migrations_in_order() -> None:
    import headatlas.literature.feed.store  # registers feed and feed_tags
    import headatlas.literature.store  # noqa: F401  (registers papers)

    found = store_db.registered()
    assert found["scans"][0] == "0001_create"
    assert found["papers"][:3] == ["0001_create", "0002_fts_facets", "0003_identity"]
    assert found["feed"][:2] == ["0001_entries", "0002_identity"]


def test_a_migration_name_registered_twice_is_refused() -> None:
    with pytest.raises(StoreError, match="defined twice"):
        store_db.migration("scans", "0001_create")(lambda conn: None)
