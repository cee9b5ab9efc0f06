"""The statistics of verification: sequential Monte Carlo p-values, Holm's correction, bootstrap intervals."""

from __future__ import annotations

import numpy as np
import pytest

from headatlas.causal.statistics import ROUNDS, bootstrap_interval, holm, rounds, sequential_p


def _stream(values):
    it = iter(values)
    calls: list[int] = []

    def draw(n):
        calls.append(n)
        return [v for _, v in zip(range(n), it, strict=False)]

    return draw, calls


def test_a_set_beating_every_random_set_draws_them_all_and_sits_at_the_floor():
    draw, calls = _stream(np.linspace(0, 1, 400))
    test = sequential_p(5.0, draw, rounds=(20, 80, 300), h=10)
    assert calls == [20, 80, 300] and not test.stopped_early
    assert test.p_value == 1 / 401 and test.exceedances == 0 and len(test.random_effects) == 400


def test_a_set_no_better_than_random_stops_after_the_first_round_at_the_h_th_exceedance():
    values = [1.0, 0.0] * 200  # every other random set does at least as much damage
    draw, calls = _stream(values)
    test = sequential_p(0.5, draw, rounds=(20, 80, 300), h=10)
    assert calls == [20] and test.stopped_early
    assert test.p_value == 10 / 19  # the 10th exceedance is the 19th draw; draws after it do not count


def test_rounds_are_small_so_a_test_in_doubt_stops_soon_after_its_h_th_exceedance():
    assert ROUNDS == (20, 20, 20, 20, 20, 50, 50, 50, 50, 50, 50) and sum(ROUNDS) == 400
    assert rounds(20, 40) == (20, 20) and rounds(20, 20) == (20,) and rounds(30, 130) == (30, 30, 30, 30, 10)
    rng = np.random.default_rng(1)
    values = (rng.random(400) < 0.07).astype(float)  # about 1 in 14 random sets beats the member set
    draw, calls = _stream(values)
    test = sequential_p(0.5, draw, rounds=ROUNDS, h=10)
    tenth = int(np.flatnonzero(values >= 0.5)[9]) + 1
    assert test.stopped_early and test.p_value == 10 / tenth and 100 < tenth < 400
    assert sum(calls) - tenth < 50 and len(test.random_effects) == sum(calls) < 400  # not the whole 400


def test_exhausted_draws_end_the_test_with_the_plain_monte_carlo_p():
    draw, _ = _stream([0.0, 2.0, 0.0])  # only three random sets exist
    test = sequential_p(1.0, draw, rounds=(20, 80), h=10)
    assert test.p_value == (1 + 1) / (3 + 1) and not test.stopped_early


def test_sequential_p_is_a_valid_p_value_under_the_null():
    """With the set's effect drawn from the random sets' own distribution, P(p <= a) <= a (up to noise)."""
    rng = np.random.default_rng(0)
    ps = []
    for _ in range(3000):
        effect = rng.normal()
        test = sequential_p(effect, lambda n: rng.normal(size=n).tolist(), rounds=(20, 80, 300), h=10)
        ps.append(test.p_value)
    ps = np.asarray(ps)
    for level in (0.05, 0.1, 0.5):
        assert abs(float((ps <= level).mean()) - level) < 0.02
    assert float((ps <= 0.01).mean()) < 0.02


def test_sequential_p_refuses_meaningless_settings():
    with pytest.raises(ValueError):
        sequential_p(0.0, lambda n: [0.0] * n, rounds=(), h=10)
    with pytest.raises(ValueError):
        sequential_p(0.0, lambda n: [0.0] * n, rounds=(20,), h=0)


def test_holm_multiplies_by_the_remaining_count_and_stays_monotone():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1
    assert holm([0.002]) == [0.002]
    assert holm([]) == []


def test_bootstrap_interval_brackets_the_mean_is_seeded_and_narrows_with_more_prompts():
    rng = np.random.default_rng(1)
    small, large = rng.normal(1.0, 1.0, 8), rng.normal(1.0, 1.0, 200)
    low, high = bootstrap_interval(small, seed=3)
    assert low < float(small.mean()) < high
    assert bootstrap_interval(small, seed=3) == (low, high)
    low_l, high_l = bootstrap_interval(large, seed=3)
    assert high_l - low_l < high - low
    assert low_l < 1.0 < high_l
    assert bootstrap_interval([1.0], seed=0) is None
