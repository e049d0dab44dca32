"""The run directory: one self-describing folder per run (docs/design.md, "Records and schemas").

``reports/runs/<UTC time>-<cluster>/`` holds ``run.json`` (metadata), ``results.csv`` (long format, one
row per measurement), ``checks.json``, ``nccl/<host>-<rank>.log``, ``charts/``, ``report.md``,
``report.html`` and ``junit.xml``.

Every file is replaced atomically (write a temporary file in the same folder, fsync, rename), so a crash,
a hang or Ctrl-C never leaves a half-written file and never loses a row that was already measured. results.csv
alone grows while a run goes on: rows are appended and made durable before the next measurement
(``ResultsWriter``), and its readers leave out a last line that a crash cut. No write lands on a symlink, a
device node or a FIFO (``check_replaceable``), and folders and files get the modes ``mkdir`` and ``open``
would (0777 and 0666 less the umask), whichever command made them.
Reading goes through ``bench.bounded`` and ``bench.jsondoc``: a run directory may hold anything.

Format history (``run.json["format_version"]``; results.csv carries the same version in ``run.json``):

* 1 — first release: the RESULT_COLUMNS below.
"""

from __future__ import annotations

import csv
import errno
import io
import json
import math
import os
import socket
import stat
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

from bench import jsondoc
from bench.bounded import MissingInput, capped_lines, file_kind, open_text
from bench.exits import UserError
from bench.jsondoc import Parsed

FORMAT_VERSION = 1

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

SCOPES = ("world", "rail", "pair", "local-pair", "node")

RUN_FILES = (
    "run.json",
    "results.csv",
    "rails.json",
    "checks.json",
    "junit.xml",
    "report.md",
    "report.html",
    "metrics.prom",
    "compare.json",
    "compare-junit.xml",
    "trend.csv",
)
"""The files railbench writes in a run directory (``docs/design.md``, "Records and schemas")."""
RUN_FOLDERS = ("nccl", "charts")
"""The folders it writes into there."""

RowValue = str | int | float | None
Row = dict[str, RowValue]
"""One results.csv row as railbench writes it, by column name (readers get every value back as a string)."""


def row_float(value: RowValue) -> float:
    """A row's number whether it is still a number or came back from results.csv as text (blank: 0)."""
    return 0.0 if value is None or value == "" else float(value)


def row_int(value: RowValue) -> int:
    """A row's whole number (bytes, counts), likewise."""
    return 0 if value is None or value == "" else int(float(value))


def utc_stamp(now: float | None = None) -> str:
    """``20261120T224310Z``: sortable and safe in a path on every filesystem."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() if now is None else now))


def default_cluster_name(hostname: str) -> str:
    """A cluster name from a node's hostname: ``gpu-node017.lambda`` -> ``gpu-node``."""
    return hostname.split(".")[0].rstrip("0123456789-_") or "local"


MAX_CLUSTER_CHARS = 64
"""A cluster name is a short label (``gpu-node``, ``lambda-1cc-prod``): it goes into every run directory's name,
the history, the report's title and its images."""


def check_cluster_name(name: str | None, flag: str = "--cluster") -> None:
    """UserError when a cluster name is empty or longer than :data:`MAX_CLUSTER_CHARS` (None: the default)."""
    if name is None:
        return
    if not name.strip():
        raise UserError(f"{flag} must not be empty: name the cluster, e.g. {flag} gpu-prod")
    if len(name) > MAX_CLUSTER_CHARS:
        raise UserError(
            f"{flag} is {len(name)} characters long; a cluster name has at most {MAX_CLUSTER_CHARS}: give a shorter one"
        )


def default_run_dir(cluster: str, root: Path | str = "reports/runs", now: float | None = None) -> Path:
    """``reports/runs/<UTC time>-<cluster>``."""
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in cluster) or "cluster"
    # a folder name has at most 255 bytes: 64 characters of 4 bytes each, after the time, would not fit
    safe = safe.encode("utf-8", "replace")[:200].decode("utf-8", "ignore")
    return Path(root) / f"{utc_stamp(now)}-{safe}"


def proposed_run_dir(out: Path | None, cluster: str | None) -> Path:
    """This rank's proposal for the run directory (rank 0's wins): ``--out``, else the default named after
    ``--cluster`` or this host's cluster."""
    return out or default_run_dir(cluster or default_cluster_name(socket.gethostname()))


def current_umask() -> int:
    """The process's umask, read from ``/proc/self/status`` (Linux 4.7+) without changing it: the classic
    ``os.umask(0)`` then back leaves a moment in which another thread (the report draws charts in a pool)
    creates world-writable files."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def make_staging_dir(root: Path, prefix: str) -> Path:
    """A new hidden folder under ``root`` to build a run directory in before it is renamed into place, with
    the mode ``mkdir`` would give (``tempfile.mkdtemp`` makes 0700 whatever the umask: an imported run would
    be unreadable to teammates and the web server while ``run`` and ``accept`` make theirs 0755)."""
    staging = Path(tempfile.mkdtemp(prefix=prefix, dir=root))
    os.chmod(staging, 0o777 & ~current_umask())
    return staging


def check_replaceable(path: Path | str, flag: str | None = None) -> None:
    """UserError unless ``path`` is absent or a regular file: an atomic write renames a new file over the path,
    which would put a regular file in place of a device node (``/dev/null``), a FIFO or a socket, and would
    replace a symlink itself rather than write where it points. ``flag`` names the option that gave it."""
    shown = f"{flag} {path}" if flag else str(path)
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as exc:
        raise UserError(f"{shown} cannot be checked ({exc.strerror or exc}): give another path") from None
    if stat.S_ISLNK(mode):
        raise UserError(
            f"{shown} is a symlink: railbench replaces its files whole and would replace the link, "
            "not what it points to; give the path of the file itself"
        )
    if not stat.S_ISREG(mode):
        raise UserError(
            f"{shown} is a {file_kind(mode)}, not a regular file: railbench never replaces one; name a file"
        )


def check_output_folder(folder: Path, shown: str) -> None:
    """UserError, before any work, unless railbench can write files in ``folder`` (made if absent): a path
    that cannot be looked at (a symlink loop), a file in the way, or a folder that refuses a new file
    (read-only, ``/proc``). A probe file is made and removed: permission bits do not say it for root."""
    probe_in = folder
    try:
        while not probe_in.exists():
            if probe_in.parent == probe_in:
                break
            probe_in = probe_in.parent
        if not probe_in.is_dir():
            raise UserError(f"{shown}: {probe_in} is a {file_kind(os.stat(probe_in).st_mode)}, not a folder")
        fd, probe = tempfile.mkstemp(prefix=".railbench-probe.", dir=probe_in)
    except OSError as exc:
        raise UserError(f"{shown} cannot be written ({exc.strerror or exc}): give a folder you can write") from None
    os.close(fd)
    Path(probe).unlink(missing_ok=True)


def atomic_write_bytes(path: Path | str, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a mix. A path that is
    a symlink or not a regular file is refused (:func:`check_replaceable`), never replaced."""
    path = Path(path)
    check_replaceable(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp makes 0600 files; give the mode open() would (0666 less the umask): reports and CSVs are
        # read by web servers and teammates, and a group-shared umask (002) makes them group-writable too.
        os.fchmod(fd, 0o666 & ~current_umask())
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path | str, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def _finite_or_null(obj: object) -> object:
    """``obj`` with every float that is not finite as None (a copy; the caller's object is not changed)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {k: _finite_or_null(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite_or_null(v) for v in obj]
    return obj


def _container(value: object) -> object:
    """What ``json.dumps`` cannot take itself: a read-only mapping (``jsondoc.JSONValue`` allows any) as an
    object; anything else (a Path, a datetime) as its text."""
    return dict(value) if isinstance(value, Mapping) else str(value)


def json_text(obj: object) -> str:
    """``obj`` as standard JSON, which every reader (``bench.jsondoc``) accepts: a value that is not finite is
    written as ``null``, never as the ``NaN`` or ``Infinity`` that JSON does not have."""
    try:
        text = json.dumps(obj, indent=2, sort_keys=False, default=_container, allow_nan=False)
    except ValueError:  # a NaN or an infinity somewhere: rare, so the copy is made only then
        text = json.dumps(_finite_or_null(obj), indent=2, sort_keys=False, default=_container, allow_nan=False)
    return text + "\n"


def atomic_write_json(path: Path | str, obj: object) -> None:
    """``obj`` as JSON (:func:`json_text`), replacing ``path`` atomically."""
    atomic_write_text(path, json_text(obj))


def overwrite_in_own_blocks(path: Path, data: bytes) -> bool:
    """Write ``data`` over the regular file ``path`` in place, when it fits in the blocks the file already
    holds: on a full disk the atomic write's new copy finds no room, but a record must still be able to say
    that the run failed. False (nothing written) when it does not fit or ``path`` is not a regular file."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW)
    except OSError:
        return False
    try:
        held = os.fstat(fd)
        if not stat.S_ISREG(held.st_mode) or len(data) > held.st_blocks * 512:
            return False
        os.pwrite(fd, data, 0)
        os.ftruncate(fd, len(data))
        os.fsync(fd)
        return True
    finally:
        os.close(fd)


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


def read_json_object(path: Path, fix: str) -> Parsed:
    """A JSON object from ``path`` (``bench.jsondoc``: a regular file, size, depth and numbers bounded);
    UserError saying ``fix`` when it is absent, damaged or not an object."""
    return jsondoc.read_json_object(path, fix=fix)


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
