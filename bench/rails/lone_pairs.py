"""Lone pairs at scale: a pair slow in most of its samples is named only when noise does not explain them.

A part larger than a pair (a link, a leaf...) is convicted by many cells; a lone pair only by its own few
samples (repeats and re-measurements), so on a large heavy-tailed matrix some healthy pair is slow in most of
its samples by chance alone. ``beyond_noise`` asks the fabric's own samples how rare that is.
"""

from __future__ import annotations

import numpy as np

from bench.rails import noise
from bench.rails.parts import Cells


def beyond_noise(cells: Cells, between: np.ndarray | None = None) -> np.ndarray:
    """``[rail, a, b]``: the lone pairs (``Cells.pair_slow``) whose slow samples noise does not explain.

    A pair slow in most samples is named where the matrix cannot say otherwise; where it can, its samples must
    be slower than the fabric's own samples show noise to be, family-wise over every cell. With a heavy-tailed
    fabric the screen's normal yardstick is not enough at scale: on the fabric model's 64 x 8 matrix a healthy
    pair slow in two of its three samples, each among the matrix's three slowest, turned up in 1 of 1,000 clean
    runs. So, by ranks: for j from a majority to all of its n samples, the share q of every other cell's matrix
    samples at or below its j-th slowest (counted as one of them, so never zero), and P(Binomial(n, q) >= j)
    times the cells tested and the j tried must be at most ``noise.NAME_FALSE_ALARMS``. A sample whose budget ran
    out or that moved nothing is beyond noise as such. Where the matrix is too small for ranks to reach that
    level at all (a few nodes: even the slowest possible samples would not), the screen's significance stands,
    as before. Where the cabling is known (``between``: the cells whose flows cross units), a pair is ranked
    among the cells of its own class: congestion slows cells across units and never within a leaf, so a pair
    across units is no more unusual than the congested samples around it, and one within a unit is held to
    the quieter samples of its class."""
    out = np.zeros(cells.measured.shape, dtype=bool)
    candidates = np.triu(cells.pair_slow, k=1)
    if not candidates.any():
        return out
    matrix = cells.matrix
    ones = np.ones((1, len(matrix.rails), 1, 1))
    pool = np.where(matrix.stopped_flags, -np.inf, noise.log_rates(matrix.busbw, ones))
    again = np.where(matrix.confirm_stopped_flags, -np.inf, noise.log_rates(matrix.confirm_values, ones))
    upper = np.triu(np.ones(cells.measured.shape[1:], dtype=bool), k=1)
    # Other lone pairs are left out of noise's samples: two slow pairs must not hide each other.
    classes = [cells.measured] if between is None else [cells.measured & between, cells.measured & ~between]
    pools = []
    for region in classes:
        others = pool[:, region & upper[None] & ~candidates]
        pools.append(np.sort(others[~np.isnan(others)]))
    tested = max(1, int((cells.measured & upper[None]).sum()))
    for k, a, b in zip(*np.nonzero(candidates), strict=True):
        pooled = pools[0] if between is None or between[k, a, b] else pools[1]
        total = len(pooled)
        own = np.concatenate([pool[:, k, a, b], again[:, k, a, b]])
        own = np.sort(own[~np.isnan(own)])
        n = len(own)
        tries = n - n // 2
        if own[n // 2] == -np.inf or (1 / (total + 1)) ** n * tested * tries > noise.NAME_FALSE_ALARMS:
            out[k, a, b] = out[k, b, a] = True
            continue
        best = 1.0
        for j in range(n // 2 + 1, n + 1):
            q = (int(np.searchsorted(pooled, own[j - 1], side="right")) + 1) / (total + 1)
            best = min(best, noise.binom_sf(j, n, q))
        if best * tested * tries <= noise.NAME_FALSE_ALARMS:
            out[k, a, b] = out[k, b, a] = True
    return out


def shared_links(lone: np.ndarray) -> np.ndarray:
    """``[rail, node]``: the links at which two or more lone pairs (``[rail, a, b]``, symmetric) meet.

    Each lone pair already stands out of noise on its own; two of them on one rail sharing a node are one
    fault of that node's link far more often than two faults of two cables that happen to meet (a link
    flapping in a few rounds of a 256-node matrix leaves a handful of pairs slow in most of their samples and
    the rest normal). Greedily, the link with the most lone pairs first, while it has two or more and more than
    any of its partners: where they tie (every node of one group slow with every node of another, a switch path
    seen without the cabling) a link would be a guess, and the pairs stay pairs."""
    left = lone.copy()
    out = np.zeros(lone.shape[:2], dtype=bool)
    tried = np.zeros(lone.shape[:2], dtype=bool)
    while True:
        counts = left.sum(axis=2)
        k, a = np.unravel_index(int(np.argmax(np.where(tried, -1, counts))), counts.shape)
        if tried[k, a] or counts[k, a] < 2:
            return out
        tried[k, a] = True
        partners = np.flatnonzero(left[k, a])
        if (counts[k, partners] >= counts[k, a]).any():
            continue
        out[k, a] = True
        left[k, a, :] = left[k, :, a] = False
