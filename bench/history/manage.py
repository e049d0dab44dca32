"""Add runs to the nightly history store, list them, or start an empty one (``railbench history add|list|init``;
``init`` is for a nightly whose first ``compare`` runs before any ``accept``). The command line is
``bench.commands.history``."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal, TextIO

from bench.exits import UserError
from bench.history import soak_runs
from bench.history.store import add_run, list_runs, opened

LIST_LIMIT = 20


@dataclass(frozen=True)
class HistoryConfig:
    """What ``railbench history`` should do."""

    action: Literal["add", "list", "init"]
    history: Path
    """The SQLite history file."""
    run_dirs: tuple[Path, ...] = ()
    """For ``add``: the run directories to add (each is added idempotently)."""
    cluster: str | None = None
    """For ``list``: only runs of this cluster."""
    limit: int | None = LIST_LIMIT
    """For ``list``: the newest N runs; None for all."""
    as_json: bool = False
    """For ``list``: JSON lines instead of a table."""

    def __post_init__(self) -> None:
        if self.action == "add" and not self.run_dirs:
            raise UserError("history add needs at least one RUN_DIR: e.g. railbench history add reports/runs/*")
        if self.limit is not None and self.limit < 1:
            raise UserError(f"--limit must be at least 1, got {self.limit}: or pass --all")


def run(config: HistoryConfig, out: TextIO | None = None) -> int:
    """Add runs or list them; returns the exit status."""
    out = out or sys.stdout
    if config.action == "init":
        existed = config.history.exists()
        with opened(config.history, create=True, write=True) as conn:
            count = len(list_runs(conn))
        said = f"already there, {count} run(s)" if existed else "started, empty"
        print(f"history: {config.history} {said}", file=out)
        return 0
    if config.action == "add":
        for run_dir in config.run_dirs:
            run_id = add_run(config.history, run_dir)
            print(f"history: run {run_id} <- {run_dir}", file=out)
        return 0
    with opened(config.history, create=False) as conn:
        runs = list_runs(conn, cluster=config.cluster, limit=config.limit)
        soaks = soak_runs.of_runs(conn, [r.id for r in runs]) if config.as_json else {}
    if config.as_json:
        for stored in runs:
            # the stored JSON columns as JSON values, not strings inside strings
            row = {**asdict(stored), "environment": stored.environment_facts, "hosts": list(stored.host_names)}
            if stored.id in soaks:  # a soak's windows, duration, errors and parts, for the nightly
                row["soak"] = asdict(soaks[stored.id])
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
