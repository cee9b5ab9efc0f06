"""Write a scan's files and record it in the store: the one place scan results leave memory.

:func:`publish` writes ``headmap.csv``, ``headmap.json``, ``patterns.json`` and ``report.html`` into the
output directory, each through :func:`~headatlas.headmap.write_atomic` (a reader such as the running web
app never sees half a file), and saves the scan in the store when one is given.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .capture import patterns_text
from .headmap import PATTERNS_FILE, HeadMap, prepare_out_dir, write_atomic
from .pipeline import ScanResult


@dataclass(frozen=True)
class Published:
    """Where a scan went: its files and, when stored, its scan id."""

    csv: Path
    json: Path
    patterns: Path | None
    report: Path
    scan_id: int | None


def write_patterns(patterns: dict[str, Any], out_dir: str | Path) -> Path:
    """Write ``OUT/patterns.json`` alone (compact, sorted keys: same patterns, same bytes)."""
    path = prepare_out_dir(out_dir) / PATTERNS_FILE
    write_atomic(path, patterns_text(patterns))
    return path


def write_files(
    headmap: HeadMap, out: Path, patterns: dict[str, Any] | None = None, store: sqlite3.Connection | None = None
) -> tuple[Path, Path, Path]:
    """Write ``headmap.csv``, ``headmap.json`` and ``report.html`` of ``headmap`` into ``out``; the report shows
    ``patterns`` (default: ``out/patterns.json``) and papers from the store's catalogue (the shipped one
    without a store). Used by :func:`publish` and wherever a published head map changes in place."""
    from .web.report import catalogue_papers, reported_agreement, write_report

    csv_path, json_path = headmap.write(out)
    papers = catalogue_papers(store, headmap)
    report_path = write_report(headmap, out, patterns, papers, reported_agreement(store, headmap))
    return csv_path, json_path, report_path


def publish(result: ScanResult, out_dir: str | Path, store: sqlite3.Connection | None = None) -> Published:
    """Write every file of ``result`` into ``out_dir`` and, with a ``store`` connection, record the scan.

    The report shows the patterns as stored (read back from their JSON), with papers from the store's
    catalogue (the shipped one without a store). Without captured patterns no ``patterns.json`` is written,
    and an earlier one in ``out_dir`` is removed so the report and files stay of one scan.
    """
    out = prepare_out_dir(out_dir)
    headmap: HeadMap = result.headmap
    patterns_path: Path | None = out / PATTERNS_FILE
    stored_patterns = None
    if result.patterns is not None:
        text = patterns_text(result.patterns)
        write_atomic(out / PATTERNS_FILE, text)
        stored_patterns = json.loads(text)
    else:
        (out / PATTERNS_FILE).unlink(missing_ok=True)
        patterns_path = None
    csv_path, json_path, report_path = write_files(headmap, out, stored_patterns, store)
    scan_id = None
    if store is not None:
        from .store import save_scan

        scan_id = save_scan(store, headmap, out_dir=str(out.resolve()))
    return Published(csv_path, json_path, patterns_path, report_path, scan_id)


__all__ = ["Published", "publish", "write_files", "write_patterns"]
