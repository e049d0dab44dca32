"""The records a parsed nccl-tests log is made of, and the busbw formula they are checked against."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, Literal, TypeVar

from bench.busbw import BUSBW_FACTOR
from bench.exits import UserError

# busbw = algbw x factor(n), the nccl-tests convention (docs/design.md, "Units and formulas"). The printed size
# is already the total buffer for the gather-type collectives, so algbw = size / time for all of them.
BUS_FACTOR = BUSBW_FACTOR  # one table for the whole project: bench.busbw
# Collectives whose printed count is the per-rank part: size = count x elsize x nranks.
PER_RANK_COUNT = frozenset({"all_gather", "reduce_scatter", "alltoall", "gather", "scatter"})
ROOTED = frozenset({"broadcast", "reduce", "gather", "scatter"})
REDUCING = frozenset({"all_reduce", "reduce", "reduce_scatter"})
ELEMENT_SIZE = {
    "int8": 1,
    "uint8": 1,
    "char": 1,
    "f8e4m3": 1,
    "f8e5m2": 1,
    "half": 2,
    "bfloat16": 2,
    "int32": 4,
    "uint32": 4,
    "int": 4,
    "float": 4,
    "int64": 8,
    "uint64": 8,
    "double": 8,
}
Placement = Literal["out-of-place", "in-place"]


def busbw_factor(collective: str, nranks: int) -> float:
    """The busbw/algbw factor of ``collective`` over ``nranks`` ranks; unknown collectives raise."""
    if collective not in BUS_FACTOR:
        raise UserError(f"collective {collective!r} has no busbw formula: use one of {', '.join(BUS_FACTOR)}")
    if nranks < 1:
        raise UserError(f"nranks must be at least 1, got {nranks}")
    return BUS_FACTOR[collective](nranks)


_NAME_SUFFIX = re.compile(r"(?:[._-][A-Za-z0-9_.+-]{0,31})?")
"""What nccl-tests' Makefile appends to ``*_perf`` (``NAME_SUFFIX``): container images ship the MPI build as
``all_reduce_perf_mpi``."""


def collective_from_program(name: str) -> str | None:
    """``/opt/nccl-tests/build/all_reduce_perf`` (or ``all_reduce_perf_mpi``, a build with a name suffix) ->
    ``all_reduce``; None if it names no known test."""
    stem = Path(name.strip()).name
    base, perf, suffix = stem.rpartition("_perf")
    if perf and _NAME_SUFFIX.fullmatch(suffix):
        stem = base
    return stem if stem in BUS_FACTOR else None


def rank_free(collective: str) -> bool:
    """Whether ``collective``'s busbw factor is the same at every rank count (sendrecv, broadcast, reduce: 1),
    so a table that does not say how many ranks ran still has exact busbw."""
    factor = BUS_FACTOR[collective]
    return all(factor(n) == factor(2) for n in (1, 3, 8, 4096))


def nccl_version_from_code(code: int) -> str:
    """NCCL_VERSION_CODE (22902, or 2708 before 2.9) -> ``"2.29.2"``."""
    if code >= 10000:
        return f"{code // 10000}.{code % 10000 // 100}.{code % 100}"
    return f"{code // 1000}.{code % 1000 // 100}.{code % 100}"


@dataclass(frozen=True)
class Number:
    """A number as the log printed it: the value and its half-unit of precision (for consistency checks)."""

    value: float
    half_unit: float

    @classmethod
    def parse(cls, text: str, value: float | None = None) -> Number:
        """``"613.3"`` -> 613.3 +- 0.05; ``"1.0e+07"`` -> 1e7 +- 5e5; ``"15870"`` -> +- 0.5.

        ``value`` is the number already read through ``bench.bounded`` (finite, sign checked); without it
        ``text`` is converted here.
        """
        mantissa, _, exponent = text.lower().partition("e")
        decimals = len(mantissa.partition(".")[2])
        power = max(-300, min(300, int(exponent) - decimals if exponent else -decimals))
        return cls(float(text) if value is None else value, 0.5 * 10.0**power)


@dataclass(frozen=True)
class PlacementResult:
    """One half of a row: the out-of-place or the in-place measurement."""

    placement: Placement
    time_us: Number
    algbw_GBps: Number
    busbw_GBps: Number
    wrong: int | None
    """Wrong elements; None where the log printed ``N/A`` (validation off, or in-place of some tests)."""


@dataclass(frozen=True)
class Row:
    """One size of a sweep."""

    bytes: int
    count: int
    dtype: str
    redop: str
    root: int | None
    """None in the old format, which has no root column."""
    measurements: tuple[PlacementResult, ...]
    line: int


@dataclass(frozen=True)
class Device:
    """A ``#  Rank  3 Group  0 Pid 123 on node01 device  3 [0000:2c:00] NVIDIA H100 80GB HBM3`` line."""

    rank: int
    group: int
    pid: int
    host: str
    device: int
    bus_id: str
    gpu: str


@dataclass(frozen=True)
class Header:
    """The ``# nThread 1 nGpus 1 minBytes ... maxBytes ... step: 2(factor) ...`` line."""

    nthreads: int
    ngpus: int
    min_bytes: int | None = None
    max_bytes: int | None = None
    step_factor: int | None = None
    step_bytes: int | None = None
    warmup_iters: int | None = None
    iters: int | None = None
    agg_iters: int | None = None
    validation: int | None = None
    graph: int | None = None


@dataclass(frozen=True)
class Quoted:
    """What a log says of the run outside its tables: the versions that ran and the command line. A log says
    each once, before its first table, so each holds for every table after it until the log says it again."""

    nccl_version: str | None = None
    cuda_version: str | None = None
    nccl_tests_version: str | None = None
    command: str | None = None
    command_collective: str | None = None
    """The collective the command line's program runs (``all_gather_perf``)."""
    launcher_np: int | None = None
    """The launcher's ``-np``, where a launcher word precedes the program."""
    command_ranks: int | None = None
    """processes x ``-t`` x ``-g`` of a command line with no launcher word (one process)."""


@dataclass(frozen=True)
class Printed:
    """What one table's lines (and the lines before it) printed, as read: the rows and what surrounds them.
    Frozen once, when no later line can change the table; what was inferred from it sits beside it in
    ``Table``."""

    first_line: int
    rows: tuple[Row, ...]
    devices: tuple[Device, ...] = ()
    header: Header | None = None
    complete: bool = True
    """False when the table has no footer: the run stopped (failure, kill, timeout) or the log was cut."""
    out_of_bounds: int | None = None
    avg_busbw_GBps: float | None = None
    """``# Avg bus bandwidth``: an average over every size; kept, never used as the headline."""
    failures: tuple[str, ...] = ()
    quoted: Quoted = Quoted()

    @property
    def gpus(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(d.gpu for d in self.devices))

    @property
    def ngroups(self) -> int:
        """Communicators run side by side (NCCL_TESTS_SPLIT); bandwidth is per communicator."""
        return len({d.group for d in self.devices}) or 1


Found = TypeVar("Found")


@dataclass(frozen=True)
class Sourced(Generic[Found]):
    """A fact the busbw formula depends on (a table's collective, its nranks), with the evidence it was taken
    from: ``bench.nccltests.infer`` says which evidence is preferred."""

    value: Found
    source: str


@dataclass(frozen=True)
class Table:
    """One nccl-tests run: one collective over one communicator, as printed and as inferred from that."""

    printed: Printed
    collective: Sourced[str]
    """Sources: ``marker``, ``command``, ``json args``, ``given``, ``row shape``, ``mention``, ``file name``."""
    nranks: Sourced[int | None]
    """None only where the log never says and the collective's busbw does not depend on it (``rank_free``)."""
    hosts: tuple[str, ...] = ()
    """Hosts in rank order (device lines, else NCCL INFO line prefixes)."""
    hosts_complete: bool = True
    """False when the device list was cut short (more ranks ran than it lists), so hosts are a subset."""
    notes: tuple[str, ...] = ()
    """What the reader should know of how the table was read (damaged lines, guesses, a missing footer)."""


@dataclass(frozen=True)
class NcclTestsLog:
    """Everything read from one log file."""

    source: str
    format: Literal["text", "json"]
    tables: tuple[Table, ...]
    failures: tuple[str, ...] = ()
    """Failure lines not tied to a table, plus every table's failures."""
    env: dict[str, str] = field(default_factory=dict)
    start_time: str | None = None
    end_time: str | None = None

    @property
    def truncated(self) -> bool:
        return any(not t.printed.complete for t in self.tables)
