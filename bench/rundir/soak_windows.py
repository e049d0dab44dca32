"""``windows.jsonl``: a soak's windows, one line each (docs/design.md, "Soak").

A soak (``railbench soak``) repeats windows for hours; what it keeps of each is an aggregate, never its rows:
per (node, rail) link its typical pair rate, the cells it ran, whether the window's own judgement named it, the
error counters that rose and the flaps; per world collective the busbw at each size; per GPU what the kernel log
and nvidia-smi said at the window's edge; and the parts the window's judgement named. A line holds about 80 bytes
per link and per GPU (fields at their defaults left out, :class:`Lean`), and memory never holds more than one
window plus the judges' per-part series (``ci/bench_soak.py`` prints both).

Lines are appended and made durable before the next window starts (:func:`append_window`): a soak stopped by
Ctrl-C, SIGTERM or a lost node keeps every finished window, and ``--resume`` reads them back
(:func:`read_windows`), leaving out a last line that a crash cut.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, cast

from bench import codec
from bench.bounded import MissingInput, capped_lines, open_text
from bench.codec import ABSENT, Absent, Written
from bench.jsondoc import JSONValue
from bench.rundir.files import check_replaceable
from bench.rundir.part import Part
from bench.rundir.soak_records import SoakFound

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

WINDOWS_FILE = "windows.jsonl"
"""In the run directory, beside run.json."""
MAX_WINDOW_LINE_CHARS = 64 << 20
"""One window's line: every link of a 4,096-node, 8-rail cluster at a few hundred bytes each fits."""


class Lean(Written):
    """A window's record written without the fields at their defaults (a quiet link's ``named``, ``dead``,
    ``errors``, ``flaps``; a GPU's empty Xid list): a window holds one per link and per GPU, so each key left out
    is kept out of every line of a soak (the codec reads a key that is not there as its default)."""

    def to_json(self) -> dict[str, JSONValue]:
        written = super().to_json()
        for f in fields(cast("DataclassInstance", self)):
            default = f.default_factory() if f.default_factory is not MISSING else f.default
            if default is not MISSING and f.name in written and getattr(self, f.name) == default:
                del written[f.name]
        return written


@dataclass(frozen=True)
class LinkWindow(Lean):
    """One (node, rail) link in one window."""

    node: str
    rail: int
    device: str | None = None
    """The HCA port or interface the rail ran over (``mlx5_4:1``, ``eth1``), where the window knew it."""
    busbw_Gbps: float | None = None
    """The link's typical pair rate in the window (the upper median of its cells); None: none of its pairs ran."""
    cells: int = 0
    """Pair cells measured on this link in the window."""
    named: bool = False
    """The window's own judgement named this link, or a part on it (its cable, HCA, node) slow, dead or erring."""
    dead: bool = False
    """The link was dead in the window (no rail group could form over it)."""
    errors: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    """Error counters that rose over the window, by name, with the rise (only those that rose)."""
    flaps: int = 0
    """Link-down events in the window (``link_downed`` and the interface's ``carrier_changes``: each flap is a
    down and an up, so carrier changes count half)."""
    errors_saturated: tuple[str, ...] | Absent = ABSENT
    """Error counters at their maximum at either edge of the window (``bench.fabric.error_counters``): no count
    can be given, so they are never in ``errors`` (left out of the line when none)."""
    errors_reset: tuple[str, ...] | Absent = ABSENT
    """Error counters cleared during the window (lower at its end): no count either."""


@dataclass(frozen=True)
class CollectiveWindow(Lean):
    """One world collective at one size in one window."""

    collective: str
    bytes: int
    busbw_Gbps: float
    target_Gbps: float | None = None
    wrong: int = 0
    """Wrong elements: the result came back wrong, whatever its rate."""


@dataclass(frozen=True)
class GpuWindow(Lean):
    """One GPU at a window's edge: what the kernel log and nvidia-smi said (None: not read on this node)."""

    node: str
    gpu: int
    xid: tuple[int, ...] = ()
    """Xid codes the kernel log said in the window."""
    ecc_uncorrected: int = 0
    """Uncorrected ECC errors that rose over the window."""
    ecc_corrected: int = 0
    sm_clock_MHz: float | None = None
    temperature_C: float | None = None
    throttle: tuple[str, ...] = ()
    """Throttle reasons active at the window's end (nvidia-smi's ``clocks_event_reasons`` names)."""


@dataclass(frozen=True)
class NamedInWindow(Written):
    """A part the window's own judgement named (its rails defects, a world collective below its target)."""

    part: Part
    symptom: str
    """``slow``, ``dead``, ``errors``, ``flaky``, ... as the window's finding said it."""
    severity: str = "fail"


@dataclass(frozen=True)
class SoakWindow(Written):
    """One window of a soak: when it ran, what pair rounds it covered, and its aggregates."""

    index: int
    """0 for the first window; a resumed soak goes on from the last one kept."""
    start_s: float
    """Seconds since the soak started (a resumed soak counts on from where it stopped)."""
    end_s: float
    rounds: tuple[int, ...] = ()
    """The pair-matrix rounds this window ran: windows rotate through the matrix so that every pair is covered
    every K windows."""
    links: tuple[LinkWindow, ...] = ()
    collectives: tuple[CollectiveWindow, ...] = ()
    gpus: tuple[GpuWindow, ...] = ()
    named: tuple[NamedInWindow, ...] = ()


@dataclass(frozen=True)
class SoakSection(Written):
    """run.json's ``soak``: what the soak was asked for and how far it got (the windows themselves are in
    ``windows.jsonl``)."""

    planned_s: float
    """The soak's whole duration, from ``--hours`` or ``--until``, counted from its first start."""
    window_s: float
    """Each window's length as asked (a window ends after the round and collectives that were under way)."""
    cover_every: int
    """K: every pair of the matrix is covered once every K windows."""
    windows: int = 0
    """Windows finished and kept so far."""
    elapsed_s: float = 0.0
    """Seconds of soak so far, over every start."""
    resumed: tuple[int, ...] = ()
    """The window index each ``--resume`` went on from (empty: never resumed)."""
    stopped: str | None = None
    """Why the soak ended before ``planned_s`` (``SIGTERM``, ``Ctrl-C``, a lost node, ...); None: it ran its
    course, or is still running."""
    deadline_utc: str | None = None
    """When the soak's first start said it ends (ISO 8601, UTC): ``--resume`` goes on until then, however long
    the soak was stopped (a later start's run.json has a start time of its own)."""
    findings: tuple[SoakFound, ...] = ()
    """What the soak's judges found over the windows kept (written with the verdict: every finding of every gate),
    so the report, the history and the drain read the soak's findings as the judges made them."""


def window_line(window: SoakWindow) -> bytes:
    """``window`` as one line of compact JSON, newline-ended."""
    return (codec.dumps(window) + "\n").encode()


def append_window(run_dir: Path, window: SoakWindow) -> None:
    """``window`` at the end of the run directory's ``windows.jsonl``, on disk when this returns."""
    path = Path(run_dir) / WINDOWS_FILE
    check_replaceable(path)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
    try:
        data = window_line(window)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def iter_windows(run_dir: Path) -> Iterator[SoakWindow]:
    """The windows kept in ``run_dir`` in order, none when there is no ``windows.jsonl``. A last line without
    its newline (a crash cut it) is left out; any other line that does not read is refused with its number."""
    path = Path(run_dir) / WINDOWS_FILE
    fix = "it is written by railbench soak; start the soak again without --resume"
    try:
        stream = open_text(path, fix=fix)
    except MissingInput:
        return
    with stream:
        for number, line in enumerate(capped_lines(stream, label=str(path), fix=fix, limit=MAX_WINDOW_LINE_CHARS), 1):
            if not line.endswith("\n"):
                return  # cut by a crash mid-write: the window before it is the last one kept
            try:
                doc = json.loads(line)
            except ValueError as e:
                raise codec.Refused(f"{path}: line {number} is not JSON ({e}); {fix}") from None
            yield codec.decode(SoakWindow, doc, f"{path}: line {number}: ")


def read_windows(run_dir: Path) -> list[SoakWindow]:
    """Every window kept in ``run_dir`` (see :func:`iter_windows`)."""
    return list(iter_windows(run_dir))
