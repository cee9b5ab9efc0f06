"""Causal checks on the real SmolLM2-135M: the scan's induction heads matter far more than random heads."""

from __future__ import annotations

import json

import pytest

from headatlas.api import scan
from headatlas.causal import VerifySettings, parse_heads, verify_set
from headatlas.cli import main
from headatlas.probes import ProbeSettings

pytestmark = pytest.mark.slow

PROBE = ProbeSettings(repeat_len=20, n_repeat=4, batch_size=4)
VERIFY = VerifySettings(repeat_len=20, n_repeat=4, top_n=0, max_exact_members=0, max_batch=48)


def test_ablating_the_scans_induction_heads_beats_random_sets(smollm2):
    headmap = scan(smollm2, head_types=["induction"], probes=PROBE)
    members = parse_heads(headmap.members("induction"), smollm2.facts)
    assert len(members) >= 3
    record = verify_set(smollm2, members, "induction_loss", VERIFY, label="induction")
    assert record["verified"] is True and record["p_value"] < 0.05
    assert record["effect"] > 3 * max(record["random_max"], 0.05)  # far more than any random set
    assert record["ablated_metric"] > record["clean_metric"] + 1.0  # nats of repeated-token loss


def run(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def error_line(err: str) -> str:
    """The one ``error:`` line (transformers' weight-loading progress bar may precede it on stderr)."""
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, err
    return lines[0]


def test_cli_ablate_and_its_bad_input(capsys):
    code, _, err = run(capsys, "ablate", "smollm2-135m", "--heads", "L99H0")
    assert code == 2 and "layers are 0-29, heads 0-8" in error_line(err)
    code, out, _ = run(capsys, "ablate", "smollm2-135m", "--heads", "L17H4,L18H6", "--format", "json")
    assert code == 0
    result = json.loads(out)
    assert result["heads"] == ["L17H4", "L18H6"] and result["effect"] > 0.1


def test_cli_patch_and_its_bad_input(capsys):
    clean = "When Mary and John went to the store, John gave a drink to"
    corrupt = "When Mary and John went to the store, Mary gave a drink to"
    common = ["--metric", "logit_diff", "--answer", " Mary", "--wrong", " John"]
    code, _, err = run(capsys, "patch", "smollm2-135m", "--clean", clean, "--corrupt", corrupt + " her", *common)
    assert code == 2 and "differ in token length" in error_line(err)
    code, _, err = run(
        capsys,
        "patch",
        "smollm2-135m",
        "--clean",
        clean,
        "--corrupt",
        corrupt,
        "--answer",
        " Mary Ann",
        "--wrong",
        " John",
    )
    assert code == 2 and "not a single token" in error_line(err)
    code, out, _ = run(
        capsys,
        "patch",
        "smollm2-135m",
        "--clean",
        clean,
        "--corrupt",
        corrupt,
        *common,
        "--top",
        "2",
        "--format",
        "json",
    )
    assert code == 0
    result = json.loads(out)
    assert result["patch"]["clean"] > result["patch"]["corrupt"]
    assert len(result["single_heads"]) == 2 and len(result["attribution"]["top"]) == 2
