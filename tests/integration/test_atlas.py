"""The published atlas (atlas/) is exactly what `headatlas atlas build` writes: checked on SmolLM2."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from headatlas.atlas import build_atlas

pytestmark = pytest.mark.slow

ATLAS = Path(__file__).resolve().parents[2] / "atlas"


def test_smollm2_atlas_is_reproducible_from_its_command(tmp_path):
    assert (ATLAS / "smollm2-135m" / "headmap.json").is_file(), "atlas/ is missing; run `headatlas atlas build`"
    readme = build_atlas(tmp_path, ["smollm2-135m"])
    for name in ("headmap.csv", "headmap.json", "patterns.json", "report.html"):
        rebuilt = (tmp_path / "smollm2-135m" / name).read_bytes()
        assert rebuilt == (ATLAS / "smollm2-135m" / name).read_bytes(), name

    def smollm2_rows(text: str) -> list[str]:
        """SmolLM2's column of the head-type table, then its rows of the IOI-roles table."""
        lines = text.splitlines()
        header = next(i for i, line in enumerate(lines) if line.startswith("| head type"))
        table = itertools.takewhile(lambda line: line.startswith("| "), lines[header + 2 :])
        cells = [line.strip("| ").split(" | ")[1] for line in table]
        return cells + [line for line in lines if line.startswith("| `smollm2-135m` | at ")]

    rebuilt_rows = smollm2_rows(readme.read_text())
    assert len(rebuilt_rows) >= 14 + 2
    assert rebuilt_rows == smollm2_rows((ATLAS / "README.md").read_text())
