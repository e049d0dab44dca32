"""The node x node x rail matrix of pair bandwidths, with its re-measurements, as numpy arrays, and how rank 0
builds it from the pair directions the ranks measured (``pair_matrix``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, TypeVar

import numpy as np

from bench.exits import UserError
from bench.rails.diagnosis.remeasured import Alone, Remeasured

T = TypeVar("T")


class PairTime(NamedTuple):
    """One direction of one pair on one rail: ``node`` sent ``nbytes`` to ``peer``.

    A named tuple, not a dataclass: rank 0 of a 256-node x 8-rail run unpickles and judges about half a
    million of them per pass over the matrix, and a frozen dataclass costs several microseconds each to build.
    """

    node: int
    peer: int
    rail: int
    repeat: int
    round: int
    nbytes: int
    time_us: float
    """Mean time per message, at the slower of the two ends (the receiver holds the last byte at the end)."""
    stopped: bool = False
    """The cell's time budget ran out: the rate is over the messages that fitted."""
    confirm: int = 0
    """0: the matrix; 1..: a confirmation pass re-measuring a suspect."""


def flatten(lists: Sequence[Sequence[T]]) -> list[T]:
    return [item for items in lists for item in items]


@dataclass(frozen=True)
class PairSample:
    """One sendrecv measurement between two nodes on one rail."""

    node_a: str
    node_b: str
    rail: int
    busbw_Gbps: float
    repeat: int = 0
    stopped: bool = False
    """The cell's time budget ran out: a slow cell, measured over the bytes that moved in time."""
    confirm: int = 0
    """0: a matrix sample; 1..: the n-th re-measurement of a suspect (``repeat`` is then ignored)."""


def _empty(shape: tuple[int, ...]) -> np.ndarray:
    return np.full(shape, np.nan)


@dataclass(frozen=True, eq=False)
class PairMatrix:
    """Every pair measurement as ``busbw[repeat, rail, a, b]`` (symmetric, NaN where unmeasured).

    ``confirm[pass, rail, a, b]`` holds the re-measurements of suspect cells (NaN elsewhere; no passes when
    confirmation was off); ``stopped`` and ``confirm_stopped`` mark samples whose time budget ran out.
    """

    nodes: tuple[str, ...]
    rails: tuple[int, ...]
    busbw: np.ndarray = field(repr=False)
    stopped: np.ndarray | None = field(default=None, repr=False)
    confirm: np.ndarray | Remeasured | None = field(default=None, repr=False)
    """The re-measurements: dense ``[pass, rail, a, b]`` planes as given (with ``confirm_stopped``), held as
    :class:`Remeasured` from ``__post_init__`` on (read them as :attr:`again`)."""
    confirm_stopped: np.ndarray | None = field(default=None, repr=False)
    alone: Alone | None = field(default=None, repr=False)
    """The quiet pass (``bench.rails.plan.remeasure.quiet_rounds``) and its repeats (``quiet_repeat_rounds``), at the
    cells measured alone (``bench.rails.diagnosis.alone``); None where it did not run. Set by
    :meth:`with_quiet_pass`."""

    def __post_init__(self) -> None:
        shape = (len(self.rails), len(self.nodes), len(self.nodes))
        if self.busbw.ndim != 4 or self.busbw.shape[1:] != shape:
            raise ValueError(f"busbw has shape {self.busbw.shape}, expected (repeats, *{shape})")
        # Frozen: the defaults are filled in once, here.
        if self.stopped is None:
            object.__setattr__(self, "stopped", np.zeros(self.busbw.shape, dtype=bool))
        if self.confirm is None:
            object.__setattr__(self, "confirm", Remeasured.none(0, *shape[:2]))
        elif not isinstance(self.confirm, Remeasured):
            if self.confirm.ndim != 4 or self.confirm.shape[1:] != shape:
                raise ValueError(f"confirm has shape {self.confirm.shape}, expected (passes, *{shape})")
            object.__setattr__(self, "confirm", Remeasured.from_dense(self.confirm, self.confirm_stopped))
        object.__setattr__(self, "confirm_stopped", None)  # held in the Remeasured

    @property
    def stopped_flags(self) -> np.ndarray:
        assert self.stopped is not None  # set in __post_init__
        return self.stopped

    @property
    def again(self) -> Remeasured:
        """The re-measurements, at the cells that ran again."""
        assert isinstance(self.confirm, Remeasured)  # set in __post_init__
        return self.confirm

    def with_quiet_pass(self, passes: int) -> PairMatrix:
        """The matrix with re-measurements past the first ``passes`` (the run's ``--confirm``) held apart as the
        quiet pass and its repeats: the confirmation passes and the quiet one are judged differently. The quiet
        pass's own sample is what the switch verdicts read (under adaptive routing a spine slows a flow only in
        the samples that crossed it, so a best of several would hide it); the best of a cell's samples alone is
        what tells a degraded path from noise (``bench.rails.diagnosis.alone``). Itself where no quiet pass ran."""
        again = self.again
        if again.passes <= passes:
            return self
        later = again.since(passes)
        slot, column = np.nonzero(~np.isnan(later.values))
        k, a, b = (cell[column] for cell in later.cells)
        shape = (len(self.rails), len(self.nodes), len(self.nodes))
        alone = Alone.from_samples(shape, slot == 0, k, a, b, later.values[slot, column])
        return dataclasses.replace(self, confirm=again.first(passes), alone=alone)

    @classmethod
    def from_samples(
        cls, samples: Iterable[PairSample], nodes: Sequence[str] | None = None, rails: Sequence[int] | None = None
    ) -> PairMatrix:
        """Build the matrix; ``nodes``/``rails`` fix the order (default: sorted as seen)."""
        samples = list(samples)
        node_list = (
            list(nodes) if nodes is not None else sorted({s.node_a for s in samples} | {s.node_b for s in samples})
        )
        rail_list = list(rails) if rails is not None else sorted({s.rail for s in samples})
        node_index = {name: i for i, name in enumerate(node_list)}
        rail_index = {rail: i for i, rail in enumerate(rail_list)}
        shape = (len(rail_list), len(node_list), len(node_list))
        repeats = 1 + max((s.repeat for s in samples if not s.confirm), default=0)
        passes = max((s.confirm for s in samples), default=0)
        busbw, confirm = _empty((repeats, *shape)), _empty((passes, *shape))
        stopped = np.zeros(busbw.shape, dtype=bool)
        confirm_stopped = np.zeros(confirm.shape, dtype=bool)
        for s in samples:
            if s.node_a not in node_index or s.node_b not in node_index or s.rail not in rail_index:
                raise UserError(f"pair {s.node_a}-{s.node_b} on rail {s.rail} is outside the run's nodes and rails")
            if s.node_a == s.node_b:
                raise UserError(f"pair {s.node_a}-{s.node_b} pairs a node with itself: pairs join two nodes")
            a, b, k = node_index[s.node_a], node_index[s.node_b], rail_index[s.rail]
            values, flags, i = (confirm, confirm_stopped, s.confirm - 1) if s.confirm else (busbw, stopped, s.repeat)
            values[i, k, a, b] = values[i, k, b, a] = s.busbw_Gbps
            flags[i, k, a, b] = flags[i, k, b, a] = s.stopped
        return cls(tuple(node_list), tuple(rail_list), busbw, stopped, confirm, confirm_stopped)


@dataclass(frozen=True, eq=False)
class PairColumns:
    """Pair directions as columns, one numpy array per ``PairTime`` field: what rank 0 judges a large matrix
    from (and what the fabric model of ``tests/support/models/fabric_model.py`` produces instead of ranks)."""

    node: np.ndarray
    peer: np.ndarray
    rail: np.ndarray
    repeat: np.ndarray
    round: np.ndarray
    nbytes: np.ndarray
    time_us: np.ndarray
    stopped: np.ndarray
    confirm: np.ndarray

    @classmethod
    def from_times(cls, times: Sequence[PairTime]) -> PairColumns:
        def column(field: int, dtype: type) -> np.ndarray:
            return np.fromiter((t[field] for t in times), dtype=dtype, count=len(times))

        node, peer, rail, repeat, index, nbytes = (column(i, np.int64) for i in range(6))
        return cls(node, peer, rail, repeat, index, nbytes, column(6, np.float64), column(7, bool), column(8, np.int64))

    def __len__(self) -> int:
        return len(self.node)

    def __add__(self, other: PairColumns) -> PairColumns:
        return PairColumns(
            *(np.concatenate([getattr(self, f.name), getattr(other, f.name)]) for f in dataclasses.fields(self))
        )


def pair_matrix(
    times: Sequence[PairTime] | PairColumns, nodes: Sequence[str], rails: int, alone_from: int | None = None
) -> PairMatrix:
    """The matrix of ``bench.rails.diagnosis.rails_outcome.pair_samples(times)``, built with numpy: each (pair, rail,
    repeat, pass) keeps its slower direction (the first of equal ones), stopped when either ran out of time. Rank 0 of a
    256-node x 8-rail run holds half a million directions per pass; one Python record per sample took seconds.

    ``alone_from``: the passes from this number on are the quiet pass and its repeats, held as they are read
    (:meth:`PairMatrix.with_quiet_pass`, ``remeasured.Alone``): at their cells, each with its quiet pass sample, its
    best and worst alone and its count. The re-measurements are held at their cells too (``remeasured.Remeasured``):
    at 1024 x 8 a dense plane is 67 MB, and they hold a few thousand cells."""
    n = len(nodes)
    if not len(times):
        return PairMatrix.from_samples([], nodes=list(nodes), rails=list(range(rails)))
    cols = times if isinstance(times, PairColumns) else PairColumns.from_times(times)
    node, peer, rail, repeat = cols.node, cols.peer, cols.rail, cols.repeat
    nbytes, time_us, stopped, confirm = cols.nbytes, cols.time_us, cols.stopped, cols.confirm
    low, high = np.minimum(node, peer), np.maximum(node, peer)
    bad = (low < 0) | (high >= n) | (low == high) | (rail < 0) | (rail >= rails) | (repeat < 0) | (confirm < 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise UserError(f"pair {node[i]}-{peer[i]} on rail {rail[i]} is outside the run's {n} nodes and {rails} rails")
    repeats = 1 + int(repeat[confirm == 0].max(initial=0))
    passes = int(confirm.max())
    kept = passes if alone_from is None else min(passes, alone_from - 1)
    busbw = np.full((repeats, rails, n, n), np.nan)
    stop_m = np.zeros(busbw.shape, dtype=bool)
    matrix = confirm == 0
    every = bool(matrix.all())  # a run without re-measurements: no copy of its columns
    sel = slice(None) if every else np.flatnonzero(matrix)
    del matrix
    # The matrix samples: one slot per (repeat, rail, low, high), so the slowest direction is found slot by slot.
    slot = np.ravel_multi_index((repeat[sel], rail[sel], low[sel], high[sel]), busbw.shape)
    _slowest_into(busbw, stop_m, slot, nbytes[sel], time_us[sel], stopped[sel])
    del slot
    again = Remeasured.none(kept, rails, n)
    alone = None
    if not every:
        pick, any_stopped, rate = _slowest_by_key(cols, low, high, rails, n, np.flatnonzero(confirm > 0))
        # Keys ascend, so where two keys land on one slot (re-measurements from two repeats) the later wins, as a
        # loop over the sorted samples would.
        slot, k, a, b = confirm[pick] - 1, rail[pick], low[pick], high[pick]
        where = np.ravel_multi_index((slot, k, a, b), (passes, rails, n, n))
        _, back = np.unique(where[::-1], return_index=True)
        keep = len(pick) - 1 - back  # the last of each slot
        confirmed, alone_rows = keep[slot[keep] < kept], keep[slot[keep] >= kept]
        again = Remeasured.from_samples(again.shape, *(x[confirmed] for x in (slot, k, a, b, rate, any_stopped)))
        if len(alone_rows):
            r = alone_rows
            alone = Alone.from_samples((rails, n, n), slot[r] == kept, k[r], a[r], b[r], rate[r])
    return PairMatrix(tuple(nodes), tuple(range(rails)), busbw, stop_m, again, alone=alone)


def _rates(nbytes: np.ndarray, time_us: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.where(time_us > 0, nbytes * 8 / (time_us * 1e-6) / 1e9, 0.0)  # busbw_Gbps


def _slowest_into(
    values: np.ndarray,
    flags: np.ndarray,
    slot: np.ndarray,
    nbytes: np.ndarray,
    time_us: np.ndarray,
    stopped: np.ndarray,
) -> None:
    """Each slot of ``values`` (flat indices ``slot`` of ``[repeat, rail, low, high]``, one per direction) gets the
    rate of its slowest direction, the first of equal ones, mirrored to ``[high, low]``; ``flags``: stopped when
    either direction ran out of time. A table of the matrix's own size, not a sort of its eight million
    directions at 1024 nodes."""
    size = values.size
    largest = np.full(size, -np.inf)
    np.maximum.at(largest, slot, time_us)
    count = len(slot)
    first = np.full(size, count)
    np.minimum.at(first, slot, np.where(time_us == largest[slot], np.arange(count), count))
    del largest
    filled = np.flatnonzero(first < count)
    pick = first[filled]
    del first
    n = values.shape[-1]
    a, b = (filled // n) % n, filled % n
    mirrored = filled + (b - a) * (n - 1)  # [.., high, low]
    rate = _rates(nbytes[pick], time_us[pick])
    values.reshape(-1)[filled] = rate
    values.reshape(-1)[mirrored] = rate
    any_stopped = np.zeros(size, dtype=bool)
    any_stopped[slot[stopped]] = True
    flags.reshape(-1)[filled] = any_stopped[filled]
    flags.reshape(-1)[mirrored] = any_stopped[filled]


def _slowest_by_key(
    cols: PairColumns, low: np.ndarray, high: np.ndarray, rails: int, n: int, sel: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The directions ``sel`` grouped by (pair, rail, repeat, pass): per key its slowest direction (the first of
    equal ones, as an index into the columns), whether either ran out of time, and its rate; keys ascending."""
    repeat, confirm = cols.repeat[sel], cols.confirm[sel]
    spans = (n, n, rails, int(repeat.max()) + 1, int(confirm.max()) + 1)
    key = np.ravel_multi_index((low[sel], high[sel], cols.rail[sel], repeat, confirm), spans)
    # Per key the slowest direction, the earliest of equal ones: a stable sort by key keeps each key's
    # directions in their order, and the first that reaches its key's largest time is picked.
    order = np.argsort(key, kind="stable")
    ordered = key[order]
    first = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    times_in_order = cols.time_us[sel][order]
    largest = np.repeat(np.maximum.reduceat(times_in_order, first), np.diff(np.r_[first, len(order)]))
    position = np.where(times_in_order == largest, np.arange(len(order)), len(order))
    pick = sel[order[np.minimum.reduceat(position, first)]]
    any_stopped = np.maximum.reduceat(cols.stopped[sel][order].astype(np.int8), first).astype(bool)
    return pick, any_stopped, _rates(cols.nbytes[pick], cols.time_us[pick])
