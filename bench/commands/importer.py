"""``railbench import nccl-tests LOG... [--cluster NAME] [--out-root DIR] [--history PATH] [--no-history]``.

Each log (nccl-tests stdout, in any of its formats, or the ``-J`` JSON file) becomes a run directory with
results.csv, run.json and the charts, and is added to the history, so months of old logs start the
nightly history full. Importing the same log again reuses its run directory and history row.
"""

from __future__ import annotations

import argparse
import calendar
import hashlib
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TextIO

from bench.errors import UserError
from bench.history.outputs import write_report_if_available
from bench.history.store import add_run, default_history_path
from bench.nccltests import BUS_FACTOR, NcclTestsLog, parse_log
from bench.nccltests.convert import COLUMNS, result_rows, run_meta, utc_stamp_of
from bench.rundir.files import atomic_write_json, atomic_write_text, default_run_dir, results_csv_text


@dataclass(frozen=True)
class ImportConfig:
    """What to import and where to put it."""

    kind: Literal["nccl-tests"]
    """The tool whose output the logs are (only nccl-tests so far)."""
    logs: tuple[Path, ...]
    cluster: str = "imported"
    """Cluster name for the run directories and the history (compare only matches runs of one cluster)."""
    out_root: Path = Path("reports/runs")
    history: Path = field(default_factory=default_history_path)
    no_history: bool = False
    collective: str | None = None
    """For tables whose log never names the collective (and whose rows fit several)."""
    nranks: int | None = None
    """For tables whose log never says how many ranks ran."""

    def __post_init__(self) -> None:
        if not self.logs:
            raise UserError("import nccl-tests needs at least one LOG: e.g. railbench import nccl-tests run.log")
        if not self.cluster.strip():
            raise UserError("--cluster must not be empty: name the cluster the logs come from")
        if self.collective is not None and self.collective not in BUS_FACTOR:
            raise UserError(f"--collective {self.collective!r} is not one of {', '.join(BUS_FACTOR)}")
        if self.nranks is not None and self.nranks < 1:
            raise UserError(f"--nranks must be at least 1, got {self.nranks}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("kind", choices=["nccl-tests"], help="the tool that wrote the logs")
    parser.add_argument("logs", nargs="+", type=Path, metavar="LOG", help="stdout of *_perf runs, or -J JSON files")
    parser.add_argument("--cluster", default="imported", help="cluster name (default %(default)s)")
    parser.add_argument("--out-root", type=Path, default=Path("reports/runs"), help="where run dirs go")
    parser.add_argument("--history", type=Path, default=default_history_path(), help="history file")
    parser.add_argument("--no-history", action="store_true", help="do not add the runs to the history")
    parser.add_argument("--collective", help="collective of tables the log does not name")
    parser.add_argument("--nranks", type=int, help="rank count of tables the log does not give")


def main(args: argparse.Namespace) -> int:
    config = ImportConfig(
        kind=args.kind,
        logs=tuple(args.logs),
        cluster=args.cluster,
        out_root=args.out_root,
        history=args.history,
        no_history=args.no_history,
        collective=args.collective,
        nranks=args.nranks,
    )
    return run(config)


def _json_time(text: str | None) -> str | None:
    """nccl-tests' ``%Y-%m-%d %H:%M:%S`` (the node's local time; taken as UTC, the zone is not recorded)."""
    try:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.strptime(text or "", "%Y-%m-%d %H:%M:%S"))
    except ValueError:
        return None


def _run_dir_for(config: ImportConfig, started_epoch: float, sha256: str) -> Path:
    """The run directory of a log: its own again when re-imported, else a fresh name."""
    base = default_run_dir(config.cluster, root=config.out_root, now=started_epoch)
    for attempt in range(1, 1000):
        candidate = base if attempt == 1 else base.with_name(f"{base.name}-{attempt}")
        if not candidate.exists() or _imported_sha256(candidate) == sha256:
            return candidate
    raise UserError(f"too many imports named {base}: pass another --out-root")


def _imported_sha256(run_dir: Path) -> str | None:
    try:
        meta = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    source = meta.get("source") if isinstance(meta, dict) else None
    return source.get("sha256") if isinstance(source, dict) else None


def import_log(config: ImportConfig, path: Path) -> tuple[Path, NcclTestsLog, int | None]:
    """Parse one log, write its run directory, add it to the history; (run dir, log, history run id)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror}: check the path") from None
    log = parse_log(
        data.decode("utf-8", errors="replace"), source=str(path), collective=config.collective, nranks=config.nranks
    )
    sha256 = hashlib.sha256(data).hexdigest()
    mtime = path.stat().st_mtime
    started = _json_time(log.start_time) or utc_stamp_of(mtime)
    finished = _json_time(log.end_time) or utc_stamp_of(mtime)
    started_epoch = calendar.timegm(time.strptime(started, "%Y-%m-%dT%H:%M:%SZ"))
    run_dir = _run_dir_for(config, started_epoch, sha256)
    atomic_write_text(run_dir / "results.csv", results_csv_text(result_rows(log), COLUMNS))
    meta = run_meta(log, cluster=config.cluster, started_utc=started, finished_utc=finished, sha256=sha256)
    # Where the start time came from; runs with the same start keep their import order in the history.
    meta["started_utc_source"] = "log" if _json_time(log.start_time) else "file mtime"
    atomic_write_json(run_dir / "run.json", meta)
    run_id = None if config.no_history else add_run(config.history, run_dir)
    write_report_if_available(run_dir)
    return run_dir, log, run_id


def run(config: ImportConfig, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Import every log; a log that cannot be read is reported and the others still imported (exit 2)."""
    out, err = out or sys.stdout, err or sys.stderr
    failed = 0
    for path in config.logs:
        try:
            run_dir, log, run_id = import_log(config, path)
        except UserError as exc:
            message = str(exc)  # the readers name the file themselves; say it once
            print(f"railbench: error: {message if str(path) in message else f'{path}: {message}'}", file=err)
            failed += 1
            continue
        tables = ", ".join(f"{t.collective} x{t.nranks}" for t in log.tables)
        rows = sum(len(t.rows) for t in log.tables)
        where = "" if run_id is None else f"; history run {run_id}"
        print(f"imported {path} -> {run_dir}: {tables} ({rows} sizes){where}", file=out)
        if log.truncated:
            print("  warning: truncated: the run stopped or the log was cut; the rows it has are kept", file=out)
        for failure in log.failures[:5]:
            print(f"  failure: {failure}", file=out)
        for table in log.tables:
            for note in table.notes:
                print(f"  note ({table.collective}, line {table.first_line}): {note}", file=out)
    return 2 if failed else 0
