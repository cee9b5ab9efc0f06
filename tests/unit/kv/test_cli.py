"""``headatlas kv plan``: writes the policy (and DuoAttention pattern); bad input exits 2, writes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from headatlas.cli import main

from .headmaps import synthetic_headmap, write_headmap

ATLAS = Path(__file__).resolve().parents[3] / "atlas" / "smollm2-135m"


def test_plan_writes_policy_and_duo_pattern(tmp_path, capsys):
    out, duo = tmp_path / "policy.json", tmp_path / "duo"
    code = main(
        ["kv", "plan", str(ATLAS), "--budget", "0.5", "--rule", "razor", "--out", str(out), "--duo-dir", str(duo)]
    )
    assert code == 0, capsys.readouterr().err
    policy = json.loads(out.read_text())
    assert policy["rule"] == "razor" and policy["budget"] == 0.5
    assert len(policy["heads"]) == 90 and abs(policy["kv_fraction"] - 0.5) < 0.025
    assert (duo / "full_attention_heads.tsv").is_file()
    assert "KV heads full" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--budget", "0"], "budget must lie in"),
        (["--budget", "1.2"], "budget must lie in"),
        (["--rule", "snapkv"], "valid rules are"),
        (["--budget", "0.05"], "streaming window"),
        (["--rule", "retrieval", "--compensation"], "compensation token is RazorAttention's"),
        (["--scope", "layers"], "valid scopes are cache, global"),
        (["--fill", "all"], "valid fills are remainder, whole"),
    ],
)
def test_bad_input_exits_2_and_writes_nothing(tmp_path, capsys, args, message):
    out = tmp_path / "policy.json"
    code = main(["kv", "plan", str(ATLAS), *args, "--out", str(out), "--duo-dir", str(tmp_path / "duo")])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1
    assert not out.exists() and not (tmp_path / "duo").exists()


def test_scan_lacking_the_rules_head_types_exits_2(tmp_path, capsys):
    scan = write_headmap(tmp_path / "scan", synthetic_headmap({"retrieval": [[0.2] * 4] * 2}, n_kv=2))
    out = tmp_path / "policy.json"
    code = main(["kv", "plan", str(scan), "--rule", "razor", "--context", "100", "--out", str(out)])
    assert code == 2 and "lacks induction" in capsys.readouterr().err
    assert not out.exists()


def test_plan_with_the_compensation_token(tmp_path, capsys):
    out = tmp_path / "policy.json"
    code = main(["kv", "plan", str(ATLAS), "--rule", "razor", "--compensation", "--context", "1024", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    policy = json.loads(out.read_text())
    assert policy["compensation"] is True
    streaming = [h for h in policy["heads"] if not h["full"]]
    # the window keeps its sink + recent; the token is one entry more, counted in the budget
    assert streaming and all(h["sink"] + h["recent"] == policy["sink"] + policy["recent"] for h in streaming)
    assert "compensation token" in capsys.readouterr().out


def test_gemma_scan_budget_counts_the_sliding_layers_at_their_window(tmp_path, capsys):
    gemma = ATLAS.parent / "gemma3-270m"
    out = tmp_path / "policy.json"
    code = main(["kv", "plan", str(gemma), "--rule", "retrieval", "--budget", "0.5", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    policy = json.loads(out.read_text())
    assert policy["scope"] == "cache" and policy["fill"] == "remainder"
    local = [h for h in policy["heads"] if h["layer"] in set(policy["model"]["sliding_layers"])]
    # at 2048 tokens the local layers (window 512) hold the streaming window, 128 tokens, as a plain window
    assert len(local) == 15 and all(h["sink"] == 0 and h["recent"] == 128 for h in local)
    # full cache: 3 x 2048 + 15 x 512 tokens; half of it leaves two global KV heads full and a longer third one
    assert [h["full"] for h in policy["heads"] if h not in local].count(True) == 2
    assert abs(policy["kv_fraction"] - 0.5) < 0.005
    assert "local layers keep 128" in capsys.readouterr().out


def test_gemma_scan_plans_only_its_global_layers_in_scope_global(tmp_path, capsys):
    gemma = ATLAS.parent / "gemma3-270m"
    out = tmp_path / "policy.json"
    args = ["kv", "plan", str(gemma), "--rule", "headkv", "--budget", "0.5", "--scope", "global", "--out", str(out)]
    code = main(args)
    assert code == 0, capsys.readouterr().err
    policy = json.loads(out.read_text())
    sliding = set(policy["model"]["sliding_layers"])
    assert sliding and len(sliding) == 15
    assert all(h["full"] for h in policy["heads"] if h["layer"] in sliding)
    assert abs(policy["kv_fraction"] - 0.5) < 0.025  # over the 3 global layers
    assert "3 KV heads" in capsys.readouterr().out.replace("/", " ")
