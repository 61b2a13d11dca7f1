"""The statistics of the calibration, in plain Python (no numpy in the core install).

- ``wilson``: the 95% Wilson score interval of a proportion, the formula of
  ``transforms/models/signal_calibration.sql`` (z = 1.96, rounded half up to 6 places), so a
  human precision and an agreement with A/B choices read the same way side by side.
- ``spearman``: Spearman's rank correlation (Pearson's on ranks, ties given their mean rank).
  Rubric scores are ordinal (a 4 is not twice a 2) and reward levels are bounded scores with
  many ties; a rank correlation asks only "do higher rewards go with higher scores", which is
  what a reward must get right, and one outlier cannot carry it.
- ``cohen_kappa``: agreement of two verdicts per item beyond chance, with the observed
  agreement beside it.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Sequence
from decimal import ROUND_HALF_UP, Decimal

Z = 1.96


def round_half_up(value: float, places: int = 6) -> float:
    """As DuckDB's ``round_half_up`` in the models: 0.5 away from zero, not to even."""
    quantum = Decimal(1).scaleb(-places)
    return float(Decimal(repr(value)).quantize(quantum, rounding=ROUND_HALF_UP))


def wilson(successes: int, n: int) -> tuple[float, float] | None:
    """The 95% Wilson score interval of ``successes`` out of ``n`` (None when n is 0)."""
    if n <= 0:
        return None
    p = successes / n
    # The SQL's constants: z^2/2 = 1.9208, z^2/4 = 0.9604, z^2 = 3.8416.
    spread = Z * math.sqrt(p * (1 - p) / n + 0.9604 / (n * n))
    low = (p + 1.9208 / n - spread) / (1 + 3.8416 / n)
    high = (p + 1.9208 / n + spread) / (1 + 3.8416 / n)
    return round_half_up(low), round_half_up(high)


def ranks(values: Sequence[float]) -> list[float]:
    """1-based ranks, tied values sharing the mean of the ranks they span."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranked = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        mean_rank = (start + end) / 2 + 1
        for position in range(start, end + 1):
            ranked[order[position]] = mean_rank
        start = end + 1
    return ranked


def pearson(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Pearson's correlation; None with fewer than 3 points or a constant side."""
    n = len(xs)
    if n != len(ys):
        raise ValueError("both sides need as many values")
    if n < 3:
        return None
    mean_x, mean_y = sum(xs) / n, sum(ys) / n
    cov = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True))
    var_x = sum((x - mean_x) ** 2 for x in xs)
    var_y = sum((y - mean_y) ** 2 for y in ys)
    if var_x == 0 or var_y == 0:
        return None
    return cov / math.sqrt(var_x * var_y)


def spearman(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Spearman's rho (ties by mean rank); None with fewer than 3 points or a constant side."""
    rho = pearson(ranks(xs), ranks(ys))
    return None if rho is None else round_half_up(rho)


def cohen_kappa(pairs: Sequence[tuple[Hashable, Hashable]]) -> tuple[float, float | None] | None:
    """(observed agreement, Cohen's kappa) of two ratings per item; kappa is None when chance
    agreement is 1 (both raters always gave the same single category); None without items."""
    n = len(pairs)
    if n == 0:
        return None
    observed = sum(1 for a, b in pairs if a == b) / n
    first = Counter(a for a, _ in pairs)
    second = Counter(b for _, b in pairs)
    expected = sum(first[c] * second[c] for c in first) / (n * n)
    kappa = None if expected == 1 else round_half_up((observed - expected) / (1 - expected))
    return round_half_up(observed), kappa
