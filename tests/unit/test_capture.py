"""Attention-pattern capture of a scan (planted model, 16-token examples)."""

from __future__ import annotations

import json

import pytest

from headatlas.capture import capture_patterns
from headatlas.errors import InvalidSettingError
from headatlas.publish import write_patterns
from headatlas.testing.planted import build_planted_model
from headatlas.web.patterns import read_patterns


@pytest.fixture(scope="module")
def tiny_loaded():
    return build_planted_model()


@pytest.fixture(scope="module")
def tiny_patterns(tiny_loaded):
    return capture_patterns(tiny_loaded, seed=0, n_tokens=16)


def test_patterns_cover_every_head_causally_and_sum_to_one(tiny_loaded, tiny_patterns):
    f = tiny_loaded.facts
    assert [ex["id"] for ex in tiny_patterns["examples"]] == ["natural_text", "repeated_tokens"]
    for ex in tiny_patterns["examples"]:
        n = len(ex["tokens"])
        assert n == len(ex["token_ids"]) <= 16
        assert len(ex["heads"]) == f.n_layers * f.n_heads
        for rows in ex["heads"].values():
            assert [len(r) for r in rows] == list(range(1, n + 1))  # lower triangle: row i sees keys 0..i
            for r in rows:
                assert sum(r) == pytest.approx(1.0, abs=2e-3 * len(r))
                assert all(w == round(w, 3) for w in r)
    rep = tiny_patterns["examples"][1]["token_ids"]
    half = (len(rep) - 1) // 2
    assert rep[1 : 1 + half] == rep[1 + half :]  # [BOS, x, x]


def test_patterns_match_the_lens_probabilities(tiny_loaded, tiny_patterns):
    import torch

    from headatlas.lens import PatternTap, session

    ex = tiny_patterns["examples"][0]
    ids = torch.tensor([ex["token_ids"]])
    got = {}
    rows = torch.arange(ids.shape[1])[None]
    with torch.no_grad(), session(taps=[PatternTap(rows, lambda layer, p: got.setdefault(layer, p[0]))]):
        tiny_loaded.model(input_ids=ids)
    expected = got[1][2, 5, :6].tolist()
    assert ex["heads"]["L1H2"][5] == pytest.approx(expected, abs=6e-4)


def test_same_seed_same_bytes_and_roundtrip(tmp_path, tiny_loaded, tiny_patterns):
    again = capture_patterns(tiny_loaded, seed=0, n_tokens=16)
    a, b = write_patterns(tiny_patterns, tmp_path / "a"), write_patterns(again, tmp_path / "b")
    assert a.read_bytes() == b.read_bytes()
    assert read_patterns(tmp_path / "a") == json.loads(a.read_text())
    other = capture_patterns(tiny_loaded, seed=1, n_tokens=16)
    assert other["examples"][0]["token_ids"] != tiny_patterns["examples"][0]["token_ids"]


def test_example_length_is_checked(tiny_loaded):
    with pytest.raises(InvalidSettingError):
        capture_patterns(tiny_loaded, n_tokens=4)


def test_sliding_window_layers_keep_their_window():
    from headatlas.testing.tiny import tiny_gemma3

    loaded = tiny_gemma3(window=8)
    patterns = capture_patterns(loaded, seed=0, n_tokens=16)
    rows = patterns["examples"][0]["heads"]["L0H0"]  # layer 0 is a sliding-window layer
    assert 0 in loaded.facts.sliding_layers and 1 not in loaded.facts.sliding_layers
    assert all(w == 0 for w in rows[12][: 12 - 8 + 1])  # keys outside the window get nothing
    assert sum(rows[12]) == pytest.approx(1.0, abs=0.01)
    assert any(w > 0 for w in patterns["examples"][0]["heads"]["L1H0"][12][:5])  # the global layer sees them
