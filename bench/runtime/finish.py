"""The finish step every command takes once its run directory is complete: history, then the report."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from bench.errors import UserError
from bench.history.store import add_run, default_history_path
from bench.profiles import Profile


def finish_run(out_dir: Path, profile: Profile, *, history: Path | None, no_history: bool) -> None:
    """What every command does once its run directory is complete: history, then the report."""
    if not no_history:
        _add_to_history(history, out_dir)
    # pandas and altair load only when a report is drawn.
    from bench.report.build import ReportOptions, write_report

    try:
        paths = write_report(out_dir, options=ReportOptions(min_efficiency=profile.pass_fraction))
    except UserError as exc:
        print(f"# report: not written ({exc}); retry with 'railbench report {out_dir}'")
        return
    print(f"# report: {paths.report_html}")


def _add_to_history(history: Path | None, out_dir: Path) -> None:
    path = history or default_history_path()
    try:
        add_run(path, out_dir)
    except (sqlite3.Error, OSError) as exc:
        # The run itself is complete on disk; a busy or unwritable history must not lose it.
        print(f"# history: not added to {path} ({exc}); add it later with 'railbench history add {out_dir}'")
