"""The published atlas (atlas/) is what `headatlas atlas build` writes, checked on SmolLM2 by value.

On the machine and versions that built it the rebuild is byte-identical. On another processor float32
reductions follow that CPU's kernels and the last printed digits move (this atlas rebuilt on an AMD EPYC: 1,327
attribution cells differ, by at most 9e-6; 173 scores by at most 2e-6; z-scores by up to 7.5e-5 relative), so
numbers are compared within ``headatlas.testing.compare``'s tolerance (5x those) and findings exactly: members,
verified flags, statuses, head names, every word of the README row. ``report.html`` is pinned to the data files
by a unit test (it is their rendering).

SmolLM2's strict set tests (``headatlas atlas strict``, ``strict.json``) took 84 min on this CPU, so
the rebuild reuses the published ``strict.json`` (the build keeps it only while the members it tested stay)
and one type's strict test is rerun in full and compared with its published record.
"""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path

import pytest

from headatlas.atlas import STRICT_NAME, build_atlas, read_strict
from headatlas.causal import VerifySettings
from headatlas.causal.statistics import holm
from headatlas.causal.verify import strict_set_tests
from headatlas.headmap import HeadMap
from headatlas.heads import causal_metrics, resolve_head_types
from headatlas.models.loader import load_model
from headatlas.testing.compare import compare_scan_dirs, compare_text, compare_values

pytestmark = pytest.mark.slow

ATLAS = Path(__file__).resolve().parents[2] / "atlas"
SMOLLM2 = ATLAS / "smollm2-135m"
SPOT_CHECK = "s_inhibition"
"""The type whose strict test is rerun: a verified one (all 400 sets drawn) with short prompts."""
FAMILY_FIELDS = ("p_holm", "n_tests", "verified", "status")
"""Fields of a strict record that depend on the other types' tests (the Holm family)."""


def smollm2_rows(text: str) -> list[str]:
    """SmolLM2's column of the head-type table (with the row's head type), then its rows of the IOI-roles table."""
    lines = text.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("| head type"))
    table = itertools.takewhile(lambda line: line.startswith("| "), lines[header + 2 :])
    cells = [" | ".join(line.strip("| ").split(" | ")[:2]) for line in table]
    return cells + [line for line in lines if line.startswith("| `smollm2-135m` | at ")]


def test_smollm2_atlas_is_reproducible_from_its_command(tmp_path):
    assert (SMOLLM2 / "headmap.json").is_file(), "atlas/ is missing; run `headatlas atlas build`"
    assert (SMOLLM2 / STRICT_NAME).is_file(), "run `headatlas atlas strict --models smollm2-135m`"
    (tmp_path / "smollm2-135m").mkdir()
    shutil.copy(SMOLLM2 / STRICT_NAME, tmp_path / "smollm2-135m" / STRICT_NAME)
    readme = build_atlas(tmp_path, ["smollm2-135m"])
    assert (tmp_path / "smollm2-135m" / STRICT_NAME).is_file(), "the build found other members than strict.json's"
    assert "compare-retrieval" in (tmp_path / "compare.html").read_text(encoding="utf-8")  # the models side by side
    problems = compare_scan_dirs(tmp_path / "smollm2-135m", ATLAS / "smollm2-135m")
    assert not problems, "the rebuilt atlas differs from the published one:\n" + "\n".join(problems)

    rebuilt_rows, published_rows = smollm2_rows(readme.read_text()), smollm2_rows((ATLAS / "README.md").read_text())
    assert len(rebuilt_rows) >= 14 + 2
    problems = list(compare_text("\n".join(rebuilt_rows), "\n".join(published_rows), "atlas/README.md (SmolLM2 rows)"))
    assert not problems, "\n".join(problems)


def test_a_published_strict_test_is_reproduced_and_the_holm_family_adds_up():
    published = read_strict(SMOLLM2)
    assert published is not None
    records = published["records"]
    settings = VerifySettings(seed=0, strict=True)
    assert published["settings"] == settings.to_dict()
    # the correction and the verdicts follow from the published p-values, intervals and random means
    for (type_id, record), p_holm in zip(records.items(), holm([r["p_value"] for r in records.values()]), strict=True):
        assert abs(record["p_holm"] - p_holm) <= 1e-6 and record["n_tests"] == len(records)
        above = record["effect_ci"][0] > record["random_mean"]
        assert record["verified"] == (record["effect"] > 0 and p_holm < settings.alpha and above), type_id

    headmap = HeadMap.read(SMOLLM2)
    loaded = load_model("smollm2-135m")
    metric = causal_metrics(resolve_head_types([SPOT_CHECK]))[SPOT_CHECK]
    rebuilt = strict_set_tests(loaded, headmap, settings, metrics={SPOT_CHECK: metric})[SPOT_CHECK]
    want = records[SPOT_CHECK]
    assert want["n_random"] == settings.n_random_max and want["verified"]
    problems = list(
        compare_values(
            {k: v for k, v in rebuilt.items() if k not in FAMILY_FIELDS},
            {k: v for k, v in want.items() if k not in FAMILY_FIELDS},
            f"strict.json ({SPOT_CHECK})",
            1e-6,
        )
    )
    assert not problems, "\n".join(problems)
