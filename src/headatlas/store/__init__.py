"""SQLite store for scans and papers (see :mod:`headatlas.store.db`)."""

from .db import connect, default_db_path, migrate, migration, transaction
from .scans import heads_of_type, list_scans, load_scan, save_scan

__all__ = [
    "connect",
    "default_db_path",
    "heads_of_type",
    "list_scans",
    "load_scan",
    "migrate",
    "migration",
    "save_scan",
    "transaction",
]
