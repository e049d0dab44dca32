"""nccl-tests text output: the tables of one or more ``*_perf`` runs, old and new formats."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from bench.errors import UserError
from bench.nccltests.infer import Evidence, finish, mentions
from bench.nccltests.model import (
    Device,
    Header,
    Measurement,
    NcclTestsLog,
    Number,
    Placement,
    Row,
    collective_from_program,
    nccl_version_from_code,
)

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_SRUN_LABEL = re.compile(r"^\s*\d+:(?:\s|$)")
_VERSION = re.compile(r"#\s*nccl-tests version (\S+)(?: nccl-headers=(\d+))?(?: nccl-library=(\d+))?")
_STARTING = re.compile(r"#\s*Collective test starting:\s*(\S+)")
_CONCLUDED = re.compile(r"#\s*Collective test concluded")
_NTHREAD = re.compile(r"#\s*nThread\s+(\d+)\s+nGpus\s+(\d+)(.*)")
_DEVICE = re.compile(
    r"#\s*Rank\s+(\d+)\s+(?:Group\s+(\d+)\s+)?Pid\s+(\d+)\s+on\s+(\S+)\s+device\s+(\d+)\s+\[([^\]]*)\]\s*(.*?)\s*$"
)
_COLUMNS = re.compile(r"#\s*size\s+count\s+type\b")
_ROW = re.compile(r"^\s*\d+\s+\d+\s+[A-Za-z]\w*(?:\s|$)")
_TIMESTAMP = re.compile(r"\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\s*$")
_OOB = re.compile(r"#\s*Out of bounds values\s*:\s*(\d+)")
_AVG = re.compile(r"#\s*Avg bus bandwidth\s*:\s*(\S+)")
_REDUCING = re.compile(r"#\s*Reducing maxBytes to (\d+)")
_NCCL_VERSION = re.compile(r"NCCL version (\d+\.\d+\.\d+)(?:\+cuda(\d+\.\d+))?")
_NCCL_LINE = re.compile(r"^(\S+?):\d+:\d+ \[\d+\] NCCL (INFO|WARN)\b")
_NRANKS = re.compile(r"\bnranks (\d+)", re.IGNORECASE)
_FAILURE = re.compile(r"Test (?:NCCL |CUDA )?failure|\[\d+\] NCCL WARN .*(?:failure|error)|#\s*error:", re.I)
_PROGRAM = re.compile(r"(\S*?[a-z_]+_perf)(?=\s+-)")  # an invocation: the program, then its flags
_NP = re.compile(r"(?:^|\s)(?:-np|--np|-n|--ntasks(?:=|\s))\s*(\d+)")


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def parse_row(line: str, line_no: int = 0) -> Row:
    """One data row, in any nccl-tests layout; ValueError if it is damaged (e.g. cut off mid-line)."""
    tokens = _TIMESTAMP.sub("", line).split()
    size, count, dtype = int(tokens[0]), int(tokens[1]), tokens[2]
    rest = tokens[3:]
    redop = rest.pop(0) if rest and not _is_number(rest[0]) else ""  # old alltoall prints no redop
    # Then an optional root and 4 fields per half (8 with -I per-iteration columns). Times printed with
    # %.0f look like integers, so the root is recognised by the field count, not by its form.
    root = int(rest.pop(0)) if len(rest) % 4 == 1 else None
    width = 8 if len(rest) == 16 else 4
    if len(rest) not in (width, 2 * width):
        raise ValueError(f"line {line_no}: {len(tokens)} fields are not a whole nccl-tests row")
    halves = [rest[i : i + width] for i in range(0, len(rest), width)]
    # Trace replay prints only the in-place half.
    placements: tuple[Placement, ...] = ("out-of-place", "in-place") if len(halves) == 2 else ("in-place",)
    measurements = tuple(
        Measurement(
            placement=placement,
            time_us=Number.parse(half[0]),
            algbw_GBps=Number.parse(half[1]),
            busbw_GBps=Number.parse(half[2]),
            wrong=None if half[3].upper() == "N/A" else int(float(half[3])),
        )
        for placement, half in zip(placements, halves, strict=True)
    )
    return Row(size, count, dtype, redop, root, measurements, line_no)


def _layout(row: Row) -> tuple[str, ...]:
    return tuple(m.placement for m in row.measurements)


def _parse_header(match: re.Match[str]) -> Header:
    rest = match.group(3)

    def num(pattern: str) -> int | None:
        found = re.search(pattern, rest)
        return int(found.group(1)) if found else None

    step = re.search(r"step:\s*(\d+)\((factor|bytes)\)", rest)
    iters = {(k or "").strip(): int(v) for k, v in re.findall(r"(warmup |agg )?iters:\s*(\d+)", rest)}
    return Header(
        nthreads=int(match.group(1)),
        ngpus=int(match.group(2)),
        min_bytes=num(r"minBytes\s+(\d+)"),
        max_bytes=num(r"maxBytes\s+(\d+)"),
        step_factor=int(step.group(1)) if step and step.group(2) == "factor" else None,
        step_bytes=int(step.group(1)) if step and step.group(2) == "bytes" else None,
        warmup_iters=iters.get("warmup"),
        iters=iters.get(""),
        agg_iters=iters.get("agg"),
        validation=num(r"validation:\s*(\d+)"),
        graph=num(r"graph:\s*(\d+)"),
    )


def _clean_lines(text: str) -> Iterable[tuple[int, str]]:
    """Numbered lines without ANSI colour, srun labels, markdown quotes and CRs; continuations joined."""
    joined, first = "", 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = _SRUN_LABEL.sub("", _ANSI.sub("", raw).replace("\r", ""), count=1)
        if line.startswith(">"):
            line = line.lstrip("> ")
        if line.rstrip().endswith("\\"):  # a shell command split over lines
            joined, first = joined + " " + line.rstrip()[:-1], first or number
            continue
        if joined:
            line, number, joined, first = joined + " " + line, first, "", 0
        yield number, line


def parse_text(
    text: str, *, source: str = "", collective: str | None = None, nranks: int | None = None
) -> NcclTestsLog:
    """Parse nccl-tests text output. ``collective``/``nranks`` are used only where the log does not say."""
    tables: list[Evidence] = []
    pending = Evidence()  # what is seen before a table starts belongs to the next table
    cur: Evidence | None = None

    def open_table(line_no: int) -> Evidence:
        nonlocal pending
        table = pending
        table.first_line = line_no
        pending = pending.successor(0)
        tables.append(table)
        return table

    def evidence() -> Evidence:
        return cur if cur is not None and not cur.closed else pending

    for number, line in _clean_lines(text):
        stripped = line.strip()
        if m := _VERSION.match(stripped):
            cur = None  # a new run starts; its table opens at its first table line
            pending.tests_version = m.group(1)
            if m.group(3):
                pending.nccl_version = nccl_version_from_code(int(m.group(3)))
        elif m := _STARTING.match(stripped):
            if cur is None or cur.started:
                cur = open_table(number)
            cur.marker = collective_from_program(m.group(1)) or m.group(1).removesuffix("_perf")
        elif m := _NTHREAD.match(stripped):
            if cur is None or cur.header or cur.devices or cur.rows or cur.closed:
                cur = open_table(number)
            cur.header = _parse_header(m)
        elif stripped.startswith("#") and stripped.lstrip("# ").startswith("Using devices"):
            if cur is None or cur.devices or cur.rows or cur.closed:
                cur = open_table(number)
        elif m := _DEVICE.match(stripped):
            if cur is None or cur.rows or cur.closed:
                cur = open_table(number)
            rank, group, pid, host, device, bus_id, gpu = m.groups()
            cur.devices.append(Device(int(rank), int(group or 0), int(pid), host, int(device), bus_id, gpu))
        elif _COLUMNS.match(stripped):
            if cur is None or cur.rows or cur.closed:
                cur = open_table(number)
        elif _ROW.match(line):
            try:
                row: Row | None = parse_row(line, number)
            except ValueError:
                row = None
            # A row cut off after one whole half parses, so it is also checked against the rows before it.
            if row is None or (
                cur is not None and cur.rows and not cur.closed and _layout(row) != _layout(cur.rows[-1])
            ):
                evidence().notes.append(f"line {number}: damaged row skipped: {stripped[:60]}")
                continue
            if cur is None or cur.closed:
                cur = open_table(number)
            cur.rows.append(row)
        elif (m := _OOB.match(stripped)) and cur is not None:
            cur.out_of_bounds, cur.footer = int(m.group(1)), True
        elif (m := _AVG.match(stripped)) and cur is not None:
            cur.avg = float(m.group(1)) if _is_number(m.group(1)) else None
            cur.footer = cur.closed = True
        elif _CONCLUDED.match(stripped) and cur is not None:
            cur.closed = True
        elif m := _REDUCING.match(stripped):
            evidence().notes.append(f"nccl-tests reduced maxBytes to {m.group(1)} (GPU memory limit)")
        else:
            _read_free_line(stripped, evidence(), cur)
    hint = mentions(Path(source).stem) if source else []
    done = tuple(finish(t, hint, collective, nranks, source) for t in tables if t.rows)
    if not done:
        raise UserError(f"{source or 'log'}: no nccl-tests result rows found: pass the output of an *_perf run")
    failures = [f for t in done for f in t.failures] + [f for f in pending.failures]
    return NcclTestsLog(source, "text", done, tuple(failures))


def _read_free_line(line: str, into: Evidence, cur: Evidence | None) -> None:
    """Lines outside the table grammar: NCCL INFO/WARN, failures, versions, the command line."""
    if _FAILURE.search(line):
        # A failure after the last row (before any footer) belongs to the table it cut short.
        owner = cur if cur is not None and cur.rows and not cur.footer else into
        owner.failures.append(line)
    nccl_line = _NCCL_LINE.match(line)
    if nccl_line:
        into.info_hosts.append(nccl_line.group(1))
        if n := _NRANKS.search(line):
            into.info_nranks.append(int(n.group(1)))
    if m := _NCCL_VERSION.search(line):
        into.nccl_version, into.cuda_version = m.group(1), m.group(2) or into.cuda_version
    program = _PROGRAM.search(line)
    if program and (name := collective_from_program(program.group(1))):
        into.command, into.command_collective = line.strip(), name
        # Only the launcher's part: after the program come the test's own flags, where -n is iterations.
        np = _NP.search(line[: program.start()])
        into.launcher_np = int(np.group(1)) if np else None
    elif not nccl_line and not line.startswith("#"):
        into.mentions.extend(mentions(line))
