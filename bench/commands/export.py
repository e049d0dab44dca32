"""``railbench export openmetrics RUN_DIR [--format openmetrics|prometheus] [--out FILE]``: a run's headline
metrics and verdict for monitoring (``bench.report.export``)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import get_args

from bench.commands.helptext import said
from bench.report.export import ExportConfig, Format, run


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="what", metavar="WHAT", required=True)
    metrics = sub.add_parser(
        "openmetrics", formatter_class=parser.formatter_class, help="headline metrics and the verdict for Prometheus"
    )
    metrics.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="run directory")
    metrics.add_argument(
        "--format",
        default=ExportConfig.format,
        metavar="FORMAT",
        help=f"{' or '.join(get_args(Format))} (the node exporter's textfile collector reads prometheus)",
    )
    said(
        metrics.add_argument("--out", type=Path, metavar="FILE", help="replace this file atomically"),
        "stdout",
    )


def main(args: argparse.Namespace) -> int:
    return run(ExportConfig(run_dir=args.run_dir, format=args.format, out=args.out))


__all__ = ["ExportConfig", "add_arguments", "main", "run"]
