"""The node x node x rail matrix of pair bandwidths, with its re-measurements, as numpy arrays."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from bench.exits import UserError


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
    confirm: np.ndarray | None = field(default=None, repr=False)
    confirm_stopped: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        shape = (len(self.rails), len(self.nodes), len(self.nodes))
        if self.busbw.ndim != 4 or self.busbw.shape[1:] != shape:
            raise ValueError(f"busbw has shape {self.busbw.shape}, expected (repeats, *{shape})")
        # Frozen: the defaults are filled in once, here.
        if self.stopped is None:
            object.__setattr__(self, "stopped", np.zeros(self.busbw.shape, dtype=bool))
        if self.confirm is None:
            object.__setattr__(self, "confirm", _empty((0, *shape)))
        if self.confirm_stopped is None:
            object.__setattr__(self, "confirm_stopped", np.zeros(self.confirm_values.shape, dtype=bool))

    @property
    def stopped_flags(self) -> np.ndarray:
        assert self.stopped is not None  # set in __post_init__
        return self.stopped

    @property
    def confirm_values(self) -> np.ndarray:
        assert self.confirm is not None  # set in __post_init__
        return self.confirm

    @property
    def confirm_stopped_flags(self) -> np.ndarray:
        assert self.confirm_stopped is not None  # set in __post_init__
        return self.confirm_stopped

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
