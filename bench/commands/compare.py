"""``railbench compare RUN_DIR [--baseline last:N | RUN_DIR] [--history FILE] [--profile P]``.

Tonight's run against its baseline, metric by metric (``bench.compare.run``). Prints the metrics that changed,
writes ``compare.json``, ``compare-junit.xml`` and ``trend.csv`` into RUN_DIR and redraws the report. Exit
status 1 when any metric regressed, went missing or failed; 0 otherwise; 2 on bad input.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.commands import flags
from bench.commands.helptext import said
from bench.compare.config import CompareConfig
from bench.compare.run import compare, run


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="tonight's run directory")
    parser.add_argument(
        "--baseline",
        default=CompareConfig.baseline,
        metavar="last:N|RUN_DIR",
        help="the last N comparable runs in the history, or one run directory",
    )
    flags.add_history(
        parser,
        default_text="reports/history.sqlite beside the run's reports/runs/ folder, else ./reports/history.sqlite",
    )
    parser.add_argument("--init", action="store_true", help="start an empty history when there is none yet")
    said(
        parser.add_argument("--profile", metavar="NAME|PATH", help="profile whose [compare] table sets the thresholds"),
        "the profile recorded in the run's run.json, else the built-in thresholds",
    )
    parser.add_argument("--all", action="store_true", dest="show_all", help="print every metric, not only changes")
    parser.add_argument(
        "--same-environment",
        action="store_true",
        help="baseline only from runs with the same node set and NCCL version (else: name what changed)",
    )


def main(args: argparse.Namespace) -> int:
    config = flags.config_of(CompareConfig, args)
    return run(config)


__all__ = ["CompareConfig", "add_arguments", "compare", "main", "run"]
