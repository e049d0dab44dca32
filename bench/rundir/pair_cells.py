"""rails.json's pair matrix in columns: every pair direction measured (``PairCells``) and every link's aggregate over
them (``LinkLevels``), each a table of equal-length columns, row i of each column one direction (one link).

One object per direction (``Measurement``) cost about 370 bytes of rails.json and a record built per direction on
reading: 269 MiB and most of the report's 54 CPU seconds at 1024 nodes x 8 rails with a schedule of 47,700 pairs a
rail, and several GiB for the full matrix (docs/rails.md, "Storage and the report at 1024 nodes"). A column of
numbers is about 50 bytes a direction, and is read as one list per column (:func:`ints`, :func:`floats`: a whole
column checked in one pass, a wrong item still refused at its place). The rows are in the order the test measured
them, so a reader gets the directions in the order one object per direction gave them.

Only what was measured is here: a pair the schedule never ran (a sub-quadratic schedule leaves most of the
full matrix unscheduled) has no row, and a reader treats it as absent, never as a failure.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields

from bench.codec import Invalid, Written, read_by, shown


def _column(kind: type, check: Callable[[object], bool], said: str) -> Callable[[object], tuple[object, ...]]:
    def read(value: object) -> tuple[object, ...]:
        if not isinstance(value, list):
            raise TypeError(f"a list of {said}")
        if all(map(check, value)):
            return tuple(value)
        bad = next(i for i, item in enumerate(value) if not check(item))
        raise Invalid((bad,), f"holds {shown(value[bad])}, not {said}")

    read.__name__ = f"column_of_{kind.__name__}"
    return read


def _is_int(value: object) -> bool:
    return type(value) is int


def _is_number(value: object) -> bool:
    return type(value) is float or type(value) is int


def _is_name(value: object) -> bool:
    return value is None or type(value) is str


ints = _column(int, _is_int, "whole numbers")
floats = _column(float, _is_number, "numbers")
names = _column(str, _is_name, "names or nulls")
INTS = read_by(ints)
FLOATS = read_by(floats)
NAMES = read_by(names)


def _devices(value: object) -> tuple[tuple[str | None, ...], ...]:
    if not isinstance(value, list):
        raise TypeError("a list of lists of names")
    out = []
    for i, row in enumerate(value):
        try:
            out.append(names(row))
        except Invalid as exc:
            raise exc.inside(i) from None
        except TypeError as exc:
            raise Invalid((i,), f"holds {shown(row)}, not {exc}") from None
    return tuple(out)  # type: ignore[arg-type]  # names() gave str | None items


@dataclass(frozen=True, kw_only=True)
class PairCells(Written):
    """Every direction of every pair measured on every rail (the matrix and its re-measurements): ``node`` sent
    ``bytes`` to ``peer`` on ``rail`` in ``time_us`` a message (the slower end's), ``busbw_Gbps`` of it. ``node``
    and ``peer`` are places in rails.json's ``nodes``."""

    rail: tuple[int, ...] = field(default=(), metadata=INTS)
    node: tuple[int, ...] = field(default=(), metadata=INTS)
    peer: tuple[int, ...] = field(default=(), metadata=INTS)
    busbw_Gbps: tuple[float, ...] = field(default=(), metadata=FLOATS)
    bytes: tuple[int, ...] = field(default=(), metadata=INTS)
    time_us: tuple[float, ...] = field(default=(), metadata=FLOATS)
    repeat: tuple[int, ...] = field(default=(), metadata=INTS)
    round: tuple[int, ...] = field(default=(), metadata=INTS)
    confirm: tuple[int, ...] = field(default=(), metadata=INTS)
    """0 for the matrix, 1.. for a re-measurement of a suspect."""
    stopped: tuple[int, ...] = field(default=(), metadata=INTS)
    """The rows whose cell's time budget ran out (the rate is over the messages that fitted)."""
    expected_Gbps: tuple[float | None, ...] = ()
    """Per rail number: its line rate (None where unknown)."""
    devices: tuple[tuple[str | None, ...], ...] = field(default=(), metadata=read_by(_devices))
    """Per rail number, per place in ``nodes``: the device that carried the rail there (None where unknown)."""

    def __post_init__(self) -> None:
        rows = len(self.rail)
        for f in fields(self)[:9]:
            if len(getattr(self, f.name)) != rows:
                raise Invalid(f.name, f"holds {len(getattr(self, f.name))} rows, not the {rows} of rail")
        if any(not 0 <= s < rows for s in self.stopped):
            raise Invalid("stopped", f"names a row that is not one of the {rows}")

    @property
    def rows(self) -> int:
        return len(self.rail)

    def check_nodes(self, nodes: int) -> None:
        """Invalid when a row names a place past the ``nodes`` rails.json lists."""
        for name in ("node", "peer"):
            column: tuple[int, ...] = getattr(self, name)
            if column and not 0 <= min(column) <= max(column) < nodes:
                raise Invalid(("pair_cells", name), f"names a node past the {nodes} of nodes")

    def device(self, rail: int, node: int) -> str | None:
        on_rail = self.devices[rail] if 0 <= rail < len(self.devices) else ()
        return on_rail[node] if 0 <= node < len(on_rail) else None

    def expected(self, rail: int) -> float | None:
        return self.expected_Gbps[rail] if 0 <= rail < len(self.expected_Gbps) else None


@dataclass(frozen=True, kw_only=True)
class LinkLevels(Written):
    """Each (node, rail) link over the matrix's directions it took part in, at either end (re-measurements left
    out): how many distinct partners it was measured with, how many directions, their median and minimum, and
    how many were under the pass line (``pass_fraction`` x the rail's line rate; 0 where either is unknown)."""

    pass_fraction: float | None = None
    rail: tuple[int, ...] = field(default=(), metadata=INTS)
    node: tuple[int, ...] = field(default=(), metadata=INTS)
    partners: tuple[int, ...] = field(default=(), metadata=INTS)
    cells: tuple[int, ...] = field(default=(), metadata=INTS)
    median_Gbps: tuple[float, ...] = field(default=(), metadata=FLOATS)
    min_Gbps: tuple[float, ...] = field(default=(), metadata=FLOATS)
    below: tuple[int, ...] = field(default=(), metadata=INTS)

    def __post_init__(self) -> None:
        rows = len(self.rail)
        for f in fields(self)[2:]:
            if len(getattr(self, f.name)) != rows:
                raise Invalid(f.name, f"holds {len(getattr(self, f.name))} rows, not the {rows} of rail")

    @property
    def rows(self) -> int:
        return len(self.rail)


COLUMNS = ("pair_cells", "link_levels")
"""rails.json's sections written as columns: each column on one line (``bench.rundir.files.json_text``)."""
