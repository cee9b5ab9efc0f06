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


def panel_examples(patterns: dict[str, Any], names: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """The pattern panel's selector: each example's label, its length in tokens and, where the scan recorded it,
    the head types it is the evidence of (their display names from ``names``)."""
    out = []
    for ex in patterns["examples"]:
        types = [(names or {}).get(t, t) for t in ex.get("types", [])]
        out.append(
            {
                "label": ex.get("label", ex.get("id", "")),
                "probe": str(ex.get("probe", ex.get("id", ""))).replace("_", " "),
                "n_tokens": ex.get("length", len(ex["tokens"])),
                "n_rows": len(ex["rows"]) if "rows" in ex else None,
                "types": types,
                "note": example_note(ex, names or {}),
            }
        )
    return out


def example_note(ex: dict[str, Any], names: dict[str, str]) -> str:
    """What an example shows, in words: whose evidence it is, which heads are stored, which rows and keys."""
    parts = []
    if ex.get("types"):
        shown = ", ".join(names.get(t, t) for t in ex["types"])
        parts.append(
            f"Evidence of {shown}: the probe {'its' if len(ex['types']) == 1 else 'their'} score or causal check reads."
        )
    for type_id, count in ex.get("members", {}).items():
        stored = len(ex.get("stored", {}).get(type_id, []))
        plural = "" if count == 1 else "s"
        parts.append(f"{names.get(type_id, type_id)}: {count} member{plural}, the strongest {stored} shown.")
    if "rows" in ex:
        gaps = None in ex.get("positions", [])
        parts.append(
            f"Of its {ex.get('length')} tokens, the rows the score reads"
            + (
                "; keys at the start, around the marked spans and just before the rows (a ⋯ column sums the weight"
                " on the keys left out)."
                if gaps
                else "."
            )
        )
    if ex.get("scored"):
        parts.append("▸ rows: read by the score.")
    marked = [name for name, cols in ex.get("marked", {}).items() if cols]
    if marked:
        parts.append(f"Keys in colour: {', '.join(marked)}.")
    return " ".join(parts)


def example_of_type(patterns: dict[str, Any] | None, type_id: str, name: str) -> int | None:
    """Index of the example that is ``type_id``'s evidence and holds head ``name`` (``None``: there is none)."""
    for i, ex in enumerate((patterns or {}).get("examples", [])):
        if type_id in ex.get("types", []) and name in ex.get("heads", {}):
            return i
    return None
