"""Lone pairs at scale: a pair slow in most of its samples is named only when noise does not explain them.

A part larger than a pair (a link, a leaf...) is convicted by many cells; a lone pair only by its own few
samples (repeats and re-measurements), so on a large heavy-tailed matrix some healthy pair is slow in most of
its samples by chance alone. ``beyond_noise`` asks the fabric's own samples how rare that is.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from bench.rails.diagnosis import noise
from bench.rails.diagnosis.cells import Cells
from bench.rails.diagnosis.noise import FALSE_ALARMS


def beyond_noise(cells: Cells, between: np.ndarray | None = None) -> np.ndarray:
    """``[rail, a, b]``: the lone pairs (``Cells.pair_slow``) whose slow samples noise does not explain.

    A pair slow in most samples is named where the matrix cannot say otherwise; where it can, its samples must
    be slower than the fabric's own samples show noise to be, family-wise over every cell. With a heavy-tailed
    fabric the screen's normal yardstick is not enough at scale: on the fabric model's 64 x 8 matrix a healthy
    pair slow in two of its three samples, each among the matrix's three slowest, turned up in 1 of 1,000 clean
    runs. So, by ranks: for j from a majority to all of its n samples, the share q of every other cell's matrix
    samples at or below its j-th slowest (counted as one of them, so never zero), and P(Binomial(n, q) >= j)
    times the cells tested and the j tried must be at most ``noise.NAME_FALSE_ALARMS``. A sample whose budget ran
    out under its peers' level, or that moved nothing, is beyond noise as such. Where the matrix is too small for
    ranks to reach that level at all (a few nodes: even the slowest possible samples would not), the screen's
    significance stands where the pair's slow majority is deeper than any sample of this run's transients apart
    from its own links (:func:`noise_floor`). Where the cabling is known (``between``: the cells whose flows cross
    units), a pair is ranked
    among the cells of its own class: congestion slows cells across units and never within a leaf, so a pair
    across units is no more unusual than the congested samples around it, and one within a unit is held to
    the quieter samples of its class.

    Every sample is ranked by how far it runs under its own pair's level (:func:`link_levels`), not by its rate:
    healthy links differ by a few percent, and a pair of two slower ones reaches the pool's slowest rates with
    the same transients that leave a faster pair mid-pool. On the fabric model's 200 x 8 matrix a healthy pair
    whose slower end ran 5% under the rail's median was slow three times at 69-70% of that median (transients
    at 72-73% of its own level), each among the pool's nine slowest by rate, and was named; by depth under its
    own level it is as common as any transient."""
    out = np.zeros(cells.measured.shape, dtype=bool)
    candidates = np.triu(cells.pair_slow, k=1)
    if not candidates.any():
        return out
    matrix = cells.matrix
    levels = link_levels(cells.matrix.busbw, between)
    # Log rates are taken where they are read (the candidates, the other cells of each class, the transients),
    # never as whole matrix-sized arrays beside the judge's own.
    ck, ca, cb = np.nonzero(candidates)
    mine = pool_at(cells, (ck, ca, cb), levels)
    again = noise.log_rates(matrix.again.at(ck, ca, cb), np.ones(1)) - pair_level(levels, (ck, ca, cb))[None]
    again[matrix.again.stopped_at(ck, ca, cb) & cells.slow_again[:, ck, ca, cb]] = -np.inf
    upper = np.triu(np.ones(cells.measured.shape[1:], dtype=bool), k=1)
    # Other lone pairs are left out of noise's samples: two slow pairs must not hide each other.
    classes = [cells.measured] if between is None else [cells.measured & between, cells.measured & ~between]
    pools = []
    for region in classes:
        others = pool_at(cells, np.nonzero(region & upper[None] & ~candidates), levels).ravel()
        pools.append(np.sort(others[~np.isnan(others)]))
    every: np.ndarray | None = None  # both classes' samples in one pool, made where a pair needs it
    tested = max(1, int((cells.measured & upper[None]).sum()))
    floor = noise_floor(cells, levels)
    either_way = candidates | np.swapaxes(candidates, 1, 2)
    for i, (k, a, b) in enumerate(zip(ck.tolist(), ca.tolist(), cb.tolist(), strict=True)):
        of_class = 0 if between is None or between[k, a, b] else 1
        own = np.concatenate([mine[:, i], again[:, i]])
        own = np.sort(own[~np.isnan(own)])
        n = len(own)
        tries = n - n // 2
        if own[n // 2] == -np.inf:
            out[k, a, b] = out[k, b, a] = True
            continue
        # The pair's own links' other samples are left out of noise's too, as its floor leaves them out: a
        # link that flaps slows its other partners now and then, and those samples are its fault, not noise.
        pooled = pools[of_class]
        links = links_samples(cells, levels, (k, a, b), classes[of_class], either_way)
        if of_class == 1 and _too_few(len(pooled) - len(links), n, tested * tries):
            # A pair within a unit whose class is too few to rank (a small fabric's leaves) is ranked among every
            # cell: the samples between units that congestion slows only make the test stricter, where the
            # fallback below is no family-wise test at all. A candidate's slow majority beats a run's m transients
            # by chance about once in m + 1: on 32 x 2 in leaves of 8 (``tapered-ecmp``, clean runs 700032,
            # 700090, 700101, 700131) healthy pairs within a leaf, caught by two of the regime's outliers at 0.69
            # of line, were named in 4 of 150 clean runs.
            if every is None:
                every = np.sort(np.concatenate(pools))
            pooled = every
            links = links_samples(cells, levels, (k, a, b), cells.measured, either_way)
        total = len(pooled) - len(links)
        if _too_few(total, n, tested * tries):
            # Too few samples to rank: the screen's significance stands where the pair's slow majority is
            # deeper than any sample this run's own noise gave.
            out[k, a, b] = out[k, b, a] = bool(own[n // 2] < floor(k, a, b))
            continue
        best = 1.0
        for j in range(n // 2 + 1, n + 1):
            below = np.searchsorted(pooled, own[j - 1], side="right") - np.searchsorted(links, own[j - 1], side="right")
            q = (int(below) + 1) / (total + 1)
            best = min(best, noise.binom_sf(j, n, q))
        if best * tested * tries <= noise.NAME_FALSE_ALARMS:
            out[k, a, b] = out[k, b, a] = True
    return out


def _too_few(total: int, samples: int, tests: int) -> bool:
    """Whether ``total`` samples of noise are too few to rank ``samples`` of a pair among at all: even the slowest
    possible ranks would not stand out at ``noise.NAME_FALSE_ALARMS`` over ``tests``."""
    return (1 / (total + 1)) ** samples * tests > noise.NAME_FALSE_ALARMS


def links_samples(
    cells: Cells, levels: np.ndarray, pair: tuple[int, int, int], region: np.ndarray, left_out: np.ndarray
) -> np.ndarray:
    """The samples of noise's pool (the cells of ``region`` not ``left_out``, both ``[rail, a, b]``) that share a
    link with ``pair`` (``(rail, a, b)``), sorted, as :func:`pool_at` ranks them. Read from the pair's two rows
    alone: at 1024 nodes a rail's plane is a million cells, and a clean run has thousands of candidates."""
    k, a, b = pair
    lo, hi = [], []
    for end in (a, b):
        row = region[k, end] & ~left_out[k, end]
        row[[a, b]] = False
        partners = np.flatnonzero(row)
        lo.append(np.minimum(end, partners))
        hi.append(np.maximum(end, partners))
    first, second = np.concatenate(lo), np.concatenate(hi)
    values = pool_at(cells, (np.full(len(first), k), first, second), levels).ravel()
    return np.sort(values[~np.isnan(values)])


def link_levels(busbw: np.ndarray, between: np.ndarray | None) -> np.ndarray:
    """``[rail, node]``: each link's healthy log rate, the upper quartile of its cells' rates over its partners.

    The upper quartile, not the median: a link that flaps in a third of its samples, or a healthy one with a
    few transients, keeps its healthy level (with leaves of 8 a link has 7 partners within its unit, and a
    median of them was a flapping link's slow level: its lone pairs ranked as nothing beyond it, and the cable
    went unnamed). Where the cabling is known, only its cells within units count (nothing congests them); a link
    with none there, or none measured at all, takes the quartile of what it has, then its rail's median. Samples
    that moved nothing are left out: a dead link's pairs are ranked against its rail's level, so what they moved
    (nothing) stays the deepest sample there is. ``busbw``: the pair matrix's samples (``[repeat, rail, a, b]``, NaN
    where unmeasured)."""
    _, nrails, n, _ = busbw.shape
    # Read at the cells measured alone, never as a matrix-sized copy (67 MB a sample at 1024 x 8).
    k, a, b = np.nonzero(~np.isnan(busbw).all(axis=0))
    row = k * n + a  # the link [rail, a] of the cell's row
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        # A cell whose samples all moved nothing is NaN, as an unmeasured one; a link with none measured is filled
        # below.
        warnings.simplefilter("ignore", RuntimeWarning)
        samples = busbw[:, k, a, b]
        samples[~(samples > 0)] = np.nan
        cell = samples[0] if samples.shape[0] == 1 else np.nanmedian(samples, axis=0)
        np.log(cell, out=cell)
        levels = noise.upper_quartile_of_rows(row, cell, nrails * n).reshape(nrails, n)
        if between is not None:
            inside_cells = ~between[k, a, b]
            inside = noise.upper_quartile_of_rows(row[inside_cells], cell[inside_cells], nrails * n).reshape(nrails, n)
            levels = np.where(np.isnan(inside), levels, inside)
        rail = np.nanmedian(levels, axis=1)
    return np.where(np.isnan(levels), np.nan_to_num(rail, nan=0.0)[:, None], levels)


def pair_level(levels: np.ndarray, index: tuple[np.ndarray, ...]) -> np.ndarray:
    """Each cell's expected log rate (``index``: ``(rail, a, b)``): its slower link's level, as a flow runs at
    the slower of its two NICs."""
    k, a, b = index
    return np.minimum(levels[k, a], levels[k, b])


def pool_at(cells: Cells, index: tuple[np.ndarray, ...], levels: np.ndarray) -> np.ndarray:
    """``[repeat, cell]``: the matrix samples' log rates at cells ``index`` (``(rail, a, b)``) under their pairs'
    levels (``levels``: :func:`link_levels`), as noise's pool ranks them. A sample whose budget ran out ranks
    as nothing moved only where the judge found it slow by its rate (``localise._judge``): on a loaded host a
    cell at its peers' level runs long too, and ranked at -inf it alone made its pair stand out of noise
    ("3.2 Gb/s = 126% of peers' ... pair fault", issue 43)."""
    k, a, b = index
    matrix = cells.matrix
    out = noise.log_rates(matrix.busbw[:, k, a, b], np.ones(1)) - pair_level(levels, index)[None]
    out[(matrix.stopped_flags & cells.slow_sample)[:, k, a, b]] = -np.inf
    return out


def noise_floor(cells: Cells, levels: np.ndarray) -> Callable[[int, int, int], float]:
    """For a pair ``(rail, a, b)``: the slowest matrix sample (log rates, :func:`pool_at`) of a transient, a
    suspect that re-measured normal and so noise by its own re-measurement, that shares neither of the pair's
    links (slow partners of one end are evidence against that end, ``guilty_ends``, not noise); ``+inf`` where
    there is none (any depth counts).

    The screen's yardstick is the spread above the level, which a loaded host's noise does not show: a
    descheduled rank slows a sample, never speeds one up, so the low tail is far heavier than the upper half
    says. On the loaded 6-node testbed (issue 43) pairs slow in two of their three samples stood out of that
    yardstick and were named, with transients as deep beside them. The run's transients say how deep its noise
    went."""
    transient = cells.suspect & ~cells.reproduces if cells.remeasured else np.zeros_like(cells.suspect)
    # Each transient's slowest slow sample, listed by cell (every other cell's is +inf, and counts for nothing).
    tk, ta, tb = np.nonzero(transient)
    slow = cells.slow_sample[:, tk, ta, tb]
    depths = np.where(slow, pool_at(cells, (tk, ta, tb), levels), np.inf).min(axis=0, initial=np.inf)

    def floor(k: int, a: int, b: int) -> float:
        apart = ~((tk == k) & ((ta == a) | (ta == b) | (tb == a) | (tb == b)))
        return float(depths[apart].min(initial=np.inf))

    return floor


def shared_links(lone: np.ndarray) -> np.ndarray:
    """``[rail, node]``: the links at which two or more lone pairs (``[rail, a, b]``, symmetric) meet.

    Each lone pair already stands out of noise on its own; two of them on one rail sharing a node are one
    fault of that node's link far more often than two faults of two cables that happen to meet (a link
    flapping in a few rounds of a 256-node matrix leaves a handful of pairs slow in most of their samples and
    the rest normal). Greedily, the link with the most lone pairs first, while it has two or more and more than
    any of its partners: where they tie (every node of one group slow with every node of another, a switch path
    seen without the cabling) a link would be a guess, and the pairs stay pairs. And the meeting must be more than
    chance: where a rail has many lone pairs (a broken spine under ECMP slows hundreds of pairs across units, each
    in its own few rounds), some of them meet at a node by chance alone, so a link's count must be beyond what the
    rail's other lone pairs give each node (Poisson, family-wise over the links at ``FALSE_ALARMS``)."""
    left = lone.copy()
    out = np.zeros(lone.shape[:2], dtype=bool)
    tried = np.zeros(lone.shape[:2], dtype=bool)
    ends = lone.sum(axis=2)  # each lone pair counts at both its ends
    nodes = np.maximum(1, lone.shape[1] - 1)
    links = max(1, int(lone.shape[0] * lone.shape[1]))
    while True:
        counts = left.sum(axis=2)
        k, a = np.unravel_index(int(np.argmax(np.where(tried, -1, counts))), counts.shape)
        if tried[k, a] or counts[k, a] < 2:
            return out
        tried[k, a] = True
        partners = np.flatnonzero(left[k, a])
        if (counts[k, partners] >= counts[k, a]).any():
            continue
        due = float(ends[k].sum() - 2 * ends[k, a]) / nodes  # the other lone pairs' ends, over the other nodes
        if noise.poisson_sf(int(counts[k, a]), due) * links > FALSE_ALARMS:
            continue
        out[k, a] = True
        left[k, a, :] = left[k, :, a] = False


def guilty_ends(cells: Cells, lone: np.ndarray, open_cells: np.ndarray, between: np.ndarray | None) -> np.ndarray:
    """``[rail, node]``: for each lone pair, the end whose link explains it, where one end alone shows more.

    A link that flaps is slow in the rounds that caught it bad, and re-measurement is luck: on a five-node
    testbed a link shaped 2 s on and 2 s off was slow with three of its four partners in the matrix, at 3-8% of
    its peers' rate, and one re-measurement of one of them fell in an "on" period: one pair stood out, the
    other two were transients, and the pair was named ("check the switch path"). The transients are evidence
    all the same. Each end's other matrix samples (cells no part explains and no other lone pair holds) that
    stand out of the fabric's spread (``Cells.beyond_noise``: the screen's z-test at ``LONE_FALSE_ALARMS``) are
    counted against what the rest of the matrix shows (:class:`Outliers`); when one end has two or more, more
    than noise gives at the screen's family-wise level over both ends, and the other end is no more than noise,
    the first end's link is named instead of the pair. This only chooses between the explanations of a pair
    already named. Other lone pairs do not count: a block between two groups (a switch path seen without the
    cabling) stays pairs, as ``shared_links`` leaves it."""
    out = np.zeros(lone.shape[:2], dtype=bool)
    if not lone.any():
        return out
    free = open_cells & cells.measured & ~lone
    outliers = Outliers.of(cells, free, between)
    for k, a, b in zip(*np.nonzero(np.triu(lone, k=1)), strict=True):
        chance = {end: outliers.chance(k, end, np.flatnonzero(free[k, end])) for end in (a, b)}
        for end, peer in ((a, b), (b, a)):
            if 2 * chance[end] <= FALSE_ALARMS and chance[peer] > FALSE_ALARMS:
                out[k, end] = True
    return out


@dataclass(frozen=True, eq=False)
class Outliers:
    """Per cell ``[rail, a, b]``: matrix samples beyond the fabric's noise, and noise's rate of them per link with
    that link's own cells left out (so the link under test cannot raise its own yardstick)."""

    beyond: np.ndarray
    samples: np.ndarray
    classes: tuple[np.ndarray, ...]
    """Masks ``[rail, a, b]`` that partition the cells: one, or within units and across units (congestion lives
    only across)."""
    rates: tuple[np.ndarray, ...]
    """Per class, ``[rail, node]``: the share of matrix samples beyond noise outside that link's cells."""

    @classmethod
    def of(cls, cells: Cells, free: np.ndarray, between: np.ndarray | None) -> Outliers:
        # Counts of a cell's samples fit int32 (sums of them are taken in int64, numpy's default for smaller
        # integers): each matrix-sized array and its masked copies are 34 MB at 1024 x 8, not 67.
        beyond = cells.beyond_noise.sum(axis=0, dtype=np.int32)
        samples = (~np.isnan(cells.matrix.busbw)).sum(axis=0, dtype=np.int32)
        classes = (free,) if between is None else (free & between, free & ~between)
        upper = np.triu(np.ones(free.shape[1:], dtype=bool), k=1)[None]
        rates = []
        for region in classes:
            # Both arrays are symmetric: a link's row holds each of its cells once, the upper triangle every cell.
            hits, seen = np.where(region, beyond, 0), np.where(region, samples, 0)
            rest_hits = float((hits * upper).sum()) - hits.sum(axis=2)
            rest_seen = np.maximum(1.0, float((seen * upper).sum()) - seen.sum(axis=2))
            rates.append(np.minimum(1.0, (rest_hits + FALSE_ALARMS) / rest_seen))
        return cls(beyond, samples, classes, tuple(rates))

    def chance(self, k: int, a: int, partners: np.ndarray) -> float:
        """The chance noise alone puts as many of link ``(k, a)``'s samples with ``partners`` beyond noise (1 where
        fewer than two are: one outlier says nothing of a link)."""
        count = int(self.beyond[k, a, partners].sum())
        if count < 2:
            return 1.0
        expected = 0.0
        for region, rate in zip(self.classes, self.rates, strict=True):
            expected += float(rate[k, a]) * float(self.samples[k, a, partners][region[k, a, partners]].sum())
        return noise.poisson_sf(count, expected)
