"""DuoAttention's pattern format: what its loader (and kvpress's) reads back selects our full heads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from headatlas.errors import InvalidSettingError
from headatlas.kv.duo import export_duo, read_duo
from headatlas.kv.policy import plan_from_scan

ATLAS = Path(__file__).resolve().parents[3] / "atlas" / "smollm2-135m"


def duo_streaming(gates: list[list[float]], sparsity: float) -> set[tuple[int, int]]:
    """DuoAttention's selection: the ``round(sparsity * n)`` lowest gates become streaming heads."""
    flat = sorted((g, la, k) for la, row in enumerate(gates) for k, g in enumerate(row))
    n = round(sparsity * len(flat))
    return {(la, k) for _, la, k in flat[:n]}


@pytest.mark.parametrize("rule", ["retrieval", "razor", "headkv"])
def test_duo_selection_at_the_policys_sparsity_reproduces_the_policy(rule, tmp_path):
    policy = plan_from_scan(ATLAS, rule=rule, budget=0.5, context=2048)
    sink, recent, gates = read_duo(export_duo(policy, tmp_path / "duo"))
    assert (sink, recent) == (policy.sink, policy.recent)
    assert len(gates) == 30 and all(len(row) == 3 for row in gates)
    streaming = {(h.layer, h.kv_head) for h in policy.heads if not h.full}
    assert duo_streaming(gates, 1 - policy.full_fraction) == streaming
    assert all(0.0 <= g <= 1.0 for row in gates for g in row)


def test_tsv_is_tab_separated_layers_by_kv_heads(tmp_path):
    policy = plan_from_scan(ATLAS, rule="retrieval", budget=0.5)
    out = export_duo(policy, tmp_path / "duo")
    lines = (out / "full_attention_heads.tsv").read_text().splitlines()
    assert len(lines) == 30 and all(len(line.split("\t")) == 3 for line in lines)
    config = json.loads((out / "config.json").read_text())
    assert config["sink_size"] == policy.sink and config["recent_size"] == policy.recent


def test_reading_a_directory_without_a_pattern_fails_in_one_line(tmp_path):
    with pytest.raises(InvalidSettingError, match="not a DuoAttention pattern"):
        read_duo(tmp_path)
