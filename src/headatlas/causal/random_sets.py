"""Layer-matched random head sets: what the set test compares a head type's members with.

A random set has one stand-in per member: distinct non-member heads, each within ``window`` layers of its
member's layer. The test's p-value counts how many random sets do as much damage as the members, so the sets
must be *distinct*: drawing one set twice counts one comparison twice. A one-member type of a model with four
heads a layer has three same-layer alternatives, and 20 draws from them are three comparisons, not 20; the
honest p-value there is at best 1/4. So the reference is planned before the test runs:

* the **population** at a window is every distinct set (sorted heads) that some assignment of stand-ins to
  members allows;
* the window starts at the one asked for and widens, one layer at a time, until its population holds at
  least as many sets as the test may draw (``wanted``: 20 for the screen, ``n_random_max`` for the sequential
  test) or spans the model;
* sets are drawn **without replacement**; when the whole model holds fewer sets than ``wanted`` the test
  uses every one of them and is an exact permutation test with floor ``1 / (population + 1)``.

Populations up to ``ENUMERATION_LIMIT`` sets are listed and drawn from uniformly. Larger ones (and member sets
too dense to list) are sampled one stand-in at a time, each uniform over its window's unchosen non-members as
the draws always were, skipping sets already drawn.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

import torch

from ..models.facts import ModelFacts
from .interventions import HeadRef

ENUMERATION_LIMIT = 4000
"""Populations with at least this many sets are sampled rather than listed (the test draws at most 400)."""
_VISIT_BUDGET = 50_000  # combinations tried while listing a population before calling it large
_MISSES_ALLOWED = 2000  # consecutive repeated or dead-end draws before a sampled population counts as spent

HeadSet = tuple[HeadRef, ...]


def non_members(members: Sequence[HeadRef], facts: ModelFacts) -> list[HeadRef]:
    """Every head that is not a member, in (layer, head) order: where stand-ins come from."""
    member_set = set(members)
    return [
        (layer, head)
        for layer in range(facts.n_layers)
        for head in range(facts.n_heads)
        if (layer, head) not in member_set
    ]


def near(pool: Sequence[HeadRef], layer: int, window: int, taken: Collection[HeadRef] = ()) -> list[HeadRef]:
    """The heads of ``pool`` within ``window`` layers of ``layer`` and not in ``taken``, in pool order."""
    return [h for h in pool if abs(h[0] - layer) <= window and h not in taken]


def population(members: Sequence[HeadRef], facts: ModelFacts, window: int, limit: int) -> list[HeadSet] | None:
    """Every distinct layer-matched set at ``window``, sorted; ``None`` when there are at least ``limit``."""
    pool = non_members(members, facts)
    per_layer = Counter(layer for layer, _ in members)
    layers = sorted(per_layer)
    found: set[HeadSet] = set()
    visits = 0

    def walk(index: int, chosen: frozenset[HeadRef]) -> bool:
        """False once the listing should stop (limit or budget reached)."""
        nonlocal visits
        if index == len(layers):
            found.add(tuple(sorted(chosen)))
            return len(found) < limit
        layer = layers[index]
        for combo in itertools.combinations(near(pool, layer, window, chosen), per_layer[layer]):
            visits += 1
            if visits > _VISIT_BUDGET or not walk(index + 1, chosen | frozenset(combo)):
                return False
        return True

    if not members:
        return []
    for layer in layers:  # a layer group with too few candidates even before any are taken: nothing fits
        if len(near(pool, layer, window)) < per_layer[layer]:
            return []
    complete = walk(0, frozenset())
    return sorted(found) if complete else None


@dataclass
class RandomSets:
    """Distinct layer-matched random sets for one member set, drawn in rounds (see the module docstring).

    ``window`` is the window the plan settled on; ``listed`` the whole population when it was small enough to
    list (``None``: at least ``ENUMERATION_LIMIT`` sets).
    """

    members: list[HeadRef]
    facts: ModelFacts
    generator: torch.Generator
    window: int
    listed: list[HeadSet] | None
    drawn: list[HeadSet] = field(default_factory=list)

    @classmethod
    def plan(
        cls,
        members: Sequence[HeadRef],
        facts: ModelFacts,
        generator: torch.Generator,
        layer_window: int | None,
        wanted: int,
    ) -> RandomSets:
        """Widen from ``layer_window`` (``None``: any layer) until the population holds ``wanted`` sets."""
        window = facts.n_layers if layer_window is None else layer_window
        while True:
            listed = population(members, facts, window, ENUMERATION_LIMIT)
            if listed is None or len(listed) >= wanted or window >= facts.n_layers - 1:
                break
            window += 1
        if listed is not None:  # small: the draw order is a permutation of the listing
            order = torch.randperm(len(listed), generator=generator).tolist()
            listed = [listed[i] for i in order]
        return cls(list(members), facts, generator, window, listed)

    @property
    def population_size(self) -> int | None:
        """How many distinct sets the window holds (``None``: at least ``ENUMERATION_LIMIT``)."""
        return None if self.listed is None else len(self.listed)

    @property
    def exhausted(self) -> bool:
        """True once every set of a listed population has been drawn: the test is then exact."""
        return self.listed is not None and len(self.drawn) == len(self.listed)

    def draw(self, n: int) -> list[list[HeadRef]]:
        """The next ``n`` distinct sets (fewer once the population is spent)."""
        if self.listed is not None:
            new = self.listed[len(self.drawn) : len(self.drawn) + n]
        else:
            seen = set(self.drawn)
            new = []
            misses = 0
            while len(new) < n and misses < _MISSES_ALLOWED:
                one = self._sample_one()
                if one is None or one in seen:
                    misses += 1
                    continue
                misses = 0
                seen.add(one)
                new.append(one)
        self.drawn.extend(new)
        return [list(s) for s in new]

    def _sample_one(self) -> HeadSet | None:
        """One stand-in per member, each uniform over its window's non-members not yet chosen; a member whose
        window has none left (dense member sets) takes the nearest layers that have one."""
        pool = non_members(self.members, self.facts)
        chosen: list[HeadRef] = []
        for layer, _head in self.members:
            window = self.window
            while True:
                candidates = near(pool, layer, window, chosen)
                if candidates:
                    break
                if window >= self.facts.n_layers:
                    return None
                window += 1
            chosen.append(candidates[int(torch.randint(len(candidates), (1,), generator=self.generator))])
        return tuple(sorted(chosen))


def random_head_sets(
    members: Sequence[HeadRef],
    facts: ModelFacts,
    n_sets: int,
    generator: torch.Generator,
    layer_window: int | None,
) -> list[list[HeadRef]]:
    """Up to ``n_sets`` distinct layer-matched random sets (all of them when the model holds fewer)."""
    return RandomSets.plan(members, facts, generator, layer_window, n_sets).draw(n_sets)
