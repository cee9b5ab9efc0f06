"""All SQL lives in the store modules of the components (scans, papers, feed) and the store itself."""

from __future__ import annotations

import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[3] / "src" / "headatlas"
STORE_MODULES = {"store/db.py", "store/scans.py", "literature/store.py", "literature/feed/store.py"}
SQL = re.compile(r"\.execute(many|script)?\(|sqlite3\.connect\(|\b(SELECT|INSERT INTO|DELETE FROM|CREATE TABLE)\b")


def test_no_sql_outside_the_store_modules() -> None:
    found = sorted(
        str(path.relative_to(SRC))
        for path in SRC.rglob("*.py")
        if str(path.relative_to(SRC)) not in STORE_MODULES and SQL.search(path.read_text("utf-8"))
    )
    assert found == []


def test_the_store_modules_exist() -> None:  # the allow-list names real files, so it cannot go stale silently
    assert all((SRC / module).is_file() for module in STORE_MODULES)
