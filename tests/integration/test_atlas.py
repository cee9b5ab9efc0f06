"""The published atlas (atlas/) is exactly what `headatlas atlas build` writes: checked on SmolLM2."""

from __future__ import annotations

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

    def smollm2_cells(text: str) -> list[str]:
        """The smollm2 column of the head-type table (the rows after its "| head type" header)."""
        lines = text.splitlines()
        header = next(i for i, line in enumerate(lines) if line.startswith("| head type"))
        return [line.split(" | ")[1] for line in lines[header + 2 :] if line.startswith("| `")]

    assert smollm2_cells(readme.read_text()) == smollm2_cells((ATLAS / "README.md").read_text())
