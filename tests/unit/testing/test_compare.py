"""The atlas comparison by value: it passes a cross-processor wobble, and fails, naming row, column and both
values, when a number moves past the tolerance, a member set changes or a verified flag flips."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from headatlas.testing.compare import (
    ABS_TOL,
    compare_headmap_csv,
    compare_scan_dirs,
    compare_text,
    compare_values,
    numbers_close,
)

PUBLISHED = Path(__file__).resolve().parents[3] / "atlas" / "smollm2-135m"


@pytest.fixture()
def copy(tmp_path: Path) -> Path:
    target = tmp_path / "copy"
    shutil.copytree(PUBLISHED, target)
    return target


def _edit_csv_cell(path: Path, row_key: tuple[str, str, str], column: str, value: str) -> str:
    lines = path.read_text().splitlines()
    header = lines[0].split(",")
    for i, line in enumerate(lines[1:], start=1):
        cells = line.split(",")
        if tuple(cells[:3]) == row_key:
            old = cells[header.index(column)]
            cells[header.index(column)] = value
            lines[i] = ",".join(cells)
            path.write_text("\n".join(lines) + "\n")
            return old
    raise AssertionError(f"no row {row_key}")


def test_an_unchanged_copy_matches():
    assert compare_scan_dirs(PUBLISHED, PUBLISHED) == []


def test_a_last_digit_wobble_passes_but_a_move_past_the_tolerance_fails(copy):
    cell = ("0", "1", "current_token")  # the example: this cell's last digit moved on another processor
    old = _edit_csv_cell(copy / "headmap.csv", cell, "attribution", "0")
    wobble, moved = f"{float(old) + 1e-6:.6f}", f"{float(old) + 1e-4:.6f}"
    _edit_csv_cell(copy / "headmap.csv", cell, "attribution", wobble)
    assert compare_scan_dirs(copy, PUBLISHED) == []
    _edit_csv_cell(copy / "headmap.csv", cell, "attribution", moved)
    problems = compare_scan_dirs(copy, PUBLISHED)
    assert problems == [
        f"headmap.csv: row L0H1 current_token, column attribution: rebuilt '{moved}' vs published '{old}'"
    ]


def test_a_member_flip_and_an_emptied_cell_fail_with_row_and_column(copy):
    _edit_csv_cell(copy / "headmap.csv", ("0", "0", "current_token"), "member", "true")
    _edit_csv_cell(copy / "headmap.csv", ("0", "2", "current_token"), "ablation_effect", "")
    problems = compare_scan_dirs(copy, PUBLISHED)
    assert "headmap.csv: row L0H0 current_token, column member: rebuilt 'true' vs published 'false'" in problems
    assert any("row L0H2 current_token, column ablation_effect: rebuilt ''" in p for p in problems)


def test_a_verified_flag_a_member_list_and_a_p_value_are_checked_in_the_json(copy):
    data = json.loads((copy / "headmap.json").read_text())
    verified = next(t for t, v in data["verification"].items() if v.get("verified"))
    data["verification"][verified]["verified"] = False
    data["verification"][verified]["members"] = data["verification"][verified]["members"][:-1]
    data["verification"][verified]["p_value"] += 10 * ABS_TOL
    (copy / "headmap.json").write_text(json.dumps(data))
    problems = "\n".join(compare_scan_dirs(copy, PUBLISHED))
    assert f"headmap.json.verification.{verified}.verified: rebuilt false vs published true" in problems
    assert f"headmap.json.verification.{verified}.members: " in problems
    assert f"headmap.json.verification.{verified}.p_value: rebuilt " in problems


def test_json_integers_match_exactly_and_floats_within_tolerance():
    assert list(compare_values({"n": 16, "x": 0.5}, {"n": 16, "x": 0.50004}, "m", 1e-6)) == []
    assert list(compare_values({"n": 17}, {"n": 16}, "m")) == ["m.n: rebuilt 17 vs published 16"]
    assert list(compare_values({"x": 0.5}, {"x": 0.5003}, "m", 1e-6)) == ["m.x: rebuilt 0.5 vs published 0.5003"]
    assert list(compare_values([0.123, 0.5], [0.124, 0.5], "patterns", 1e-3)) == []  # one rounding step
    assert list(compare_values([0.123], [0.125], "patterns", 1e-3)) != []
    assert list(compare_values({"a": 1}, {"b": 1}, "m")) == ["m: keys differ, rebuilt-only ['a'], published-only ['b']"]


def test_relative_tolerance_for_large_numbers():
    assert numbers_close(1234.5, 1234.9) and not numbers_close(1234.5, 1235.5)


def test_text_words_must_match_and_numbers_within_their_printed_step():
    line = "| `induction` (ICI) | **verified**: L18H6, L17H3; effect 2.41 vs random 0.113, p=0.0476 |"
    assert list(compare_text(line, line.replace("0.113", "0.114"), "README")) == []
    moved = list(compare_text(line, line.replace("2.41", "2.47"), "README"))
    assert len(moved) == 1 and moved[0].startswith("README line 1: rebuilt 2.41 vs published 2.47 in ")
    head_changed = list(compare_text(line, line.replace("L17H3", "L17H4"), "README"))
    assert len(head_changed) == 1 and "text differs" in head_changed[0] and "L17H" in head_changed[0]
    assert list(compare_text(line, line.replace("verified", "not verified", 1), "README"))


def test_csv_rows_missing_on_one_side_are_named():
    header = "layer,head,head_type,score\n"
    problems = list(compare_headmap_csv(header + "0,1,sink,0.5\n", header + "0,2,sink,0.5\n"))
    assert problems == [
        "headmap.csv: row L0H1 sink only in the rebuilt file",
        "headmap.csv: row L0H2 sink only in the published file",
    ]


def test_a_rank_correlation_may_move_by_rank_swaps_but_other_numbers_may_not():
    published = {"stability": {"s_inhibition": {"rank_correlation": 0.386488, "jaccard": 0.386488}}}
    swapped = {"stability": {"s_inhibition": {"rank_correlation": 0.385688, "jaccard": 0.386488}}}
    assert list(compare_values(swapped, published, "headmap.json")) == []
    moved = {"stability": {"s_inhibition": {"rank_correlation": 0.38, "jaccard": 0.385688}}}
    problems = list(compare_values(moved, published, "headmap.json"))
    assert [p.split(":")[0] for p in problems] == [
        "headmap.json.stability.s_inhibition.jaccard",
        "headmap.json.stability.s_inhibition.rank_correlation",
    ]
