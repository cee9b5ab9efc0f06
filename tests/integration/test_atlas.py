"""The published atlas (atlas/) is what `headatlas atlas build` writes, checked on SmolLM2 by value.

On the machine and versions that built it the rebuild is byte-identical. On another processor float32
reductions follow that CPU's kernels and the last printed digits move (this atlas rebuilt on an AMD EPYC: 1,327
attribution cells differ, by at most 9e-6; 173 scores by at most 2e-6; z-scores by up to 7.5e-5 relative), so
numbers are compared within ``headatlas.testing.compare``'s tolerance (5x those) and findings exactly: members,
verified flags, statuses, head names, every word of the README row. ``report.html`` is pinned to the data files
by a unit test (it is their rendering).
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from headatlas.atlas import build_atlas
from headatlas.testing.compare import compare_scan_dirs, compare_text

pytestmark = pytest.mark.slow

ATLAS = Path(__file__).resolve().parents[2] / "atlas"


def smollm2_rows(text: str) -> list[str]:
    """SmolLM2's column of the head-type table (with the row's head type), then its rows of the IOI-roles table."""
    lines = text.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("| head type"))
    table = itertools.takewhile(lambda line: line.startswith("| "), lines[header + 2 :])
    cells = [" | ".join(line.strip("| ").split(" | ")[:2]) for line in table]
    return cells + [line for line in lines if line.startswith("| `smollm2-135m` | at ")]


def test_smollm2_atlas_is_reproducible_from_its_command(tmp_path):
    assert (ATLAS / "smollm2-135m" / "headmap.json").is_file(), "atlas/ is missing; run `headatlas atlas build`"
    readme = build_atlas(tmp_path, ["smollm2-135m"])
    assert "compare-retrieval" in (tmp_path / "compare.html").read_text(encoding="utf-8")  # the models side by side
    problems = compare_scan_dirs(tmp_path / "smollm2-135m", ATLAS / "smollm2-135m")
    assert not problems, "the rebuilt atlas differs from the published one:\n" + "\n".join(problems)

    rebuilt_rows, published_rows = smollm2_rows(readme.read_text()), smollm2_rows((ATLAS / "README.md").read_text())
    assert len(rebuilt_rows) >= 14 + 2
    problems = list(compare_text("\n".join(rebuilt_rows), "\n".join(published_rows), "atlas/README.md (SmolLM2 rows)"))
    assert not problems, "\n".join(problems)
