"""Each log (nccl-tests stdout, in any of its formats, or the ``-J`` JSON file) becomes a run directory with
results.csv, run.json and the charts, and is added to the history, so months of old logs start the
nightly history full. Importing the same log again reuses its run directory and history row.

A log is read as a stream, one table at a time, and its rows go straight to disk, so memory does not grow
with the log. The run directory is built under a hidden temporary name beside the others and renamed into
place only when every table has been read and checked; only then is it added to the history. A log that is
refused (exit 2) leaves no run directory and no history row behind. The command line is
``bench.commands.importer``.
"""

from __future__ import annotations

import calendar
import contextlib
import csv
import hashlib
import shutil
import sys
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import TextIO

from bench.bounded import open_regular
from bench.exits import UserError
from bench.frame.finish import write_report_if_available
from bench.history.store import add_run
from bench.importer.config import ImportConfig
from bench.jsondoc import read_json_object
from bench.nccltests import Table, open_log
from bench.nccltests.convert import COLUMNS, LogSummary, run_meta, table_rows, utc_stamp_of
from bench.rundir.files import default_run_dir, make_staging_dir
from bench.rundir.runjson import RunFile, new_record, read_run_json

REPORT_MAX_ROWS = 20_000
"""Above this many sizes the charts are not drawn on import (they hold every row in memory); ``railbench
report RUN_DIR`` draws them when wanted."""


def _json_time(text: str | None) -> str | None:
    """nccl-tests' ``%Y-%m-%d %H:%M:%S`` (the node's local time; taken as UTC, the zone is not recorded)."""
    try:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.strptime(text or "", "%Y-%m-%d %H:%M:%S"))
    except ValueError:
        return None


def _run_dir_for(config: ImportConfig, started_epoch: float, sha256: str) -> tuple[Path, bool]:
    """The run directory of a log and whether it is new: its own again when re-imported, else a fresh name,
    claimed with one ``mkdir``: two imports of logs that started in the same second, at once, each get one
    (a name checked free and renamed into later went to both, and the second moved the first aside)."""
    base = default_run_dir(config.cluster, root=config.out_root, now=started_epoch)
    for attempt in range(1, 1000):
        candidate = base if attempt == 1 else base.with_name(f"{base.name}-{attempt}")
        if candidate.exists():
            if _imported_sha256(candidate) == sha256:
                return candidate, False
            continue
        try:
            candidate.mkdir()  # one mkdir: exactly one import wins the name (bench.rundir.files.claim_run_dir)
        except FileExistsError:
            continue
        return candidate, True
    raise UserError(f"too many imports named {base}: pass another --out-root")


def _imported_sha256(run_dir: Path) -> str | None:
    try:
        meta = read_json_object(run_dir / "run.json", fix="")
    except UserError:  # not an import of ours (or damaged): never the same log
        return None
    source = meta.get("source")
    return source.get("sha256") if isinstance(source, dict) else None


def _sha256(path: Path) -> str:
    """The log's SHA-256, read through ``bench.bounded.open_regular``: a FIFO, ``/dev/zero`` or a folder is
    refused before a byte is read (hashing them would block or never end)."""
    digest = hashlib.sha256()
    with open_regular(path, fix="give the log file itself") as fh:
        try:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
        except OSError as exc:
            raise UserError(f"cannot read {path}: {exc.strerror}: check the path") from None
    return digest.hexdigest()


def _write_results(stream_tables: Iterable[Table], summary: LogSummary, staging: Path) -> None:
    """Rows to results.csv in ``staging``, table by table; scope and group are filled in at the end, when the
    world (the table with the most ranks) is known, by copying the partial file once."""
    partial = staging / ".rows.partial.csv"
    with partial.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        for index, table in enumerate(stream_tables, start=1):
            summary.add(table)
            for row in table_rows(table, index):
                writer.writerow(["" if row.get(k) is None else row[k] for k in COLUMNS])
    scopes = summary.scopes()
    table_at = COLUMNS.index("table")
    scope_at, group_at = COLUMNS.index("scope"), COLUMNS.index("group")
    with (
        partial.open(newline="", encoding="utf-8") as src,
        (staging / "results.csv").open("w", newline="", encoding="utf-8") as dst,
    ):
        out = csv.writer(dst, lineterminator="\n")
        out.writerow(COLUMNS)
        for record in csv.reader(src):
            record[scope_at], record[group_at] = scopes[int(record[table_at]) - 1]
            out.writerow(record)
    partial.unlink()


def _build(config: ImportConfig, path: Path, staging: Path, sha256: str) -> tuple[LogSummary, dict[str, object]]:
    """Read the log into ``staging`` (results.csv, run.json); UserError when it is refused."""
    with open_log(path, collective=config.collective, nranks=config.nranks) as stream:
        summary = LogSummary(source=stream.source, format=stream.format)
        _write_results(stream.tables, summary, staging)
        summary.failures.extend(stream.loose_failures[: max(0, 100 - len(summary.failures))])
        summary.env = dict(stream.env)
        start_time, end_time = stream.start_time, stream.end_time
    mtime = path.stat().st_mtime
    started = _json_time(start_time) or utc_stamp_of(mtime)
    finished = _json_time(end_time) or utc_stamp_of(mtime)
    meta = run_meta(summary, cluster=config.cluster, started_utc=started, finished_utc=finished, sha256=sha256)
    # Where the start time came from; runs with the same start keep their import order in the history.
    meta["started_utc_source"] = "log" if _json_time(start_time) else "file mtime"
    RunFile(staging, new_record(**meta))
    read_run_json(staging)  # what every later reader will do first
    return summary, meta


def _place(staging: Path, run_dir: Path, fresh: bool) -> Path | None:
    """Rename ``staging`` to ``run_dir`` (over the empty folder claimed for it when ``fresh``); an earlier
    import of the same log is moved aside (returned)."""
    aside = None
    if not fresh:
        aside = run_dir.with_name(f".{run_dir.name}.replaced-{staging.name}")
        run_dir.rename(aside)
    try:
        staging.rename(run_dir)
    except BaseException:
        if aside is not None:
            aside.rename(run_dir)
        raise
    return aside


def import_log(config: ImportConfig, path: Path) -> tuple[Path, LogSummary, int | None]:
    """Parse one log, write its run directory, add it to the history; (run dir, summary, history run id).

    Nothing is left behind when the log is refused: the run directory appears (renamed from a staging
    directory) only once the whole log has been read, and the history row is added after that.
    """
    sha256 = _sha256(path)
    root = config.out_root
    made_root = not root.exists()
    try:
        root.mkdir(parents=True, exist_ok=True)
        staging = make_staging_dir(root, ".import-")
    except OSError as exc:
        raise UserError(
            f"cannot create a run directory under {root}: {exc.strerror}: pass another --out-root"
        ) from None
    placed: Path | None = None
    aside: Path | None = None
    try:
        summary, meta = _build(config, path, staging, sha256)
        started_epoch = calendar.timegm(time.strptime(str(meta["started_utc"]), "%Y-%m-%dT%H:%M:%SZ"))
        run_dir, fresh = _run_dir_for(config, started_epoch, sha256)
        try:
            aside = _place(staging, run_dir, fresh)
        except BaseException:
            if fresh:
                with contextlib.suppress(OSError):
                    run_dir.rmdir()  # the name claimed for this import, still empty
            raise
        placed = run_dir
        run_id = None if config.no_history else add_run(config.history, run_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if placed is not None:  # placed, then the history refused it
            shutil.rmtree(placed, ignore_errors=True)
            if aside is not None:
                aside.rename(placed)  # the earlier import of the same log stays as it was
        if made_root:
            with contextlib.suppress(OSError):  # not empty: other runs are there
                root.rmdir()
        raise
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)
    if sum(t["rows"] for t in summary.summaries) <= REPORT_MAX_ROWS:
        write_report_if_available(run_dir)
    return run_dir, summary, run_id


def _tables_line(summary: LogSummary) -> str:
    """``all_reduce x80`` once per kind of table, with a count when a log repeats it (``sendrecv x?`` where the
    log never said how many ranks ran)."""
    kinds = Counter((t["collective"], t["nranks"]) for t in summary.summaries)
    return ", ".join(
        f"{c} x{'?' if n is None else n}" + (f" ({k} tables)" if k > 1 else "") for (c, n), k in kinds.items()
    )


def run(config: ImportConfig, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Import every log; a log that cannot be read is reported and the others still imported (exit 2)."""
    out, err = out or sys.stdout, err or sys.stderr
    failed = 0
    for path in config.logs:
        try:
            run_dir, summary, run_id = import_log(config, path)
        except UserError as exc:
            message = str(exc)  # the readers name the file themselves; say it once
            print(f"railbench: error: {message if str(path) in message else f'{path}: {message}'}", file=err)
            failed += 1
            continue
        rows = sum(t["rows"] for t in summary.summaries)
        where = "" if run_id is None else f"; history run {run_id}"
        print(f"imported {path} -> {run_dir}: {_tables_line(summary)} ({rows} sizes){where}", file=out)
        if rows > REPORT_MAX_ROWS:
            print(f"  note: {rows} sizes: charts not drawn on import; run: railbench report {run_dir}", file=out)
        if summary.truncated:
            print("  warning: truncated: the run stopped or the log was cut; the rows it has are kept", file=out)
        for failure in summary.failures[:5]:
            print(f"  failure: {failure}", file=out)
        # The same note on many tables (a log of nightly repeats) is printed once, with its count.
        notes = Counter((t["collective"], note) for t in summary.summaries for note in t["notes"])
        first_line: dict[tuple[str, str], int] = {}
        for t in summary.summaries:
            for note in t["notes"]:
                first_line.setdefault((t["collective"], note), t["first_line"])
        for (collective, note), times in list(notes.items())[:20]:
            more = f" ({times} tables)" if times > 1 else ""
            print(f"  note ({collective}, line {first_line[(collective, note)]}): {note}{more}", file=out)
        if len(notes) > 20:
            print(f"  ... and {len(notes) - 20} more notes in run.json (source.tables)", file=out)
    return 2 if failed else 0
