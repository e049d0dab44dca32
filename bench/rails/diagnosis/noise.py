"""The fabric's own noise: a robust healthy level, a robust spread, and tests that control false alarms.

Bandwidth noise is multiplicative (a busy CPU or a congested link halves a rate, it does not subtract a
constant), so everything here works on log rates: a pair 3x below the level is as unusual at 400 Gb/s as at
4 Gb/s.

* **Level**: a robust centre of the healthy fabric, not the top of its spread: the median log rate of the
  cells whose links both look healthy. The plain median of every cell breaks down when half the pairs are
  broken (a node of four), so links far below the typical link are set aside first (``healthy_cells``).
* **Spread**: the median absolute deviation of the samples *above* the level, mirrored (a normal spread's
  upper half has the same MAD as the whole). Faults only make pairs slower, so however many pairs a fault
  slows, it cannot widen the yardstick that judges it.
* **Multiple comparisons**: Holm's step-down procedure over every sample tested, so a 512-node matrix with
  130,816 pairs raises no more false alarms than a 3-node one (``FALSE_ALARMS`` over the whole matrix).

Pure numpy; no SciPy.
"""

from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from bench.rails.diagnosis.remeasured import CellIndex

FALSE_ALARMS = 0.05
"""Family-wise chance that noise alone makes one sample of a healthy matrix a suspect (which is then
re-measured, or must be corroborated by the other pairs of a link, node or rail)."""

LONE_FALSE_ALARMS = 0.01
"""The same for a lone pair named without re-measurement (confirmation off): nothing else corroborates it."""

SIGMA_FLOOR = 0.02
"""Smallest spread of log rates believed (2%): a perfectly steady synthetic fabric is not noiseless."""

OUTLYING_LINK = 0.5
"""A link whose typical partner runs at under half the typical link's rate is left out of the level."""

TOO_NOISY = 0.02
"""When only a part at under 2% of the healthy level could be told from noise, the relative test gives up."""

MAD_TO_SIGMA = 1.4826
"""MAD x this = the standard deviation of a normal distribution."""

CLASS_SAMPLES = 200
"""The fewest healthy samples within units that their own level and spread are read from: the MAD's standard error
is about 1.17 / sqrt(n) of it, so 200 put the spread within 10% (one standard error); fewer (a testbed of a few
nodes) and the whole matrix's yardstick judges every cell, as it always did."""


def log_rates(values: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """``log(value / scale)``; NaN stays NaN (unmeasured), zero or less is ``-inf`` (nothing moved).

    Computed at the measured values alone: on the unit schedule at 1024 nodes nine cells in ten are never
    measured, and the re-measurements hold only the suspects."""
    if np.broadcast_shapes(values.shape, scale.shape) != values.shape:  # the scale spans more: as numpy would
        values = np.broadcast_to(values, np.broadcast_shapes(values.shape, scale.shape))
    measured = ~np.isnan(values)
    measured_values = values[measured]
    with np.errstate(divide="ignore", invalid="ignore"):
        rates = measured_values / np.broadcast_to(scale, values.shape)[measured]
        np.log(rates, out=rates)
    rates[measured_values <= 0] = -np.inf
    out = np.full(values.shape, np.nan)
    out[measured] = rates
    return out


def _sorted_rows(x: np.ndarray, within: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The values of each row of ``x`` (its last axis) that are not NaN and lie ``within`` the mask, where one is
    given, sorted within their row and laid end to end; each row's count of them and its first one's position.

    Row by row, the first ``count`` values of a sort of the whole row (NaN sorts last) are these: the statistics
    below read them at the same ranks. Gathered, not sorted in place: a 1024-node rail's cells are mostly never
    scheduled, and a sort of every row was a matrix-sized copy and most of a second."""
    rows = x.reshape(-1, x.shape[-1])
    keep = ~np.isnan(rows)
    if within is not None:
        keep &= np.broadcast_to(within, x.shape).reshape(rows.shape)
    row, column = np.nonzero(keep)
    del keep
    count = np.bincount(row, minlength=rows.shape[0])
    first = np.cumsum(count) - count
    # Each row's values packed to the left of a row as wide as the fullest one, NaN after them, and sorted as the
    # whole rows were (NaN sorts last).
    packed = np.full((rows.shape[0], int(count.max(initial=0))), np.nan)
    packed[row, np.arange(len(row)) - first[row]] = rows[row, column]
    packed.sort(axis=-1)
    values = packed[np.arange(packed.shape[1]) < count[:, None]]
    return values, count.reshape(x.shape[:-1]), first.reshape(x.shape[:-1])


def upper_median(x: np.ndarray, axis: int = -1, within: np.ndarray | None = None) -> np.ndarray:
    """The upper median along ``axis`` ignoring NaN (the larger middle value of an even count); NaN if empty.
    ``within``: a mask broadcast to ``x`` of the values to read (the others count as NaN), so that a caller
    need not build a NaN-filled copy of a matrix."""
    if x.shape[axis] == 0:
        return np.full(np.moveaxis(x, axis, -1).shape[:-1], np.nan)
    if within is not None:
        within = np.moveaxis(np.broadcast_to(within, x.shape), axis, -1)
    values, count, first = _sorted_rows(np.moveaxis(x, axis, -1), within)
    out = np.full(count.shape, np.nan)
    has = count > 0
    out[has] = values[first[has] + count[has] // 2]
    return out


def upper_quartile(x: np.ndarray, within: np.ndarray | None = None) -> np.ndarray:
    """``np.nanpercentile(x, 75, axis=-1)``, the same numbers to the bit (its default linear method, its own
    arithmetic: index ``(n-1) * 0.75`` among the ``n`` values, a lone value taken with weight 1, numpy's
    ``_lerp``), without numpy's Python loop over every row: over every link's partners at 32 nodes that loop
    was half of a diagnosis. NaN where a row holds no value; ``within`` as :func:`upper_median`'s."""
    if x.shape[-1] == 0:
        return np.full(x.shape[:-1], np.nan)
    return _upper_quartile_sorted(*_sorted_rows(x, within))


def upper_quartile_of_rows(row: np.ndarray, values: np.ndarray, rows: int) -> np.ndarray:
    """:func:`upper_quartile` of a matrix given by its values alone (``values[i]`` in row ``row[i]``, NaN left
    out), one per row of ``rows``: the same numbers to the bit, from the cells measured rather than a
    matrix-sized copy of them (at 1024 x 8 a dense plane is 67 MB, and nine cells in ten are never scheduled)."""
    keep = ~np.isnan(values)
    row, values = row[keep], values[keep]
    order = np.lexsort((values, row))  # by row, then by value within it, as each row's own sort
    count = np.bincount(row, minlength=rows)
    return _upper_quartile_sorted(values[order], count, np.cumsum(count) - count)


def _upper_quartile_sorted(values: np.ndarray, count_all: np.ndarray, first: np.ndarray) -> np.ndarray:
    """Each row's upper quartile from its values sorted and laid end to end (``_sorted_rows``'s three arrays)."""
    level_all = np.full(count_all.shape, np.nan)
    has = count_all > 0
    count, first = count_all[has], first[has]
    virtual = (count - 1) * 0.75
    below = np.floor(virtual)
    lone = count == 1  # numpy takes the top value at both ends, weight 1
    previous = np.clip(np.where(lone, 0, below), 0, None).astype(np.intp)
    following = np.where(lone, 0, below + 1).astype(np.intp)
    gamma = np.where(lone, 1.0, virtual - below)
    a = values[first + previous]
    b = values[first + following]
    with np.errstate(invalid="ignore"):  # infinite ends: NaN, as numpy's own
        diff = b - a
        level = np.where(gamma >= 0.5, b - diff * (1 - gamma), a + diff * gamma)
    level_all[has] = level
    return level_all


def healthy_cells(cell_median: np.ndarray, measured: np.ndarray) -> np.ndarray:
    """Cells ``[rail, a, b]`` whose two links both look healthy: each link's upper median over its partners
    at least ``OUTLYING_LINK`` x the median link's. A healthy link keeps a healthy upper median while fewer
    than half of its partners are broken, so a broken node or link is set aside even when it spoils half of
    the cells (a node of four, a rail of two); where that leaves too few cells, every cell is kept."""
    per_link = upper_median(cell_median, axis=-1, within=measured)
    finite = per_link[np.isfinite(per_link)]
    if not finite.size:
        return measured
    good = per_link >= float(np.median(finite)) + math.log(OUTLYING_LINK)
    cells = measured & good[:, :, None] & good[:, None, :]
    return cells if cells.sum() >= 2 else measured


def level_and_sigma(samples: np.ndarray) -> tuple[float, float]:
    """The healthy level (median) and spread (MAD, as a standard deviation, floored at SIGMA_FLOOR) of the
    log rates of healthy cells; broken parts were set aside by :func:`healthy_cells`, so both sides count."""
    finite = samples[np.isfinite(samples)]
    if not finite.size:
        return 0.0, SIGMA_FLOOR
    level = float(np.median(finite))
    return level, max(SIGMA_FLOOR, MAD_TO_SIGMA * float(np.median(np.abs(finite - level))))


@dataclass(frozen=True)
class ByClass:
    """One number for the cells within units (``inside``, ``[rail, a, b]``) and another for the rest, read only at
    the cells a test reaches: spread over the matrix it would be one more matrix-sized array (67 MB at 1024 x 8)."""

    inside: np.ndarray
    within: float
    elsewhere: float

    def at(self, index: tuple[np.ndarray, ...]) -> np.ndarray:
        """The number at the cells ``index`` (its last three arrays: rail, a, b; a repeat axis may lead)."""
        return np.where(self.inside[index[-3:]], self.within, self.elsewhere)

    def below(self, xs: np.ndarray, offset: float, cells: CellIndex | None = None) -> np.ndarray:
        """``xs < number + offset`` for ``xs`` ``[..., rail, a, b]``, or ``[pass, i]`` at ``cells``, each cell against
        its class's number."""
        inside = self.inside if cells is None else self.inside[cells]
        with np.errstate(invalid="ignore"):
            return np.where(inside, xs < self.within + offset, xs < self.elsewhere + offset)


Level = float | ByClass
"""A level or a spread of log rates: the whole matrix's, or one per class of cells (:func:`within_units`)."""


def below(xs: np.ndarray, level: Level, offset: float = 0.0, cells: CellIndex | None = None) -> np.ndarray:
    """``xs < level + offset``, each cell against its own class's level where the level is one per class.
    ``cells``: ``xs`` is ``[pass, i]`` at these cells (rail, a, b), not dense planes."""
    return level.below(xs, offset, cells) if isinstance(level, ByClass) else xs < level + offset


def within_units(inside_samples: np.ndarray, inside: np.ndarray, level: float, sigma: float) -> tuple[Level, Level]:
    """The level and spread that judge each cell, where the cabling says which cells lie within units
    (``inside``, ``[rail, a, b]``; ``inside_samples``: the log rates of its healthy cells).

    A flow within a unit never leaves its leaf, so nothing between units slows it: its noise is its links' own.
    The flows between units share uplinks with the round's other flows, and under ECMP's collisions or a
    taper their rates spread far wider. One yardstick over both is the wide one: on the fabric model's ECMP
    regime at 1024 x 8 it was 0.19 in log (a 20% spread, where the cells within units spread 0.03), and a cable
    slowing half its partners within its unit to 0.43 of line was within noise there (3.7 of its sigmas, where Holm
    over the 254,000 pairs measured asks 5.1).

    So the cells within units are judged against their own level and spread, read from their own healthy
    samples, when those are at least :data:`CLASS_SAMPLES`, spread narrower than the whole and sit no lower; the
    cells between units keep the whole matrix's, as before. Otherwise both keep the whole's. Every z-score within
    units is then at least what it was, and Holm's step-down never rejects less for larger z, so nothing that
    was slow before is slow no longer."""
    finite = inside_samples[np.isfinite(inside_samples)]
    if finite.size < CLASS_SAMPLES:
        return level, sigma
    inside_level, inside_sigma = level_and_sigma(finite)
    if inside_sigma >= sigma or inside_level < level:
        return level, sigma
    return ByClass(inside, inside_level, level), ByClass(inside, inside_sigma, sigma)


def upper_sigma(x: np.ndarray, level: float) -> float:
    """Robust spread of the log rates ``x`` from the deviations above ``level`` (floored at SIGMA_FLOOR)."""
    values = x[np.isfinite(x)]
    above = values[values >= level] - level
    if above.size < 3:
        # Too few samples above the level to read a spread from: fall back to both sides.
        above = np.abs(values - level)
    if not above.size:
        return SIGMA_FLOOR
    return max(SIGMA_FLOOR, MAD_TO_SIGMA * float(np.median(above)))


def holm_significant(z: np.ndarray, alpha: float = FALSE_ALARMS) -> np.ndarray:
    """Which one-sided z-scores Holm's step-down procedure rejects at family-wise level ``alpha``.

    NaN never counts (not tested), ``+inf`` always does. Sorted from the largest z, the i-th (from 0) is
    rejected while every earlier one was and ``z >= inv_cdf(1 - alpha / (m - i))``.
    """
    tested = ~np.isnan(z)
    m = int(tested.sum())
    out = np.zeros(z.shape, dtype=bool)
    if m == 0:
        return out
    flat = z[tested]
    normal = NormalDist()
    # Holm's most lenient cut is the last, alpha / 1: below it nothing is rejected at any rank, so only the
    # z-scores above it are sorted (their ranks among all m are the same), not the 500,000 of a 256 x 8 matrix.
    top = np.flatnonzero(flat >= normal.inv_cdf(1.0 - alpha))
    order = top[np.argsort(-flat[top], kind="stable")]
    ranked = flat[order]
    # Everything at or beyond the strictest (Bonferroni) cut is rejected whatever its rank.
    rejected = int((ranked >= normal.inv_cdf(1.0 - alpha / m)).sum())
    while rejected < len(ranked) and ranked[rejected] >= normal.inv_cdf(1.0 - alpha / (m - rejected)):
        rejected += 1
    hits = np.zeros(m, dtype=bool)
    hits[order[:rejected]] = True
    out[tested] = hits
    return out


def holm_below(reference: Level, xs: np.ndarray, sigma: Level, alpha: float = FALSE_ALARMS) -> np.ndarray:
    """``[..., a, b]``: the pairs whose log rate ``xs`` Holm's procedure finds below ``reference`` (one-sided z
    ``(reference - xs) / sigma`` at family-wise ``alpha``), each pair tested once, as ``[a, b]`` with a < b, and
    the verdict mirrored to ``[b, a]``; NaN (unmeasured) is never tested. ``reference`` and ``sigma`` may be one
    per class of cells (:class:`ByClass`): each cell's z is read against its own class's, one Holm over all.

    The z-scores are computed at the measured pairs alone, in the matrix's order (Holm's ties break by it), not
    through a matrix-sized array of NaN: on the unit schedule at 1024 nodes most pairs never run, and the
    re-measurements hold only the suspects."""
    tested = ~np.isnan(xs)
    tested &= np.triu(np.ones(xs.shape[-2:], dtype=bool), k=1)
    at = np.nonzero(tested)
    del tested
    hits = _holm_at(reference, xs[at], at, sigma, alpha)
    out = np.zeros(xs.shape, dtype=bool)
    out[at] = hits
    mirrored = (*at[:-2], at[-1], at[-2])
    out[tuple(i[hits] for i in mirrored)] = True
    return out


def holm_below_cells(
    reference: Level, xs: np.ndarray, cells: CellIndex, sigma: Level, alpha: float = FALSE_ALARMS
) -> np.ndarray:
    """:func:`holm_below` of samples held at their cells (``xs``: ``[pass, i]`` at ``cells``, rail, a < b, in the
    dense planes' order, ``bench.rails.diagnosis.remeasured``): the same verdicts, ``[pass, i]``."""
    tested = np.nonzero(~np.isnan(xs))
    at = (tested[0], *(c[tested[1]] for c in cells))
    out = np.zeros(xs.shape, dtype=bool)
    out[tested] = _holm_at(reference, xs[tested], at, sigma, alpha)
    return out


def _holm_at(reference: Level, xs: np.ndarray, at: tuple[np.ndarray, ...], sigma: Level, alpha: float) -> np.ndarray:
    """Holm over the samples ``xs`` at cells ``at`` (their last three arrays: rail, a, b), each against its class."""
    ref = reference.at(at) if isinstance(reference, ByClass) else reference
    spread = sigma.at(at) if isinstance(sigma, ByClass) else sigma
    return holm_significant((ref - xs) / spread, alpha)


def bonferroni_z(tests: int, alpha: float = FALSE_ALARMS) -> float:
    """The one-sided z a single test must reach when ``tests`` are made at family-wise level ``alpha``."""
    return NormalDist().inv_cdf(1.0 - alpha / max(1, tests))


def too_noisy(sigma: float, tests: int) -> bool:
    """True when noise alone spans more than 1/TOO_NOISY at the significance this many tests need."""
    return math.exp(-bonferroni_z(tests) * sigma) < TOO_NOISY


def rail_levels(x: np.ndarray, measured: np.ndarray) -> np.ndarray:
    """Median log rate of each rail's measured cells (``x`` is ``[rail, a, b]``); NaN where none."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an unmeasured rail's all-NaN slice
        return np.nanmedian(np.where(measured, x, np.nan), axis=(1, 2))


NAME_FALSE_ALARMS = 1e-5
"""Family-wise chance, per run and per kind of part, that noise alone gets a part *named* after confirmation:
the screen above lets suspects through at 5%, re-measurement must then stand out of what noise reproduces.
Derived, not fitted: a cluster's nightly and acceptance runs come to about a thousand over its life, and a
healthy part named in any of them is the failure an operator remembers; 5% over a thousand runs and the five
kinds of part judged from reproduced suspects (link, pair, leaf, uplink, spine) is 0.05 / 1000 / 5 = 1e-5.
At 1e-4 the harsh fabric model's 64 x 8 matrix named a healthy pair or cable in about one fault scenario in two
hundred (``ci/diagnosis_sim.py --regime realistic``)."""


def poisson_sf(k: int, mu: float) -> float:
    """P(X >= k) for X ~ Poisson(mu): the chance noise alone gives ``k`` or more events where ``mu`` are due."""
    if k <= 0:
        return 1.0
    if mu <= 0:
        return 0.0
    # Summed from k upward in log space: the terms fall fast once past mu, and k! never overflows.
    total, i = 0.0, k
    term = math.exp(k * math.log(mu) - mu - math.lgamma(k + 1))
    while term > total * 1e-16 and i < k + 10_000:
        total += term
        i += 1
        term *= mu / i
    return min(1.0, total)


def binom_sf(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p)."""
    if k <= 0:
        return 1.0
    if k > n or p <= 0:
        return 0.0
    if p >= 1:
        return 1.0
    log_p, log_q = math.log(p), math.log1p(-p)
    terms = (
        math.exp(math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * log_p + (n - i) * log_q)
        for i in range(k, n + 1)
    )
    return min(1.0, sum(terms))


def most_beyond(tails: list[float], alpha: float) -> bool:
    """More than half of ``tails`` (each an independent test's chance under noise alone, as :func:`poisson_sf`
    gives) at or under the level at which that many of them would fall there together by chance at ``alpha`` (the
    binomial tail of the count, solved for the level): evidence that must hold on most of several rails, each rail's
    own, so one rail's strong evidence cannot carry the others (8 rails: each at 4.5% for ``NAME_FALSE_ALARMS``)."""
    if not tails:
        return False
    return sum(tail <= _most_level(len(tails), alpha) for tail in tails) > len(tails) // 2


@functools.lru_cache(maxsize=64)
def _most_level(count: int, alpha: float) -> float:
    """The level at which more than half of ``count`` independent tests fall together by chance at ``alpha``."""
    most, low, high = count // 2 + 1, 0.0, 1.0
    for _ in range(50):  # bisection to well under a part in a million of the level
        mid = (low + high) / 2
        low, high = (mid, high) if binom_sf(most, count, mid) <= alpha else (low, mid)
    return low
