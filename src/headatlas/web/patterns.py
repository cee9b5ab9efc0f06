"""A scan's stored attention patterns (``OUT/patterns.json``), read for the report and the web app.

The patterns are captured by the scan itself (:mod:`headatlas.capture`) and written by
:func:`headatlas.publish.publish`; this module only reads and slices them.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..headmap import PATTERNS_FILE, PATTERNS_FORMAT

FORMAT = PATTERNS_FORMAT
FILENAME = PATTERNS_FILE


def read_patterns(out_dir: str | Path) -> dict[str, Any] | None:
    """``OUT/patterns.json`` if present and well-formed, else ``None``."""
    path = Path(out_dir) / FILENAME
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("examples"), list):
        return None
    return data


@lru_cache(maxsize=8)
def _read_cached(path: str, mtime_ns: int, size: int) -> dict[str, Any] | None:
    return read_patterns(Path(path).parent)


def read_patterns_cached(out_dir: str | Path) -> dict[str, Any] | None:
    """:func:`read_patterns`, memoised on the file's path, mtime and size (the app reads one file per request).

    Callers must not mutate the returned dict.
    """
    path = Path(out_dir) / FILENAME
    try:
        stat = path.stat()
    except OSError:
        return None
    return _read_cached(str(path), stat.st_mtime_ns, stat.st_size)


def for_head(patterns: dict[str, Any] | None, name: str) -> dict[str, Any] | None:
    """Only one head's patterns (same shape), for a page that shows a single head."""
    if not patterns:
        return None
    examples = [
        {**{k: v for k, v in ex.items() if k != "heads"}, "heads": {name: ex["heads"][name]}}
        for ex in patterns["examples"]
        if name in ex.get("heads", {})
    ]
    return {**{k: v for k, v in patterns.items() if k != "examples"}, "examples": examples} if examples else None


def panel_examples(patterns: dict[str, Any]) -> list[dict[str, Any]]:
    """Example labels for the pattern panel's selector."""
    return [{"label": ex.get("label", ex.get("id", "")), "n_tokens": len(ex["tokens"])} for ex in patterns["examples"]]
