"""``railbench history add RUN_DIR...`` and ``railbench history list``: the nightly history store."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal, TextIO

from bench.exits import UserError
from bench.history.store import add_run, default_history_path, list_runs, opened


@dataclass(frozen=True)
class HistoryConfig:
    """What ``railbench history`` should do."""

    action: Literal["add", "list"]
    history: Path
    """The SQLite history file."""
    run_dirs: tuple[Path, ...] = ()
    """For ``add``: the run directories to add (each is added idempotently)."""
    cluster: str | None = None
    """For ``list``: only runs of this cluster."""
    limit: int | None = 20
    """For ``list``: the newest N runs; None for all."""
    as_json: bool = False
    """For ``list``: JSON lines instead of a table."""

    def __post_init__(self) -> None:
        if self.action == "add" and not self.run_dirs:
            raise UserError("history add needs at least one RUN_DIR: e.g. railbench history add reports/runs/*")
        if self.limit is not None and self.limit < 1:
            raise UserError(f"--limit must be at least 1, got {self.limit}: or pass --all")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = sub.add_parser("add", help="add run directories to the history (idempotent)")
    add.add_argument("run_dirs", nargs="+", type=Path, metavar="RUN_DIR")
    show = sub.add_parser("list", help="list the runs in the history, newest first")
    show.add_argument("--cluster", help="only runs of this cluster")
    show.add_argument("--limit", type=int, default=20, help="the newest N runs (default 20)")
    show.add_argument("--all", action="store_true", help="every run")
    show.add_argument("--json", action="store_true", help="one JSON object per line")
    for each in (add, show):
        each.add_argument(
            "--history", type=Path, default=default_history_path(), help="history file (default %(default)s)"
        )


def main(args: argparse.Namespace) -> int:
    config = HistoryConfig(
        action=args.action,
        history=args.history,
        run_dirs=tuple(getattr(args, "run_dirs", ()) or ()),
        cluster=getattr(args, "cluster", None),
        limit=None if getattr(args, "all", False) else getattr(args, "limit", 20),
        as_json=getattr(args, "json", False),
    )
    return run(config)


def run(config: HistoryConfig, out: TextIO | None = None) -> int:
    """Add runs or list them; returns the exit status."""
    out = out or sys.stdout
    if config.action == "add":
        for run_dir in config.run_dirs:
            run_id = add_run(config.history, run_dir)
            print(f"history: run {run_id} <- {run_dir}", file=out)
        return 0
    with opened(config.history, create=False) as conn:
        runs = list_runs(conn, cluster=config.cluster, limit=config.limit)
    if config.as_json:
        for stored in runs:
            # the stored JSON columns as JSON values, not strings inside strings
            row = {**asdict(stored), "environment": stored.environment_facts, "hosts": list(stored.host_names)}
            print(json.dumps(row), file=out)
        return 0
    header = f"{'id':>5}  {'started (UTC)':<20}  {'cluster':<14} {'command':<7} {'nodes':>5} {'ranks':>5}  "
    header += f"{'NCCL':<8} {'verdict':<7} {'metrics':>7}  run_dir"
    print(header, file=out)
    for r in runs:
        print(
            f"{r.id:>5}  {r.time_utc:<20}  {r.cluster[:14]:<14} {r.command[:7]:<7} {r.nnodes:>5} {r.nranks:>5}  "
            f"{(r.nccl or '-')[:8]:<8} {(r.verdict or '-'):<7} {r.metrics:>7}  {r.run_dir}",
            file=out,
        )
    if not runs:
        print(f"(no runs{' for cluster ' + config.cluster if config.cluster else ''} in {config.history})", file=out)
    return 0
