"""nccl-tests text output: the tables of one or more ``*_perf`` runs, old and new formats, read as a stream.

``iter_tables`` reads a stream line by line and yields each table as soon as the next one starts (or the
input ends), so only one table is in memory at a time, whatever the size of the log. Every number goes
through ``bench.bounded`` (refused with file, line and field when it is huge, not finite or negative), every
pattern is linear on a line, and lines over ``bench.textlines.MAX_LINE_CHARS`` are skipped with a note.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path

from bench.bounded import InputError, Where, ascii_digits, parse_float, parse_int
from bench.exits import UserError
from bench.nccltests.command import read_command
from bench.nccltests.infer import TableEvidence, finish, mentions
from bench.nccltests.model import (
    Device,
    NcclTestsLog,
    Row,
    Table,
    collective_from_program,
    nccl_version_from_code,
)
from bench.nccltests.rows import MAX_COUNT, is_number, layout, parse_header, parse_row, whole_number
from bench.textlines import MAX_LINE_CHARS, strip_launcher_label, text_lines

MAX_TABLE_ROWS = 100_000
"""A sweep from 0 bytes to 16 GiB in 1 MiB steps has 16,384 sizes; more rows than this is not one table."""
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_GLUED_RANK_LABEL = re.compile(r"(?<=\S)\[[0-9]{1,6}\](?=\s)")
_VERSION = re.compile(r"#\s*nccl-tests version (\S+)(?: nccl-headers=([0-9]+))?(?: nccl-library=([0-9]+))?")
_STARTING = re.compile(r"#\s*Collective test starting:\s*(\S+)")
_CONCLUDED = re.compile(r"#\s*Collective test concluded:?\s*(\S*)")
_NTHREAD = re.compile(r"#\s*nThread\s+([0-9]+)\s+nGpus\s+([0-9]+)(.*)")
_DEVICE = re.compile(
    r"#\s*Rank\s+([0-9]+)\s+(?:Group\s+([0-9]+)\s+)?Pid\s+([0-9]+)\s+on\s+(\S+)\s+device\s+([0-9]+)\s+\[([^\]]*)\](.*)"
)
_COLUMNS = re.compile(r"#\s*size\s+count\s+type\b")
_ROW = re.compile(r"\s*[0-9]+\s+[0-9]+\s+[A-Za-z]\w*(?:\s|$)")
_OOB = re.compile(r"#\s*Out of bounds values\s*:\s*(\S+)")
_AVG = re.compile(r"#\s*Avg bus bandwidth\s*:\s*(\S+)")
_REDUCING = re.compile(r"#\s*Reducing maxBytes to ([0-9]{1,24})")
_NCCL_VERSION = re.compile(r"NCCL version ([0-9]+\.[0-9]+\.[0-9]+)(?:\+cuda([0-9]+\.[0-9]+))?")
_NCCL_LINE = re.compile(r"(\S+?):[0-9]+:[0-9]+ \[[0-9]+\] NCCL (INFO|WARN)\b")
_NRANKS = re.compile(r"\bnranks ([0-9]+)", re.IGNORECASE)
_FAILURE = re.compile(r"Test (?:NCCL |CUDA )?failure|#\s*error:", re.IGNORECASE)
_WARN = re.compile(r"\[[0-9]+\] NCCL WARN ")
_GRAMMAR_WORDS = (
    "nThread",
    "Using devices",
    "Rank",
    "size",
    "Out of bounds",
    "Avg bus bandwidth",
    "Collective test",
    "nccl-tests version",
    "Reducing maxBytes",
)
"""How the table's own ``#`` lines begin. A log pasted into Markdown (an issue, a wiki) without a code fence
loses every leading ``#`` to the heading syntax; a line that begins so is read as the ``#`` line it was."""


def _without_rank_labels(line: str) -> str:
    """``line`` without the ``[N]`` labels of MPI's ``-prepend-rank`` (Intel MPI, MPICH hydra): they label each
    write, and nccl-tests prints a row in several, so they also sit inside it, glued to the field before
    (``sum      -1[0]    1626.5``; NVIDIA/nccl#1453). Only a line that starts with one is so labelled."""
    stripped = line.lstrip()
    close = stripped.find("]", 0, 8)
    if not (stripped.startswith("[") and close > 1 and ascii_digits(stripped[1:close])):
        return line
    return _GLUED_RANK_LABEL.sub("", stripped[close + 1 :])


def _clean_lines(lines: Iterable[tuple[int, str | None]]) -> Iterator[tuple[int, str | None]]:
    """Numbered lines without ANSI colour, launcher and rank labels, markdown quotes and CRs; continuations
    joined."""
    joined, first = "", 0
    for number, raw in lines:
        if raw is None:
            yield number, None
            continue
        line = _without_rank_labels(strip_launcher_label(_ANSI.sub("", raw) if "\x1b" in raw else raw))
        if "\r" in line:
            line = line.replace("\r", "")
        if line.startswith(">"):
            line = line.lstrip("> ")
        if line.rstrip().endswith("\\") and len(joined) < MAX_LINE_CHARS:  # a shell command split over lines
            joined, first = joined + " " + line.rstrip()[:-1], first or number
            continue
        if joined:
            line, number, joined, first = joined + " " + line, first, "", 0
        yield number, line


class _Reader:
    """The state of one pass over a text log: the table being read and what came before it."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.pending = TableEvidence()  # what is seen before a table starts belongs to the next table
        self.cur: TableEvidence | None = None
        self.opened: list[TableEvidence] = []

    def where(self, field: str, line: int) -> Where:
        return Where(self.source or "log", field, line)

    def open_table(self, line_no: int) -> TableEvidence:
        table = self.pending
        table.first_line = line_no
        self.pending = self.pending.successor(0)
        self.opened.append(table)
        self.cur = table
        return table

    def evidence(self) -> TableEvidence:
        return self.cur if self.cur is not None and not self.cur.closed else self.pending

    def done(self) -> list[TableEvidence]:
        """Tables that no later line can change (every table opened before the current one)."""
        finished = [t for t in self.opened if t is not self.cur]
        self.opened = [t for t in self.opened if t is self.cur]
        return finished

    def feed(self, number: int, line: str) -> None:
        stripped = line.strip()
        if stripped.startswith("#"):
            if self._comment(number, stripped):
                return
        elif _ROW.match(line):
            self._row(number, line, stripped)
            return
        elif stripped.startswith(_GRAMMAR_WORDS) and self._comment(number, "# " + stripped):
            into = self.evidence()
            if not into.hashless:
                into.hashless = True
                into.note(
                    f"line {number}: the table's lines have lost their '#' (pasted through Markdown?); read as such"
                )
            return
        self._free_line(number, stripped)

    def _comment(self, number: int, stripped: str) -> bool:
        """A ``#`` line of the table grammar; False for any other ``#`` line.

        The kinds of line are tried in one order, the first that matches taking the line: a run's start and
        header, its devices and columns, then its footer."""
        return (
            self._run_comment(number, stripped)
            or self._device_comment(number, stripped)
            or self._footer(number, stripped)
        )

    def _run_comment(self, number: int, stripped: str) -> bool:
        """A new run's version line, its collective's marker or its header line; False for any other line."""
        cur = self.cur
        if m := _VERSION.match(stripped):
            self.cur = None  # a new run starts; its table opens at its first table line
            quoted = replace(self.pending.quoted, nccl_tests_version=m.group(1)[:40])
            if m.group(3):
                code = whole_number(m.group(3), self.source, "nccl-library", number, maximum=10**8)
                quoted = replace(quoted, nccl_version=nccl_version_from_code(code))
            self.pending.quoted = quoted
        elif m := _STARTING.match(stripped):
            if cur is None or cur.started:
                cur = self.open_table(number)
            cur.marker = collective_from_program(m.group(1)) or m.group(1).removesuffix("_perf")[:40]
        elif m := _NTHREAD.match(stripped):
            if cur is None or cur.header or cur.devices or cur.rows or cur.closed:
                cur = self.open_table(number)
            cur.header = parse_header(m, self.where("header", number))
        else:
            return False
        return True

    def _device_comment(self, number: int, stripped: str) -> bool:
        """The ``Using devices`` line, a device line or the column names; False for any other line."""
        cur = self.cur
        if stripped.lstrip("# ").startswith("Using devices"):
            if cur is None or cur.devices or cur.rows or cur.closed:
                self.open_table(number)
        elif m := _DEVICE.match(stripped):
            if cur is None or cur.rows or cur.closed:
                cur = self.open_table(number)
            rank, group, pid, host, device, bus_id, gpu = m.groups()
            src = self.source
            cur.devices.append(
                Device(
                    whole_number(rank, src, "device line rank", number, maximum=MAX_COUNT),
                    whole_number(group or "0", src, "device line group", number, maximum=MAX_COUNT),
                    whole_number(pid, src, "device line Pid", number, maximum=1 << 40),
                    sys.intern(host[:255]),
                    whole_number(device, src, "device line device", number, maximum=MAX_COUNT),
                    bus_id,
                    sys.intern(gpu.strip()[:255]),
                )
            )
        elif _COLUMNS.match(stripped):
            if cur is None or cur.rows or cur.closed:
                cur = self.open_table(number)
            cur.columns = tuple(stripped.lstrip("#").split())
        else:
            return False
        return True

    def _footer(self, number: int, stripped: str) -> bool:
        """A table's footer (out of bounds values, average busbw, its end) or the note that nccl-tests reduced
        maxBytes; False for any other line."""
        cur = self.cur
        if (m := _OOB.match(stripped)) and cur is not None:
            cur.out_of_bounds = parse_int(m.group(1), self.where("Out of bounds values", number), maximum=1 << 62)
            cur.footer = True
        elif (m := _AVG.match(stripped)) and cur is not None:
            value = m.group(1)
            cur.avg = parse_float(value, self.where("Avg bus bandwidth", number)) if is_number(value) else None
            cur.footer = cur.closed = True
        elif (m := _CONCLUDED.match(stripped)) and cur is not None:
            # The run's last line names its test too: where the starting marker was lost (a table pasted
            # without its head), it is the log's own word for the collective.
            if cur.marker is None and m.group(1):
                cur.marker = collective_from_program(m.group(1)) or m.group(1).removesuffix("_perf")[:40]
            cur.closed = True
        elif m := _REDUCING.match(stripped):
            self.evidence().note(f"nccl-tests reduced maxBytes to {m.group(1)} (GPU memory limit)")
        else:
            return False
        return True

    def _row(self, number: int, line: str, stripped: str) -> None:
        cur = self.cur
        try:
            row: Row | None = parse_row(line, number, self.source)
        except ValueError:
            row = None
        # A row cut off after one whole half parses, so it is also checked against the rows before it.
        if row is None or (cur is not None and cur.rows and not cur.closed and layout(row) != layout(cur.rows[-1])):
            self.evidence().note(f"line {number}: damaged row skipped: {stripped[:60]}")
            return
        if cur is None or cur.closed:
            cur = self.open_table(number)
        if len(cur.rows) >= MAX_TABLE_ROWS:
            raise InputError(
                f"{self.source or 'log'}:{number}: table at line {cur.first_line} has over {MAX_TABLE_ROWS} rows: "
                "it is not one nccl-tests sweep (the log is damaged or concatenated without headers)"
            )
        cur.rows.append(row)

    def _free_line(self, number: int, line: str) -> None:
        """Lines outside the table grammar: NCCL INFO/WARN, failures, versions, the command line."""
        into, cur = self.evidence(), self.cur
        warn = _WARN.search(line)
        tail = line[warn.end() :].lower() if warn else ""
        if _FAILURE.search(line) or "failure" in tail or "error" in tail:
            # A failure after the last row (before any footer) belongs to the table it cut short.
            owner = cur if cur is not None and cur.rows and not cur.footer else into
            owner.fail(line, number)
        nccl_line = _NCCL_LINE.match(line)
        if nccl_line:
            into.info_hosts.setdefault(nccl_line.group(1)[:255], None)
            if n := _NRANKS.search(line):
                count = parse_int(n.group(1), self.where("NCCL INFO nranks", number), maximum=MAX_COUNT)
                into.info_nranks = max(into.info_nranks or 0, count)
        if m := _NCCL_VERSION.search(line):
            into.quoted = replace(
                into.quoted, nccl_version=m.group(1), cuda_version=m.group(2) or into.quoted.cuda_version
            )
        command = read_command(line, self.source, number) if "_perf" in line else None
        if command is not None:
            into.quoted = replace(
                into.quoted,
                command=command.text[:MAX_LINE_CHARS],
                command_collective=command.collective,
                launcher_np=command.processes if command.launcher else None,
                command_ranks=None if command.launcher else command.nranks,
            )
        elif not nccl_line and not line.startswith("#"):
            into.mention(mentions(line))


def _with_rows(done: Iterable[TableEvidence], stopped: list[TableEvidence]) -> Iterator[TableEvidence]:
    """The tables just completed that hold rows; those that failed before their first row go to ``stopped``."""
    for table in done:
        if table.rows:
            yield table
        elif table.failures:
            stopped.append(table)


def iter_tables(
    lines: Iterable[tuple[int, str | None]],
    *,
    source: str = "",
    collective: str | None = None,
    nranks: int | None = None,
    failures: list[str] | None = None,
) -> Iterator[Table]:
    """Each table of the numbered ``lines`` (see ``bench.textlines``), as soon as it is complete.

    ``failures`` (when given) receives the failure lines that belong to no table. UserError when the log
    holds no table at all.
    """
    reader = _Reader(source)
    hint = mentions(Path(source).stem) if source else []
    found = 0
    stopped: list[TableEvidence] = []
    """Runs that failed before their first row: no table, but their failure lines count."""
    for number, line in _clean_lines(lines):
        if line is None:
            reader.evidence().note(f"line {number}: longer than {MAX_LINE_CHARS} characters, skipped")
            continue
        reader.feed(number, line)
        for table in _with_rows(reader.done(), stopped):
            found += 1
            yield finish(table, hint, collective, nranks, source)
    reader.cur = None
    for table in _with_rows(reader.done(), stopped):
        found += 1
        yield finish(table, hint, collective, nranks, source)
    failed = [t for t in (*stopped, reader.pending) if t.failures]
    if failures is not None:
        failures.extend(f for t in failed for f in t.failures)
    if not found and failed:
        raise UserError(_failed_before_rows(source, failed[0]))
    if not found:
        raise UserError(f"{source or 'log'}: no nccl-tests result rows found: pass the output of an *_perf run")


def _failed_before_rows(source: str, table: TableEvidence) -> str:
    """The refusal of a log whose run failed before it printed a row, saying where (the failure line names
    the host and the nccl-tests source line; the log line is ours)."""
    run = table.marker or table.quoted.command_collective or "nccl-tests"
    where = f"line {table.first_failure_line}: " if table.first_failure_line else ""
    return (
        f"{source or 'log'}: the {run} run failed before its first result row ({where}{table.failures[0].strip()}): "
        "nothing was measured, so there is nothing to import; the lines before it say why"
    )


def parse_text(
    text: str, *, source: str = "", collective: str | None = None, nranks: int | None = None
) -> NcclTestsLog:
    """Parse nccl-tests text output. ``collective``/``nranks`` are used only where the log does not say."""
    loose: list[str] = []
    done = tuple(iter_tables(text_lines(text), source=source, collective=collective, nranks=nranks, failures=loose))
    failures = [f for t in done for f in t.printed.failures] + loose
    return NcclTestsLog(source, "text", done, tuple(failures))
