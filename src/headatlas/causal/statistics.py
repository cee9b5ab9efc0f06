"""The statistics behind ``verified``: a sequential Monte Carlo p-value, Holm's correction, a bootstrap interval.

* **Sequential Monte Carlo test** (Besag & Clifford 1991, "Sequential Monte Carlo p-values"). Random head sets
  are drawn in rounds; the test stops as soon as ``h`` of them damage the metric at least as much as the
  member set (the answer is then clearly "not significant") or when ``n_max`` sets have been drawn. Stopped at
  the ``h``-th exceedance after ``n`` draws, ``p = h / n``; otherwise ``p = (k + 1) / (n_max + 1)`` with ``k``
  exceedances. Both are valid p-values; the floor is ``1 / (n_max + 1)``, and a set that loses to many random
  sets costs only the first round.
* **Holm's step-down correction** (Holm 1979) across the head types tested in one scan: the ``i``-th smallest
  p-value of ``m`` is multiplied by ``m - i + 1``, made monotone, and capped at 1. It controls the
  family-wise error rate without assuming the tests are independent (types share heads and prompts).
* **Percentile bootstrap** (Efron 1979) of a mean over prompts: the 95% interval of the member set's effect.
* **Spearman's rho**: attribution against exact ablation; scores of one type across seeds (stability).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np


def rounds(first: int, most: int) -> tuple[int, ...]:
    """Random sets drawn per round of the sequential test, which checks its stopping rule after each round:
    ``first``, then ``first`` at a time up to 100 in all, then 50 at a time up to ``most``. Small rounds stop a
    test in doubt soon after its ``h``-th exceedance instead of at the end of one long round; each round is
    still one batched run."""
    sizes, total = [first], first
    while total < most:
        step = min(first if total < 100 else 50, most - total)
        sizes.append(step)
        total += step
    return tuple(sizes)


ROUNDS = rounds(20, 400)
"""The default rounds: 20, four more of 20 (100 in all), then six of 50 (400 in all)."""
STOP_AFTER = 10
"""``h`` of the sequential test: stop once this many random sets do at least as much damage as the set."""
BOOTSTRAP_SAMPLES = 2000


@dataclass(frozen=True)
class SequentialTest:
    """Outcome of the sequential test: p, the random effects drawn (in draw order) and why it stopped."""

    p_value: float
    random_effects: np.ndarray
    exceedances: int
    stopped_early: bool


def sequential_p(
    effect: float, draw: Callable[[int], Sequence[float]], rounds: Sequence[int] = ROUNDS, h: int = STOP_AFTER
) -> SequentialTest:
    """Besag-Clifford p-value of ``effect`` against random effects; ``draw(n)`` gives the next ``n`` of them."""
    if h < 1 or not rounds or any(n < 1 for n in rounds):
        raise ValueError("the sequential test needs h >= 1 and rounds of at least one draw")
    drawn: list[float] = []
    for size in rounds:
        new = [float(x) for x in draw(size)]
        if not new:
            break
        drawn.extend(new)
        hits = np.flatnonzero(np.asarray(drawn) >= effect)
        if len(hits) >= h:
            n_at_h = int(hits[h - 1]) + 1  # the test stops at the h-th exceedance; later draws do not count
            return SequentialTest(h / n_at_h, np.asarray(drawn), h, True)
    values = np.asarray(drawn)
    k = int((values >= effect).sum())
    return SequentialTest((k + 1) / (len(values) + 1), values, k, False)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values, in the input's order."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: (p_values[i], i))
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def bootstrap_interval(
    values: Sequence[float], seed: int, samples: int = BOOTSTRAP_SAMPLES, level: float = 0.95
) -> tuple[float, float] | None:
    """Percentile bootstrap interval of the mean of ``values`` (``None`` with fewer than 2 values)."""
    data = np.asarray(values, dtype=np.float64)
    if len(data) < 2:
        return None
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, len(data), size=(samples, len(data)))].mean(axis=1)
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return float(low), float(high)


def spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Spearman's rho (average ranks for ties); ``None`` with fewer than 3 points or a constant side."""
    if len(x) != len(y) or len(x) < 3:
        return None

    def ranks(values: Sequence[float]) -> np.ndarray:
        arr = np.asarray(values, dtype=np.float64)
        order = np.argsort(arr, kind="stable")
        out = np.empty(len(arr))
        sorted_vals = arr[order]
        i = 0
        while i < len(arr):
            j = i
            while j + 1 < len(arr) and sorted_vals[j + 1] == sorted_vals[i]:
                j += 1
            out[order[i : j + 1]] = (i + j) / 2.0
            i = j + 1
        return out

    rx, ry = ranks(x), ranks(y)
    if rx.std() == 0 or ry.std() == 0:
        return None
    return float(np.corrcoef(rx, ry)[0, 1])
