"""The SQLite store shared by scans and the paper catalogue.

Each component (``scans``, ``papers`` …) owns an ordered list of migration functions; applied ones are
recorded in ``migrations(component, name)``, so components evolve independently and a migration runs
once. Connections use WAL and foreign keys; every write goes through :func:`transaction`.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import platformdirs

from ..errors import StoreError

Migration = Callable[[sqlite3.Connection], None]

_MIGRATIONS: dict[str, list[tuple[str, Migration]]] = {}


def migration(component: str, name: str) -> Callable[[Migration], Migration]:
    """Decorator: register ``fn`` as the next migration of ``component`` (order of definition)."""

    def register(fn: Migration) -> Migration:
        steps = _MIGRATIONS.setdefault(component, [])
        if any(existing == name for existing, _ in steps):
            raise StoreError(f"migration {component}/{name} defined twice")
        steps.append((name, fn))
        return fn

    return register


def default_db_path() -> Path:
    """``HEADATLAS_DB`` if set, else ``headatlas.sqlite3`` in the user's data directory."""
    env = os.environ.get("HEADATLAS_DB")
    return Path(env) if env else Path(platformdirs.user_data_dir("headatlas")) / "headatlas.sqlite3"


def _load_components() -> None:
    # importing a component module registers its migrations
    from . import scans  # noqa: F401

    for optional in (
        "headatlas.literature.store",
        "headatlas.literature.feed.store",
        "headatlas.literature.feed.proposals",
    ):
        with contextlib.suppress(ModuleNotFoundError):
            importlib.import_module(optional)


def connect(path: str | Path | None = None, *, read_only: bool = False) -> sqlite3.Connection:
    """Open (creating and migrating if needed) the store at ``path``."""
    _load_components()
    db_path = Path(path) if path is not None else default_db_path()
    try:
        if read_only:
            if not db_path.is_file():
                raise StoreError(f"no store at {db_path}")
            conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
        else:
            db_path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(db_path)
    except (OSError, sqlite3.Error) as exc:
        raise StoreError(f"cannot open the store at {db_path}: {exc}") from exc
    conn.row_factory = sqlite3.Row
    try:
        conn.execute("PRAGMA foreign_keys = ON")
        if not read_only:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA busy_timeout = 5000")
            migrate(conn)
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise StoreError(f"{db_path} is not a usable headatlas store: {exc}") from exc
    return conn


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """All-or-nothing: commits on success, rolls back everything on any exception."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.rollback()
        raise
    else:
        conn.commit()


def migrate(conn: sqlite3.Connection) -> list[str]:
    """Apply pending migrations of every component, each in its own transaction. Returns what ran."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS migrations (component TEXT NOT NULL, name TEXT NOT NULL,"
        " applied_at TEXT NOT NULL DEFAULT (datetime('now')), PRIMARY KEY (component, name))"
    )
    conn.commit()
    done = {(r[0], r[1]) for r in conn.execute("SELECT component, name FROM migrations")}
    ran = []
    for component in sorted(_MIGRATIONS):
        for name, fn in _MIGRATIONS[component]:
            if (component, name) in done:
                continue
            with transaction(conn):
                fn(conn)
                conn.execute("INSERT INTO migrations (component, name) VALUES (?, ?)", (component, name))
            ran.append(f"{component}/{name}")
    return ran
