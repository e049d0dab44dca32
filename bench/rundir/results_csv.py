"""results.csv: one row per measurement, in long format (docs/design.md, "Records and schemas"), written row by
row as a run goes on and read back row by row by runs of any size.

Its columns are :data:`RESULT_COLUMNS` (format ``bench.rundir.files.FORMAT_VERSION``); extra columns may follow,
and readers use names. Rows are appended and made durable before the next measurement (:class:`ResultsWriter`);
readers leave out a last line that a crash cut (:func:`iter_results_rows`).
"""

from __future__ import annotations

import csv
import errno
import io
import os
import stat
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

from bench.bounded import MissingInput, capped_lines, file_kind, open_text
from bench.exits import UserError
from bench.rundir.files import FORMAT_VERSION, atomic_write_bytes, check_replaceable

# The long-format columns of results.csv, in order. Extra columns may follow; readers use names.
RESULT_COLUMNS: tuple[str, ...] = (
    # what was measured
    "collective",
    "scope",
    "group",
    "nranks",
    "nnodes",
    "bytes",
    "count",
    "dtype",
    "placement",
    "iters",
    # time, microseconds: mean over ranks of each rank's mean, then the fastest and slowest rank
    "time_us",
    "time_us_min",
    "time_us_max",
    # bandwidth
    "algbw_GBps",
    "busbw_GBps",
    "busbw_Gbps",
    "target_Gbps",
    "efficiency",
    # checks
    "wrong",
    # provenance of the number: redop/root as nccl-tests prints them, the NCCL algorithm when known
    "redop",
    "root",
    "algo",
)


TEXT_COLUMNS = ("collective", "scope", "group", "dtype", "placement", "redop", "root", "algo")
"""The columns that hold words (``root`` as nccl-tests prints it, ``-1`` or a rank); every other one a number."""
NUMERIC_COLUMNS = tuple(c for c in RESULT_COLUMNS if c not in TEXT_COLUMNS)
"""The columns that hold numbers, in results.csv's order (what a reader parses as numbers)."""

SCOPES = ("world", "rail", "pair", "local-pair", "node")


RowValue = str | int | float | None


Row = dict[str, RowValue]
"""One results.csv row as railbench writes it, by column name (readers get every value back as a string)."""


def row_float(value: RowValue) -> float:
    """A row's number whether it is still a number or came back from results.csv as text (blank: 0)."""
    return 0.0 if value is None or value == "" else float(value)


def row_int(value: RowValue) -> int:
    """A row's whole number (bytes, counts), likewise."""
    return 0 if value is None or value == "" else int(float(value))


def results_csv_text(rows: Iterable[Mapping[str, RowValue]], columns: Sequence[str] = RESULT_COLUMNS) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in columns})
    return buf.getvalue()


ROOM_SLACK = 16 << 10
"""Room kept free beside two copies of run.json (:class:`ResultsWriter`): the failure it will record, and blocks."""


class ResultsWriter:
    """results.csv on disk after every measurement: rows appended, never rewritten while the run goes on.

    Each :meth:`append` writes its rows at the end of the file and makes them durable (``fdatasync``) before it
    returns, so a crash, a kill or a power loss afterwards loses none of them, and a row costs the same whether it
    is the first or the 32,000th (rewriting the file for every row was O(n^2): the 1,600th row wrote 30 times the
    bytes of the 100th). A write cut by a crash leaves at most a last line without its newline, which the readers
    leave out (:func:`iter_results_rows`). :meth:`replace_from` (provisional rows made final, once at a job's end)
    writes a new file beside the old one and renames it into place, so a reader sees the old rows or the new ones.

    The file is created at the first call, as ``open`` would make it (0666 less the umask); a symlink, a FIFO or
    anything but a regular file in its place is refused (``check_replaceable``), never followed or written through.

    ``keep_room_for`` (the run's run.json): rows that would leave too little room on the disk to rewrite that
    file twice more (rank 0's failure record, then the parent's) plus :data:`ROOM_SLACK` are refused as a full
    disk refuses them (``OSError`` ENOSPC), before a byte is written, so that a full disk is still a recorded
    failure. (A whole-file rewrite kept that room by itself: its copy needed as much again.)
    """

    def __init__(
        self, path: Path | str, columns: Sequence[str] = RESULT_COLUMNS, keep_room_for: Path | None = None
    ) -> None:
        self.path = Path(path)
        self.columns = tuple(columns)
        self.keep_room_for = keep_room_for
        self._fd: int | None = None
        self._ends: list[int] = []
        """Where each row ends in the file, in bytes (the header's end first)."""

    def _check_room(self, fd: int, nbytes: int) -> None:
        """ENOSPC when writing ``nbytes`` more would leave no room to record the run (see the class docstring)."""
        if self.keep_room_for is None:
            return
        try:
            record = os.stat(self.keep_room_for).st_size
        except OSError:
            record = 0
        disk = os.fstatvfs(fd)
        if disk.f_bavail * disk.f_frsize - nbytes < 2 * record + ROOM_SLACK:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.path))

    @property
    def count(self) -> int:
        """Rows written so far."""
        return max(0, len(self._ends) - 1)

    def _encoded(self, rows: Iterable[Mapping[str, RowValue]]) -> list[bytes]:
        """Each row as its line of the file."""
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        lines = []
        for row in rows:
            writer.writerow(["" if row.get(k) is None else row.get(k) for k in self.columns])
            lines.append(buf.getvalue().encode("utf-8"))
            buf.seek(0)
            buf.truncate()
        return lines

    def _open(self) -> int:
        """The file open for appending, made with its header at the first call."""
        if self._fd is not None:
            return self._fd
        check_replaceable(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # O_NOFOLLOW and O_NONBLOCK: a symlink or a FIFO put there since the check fails here, never blocks.
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        fd = os.open(self.path, flags, 0o666)
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            os.close(fd)
            raise UserError(f"{self.path} is a {file_kind(mode)}, not a regular file: railbench never writes one")
        header = results_csv_text([], self.columns).encode("utf-8")
        try:
            self._check_room(fd, len(header))
        except OSError:
            os.close(fd)
            raise
        _write_all(fd, header)
        os.fsync(fd)
        _sync_folder(self.path.parent)  # the new file's name is as durable as its rows
        self._fd, self._ends = fd, [len(header)]
        return fd

    def append(self, *rows: Mapping[str, RowValue]) -> None:
        """``rows`` at the end of the file, on disk when this returns (with none: the file exists, header only)."""
        fd = self._open()
        if not rows:
            return
        lines = self._encoded(rows)
        data = b"".join(lines)
        self._check_room(fd, len(data))
        _write_all(fd, data)
        _datasync(fd)
        end = self._ends[-1]
        for line in lines:
            end += len(line)
            self._ends.append(end)

    def replace_from(self, index: int, rows: Sequence[Mapping[str, RowValue]]) -> None:
        """Rows ``index`` onwards become ``rows`` (provisional rows replaced by the final ones), in one atomic
        replacement of the file: the rows before ``index`` are copied from it."""
        fd = self._open()
        index = max(0, min(index, self.count))
        keep = self._ends[index]
        with open(self.path, "rb") as current:
            head = current.read(keep)
        lines = self._encoded(rows)
        self._check_room(fd, keep + sum(map(len, lines)))  # the new file beside the old, until the rename
        atomic_write_bytes(self.path, head + b"".join(lines))
        os.close(fd)
        self._fd = None
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC)
        ends = self._ends[: index + 1]
        for line in lines:
            ends.append(ends[-1] + len(line))
        self._fd, self._ends = fd, ends

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __del__(self) -> None:
        self.close()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _datasync(fd: int) -> None:
    """The file's new bytes (and the size that makes them readable) on the disk."""
    getattr(os, "fdatasync", os.fsync)(fd)


def _sync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return  # a folder that cannot be opened for reading is still written to; only its entry's durability waits
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync of a folder
    finally:
        os.close(fd)


def read_results_rows(run_dir: Path | str) -> list[dict[str, str]]:
    """results.csv as a list of dicts (strings), checked for the expected header."""
    return list(iter_results_rows(run_dir))


def _whole_lines(lines: Iterable[str]) -> Iterator[str]:
    """``lines`` but a last one without its newline: a row whose write a crash cut (railbench ends every row with
    one, :class:`ResultsWriter`), never acknowledged as written; the rows before it are whole."""
    held = None
    for line in lines:
        if held is not None:
            yield held
        held = line
    if held is not None and held.endswith("\n"):
        yield held


def iter_results_rows(run_dir: Path | str) -> Iterator[dict[str, str]]:
    """results.csv row by row (strings), checked for the expected header and for rows cut short: for readers
    of any size of run. The file is read through ``bench.bounded`` (a regular file, lines of bounded length); a
    last line without its newline is a row a crash cut while it was written, and is left out."""
    path = Path(run_dir) / "results.csv"
    fix = "the run directory is damaged; re-run or re-import the run"
    try:
        stream = open_text(path, fix=fix)
    except MissingInput:
        raise UserError(f"{path} is missing: the run recorded no results") from None
    with stream:
        try:
            reader = csv.reader(_whole_lines(capped_lines(stream, label=str(path), fix=fix)))
            header = next(reader, [])
            missing = [c for c in RESULT_COLUMNS if c not in header]
            if missing:
                raise UserError(
                    f"{path} lacks columns {', '.join(missing)}: it is not a railbench results.csv "
                    f"of format {FORMAT_VERSION}"
                )
            for record in reader:
                if len(record) != len(header):
                    if not record:
                        continue  # a blank line, as csv.DictReader skips it
                    raise UserError(
                        f"{path} line {reader.line_num} has {len(record)} fields where the header has "
                        f"{len(header)}: the row was cut short or run together; {fix}"
                    )
                yield dict(zip(header, record, strict=True))
        except csv.Error as exc:
            raise UserError(f"{path} cannot be read ({exc}): {fix}") from None
