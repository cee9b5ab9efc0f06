"""Each head type's evidence on its own probe (planted model: its induction head is also a retrieval member)."""

from __future__ import annotations

import pytest
import torch

from headatlas import evidence
from headatlas.capture import capture_patterns
from headatlas.census import ScanSettings, run_census
from headatlas.errors import TaskUnavailable
from headatlas.heads import get_head_type
from headatlas.lens import PatternTap, session
from headatlas.probes import PROBES, ProbeBatch, ProbeSettings
from headatlas.probes.base import all_rows
from headatlas.testing.planted import build_planted_model

SMALL = ProbeSettings(n_repeat=2, repeat_len=8, n_text=2, text_len=16, needle_contexts=(256,), needle_per_context=1)
TYPES = ("previous_token", "induction", "sink", "retrieval", "name_mover", "copying")


@pytest.fixture(scope="module")
def planted():
    return build_planted_model()


@pytest.fixture(scope="module")
def headmap(planted):
    return run_census(planted, ScanSettings(probes=SMALL, head_types=TYPES))


@pytest.fixture(scope="module")
def patterns(planted, headmap):
    return capture_patterns(planted, seed=0, n_tokens=16, headmap=headmap, probes=SMALL)


def full_probs(loaded, ids: list[int], layer: int, head: int) -> torch.Tensor:
    """The lens's probabilities of every row of ``ids`` for one head: ``[T, T]``."""
    got = {}
    tensor = torch.tensor([ids])
    with (
        torch.no_grad(),
        session(taps=[PatternTap(all_rows(1, len(ids)), lambda layer, p: got.setdefault(layer, p[0]))]),
    ):
        loaded.model(input_ids=tensor)
    return got[layer][head]


def test_each_probe_gets_one_example_tagged_with_its_types(headmap, patterns):
    by_id = {ex["id"]: ex for ex in patterns["examples"]}
    assert list(by_id) == ["natural_text", "repeated_tokens", "needle"]  # IOI does not fit the toy tokenizer
    assert by_id["natural_text"]["types"] == ["previous_token", "sink"]
    assert by_id["repeated_tokens"]["types"] == ["induction"]
    assert by_id["needle"]["types"] == ["retrieval"] and by_id["needle"]["probe"] == "needle"
    assert evidence.evidence_probe(get_head_type("copying")) is None  # weights only: no probe to show it on
    assert evidence.evidence_probe(get_head_type("name_mover")) == "ioi"  # the probe its causal metric reads
    stored = by_id["needle"]["stored"]["retrieval"]
    assert stored == [n for n in (r["name"] for r in headmap.top("retrieval", 8)) if n in headmap.members("retrieval")]
    assert set(by_id["needle"]["heads"]) == set(stored) == {"L1H2"}


def test_a_long_sample_keeps_the_scored_rows_marked_spans_and_sums_the_rest(planted, patterns):
    ex = next(e for e in patterns["examples"] if e["id"] == "needle")
    batch = PROBES["needle"](planted.tokenizer, SMALL, 0)[0]
    ids = batch.input_ids[0].tolist()
    assert ex["length"] == len(ids) == 256
    positions = ex["positions"]
    assert positions[0] == 0 and None in positions and len(ex["tokens"]) == len(positions) == len(ex["token_ids"])
    kept = [p for p in positions if p is not None]
    assert kept == sorted(kept) and len(kept) <= 128
    scored = batch.rows[0].tolist()
    assert [positions[c] for c in ex["rows"]] == scored[-evidence.MAX_ROWS :]
    value = range(*batch.extras["value_span"][0].tolist())
    assert [positions[c] for c in ex["marked"]["needle value"]] == list(value)
    for i, p in enumerate(positions):
        if p is None:
            left, right = positions[i - 1], positions[i + 1]
            assert ex["tokens"][i] == f"⋯ {right - left - 1} tokens ⋯" and ex["token_ids"][i] is None
        else:
            assert ex["token_ids"][i] == ids[p]
    probs = full_probs(planted, ids, 1, 2)
    for r, c in enumerate(ex["rows"]):
        row = ex["heads"]["L1H2"][r]
        assert len(row) == c + 1 and sum(row) == pytest.approx(1.0, abs=2e-3 * len(row))
        for i, w in enumerate(row):
            p = positions[i]
            expected = (
                probs[positions[c], positions[i - 1] + 1 : positions[i + 1]].sum()
                if p is None
                else probs[positions[c], p]
            )
            assert w == pytest.approx(float(expected), abs=6e-4)


def test_a_short_sample_is_stored_whole(monkeypatch, planted, headmap):
    ids = [0, *range(5, 25)]

    def short_probe(tokenizer, settings, seed):
        t = torch.tensor([ids])
        return [ProbeBatch(t, torch.ones_like(t), torch.tensor([[len(ids) - 1]]), {"io_pos": torch.tensor([3])})]

    monkeypatch.setitem(PROBES, "short_probe", short_probe)
    ex = evidence.probe_example(planted, "short_probe", ["induction", "previous_token"], headmap, SMALL, 0)
    assert ex is not None and "positions" not in ex and "rows" not in ex
    assert ex["token_ids"] == ids and ex["scored"] == [len(ids) - 1] and ex["marked"] == {"IO": [3]}
    assert ex["stored"] == {"induction": ["L1H2"], "previous_token": ["L0H0"]}
    assert sorted(ex["heads"]) == ["L0H0", "L1H2"]
    probs = full_probs(planted, ids, 0, 0)
    rows = ex["heads"]["L0H0"]
    assert [len(r) for r in rows] == list(range(1, len(ids) + 1))
    assert rows[7] == pytest.approx(probs[7, :8].tolist(), abs=6e-4)


def test_no_example_without_members_or_when_the_task_does_not_fit(monkeypatch, planted, headmap):
    assert headmap.members("name_mover") == []
    assert evidence.probe_example(planted, "needle", ["name_mover"], headmap, SMALL, 0) is None

    def unavailable(tokenizer, settings, seed):
        raise TaskUnavailable("no names")

    monkeypatch.setitem(PROBES, "needle", unavailable)
    assert evidence.probe_example(planted, "needle", ["retrieval"], headmap, SMALL, 0) is None


def test_without_a_head_map_only_the_shared_examples(planted):
    plain = capture_patterns(planted, seed=0, n_tokens=16)
    assert [ex["id"] for ex in plain["examples"]] == ["natural_text", "repeated_tokens"]
    assert all("types" not in ex for ex in plain["examples"])
