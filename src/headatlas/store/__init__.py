"""SQLite store for scans and papers (see :mod:`headatlas.store.db`)."""

from .db import connect, default_db_path, migrate, migration, transaction
from .scans import delete_scan, heads_of_type, list_scans, load_scan, save_scan, scan_info

__all__ = [
    "connect",
    "default_db_path",
    "delete_scan",
    "heads_of_type",
    "list_scans",
    "load_scan",
    "migrate",
    "migration",
    "save_scan",
    "scan_info",
    "transaction",
]
