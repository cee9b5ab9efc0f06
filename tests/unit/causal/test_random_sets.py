"""Layer-matched random head sets: distinct, widened only as far as the test needs, exhaustive when small."""

from __future__ import annotations

import itertools

import pytest
import torch

from headatlas.causal import random_head_sets
from headatlas.causal.random_sets import RandomSets, population
from headatlas.models.facts import ModelFacts


def facts(layers: int, heads: int) -> ModelFacts:
    return ModelFacts("grid", "test", "llama", layers, heads, heads, 8, 32, 64, None, (), None)


def brute_force(members, f: ModelFacts, window: int) -> set[tuple]:
    """Every assignment of distinct non-member stand-ins within the window, as sorted sets."""
    pools = [
        [(lay, h) for lay in range(f.n_layers) for h in range(f.n_heads) if abs(lay - layer) <= window]
        for layer, _ in members
    ]
    pools = [[h for h in pool if h not in members] for pool in pools]
    return {tuple(sorted(c)) for c in itertools.product(*pools) if len(set(c)) == len(c)}


@pytest.mark.parametrize(
    "members, window",
    [
        ([(1, 0), (3, 2)], 0),
        ([(1, 0), (3, 2)], 1),
        ([(0, 0), (0, 1), (0, 2)], 0),  # three members in one layer: subsets, not orderings
        ([(0, 0), (0, 1), (1, 3)], 1),  # overlapping windows
        ([(2, h) for h in range(4)], 1),  # a whole layer of members
    ],
)
def test_the_listed_population_is_every_distinct_set(members, window):
    f = facts(4, 4)
    listed = population(members, f, window, limit=10_000)
    assert listed is not None and set(listed) == brute_force(members, f, window)
    assert len(listed) == len(set(listed))
    assert population(members, f, window, limit=2) is None or len(listed) < 2  # at the limit: "large"


def test_sets_are_distinct_and_same_layer_when_the_layers_hold_enough():
    f = facts(4, 4)
    members = [(1, 0), (3, 2)]
    sampler = RandomSets.plan(members, f, torch.Generator().manual_seed(0), 0, wanted=9)
    assert sampler.window == 0 and sampler.population_size == 9  # 3 x 3 same-layer stand-ins
    sets = sampler.draw(9)
    assert len({tuple(s) for s in sets}) == 9 and sampler.exhausted
    assert all(sorted(layer for layer, _ in s) == [1, 3] and not set(s) & set(members) for s in sets)
    assert sampler.draw(5) == []  # spent: never a repeat
    again = RandomSets.plan(members, f, torch.Generator().manual_seed(0), 0, wanted=9).draw(9)
    assert again == sets


def test_the_window_widens_until_the_test_can_draw_what_it_wants():
    f = facts(4, 4)
    members = [(1, 0), (3, 2)]
    sets = random_head_sets(members, f, 25, torch.Generator().manual_seed(0), layer_window=0)
    assert len(sets) == 25 and len({tuple(s) for s in sets}) == 25  # 9 same-layer sets were too few
    assert {tuple(s) for s in sets} <= brute_force(members, f, 1)  # each stand-in within one layer of its member
    sampler = RandomSets.plan(members, f, torch.Generator().manual_seed(0), 0, wanted=25)
    assert sampler.window == 1 and sampler.population_size == len(brute_force(members, f, 1))


def test_a_model_too_small_gives_every_set_once():
    f = facts(2, 4)  # the planted model's shape: 7 single-head alternatives in the whole model
    sampler = RandomSets.plan([(1, 2)], f, torch.Generator().manual_seed(0), 0, wanted=20)
    assert sampler.window == 1 and sampler.population_size == 7
    sets = sampler.draw(20)
    assert sorted(tuple(s) for s in sets) == sorted(brute_force([(1, 2)], f, 1))
    assert sampler.exhausted


def test_large_populations_are_sampled_without_repeats():
    f = facts(30, 9)
    members = [(20, 0), (21, 4), (22, 1), (23, 8)]  # 8 ** 4 same-layer sets: too many to list
    sampler = RandomSets.plan(members, f, torch.Generator().manual_seed(0), 0, wanted=400)
    assert sampler.window == 0 and sampler.population_size is None
    sets = sampler.draw(20) + sampler.draw(380)
    assert len({tuple(s) for s in sets}) == 400
    assert all([layer for layer, _ in s] == [20, 21, 22, 23] for s in sets)
    whole_layer = [(5, h) for h in range(9)]  # no same-layer stand-ins at all: the neighbours' heads
    widened = RandomSets.plan(whole_layer, f, torch.Generator().manual_seed(1), 0, wanted=20)
    assert widened.window == 1
    assert all(abs(layer - 5) == 1 for s in widened.draw(20) for layer, _ in s)
    assert random_head_sets([], f, 3, torch.Generator(), 0) == []
