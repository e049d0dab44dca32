"""``railbench export openmetrics RUN_DIR [--format openmetrics|prometheus] [--out FILE]``.

A run's headline metrics and verdict for monitoring (``bench.report.openmetrics``). Without ``--out`` the
text goes to stdout; with it the file is replaced atomically (a temporary file in the same folder, then a
rename), so the node exporter's textfile collector never reads half a file. The collector reads the
Prometheus text format: ``--format prometheus --out /var/lib/node_exporter/textfile/railbench.prom``.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TextIO, get_args

from bench.exits import EXIT_PASS, UserError

Format = Literal["openmetrics", "prometheus"]


@dataclass(frozen=True)
class ExportConfig:
    """What ``railbench export`` writes."""

    run_dir: Path
    """The run directory (run.json, results.csv; compare.json and rails.json when present)."""
    format: Format = "openmetrics"
    """``openmetrics`` (the OpenMetrics text format) or ``prometheus`` (text format 0.0.4, node exporter)."""
    out: Path | None = None
    """A file to replace atomically; None for stdout."""

    def __post_init__(self) -> None:
        if self.format not in get_args(Format):
            raise UserError(f"--format {self.format!r}: use openmetrics or prometheus")
        if self.out is not None and self.out.is_dir():
            raise UserError(f"--out {self.out} is a folder: name the file, e.g. {self.out}/railbench.prom")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="what", metavar="WHAT", required=True)
    metrics = sub.add_parser("openmetrics", help="headline metrics and the verdict for Prometheus")
    metrics.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="run directory")
    metrics.add_argument(
        "--format", default="openmetrics", help="openmetrics (default) or prometheus (node exporter textfile)"
    )
    metrics.add_argument("--out", type=Path, default=None, help="write this file atomically instead of stdout")


def main(args: argparse.Namespace) -> int:
    return run(ExportConfig(run_dir=args.run_dir, format=args.format, out=args.out))


def run(config: ExportConfig, out: TextIO | None = None) -> int:
    """Render and write the metrics; exit status 0."""
    from bench.report.openmetrics import openmetrics_text, prometheus_text
    from bench.rundir.files import atomic_write_text

    text = (openmetrics_text if config.format == "openmetrics" else prometheus_text)(config.run_dir)
    if config.out is None:
        (out or sys.stdout).write(text)
    else:
        atomic_write_text(config.out, text)
    return EXIT_PASS
