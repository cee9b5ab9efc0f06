"""Counts of generated inputs per parser, kept by the property tests and reported at the end of a test run
("robustness: arXiv Atom 300 generated inputs, 0 tracebacks")."""

from __future__ import annotations

from collections import Counter

TRIED: Counter[str] = Counter()


def tried(parser: str) -> None:
    """Count one generated input given to ``parser`` (call it after the input was handled without a traceback)."""
    TRIED[parser] += 1


def summary() -> list[str]:
    return [f"{name}: {n} generated inputs, none reached a traceback" for name, n in sorted(TRIED.items())]
