"""The kv bench's needle contexts: one needle per depth, in order, values inside, exact lengths, seeded."""

from __future__ import annotations

import pytest

from headatlas.bench.kv_protocol import DEFAULT_GRID, full_grid, make_contexts, summarise
from headatlas.testing.tiny import ByteTokenizer

DEPTHS = (0.1, 0.5, 0.9)


def test_contexts_hold_one_needle_per_depth_in_order():
    tok = ByteTokenizer(300)
    contexts = make_contexts(tok, 1200, DEPTHS, count=2, seed=0)
    assert len(contexts) == 2
    for c in contexts:
        ctx = c["context"]
        assert len(ctx) == 1200 and len(c["continuation"]) == 129  # 128 predicted tokens
        starts = []
        for needle in c["needles"]:
            value = needle["value"]
            hits = [i for i in range(len(ctx)) if ctx[i : i + len(value)] == value]
            assert hits, "each value must appear in the context"
            starts.append(hits[0])
            assert abs(hits[0] / len(ctx) - needle["depth"]) < 0.15
        assert starts == sorted(starts)
        questions = [tuple(n["question"]) for n in c["needles"]]
        assert len(set(questions)) == len(DEPTHS), "each needle of a context asks for a different place"


def test_contexts_are_deterministic_per_seed_and_length():
    tok = ByteTokenizer(300)
    same = make_contexts(tok, 800, DEPTHS, count=1, seed=0)
    assert make_contexts(tok, 800, DEPTHS, count=1, seed=0) == same
    assert make_contexts(tok, 800, DEPTHS, count=1, seed=1) != same
    assert make_contexts(tok, 900, DEPTHS, count=1, seed=0)[0]["needles"] != same[0]["needles"]


def test_grids():
    assert DEFAULT_GRID.contexts == (2048, 8192) and DEFAULT_GRID.needles == 3 and len(DEFAULT_GRID.depths) == 3
    assert DEFAULT_GRID.fractions == (0.75, 0.5, 0.25)
    assert full_grid(8192).contexts == (1024, 2048, 4096, 8192)
    assert full_grid(32768).contexts[-1] == 16384
    assert len(full_grid(8192).depths) >= 5 and full_grid(8192).needles >= 5


def test_exact_match_is_every_value_token_right():
    scores = summarise([1.0, 0.5, 1.0, 0.0], [2.0, 3.0])
    assert scores == {"needle_exact": 0.5, "needle_forced": 0.625, "prose_loss": 2.5, "n_needles": 4}


def test_too_many_depths_for_distinct_places():
    with pytest.raises(ValueError, match="at most"):
        make_contexts(ByteTokenizer(300), 2000, tuple(i / 20 for i in range(20)), count=1, seed=0)
