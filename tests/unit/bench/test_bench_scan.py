"""``python -m headatlas.bench scan``: the table against the plain forward and the JSON verdict."""

from __future__ import annotations

import json

from headatlas.bench import scan


def side(peak: float, scores: list | None = None) -> dict:
    row = {"s": 10.0, "cpu_s": 12.0, "peak_mb": peak, "loaded_mb": 500.0}
    return row if scores is None else {**row, "scores": scores}


def test_the_scan_passes_when_within_target_and_equal_to_the_earlier_paths(capsys):
    sides = {"plain": side(800.0), "scan": side(1600.0, [("induction", 0, 0, 0.5)]),
             "copies": {**side(5000.0, [("induction", 0, 0, 0.5)]), "s": 40.0, "cpu_s": 48.0}}  # fmt: skip
    summary = scan.report(sides, 2000.0)
    printed = capsys.readouterr().out
    assert "scan, earlier paths" in printed and "identical" in printed
    assert "earlier paths (wall time): 0.25x" in printed and "earlier paths (CPU time): 0.25x" in printed
    assert " 2.00" in printed  # the scan's peak against the plain forward's
    assert summary["ok"] and summary["identical_scores"] and summary["scan_peak_mb"] == 1600.0
    json.dumps(summary)


def test_a_peak_over_target_or_different_scores_fail():
    over = {"plain": side(800.0), "scan": side(2500.0, [1]), "copies": side(5000.0, [1])}
    assert not scan.report(over, 2000.0)["ok"]
    different = {"plain": side(800.0), "scan": side(1500.0, [1]), "copies": side(5000.0, [2])}
    summary = scan.report(different, 2000.0)
    assert not summary["ok"] and summary["identical_scores"] is False
