"""The absolute line (line rate x pass fraction) judged by a link's level, not by single samples.

A healthy fabric's weakest links sit close to the line: the fabric model's healthy floor is 92% of line, and a pair
runs at its slower end less its own noise, so such a link's cells read 89-91% of line with a line at 90%. A link's
level read from its first samples alone is a point estimate from as few as 7 partners (leaves of 8), and such a link
read under the line by it one run in a few dozen; its re-measurements, taken to confirm exactly those cells, then
read under the line in turn and convicted it (the fabric model's ``tapered-ecmp`` with leaves of 8, clean seeds
41031 and 41083: node060 on rail 5 at 359.7 Gb/s against a line of 360). So a link found under the line by its
first samples is read again with every sample of its cells, each cell at the median of its first sample(s) and
its re-measurements: a healthy link's re-measurements scatter around its level, a slow cable's stay under it.
"""

from __future__ import annotations

import warnings

import numpy as np

from bench.rails.diagnosis import noise
from bench.rails.diagnosis.remeasured import CellIndex, find


def low_cells(
    cell_median: np.ndarray,
    measured: np.ndarray,
    between: np.ndarray | None,
    mark: float,
    again: tuple[CellIndex, np.ndarray] | None = None,
) -> np.ndarray:
    """``[rail, a, b]``: the cells that cross a link whose level sits under the absolute line (``mark``, in log).

    The absolute line judges a part's level, not single samples: a healthy fabric's weakest links and its
    congested samples dip under 90% of line now and then. A sample under the line counts as slow when a link
    it crosses sits under the line by its level (slow with three quarters of its partners), or when it is
    under the line by more than the spread the run measured across healthy cells can explain (Holm over all
    samples, as the relative test).
    The level is the upper quartile over partners, not the median: a slow leaf of one of two units spoils
    exactly half of every other link's partners on its rail, and must not drag those links under the line.
    Where the cabling is known, the level is taken within the unit and across units apart, and the link is
    low only when both are: congestion and a static route's degraded uplink slow a link's partners across
    units alone (a whole class of its partners, more than a quarter of them), while its own cable slows both.

    ``again``: the re-measured cells ``(rail, low, high)`` and their log rates ``[pass, i]``, judged as the
    matrix's samples are; a link under the line by its first samples is read again with them (the module's
    docstring says why).
    """
    low_link = _low_links(cell_median, measured, between, mark)
    if again is not None and low_link.any():
        _read_again(low_link, cell_median, measured, between, mark, *again)
    return low_link[:, :, None] | low_link[:, None, :]


def _low_links(cell_median: np.ndarray, measured: np.ndarray, between: np.ndarray | None, mark: float) -> np.ndarray:
    """``[rail, a]`` (or ``[link]`` for rows): whose level, by class where the cabling is known, is under ``mark``."""
    classes = [measured] if between is None else [measured & between, measured & ~between]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # links with no measured partner: NaN, never low
        levels = [noise.upper_quartile(cell_median, within=c) for c in classes]
        quartile = levels[0] if len(levels) == 1 else np.fmax(*levels)
    return quartile < mark


def _read_again(
    low_link: np.ndarray,
    cell_median: np.ndarray,
    measured: np.ndarray,
    between: np.ndarray | None,
    mark: float,
    cells: CellIndex,
    x_again: np.ndarray,
) -> None:
    """Clear in ``low_link`` each link whose level, every sample of its cells taken in, is not under ``mark``.

    Only the links found low are read again: a handful of rows, where a dense copy of the matrix with every
    re-measurement folded in would be 67 MB at 1024 x 8."""
    rail, a = np.nonzero(low_link)
    rows = cell_median[rail, a].copy()  # [link, b]
    nodes = cell_median.shape[1]
    links = rail.astype(np.int64) * nodes + a  # ascending: np.nonzero's order
    k, low, high = cells
    for end, other in ((low, high), (high, low)):
        # Each re-measured cell, at the row of its end that is a low link (if either is).
        link = find(links, k.astype(np.int64) * nodes + end)
        hit = link >= 0
        if not hit.any():
            continue
        samples = np.concatenate([rows[link[hit], other[hit]][None], x_again[:, hit]])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a cell whose passes all missed it keeps its own
            rows[link[hit], other[hit]] = np.nanmedian(samples, axis=0)
    again_low = _low_links(rows, measured[rail, a], None if between is None else between[rail, a], mark)
    low_link[rail[~again_low], a[~again_low]] = False
