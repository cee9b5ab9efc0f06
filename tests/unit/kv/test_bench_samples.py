"""The kv bench's needle samples: the value sits in the needle, lengths are exact, a seed fixes them."""

from __future__ import annotations

from headatlas.bench.kv_protocol import DEPTHS, make_samples
from headatlas.testing.tiny import ByteTokenizer


def test_needle_samples_hold_the_value_at_their_depth():
    tok = ByteTokenizer(300)
    samples, prose = make_samples(tok, 400, needles=2, seed=0)
    assert len(samples) == 2 * len(DEPTHS)
    for s in samples:
        ctx, value = s["context"], s["value"]
        assert len(ctx) + len(s["question"]) == 400
        starts = [i for i in range(len(ctx)) if ctx[i : i + len(value)] == value]
        assert starts, "the value must appear in the context"
        assert abs(starts[0] / len(ctx) - s["depth"]) < 0.2
    assert len(prose["context"]) == 400 and len(prose["continuation"]) == 129  # 128 predicted tokens
    again, _ = make_samples(tok, 400, needles=2, seed=0)
    assert again == samples
    other, _ = make_samples(tok, 400, needles=2, seed=1)
    assert other != samples
