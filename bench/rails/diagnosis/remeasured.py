"""A pair matrix's re-measurements, held at the cells that ran again.

Only the suspects run again: at 1024 x 8 the confirmation passes re-measure a few thousand of the matrix's
eight million cells, and a dense ``[pass, rail, a, b]`` plane of them was 67 MB a pass, with its log rates as much
again while the judge read them (issue 45: rank 0's memory grows with the cells measured, not with n squared).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CellIndex = tuple[np.ndarray, np.ndarray, np.ndarray]
"""Parallel arrays ``(rail position, node a, node b)``."""


def cell_keys(k: np.ndarray, a: np.ndarray, b: np.ndarray, nodes: int) -> np.ndarray:
    """One int64 key per cell, the same for either order of its ends; ascending keys are the dense planes' upper
    triangles in numpy's order."""
    return (np.asarray(k, dtype=np.int64) * nodes + np.minimum(a, b)) * nodes + np.maximum(a, b)


def find(keys: np.ndarray, want: np.ndarray) -> np.ndarray:
    """Each of ``want``'s position in the ascending ``keys``, -1 where it is not there."""
    out = np.full(np.shape(want), -1, dtype=np.int64)
    if len(keys):
        pos = np.minimum(np.searchsorted(keys, want), len(keys) - 1)
        hit = keys[pos] == want
        out[hit] = pos[hit]
    return out


def _cells_of(keys: np.ndarray, nodes: int) -> CellIndex:
    """The ``(rail, low, high)`` of each :func:`cell_keys` key."""
    rail, rest = np.divmod(keys, nodes * nodes)
    low, high = np.divmod(rest, nodes)
    return rail, low, high


def both_ways(out: np.ndarray, cells: CellIndex, values: np.ndarray | bool | float) -> np.ndarray:
    """``out`` (``[..., rail, a, b]``) with ``values`` written at each cell ``(rail, low, high)`` and at its mirror."""
    rail, low, high = cells
    out[..., rail, low, high] = values
    out[..., rail, high, low] = values
    return out


@dataclass(frozen=True, eq=False)
class Remeasured:
    """``values[pass, i]`` and ``stopped[pass, i]``: the re-measurements of cell ``i``, on rail ``rail[i]`` between
    nodes ``low[i] < high[i]`` (a pair once; the dense planes held it both ways), NaN and False in a pass that did
    not run it. The cells ascend by (rail, low, high), so reading them pass by pass is reading the dense planes'
    upper triangles in numpy's order: Holm's ties break as they did."""

    rails: int
    nodes: int
    rail: np.ndarray
    low: np.ndarray
    high: np.ndarray
    values: np.ndarray
    stopped: np.ndarray

    @property
    def passes(self) -> int:
        return int(self.values.shape[0])

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """The dense planes' shape, ``[pass, rail, a, b]``."""
        return self.passes, self.rails, self.nodes, self.nodes

    @property
    def cells(self) -> CellIndex:
        return self.rail, self.low, self.high

    @classmethod
    def none(cls, passes: int, rails: int, nodes: int) -> Remeasured:
        """``passes`` passes that re-measured nothing."""
        empty = np.zeros(0, dtype=np.int64)
        return cls(rails, nodes, empty, empty, empty, np.full((passes, 0), np.nan), np.zeros((passes, 0), bool))

    @classmethod
    def from_samples(
        cls,
        shape: tuple[int, int, int, int],
        slot: np.ndarray,
        k: np.ndarray,
        low: np.ndarray,
        high: np.ndarray,
        rate: np.ndarray,
        stopped: np.ndarray,
    ) -> Remeasured:
        """From one sample per (pass ``slot``, cell), ``low < high``."""
        passes, rails, nodes, _ = shape
        keys, column = np.unique(cell_keys(k, low, high, nodes), return_inverse=True)
        values = np.full((passes, len(keys)), np.nan)
        flags = np.zeros((passes, len(keys)), dtype=bool)
        values[slot, column] = rate
        flags[slot, column] = stopped
        return cls(rails, nodes, *_cells_of(keys, nodes), values, flags)

    @classmethod
    def from_dense(cls, values: np.ndarray, stopped: np.ndarray | None = None) -> Remeasured:
        """From dense ``[pass, rail, a, b]`` planes (NaN where not run): each pair as its ``[low, high]`` sample,
        or its ``[high, low]`` one where only that was given."""
        _, rails, nodes, _ = values.shape
        flags = np.zeros(values.shape, dtype=bool) if stopped is None else stopped
        upper = np.triu(np.ones((nodes, nodes), dtype=bool), k=1)
        mirrored = values.swapaxes(-1, -2)
        taken = np.where(np.isnan(values) & upper, mirrored, values)
        taken_flags = np.where(np.isnan(values) & upper, flags.swapaxes(-1, -2), flags)
        ran = (~np.isnan(taken)).any(axis=0) & upper
        rail, a, b = np.nonzero(ran)
        return cls(rails, nodes, rail, a, b, taken[:, rail, a, b], taken_flags[:, rail, a, b])

    def first(self, count: int) -> Remeasured:
        """The first ``count`` passes, at the cells they ran."""
        return self._kept(self.values[:count], self.stopped[:count])

    def since(self, count: int) -> Remeasured:
        """The passes from ``count`` on, at the cells they ran."""
        return self._kept(self.values[count:], self.stopped[count:])

    def _kept(self, values: np.ndarray, stopped: np.ndarray) -> Remeasured:
        ran = (~np.isnan(values)).any(axis=0)
        return Remeasured(
            self.rails, self.nodes, self.rail[ran], self.low[ran], self.high[ran], values[:, ran], stopped[:, ran]
        )

    def column(self, k: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Each cell's column in :attr:`values` (either order of its ends), -1 where none ran."""
        return find(cell_keys(*self.cells, self.nodes), cell_keys(k, a, b, self.nodes))

    def at(self, k: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """``[pass, i]``: the dense planes' ``[:, k, a, b]`` (NaN where not run)."""
        column = self.column(k, a, b)
        out = np.full((self.passes, *column.shape), np.nan)
        ran = column >= 0
        out[:, ran] = self.values[:, column[ran]]
        return out

    def stopped_at(self, k: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """``[pass, i]``: the dense stopped flags' ``[:, k, a, b]``."""
        column = self.column(k, a, b)
        out = np.zeros((self.passes, *column.shape), dtype=bool)
        ran = column >= 0
        out[:, ran] = self.stopped[:, column[ran]]
        return out

    def spread(self, flags: np.ndarray) -> np.ndarray:
        """Per-cell ``flags`` (``[pass, i]``) as dense ``[pass, rail, a, b]`` booleans, both ways round."""
        return both_ways(np.zeros(self.shape, dtype=bool), self.cells, flags)

    def dense(self) -> np.ndarray:
        """The dense ``[pass, rail, a, b]`` planes, NaN where not run (for small matrices and tests)."""
        return both_ways(np.full(self.shape, np.nan), self.cells, self.values)

    def dense_stopped(self) -> np.ndarray:
        return self.spread(self.stopped)


@dataclass(frozen=True, eq=False)
class Alone:
    """The quiet pass and its repeats (``bench.rails.diagnosis.alone``), at the cells measured alone: on rail
    ``rail[i]`` between ``low[i] < high[i]``, the quiet pass's own sample (``first``, NaN where it did not run the
    cell), the best sample alone over every pass (``best``), how many there were (``count``) and the worst after the
    quiet pass's own (``worst_again``, NaN where none). The best and the worst are float32: only the mark they are
    compared with needs the digits. The cells ascend by (rail, low, high), as the dense planes' upper triangles.

    One flow per leaf runs in the quiet pass: at 1024 x 8 its four dense planes were 143 MB for a few thousand
    cells."""

    rails: int
    nodes: int
    rail: np.ndarray
    low: np.ndarray
    high: np.ndarray
    first: np.ndarray
    best: np.ndarray
    count: np.ndarray
    worst_again: np.ndarray

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.rails, self.nodes, self.nodes

    @classmethod
    def from_samples(
        cls,
        shape: tuple[int, int, int],
        first: np.ndarray,
        k: np.ndarray,
        a: np.ndarray,
        b: np.ndarray,
        rate: np.ndarray,
    ) -> Alone:
        """From samples alone, one per pass and cell (``a < b``; ``first``: the quiet pass's own). A sample that ran
        out of time reads low as its rate says (nothing judges its flag alone)."""
        rails, nodes, _ = shape
        keys, column = np.unique(cell_keys(k, a, b, nodes), return_inverse=True)
        m = len(keys)
        quiet = np.full(m, np.nan)
        quiet[column[first]] = rate[first]
        best = np.full(m, np.nan, dtype=np.float32)
        np.fmax.at(best, column, rate.astype(np.float32))
        count = np.zeros(m, dtype=np.uint8)
        np.add.at(count, column, 1)
        worst = np.full(m, np.nan, dtype=np.float32)
        np.fmin.at(worst, column[~first], rate[~first].astype(np.float32))
        return cls(rails, nodes, *_cells_of(keys, nodes), quiet, best, count, worst)

    @property
    def cells(self) -> CellIndex:
        return self.rail, self.low, self.high

    def spread(self, values: np.ndarray, dtype: type[np.generic] = np.bool_) -> np.ndarray:
        """Per-cell ``values`` as a dense ``[rail, a, b]`` array of ``dtype``, both ways round, 0 elsewhere."""
        return both_ways(np.zeros(self.shape, dtype=dtype), self.cells, values)

    def plane(self, k: int) -> np.ndarray:
        """``[a, b]``: rail k's quiet pass samples (Gb/s), both ways round, NaN where none ran."""
        on = self.rail == k
        out = np.full(self.shape[1:], np.nan)
        out[self.low[on], self.high[on]] = out[self.high[on], self.low[on]] = self.first[on]
        return out
