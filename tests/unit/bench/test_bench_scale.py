"""``python -m headatlas.bench scale``: one size measured in-process, the tables and the JSON summary."""

from __future__ import annotations

import json

import pytest

from headatlas.bench import scale
from headatlas.probes import ProbeSettings


def test_a_size_is_measured_type_by_type_and_by_context(capsys):
    tiny = ProbeSettings(n_repeat=2, repeat_len=16, n_text=1, text_len=16)
    run = scale.run_child("s1", ["induction", "name_mover"], [256], "byte", full=False, probes=tiny)
    assert run["size"] == "s1" and run["params"] > 1_000_000
    assert list(run["types"]) == [scale.PLAIN, "induction", "name_mover"]
    for row in run["types"].values():
        assert row["s"] > 0 and row["cpu_s"] > 0 and row["mb"] >= 0
    assert "unavailable" in run["types"]["name_mover"]  # the byte tokenizer has no names
    assert "unavailable" not in run["types"]["induction"]
    assert set(run["contexts"]["256"]) == {"plain", "scan"}

    bigger = {**run, "size": "s2", "types": {k: {**v, "cpu_s": 2 * v["cpu_s"]} for k, v in run["types"].items()}}
    summary = scale.report([run, bigger], run["contexts"])
    printed = capsys.readouterr().out
    assert "induction" in printed and "retrieval probe on s1 by context" in printed
    measured = run["types"]["induction"]["cpu_s"]  # the summary rounds each size's figure to 3 decimals
    assert summary["types"]["induction"]["s1"]["cpu_s"] == round(measured, 3)
    assert summary["types"]["induction"]["s2"]["cpu_s"] == round(2 * measured, 3)
    assert " 2.00" in printed  # the ratio against the smallest size
    assert summary["unavailable"] == ["name_mover"]
    json.dumps(summary)


def test_unknown_sizes_are_refused():
    with pytest.raises(SystemExit):
        scale.main(["--sizes", "s1,huge"])
