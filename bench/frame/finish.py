"""The finish step every command takes once its run directory is complete: history, then the report.

A finish step that fails never loses the run: results.csv and run.json are already on disk. It says what
failed in one line, how to redo it, and returns exit status 3 (README, "Exit status"), so a nightly job
notices that tonight's run is missing from the history or has no report.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from bench.exits import EXIT_INFRA, EXIT_PASS, InfraError, UserError
from bench.history.store import add_run, history_for
from bench.profile.cluster import Profile


def finish_run(out_dir: Path, profile: Profile, *, history: Path | None, no_history: bool) -> int:
    """Add the run to the history (unless ``no_history``), then draw its report; 0, or 3 when either failed."""
    status = EXIT_PASS
    if not no_history:
        path = history or history_for(out_dir)
        try:
            add_run(path, out_dir)
        except (sqlite3.Error, OSError, UserError, InfraError) as exc:
            print(f"# history: not added to {path} ({exc}); add it later with 'railbench history add {out_dir}'")
            status = EXIT_INFRA
    # pandas and altair load only when a report is drawn.
    from bench.report.build import ReportOptions, write_report

    try:
        paths = write_report(out_dir, options=ReportOptions(min_efficiency=profile.pass_fraction))
    except (UserError, OSError) as exc:
        print(f"# report: not written ({exc}); retry with 'railbench report {out_dir}'")
        return EXIT_INFRA
    print(f"# report: {paths.report_html}")
    return status


def write_report_if_available(run_dir: Path) -> bool:
    """Charts and the report through ``bench.report``, when that part of railbench is installed."""
    try:
        from bench.report.build import write_report
    except ModuleNotFoundError as exc:
        # Only the report package itself may be absent; a missing dependency inside it is a real error.
        if exc.name not in ("bench.report", "bench.report.build"):
            raise
        return False
    write_report(run_dir)
    return True
