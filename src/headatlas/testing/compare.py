"""Compare two scans' output files by value: the same findings, numbers equal within a stated tolerance.

On one machine with the pinned versions a scan is byte-for-byte deterministic. On another processor float32
reductions follow that CPU's kernels (MKL / oneDNN dispatch differs), so the last printed digits of
gradient- and reduction-heavy numbers move (measured: attribution 0.182784 vs 0.182775, z-score -1.128800 vs
-1.128885). Findings do not:
members, verified flags, statuses, head names and every word of text must match exactly.

A number ``a`` (rebuilt) matches ``b`` (published) when ``|a - b| <= max(ABS_TOL, REL_TOL * max(|a|, |b|),
step)``, where ``step`` is the rounding step the number was printed with (a value rounded to 3 decimals
flips by 0.001 at a rounding boundary for an arbitrarily small change). Integers match exactly: they are
counts, layers and heads. A rank correlation (``rank_correlation``: the census scores' Spearman across
seeds) matches within ``RANK_TOL``: near-tied scores swap ranks on a last-bit change, and each swap moves it by
a step (measured: s_inhibition 0.385688 on an AVX-512 AMD EPYC vs 0.386488 on the machine that built the atlas).
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# 5x the largest cross-processor differences measured (SmolLM2 atlas rebuilt on an AMD EPYC vs the build machine):
# 9e-6 absolute (attribution), 7.5e-5 relative (a verification z-score); findings are compared exactly
ABS_TOL = 5e-5
REL_TOL = 5e-4
RANK_TOL = 5e-3
"""Allowed difference of a rank correlation (6x the largest cross-processor change measured)."""
RANK_FIELDS = frozenset({"rank_correlation"})

# a decimal number not glued to letters on its left (so the 18 of "L18H6" is left to the text comparison)
_NUMBER = re.compile(r"(?<![A-Za-z_\d.])-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")


def _unit(text: str) -> float:
    """One step in the last printed decimal of ``text`` (0 for an integer: counts, layers, heads match exactly)."""
    mantissa, _, exponent = text.lower().partition("e")
    decimals = len(mantissa.partition(".")[2])
    return 10.0 ** (int(exponent or 0) - decimals) if decimals or exponent else 0.0


def numbers_close(rebuilt: float, published: float, step: float = 0.0) -> bool:
    """Equal within ``ABS_TOL`` / ``REL_TOL``, or within ``step`` (the rounding step the file printed with)."""
    allowed = max(ABS_TOL, REL_TOL * max(abs(rebuilt), abs(published)), step * (1 + 1e-9))
    return abs(rebuilt - published) <= allowed


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def compare_values(rebuilt: Any, published: Any, where: str, step: float = 0.0) -> Iterator[str]:
    """Differences between two parsed JSON values, each naming its path and both values.

    Integers must match exactly; floats within tolerance (``step``: the rounding step of the file).
    """
    if _is_number(rebuilt) and _is_number(published) and (isinstance(rebuilt, float) or isinstance(published, float)):
        if not numbers_close(rebuilt, published, step):
            yield f"{where}: rebuilt {rebuilt!r} vs published {published!r}"
    elif isinstance(rebuilt, dict) and isinstance(published, dict):
        if rebuilt.keys() != published.keys():
            only_rebuilt, only_published = (
                sorted(rebuilt.keys() - published.keys()),
                sorted(published.keys() - rebuilt.keys()),
            )
            yield f"{where}: keys differ, rebuilt-only {only_rebuilt}, published-only {only_published}"
        for key in sorted(rebuilt.keys() & published.keys()):
            yield from compare_values(
                rebuilt[key], published[key], f"{where}.{key}", max(step, RANK_TOL) if key in RANK_FIELDS else step
            )
    elif isinstance(rebuilt, list) and isinstance(published, list):
        if len(rebuilt) != len(published):
            yield f"{where}: {len(rebuilt)} items rebuilt vs {len(published)} published"
        for i, (a, b) in enumerate(zip(rebuilt, published, strict=False)):
            yield from compare_values(a, b, f"{where}[{i}]", step)
    elif type(rebuilt) is not type(published) or rebuilt != published:
        yield f"{where}: rebuilt {json.dumps(rebuilt)} vs published {json.dumps(published)}"


def _head_rows(text: str) -> tuple[list[str], dict[tuple[str, ...], dict[str, str]]]:
    reader = csv.DictReader(io.StringIO(text))
    columns = list(reader.fieldnames or [])
    keyed: dict[tuple[str, ...], dict[str, str]] = {}
    for row in reader:
        keyed[(f"L{row['layer']}H{row['head']}", row["head_type"])] = row
    return columns, keyed


def compare_headmap_csv(rebuilt: str, published: str, name: str = "headmap.csv") -> Iterator[str]:
    """Row by row (head, head type), column by column; empty cells must stay empty, ``member`` exact."""
    columns, rebuilt_rows = _head_rows(rebuilt)
    published_columns, published_rows = _head_rows(published)
    if columns != published_columns:
        yield f"{name}: columns {columns} rebuilt vs {published_columns} published"
        return
    for key in sorted(rebuilt_rows.keys() ^ published_rows.keys()):
        side = "rebuilt" if key in rebuilt_rows else "published"
        yield f"{name}: row {key[0]} {key[1]} only in the {side} file"
    for key in sorted(rebuilt_rows.keys() & published_rows.keys()):
        for column in columns:
            a, b = rebuilt_rows[key][column], published_rows[key][column]
            if a == b:
                continue
            numeric = a and b and _NUMBER.fullmatch(a) and _NUMBER.fullmatch(b)
            if not numeric or not numbers_close(float(a), float(b), max(_unit(a), _unit(b))):
                yield f"{name}: row {key[0]} {key[1]}, column {column}: rebuilt {a!r} vs published {b!r}"


def compare_text(rebuilt: str, published: str, name: str) -> Iterator[str]:
    """Line by line: the words exactly, the numbers within tolerance."""
    rebuilt_lines, published_lines = rebuilt.splitlines(), published.splitlines()
    if len(rebuilt_lines) != len(published_lines):
        yield f"{name}: {len(rebuilt_lines)} lines rebuilt vs {len(published_lines)} published"
    for number, (a, b) in enumerate(zip(rebuilt_lines, published_lines, strict=False), start=1):
        if a == b:
            continue
        words_a, words_b = _NUMBER.sub("#", a), _NUMBER.sub("#", b)
        numbers = list(zip(_NUMBER.findall(a), _NUMBER.findall(b), strict=False))
        if words_a != words_b:
            yield f"{name} line {number}: text differs: rebuilt {_excerpt(a, b)!r} vs published {_excerpt(b, a)!r}"
            continue
        for x, y in numbers:
            step = min(_unit(x), _unit(y))  # text prints "%.3g": "0.5" may stand for 0.500
            if x != y and (not step or not numbers_close(float(x), float(y), step)):
                yield f"{name} line {number}: rebuilt {x} vs published {y} in {_excerpt(a, b)!r}"


def _excerpt(line: str, other: str, width: int = 60) -> str:
    """The part of ``line`` around its first difference from ``other``."""
    start = next((i for i, (x, y) in enumerate(zip(line, other, strict=False)) if x != y), min(len(line), len(other)))
    return line[max(0, start - width // 2) : start + width // 2]


# rounding step of each JSON file: headmap.json holds 6 decimals, patterns.json 3
JSON_STEPS = {"headmap.json": 1e-6, "patterns.json": 1e-3}


def compare_scan_dirs(rebuilt: Path, published: Path, limit: int = 20) -> list[str]:
    """Differences beyond tolerance between the data files of two scan directories (at most ``limit``).

    ``report.html`` is a rendering of these files; check it by re-rendering (see the atlas test).
    """
    problems: list[str] = []
    for name in ("headmap.csv", "headmap.json", "patterns.json"):
        a, b = rebuilt / name, published / name
        if not a.is_file() or not b.is_file():
            problems.append(f"{name}: missing in the {'rebuilt' if not a.is_file() else 'published'} directory")
            continue
        text_a, text_b = a.read_text(encoding="utf-8"), b.read_text(encoding="utf-8")
        if name == "headmap.csv":
            found = compare_headmap_csv(text_a, text_b)
        else:
            found = compare_values(json.loads(text_a), json.loads(text_b), name, JSON_STEPS[name])
        for problem in found:
            problems.append(problem)
            if len(problems) >= limit:
                return problems
    return problems


__all__ = [
    "ABS_TOL",
    "JSON_STEPS",
    "REL_TOL",
    "compare_headmap_csv",
    "compare_scan_dirs",
    "compare_text",
    "compare_values",
    "numbers_close",
]
