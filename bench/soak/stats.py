"""The soak's statistics, with numpy alone (docs/design.md, "Soak: duty cycle" and "Soak: trends").

* :func:`binomial_tail`: P(K >= k) for K ~ Binomial(n, p), the chance that a healthy part is named in k of n
  windows when each window names it with probability p;
* :func:`mann_kendall_fall`: the one-sided p-value of a monotone fall (Mann 1945; Kendall 1975): exact from the
  distribution of inversions for a series without ties of up to :data:`EXACT_MAX` points, else the normal
  approximation with Kendall's tie correction and a continuity correction;
* :func:`theil_sen`: the median of the pairwise slopes (Theil 1950; Sen 1968) and the median intercept;
* :func:`holm`: Holm's (1979) step-down correction, which holds the family-wise false-alarm rate over every
  part tested without the independence Bonferroni's sharper forms ask for.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

EXACT_MAX = 60
"""Up to this many points a series without ties is tested exactly (the inversions' distribution has n(n-1)/2 + 1
terms); past it the normal approximation is within a fraction of a percent (Kendall 1975, ch. 4)."""
MAX_SERIES = 256
"""A longer series is cut into this many consecutive bins, each said by its median (time and value): the pairwise
tests cost n^2, and a soak of thousands of windows keeps every link's test under a few MB."""
MAD_SIGMA = 1.4826
"""The robust sigma of a normal sample is 1.4826 x its median absolute deviation."""

Floats = NDArray[np.float64]


def binomial_tail(k: int, n: int, p: float) -> float:
    """P(K >= k) for K ~ Binomial(n, p), summed in log space (exact for any n a soak has)."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    if p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 1.0
    first = (
        math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1) + k * math.log(p) + (n - k) * math.log1p(-p)
    )
    # each next term of the law is the last times (n - i) / (i + 1) x p / (1 - p)
    i = np.arange(k, n, dtype=np.float64)
    steps = np.log((n - i) / (i + 1)) + (math.log(p) - math.log1p(-p))
    logs = first + np.concatenate(([0.0], np.cumsum(steps)))
    top = float(logs.max())
    return min(1.0, math.exp(top) * float(np.exp(logs - top).sum()))


def holm(p_values: Sequence[float], alpha: float, family: int = 0) -> list[bool]:
    """Which hypotheses Holm's step-down procedure rejects at family-wise rate ``alpha``: the smallest p-value
    against alpha/m, the next against alpha/(m-1), ... until the first that is not below its mark. ``family``:
    the hypotheses tested where more were than ``p_values`` holds (the parts never named have p = 1)."""
    m = max(len(p_values), family)
    rejected = [False] * len(p_values)
    for rank, i in enumerate(sorted(range(len(p_values)), key=lambda j: p_values[j])):
        if p_values[i] > alpha / (m - rank):
            break
        rejected[i] = True
    return rejected


@functools.lru_cache(maxsize=8)
def _pairs(n: int) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """Every (i, j) with i < j < n (a few kept: a soak's series mostly share their length)."""
    i, j = np.triu_indices(n, k=1)
    i.setflags(write=False)
    j.setflags(write=False)
    return i, j


@functools.cache
def _inversions(n: int) -> Floats:
    """P(I = q) for the inversions I of a random permutation of n: the product of the uniform laws on 0..j-1,
    j = 1..n (the Mahonian numbers over n!)."""
    law = np.ones(1)
    for j in range(2, n + 1):
        law = np.convolve(law, np.full(j, 1.0 / j))
    law.setflags(write=False)
    return law


def _normal_cdf(z: float) -> float:
    return 0.5 * math.erfc(-z / math.sqrt(2.0))


def mann_kendall_fall(y: Floats) -> float:
    """The one-sided p-value that ``y`` (in time order) falls: P(S <= s) under no trend, S = the sum over every
    pair i < j of sign(y_j - y_i). 1 for a series of fewer than 3 points or with every value tied."""
    n = len(y)
    if n < 3:
        return 1.0
    i, j = _pairs(n)
    s = int(np.sign(y[j] - y[i]).sum())
    _, counts = np.unique(y, return_counts=True)
    if n <= EXACT_MAX and len(counts) == n:
        # S = N - 2 I, with I the pairs out of order: S <= s is I >= (N - s) / 2
        law = _inversions(n)
        return float(min(1.0, law[(n * (n - 1) // 2 - s) // 2 :].sum()))
    t = counts[counts > 1].astype(np.float64)
    var = (n * (n - 1) * (2 * n + 5) - float((t * (t - 1) * (2 * t + 5)).sum())) / 18.0
    if var <= 0:
        return 1.0
    return _normal_cdf((s + 1) / math.sqrt(var))


def theil_sen(t: Floats, y: Floats) -> tuple[float, float]:
    """The slope (the median of (y_j - y_i) / (t_j - t_i) over the pairs at different times) and the intercept
    (the median of y - slope t)."""
    i, j = _pairs(len(t))
    dt = t[j] - t[i]
    keep = dt != 0
    if not keep.any():
        return 0.0, float(np.median(y))
    slope = float(np.median((y[j] - y[i])[keep] / dt[keep]))
    return slope, float(np.median(y - slope * t))


def binned(t: Floats, y: Floats, cap: int = MAX_SERIES) -> tuple[Floats, Floats]:
    """``t`` and ``y`` as at most ``cap`` points: consecutive bins of near-equal size, each its medians."""
    if len(t) <= cap:
        return t, y
    edges = np.linspace(0, len(t), cap + 1).astype(int)
    tb = np.array([np.median(t[a:b]) for a, b in itertools.pairwise(edges)])
    yb = np.array([np.median(y[a:b]) for a, b in itertools.pairwise(edges)])
    return tb, yb


@dataclass(frozen=True)
class Fit:
    """A series' fitted line and what is left around it."""

    slope: float
    """Per unit of t (hours)."""
    first: float
    """The line at the series' first point."""
    last: float
    noise: float
    """The robust sigma of the residuals."""

    @property
    def fall(self) -> float:
        return self.first - self.last


def fit(t: Floats, y: Floats, span: tuple[float, float] | None = None) -> Fit:
    """The Theil-Sen line of ``y`` over ``t`` and the robust sigma of its residuals; its first and last values at
    the ends of ``span`` (the series' own times, where ``t`` are bins of it), else at t's ends."""
    slope, intercept = theil_sen(t, y)
    residuals = y - (intercept + slope * t)
    noise = MAD_SIGMA * float(np.median(np.abs(residuals - np.median(residuals))))
    start, end = span if span is not None else (float(t[0]), float(t[-1]))
    return Fit(slope, intercept + slope * start, intercept + slope * end, noise)
