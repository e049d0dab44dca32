"""Link flaps from the kernel log: "lost carrier", "Link down", "link is not ready" lines naming a rail.

Node health checks fail a node whose IB links flapped recently (Azure's NHC looks for ``lost carrier`` lines
within a window); a flap that came and went leaves no trace in the port's state, only here and in
``carrier_changes``. Sources, in order: a file the user names (``--kernel-log``), else ``journalctl -k``
(with ``--since`` and ``-n`` bounds and a timeout, so it never hangs and never floods), else
``/var/log/kern.log`` or ``/var/log/syslog``. A source that cannot be read is a reason to skip, not a
failure.

Every read is bounded: a file is opened only when it is a regular file, non-blocking, and only its last
:data:`MAX_TAIL_BYTES` are read; each line goes through ``bench.textlines`` (over-long lines are dropped);
lines are split by string methods, never by a backtracking regex. A line counts when its time is within
the window (ISO 8601 times as ``journalctl -o short-iso`` and rsyslog write them, or the classic
``May  1 12:00:00``, taken as this year in local time) and it names the rail's device as a whole word.
"""

from __future__ import annotations

import io
import os
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from bench import toolrun
from bench.bounded import InputError, ascii_digits, open_regular
from bench.textlines import numbered_lines

FLAP_PHRASES: tuple[str, ...] = (
    "lost carrier",
    "link down",
    "link is down",
    "link is not ready",
    "nic link is down",
    "link becomes not ready",
)
"""Lower-case phrases of drivers' link-loss messages (IPoIB, mlx5e, ixgbe/igb/e1000e, ADDRCONF)."""
BOOT_BANNER = "Linux version "
"""The kernel's first message at every boot, with its release: ``Linux version 6.8.0-45-generic (...)``."""
SYSTEM_LOGS: tuple[Path, ...] = (Path("/var/log/kern.log"), Path("/var/log/syslog"))
MAX_TAIL_BYTES = 8 << 20
"""The end of a log file that is read: hours of a busy kernel's messages, never a whole multi-GB syslog."""
JOURNAL_LINES = 20000
JOURNAL_TIMEOUT_S = 10.0
_MONTHS = {
    m: i for i, m in enumerate(("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1)
}
_LEAP_CYCLE_YEARS = 8
"""The longest gap between two Feb 29s (1896 to 1904; 2096 to 2104)."""
_SEPARATORS = str.maketrans({c: " " for c in ":,;()[]<>='\"\t"})


@dataclass(frozen=True)
class KernelLog:
    """Lines of the kernel log, or why there are none."""

    source: str
    """The file or command the lines came from."""
    lines: tuple[str, ...] = ()
    skipped: str | None = None
    """Why the log could not be read (then ``lines`` is empty)."""


@dataclass(frozen=True)
class Flap:
    """One link-loss line naming a device."""

    device: str
    when: datetime
    line: str


def _tail(path: Path) -> KernelLog:
    """The last :data:`MAX_TAIL_BYTES` of ``path`` when it is a regular file (``bench.bounded.open_regular``)."""
    try:
        handle = open_regular(path, fix="give the kernel log file itself with --kernel-log")
    except InputError as exc:
        return KernelLog(str(path), skipped=str(exc))
    with handle:
        try:
            size = os.fstat(handle.fileno()).st_size
            start = max(0, size - MAX_TAIL_BYTES)
            handle.seek(start)
            data = handle.read(MAX_TAIL_BYTES)
        except OSError as exc:
            return KernelLog(str(path), skipped=f"cannot read {path}: {exc.strerror}")
        except InputError as exc:  # a read the kernel refused (bench.bounded)
            return KernelLog(str(path), skipped=str(exc))
    text = data.decode("utf-8", errors="replace")
    if start:  # the first line was cut in the middle
        text = text.partition("\n")[2]
    return KernelLog(str(path), _lines(text))


def _lines(text: str) -> tuple[str, ...]:
    return tuple(line for _, line in numbered_lines(io.StringIO(text, newline=None)) if line)


def _journal(since: datetime) -> KernelLog:
    command = [
        "journalctl",
        "-k",
        "-q",
        "--no-pager",
        "-o",
        "short-iso",
        "-n",
        str(JOURNAL_LINES),
        "--since",
        since.strftime("%Y-%m-%d %H:%M:%S"),
    ]
    source = "journalctl -k"
    try:
        done = toolrun.run_tool(command, JOURNAL_TIMEOUT_S, MAX_TAIL_BYTES, keep="tail")
    except toolrun.ToolMissing as exc:
        return KernelLog(source, skipped=f"cannot run journalctl: {exc.strerror}")
    if not done.ok:
        return KernelLog(source, skipped=done.why_not(JOURNAL_TIMEOUT_S, MAX_TAIL_BYTES))
    text = done.stdout.decode("utf-8", errors="replace")
    lines = tuple(line for line in _lines(text) if not line.startswith("-- "))
    if not lines:
        return KernelLog(source, skipped="journalctl -k holds no kernel messages (no access to the journal?)")
    return KernelLog(source, lines)


def read_kernel_log(path: Path | None, since: datetime) -> KernelLog:
    """The kernel log: ``path`` when given, else the journal, else the first readable system log file."""
    if path is not None:
        return _tail(path)
    reasons = []
    if shutil.which("journalctl"):
        journal = _journal(since)
        if journal.skipped is None:
            return journal
        reasons.append(journal.skipped)
    for candidate in SYSTEM_LOGS:
        log = _tail(candidate)
        if log.skipped is None:
            return log
        reasons.append(log.skipped)
    return KernelLog("kernel log", skipped="; ".join(reasons) or "no kernel log on this machine")


def line_time(line: str, now: datetime) -> datetime | None:
    """When ``line`` was logged (naive local time), or None when it carries no wall-clock time.

    A classic syslog time has no year: it is the latest year in which that day exists and which puts it at
    most a day after ``now`` (``Dec 31`` read on 2 January is last year; ``Feb 29`` read in a common year is
    the last leap year's). An ISO time whose zone moves it outside the years ``datetime`` can hold is no
    time railbench can place, so it is None too.
    """
    first = line[:40].split(" ", 1)[0]
    if len(first) >= 19 and first[4:5] == "-" and first[10:11] == "T":
        try:
            stamp = datetime.fromisoformat(first)
            return stamp.astimezone().replace(tzinfo=None) if stamp.tzinfo else stamp
        except (ValueError, OverflowError, OSError):  # OverflowError: year 1 or 9999 moved by its zone
            return None
    words = line[:32].split()
    if len(words) < 3 or words[0][:3].lower() not in _MONTHS or not ascii_digits(words[1]):
        return None
    try:
        hour, minute, second = (int(p) for p in words[2].split(":"))
        month, day = _MONTHS[words[0][:3].lower()], int(words[1])
    except ValueError:
        return None
    for year in range(now.year, now.year - _LEAP_CYCLE_YEARS - 1, -1):
        try:
            stamp = datetime(year, month, day, hour, minute, second)
        except ValueError:  # no such day that year (Feb 29), or no such time at all
            continue
        if stamp - now <= timedelta(days=1):
            return stamp
    return None


def flaps(lines: Iterable[str], devices: Sequence[str], since: datetime, now: datetime) -> list[Flap]:
    """Link-loss lines within [since, now] that name one of ``devices`` as a whole word."""
    wanted = set(devices)
    out = []
    for line in lines:
        lower = line.lower()
        if not any(phrase in lower for phrase in FLAP_PHRASES):
            continue
        named = [w for w in line.translate(_SEPARATORS).split() if w in wanted]
        if not named:
            continue
        when = line_time(line, now)
        if when is None or not since <= when <= now + timedelta(minutes=5):
            continue
        out.append(Flap(named[0], when, line))
    return out


def booted_kernel(lines: Sequence[str]) -> str | None:
    """The release the last boot banner in ``lines`` names (``Linux version 6.8.0-45-generic (...)`` ->
    ``6.8.0-45-generic``); None when the log holds no banner (journalctl -k of a long-running node, a rotated
    file)."""
    for index in range(len(lines) - 1, -1, -1):
        at = lines[index].find(BOOT_BANNER)
        if at >= 0:
            release = lines[index][at + len(BOOT_BANNER) :].split(" ", 1)[0]
            return release[:64] or None
    return None
