"""The SQLite store shared by scans, the paper catalogue and the feed.

Components register with the store, not the other way round: a component's module (``store.scans``,
``literature.store``, ``literature.feed.store`` …) declares its tables with :func:`migration`, so importing it
registers them, and :func:`connect` applies whatever registered migrations a store lacks. This module names no
component. Applied migrations are recorded in ``migrations(component, name)``, so components evolve
independently and each migration runs once; a migration is history and never changes once released (a new
column is a new migration). All SQL lives in the components' store modules. Connections use WAL and foreign
keys; every write goes through :func:`transaction`.

Plain :mod:`sqlite3`, not ``sqlite-utils``: the store's hard parts are its transaction discipline (``BEGIN
IMMEDIATE`` with a bounded wait, migrations inside the caller's transaction, a paper upsert that rebuilds its
index rows and a contentless FTS5 index in the same transaction), which ``sqlite-utils``' own upsert and FTS
helpers (content tables kept by triggers) do not give; it would add a dependency and its CLI stack to every
``papers`` command for a few statements it would save.

Concurrency: WAL lets readers (``serve``) read while one process writes. Writers take the write lock with
``BEGIN IMMEDIATE`` and keep it only for short writes (slow work such as scoring a file happens before); a writer
that finds the lock taken waits ``BUSY_TIMEOUT`` seconds at a time, says so once, and gives up with a
:class:`StoreError` only after ``WRITE_WAIT`` seconds.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import platformdirs

from ..errors import InvalidSettingError, StoreError

Migration = Callable[[sqlite3.Connection], None]

BUSY_TIMEOUT = 5.0
"""Seconds SQLite's busy handler waits for a lock before a statement fails (one wait of :func:`transaction`)."""
WRITE_WAIT = 300.0
"""Seconds :func:`transaction` keeps waiting for the write lock, in ``BUSY_TIMEOUT`` steps, before giving up."""

log = logging.getLogger(__name__)

SQLITE_MAX_INT = 2**63 - 1
"""The largest integer SQLite stores; a bigger one raises ``OverflowError`` at the driver."""


def check_int(value: int | None, option: str, *, minimum: int = 1, maximum: int = SQLITE_MAX_INT) -> int | None:
    """``value`` if in ``minimum..maximum`` (None passes), else an :class:`InvalidSettingError` naming ``option``."""
    if value is not None and not minimum <= value <= maximum:
        shown = str(value) if len(str(value)) <= 30 else f"{str(value)[:27]}..."
        raise InvalidSettingError(f"{option} must be an integer {minimum}..{maximum}, got {shown}")
    return value


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


def execute_script(conn: sqlite3.Connection, script: str) -> None:
    """Run several SQL statements inside the caller's transaction (``executescript`` would commit it first,
    letting a concurrent process apply the same migration in between)."""
    statement = ""
    for line in script.splitlines(keepends=True):
        statement += line
        if sqlite3.complete_statement(statement):
            conn.execute(statement)
            statement = ""
    if statement.strip():
        conn.execute(statement)


def default_db_path() -> Path:
    """``HEADATLAS_DB`` if set, else ``headatlas.sqlite3`` in the user's data directory."""
    env = os.environ.get("HEADATLAS_DB")
    return Path(env) if env else Path(platformdirs.user_data_dir("headatlas")) / "headatlas.sqlite3"


def registered() -> dict[str, list[str]]:
    """Migration names by component, as registered so far in this process (importing a component registers it)."""
    return {component: [name for name, _ in steps] for component, steps in sorted(_MIGRATIONS.items())}


def connect(path: str | Path | None = None, *, read_only: bool = False) -> sqlite3.Connection:
    """Open the store at ``path``, creating it if missing and applying the migrations it lacks of every component
    registered in this process (import the component modules you use first; their imports register them).
    ``read_only`` opens an existing store as it is."""
    db_path = Path(path) if path is not None else default_db_path()
    try:
        if read_only:
            if not db_path.is_file():
                raise StoreError(f"no store at {db_path}")
            conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=BUSY_TIMEOUT)
        else:
            db_path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(db_path, timeout=BUSY_TIMEOUT)
    except (OSError, sqlite3.Error) as exc:
        raise StoreError(f"cannot open the store at {db_path}: {exc}") from exc
    conn.row_factory = sqlite3.Row
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT * 1000)}")  # before anything that may wait
        conn.execute("PRAGMA foreign_keys = ON")
        if not read_only:
            _retry_locked(lambda: conn.execute("PRAGMA journal_mode = WAL"), db_path)
            migrate(conn)
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise StoreError(f"{db_path} is not a usable headatlas store: {exc}") from exc
    return conn


def _is_locked(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def _retry_locked(step: Callable[[], object], where: object) -> None:
    """Run ``step`` (which takes a lock), retrying while another process holds it, up to ``WRITE_WAIT`` seconds."""
    deadline = time.monotonic() + WRITE_WAIT
    warned = False
    while True:
        try:
            step()
            return
        except sqlite3.OperationalError as exc:
            if not _is_locked(exc):
                raise
            if time.monotonic() >= deadline:
                raise StoreError(
                    f"the store at {where} stayed locked by another writer for {WRITE_WAIT:.0f} s; try again"
                ) from None
            if not warned:
                log.warning("the store at %s is busy (another headatlas process is writing); waiting …", where)
                warned = True


def _db_name(conn: sqlite3.Connection) -> str:
    row = conn.execute("PRAGMA database_list").fetchone()
    return str(row[2]) if row is not None and row[2] else "(memory)"


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """All-or-nothing: commits on success, rolls back everything on any exception.

    Takes the write lock up front (``BEGIN IMMEDIATE``), waiting for another writer as long as ``WRITE_WAIT``;
    keep the body short: read, score and validate before entering it.
    """
    _retry_locked(lambda: conn.execute("BEGIN IMMEDIATE"), _db_name(conn))
    try:
        yield conn
    except BaseException:
        conn.rollback()
        raise
    else:
        conn.commit()


def migrate(conn: sqlite3.Connection) -> list[str]:
    """Apply pending migrations of every registered component, each in its own transaction. Returns what ran.

    Whether a migration ran is re-read under the write lock, so processes opening a new store at once each
    apply every migration exactly once between them.
    """
    with transaction(conn):
        conn.execute(
            "CREATE TABLE IF NOT EXISTS migrations (component TEXT NOT NULL, name TEXT NOT NULL,"
            " applied_at TEXT NOT NULL DEFAULT (datetime('now')), PRIMARY KEY (component, name))"
        )
    done = {(r[0], r[1]) for r in conn.execute("SELECT component, name FROM migrations")}
    pending = [(c, n, fn) for c in sorted(_MIGRATIONS) for n, fn in _MIGRATIONS[c] if (c, n) not in done]
    ran = []
    for component, name, fn in pending:
        with transaction(conn):
            applied = conn.execute(
                "SELECT 1 FROM migrations WHERE component = ? AND name = ?", (component, name)
            ).fetchone()
            if applied is not None:  # another process got there first
                continue
            fn(conn)
            conn.execute("INSERT INTO migrations (component, name) VALUES (?, ?)", (component, name))
        ran.append(f"{component}/{name}")
    return ran
