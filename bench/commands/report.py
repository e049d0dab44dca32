"""``railbench report RUN_DIR [--out DIR] [--unit U] [--no-images] [--url-prefix P] [--min-efficiency F]``:
re-draw the charts, report.md and report.html of a run directory (``bench.report.redraw``)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import get_args

from bench.commands.helptext import said
from bench.report import UnitChoice
from bench.report.redraw import ReportConfig, run


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "run_dir", type=Path, metavar="RUN_DIR", help="run directory, e.g. reports/runs/<time>-<cluster>"
    )
    said(
        parser.add_argument("--out", type=Path, metavar="DIR", help="write the report into this directory"),
        "RUN_DIR itself",
    )
    parser.add_argument(
        "--unit",
        default=ReportConfig.unit,
        metavar="UNIT",
        help=f"bandwidth unit of the charts: {', '.join(get_args(UnitChoice))} (auto: GB/s for collectives, "
        "Gb/s for rails)",
    )
    parser.add_argument("--no-images", action="store_true", help="skip the PNG and SVG files")
    parser.add_argument(
        "--url-prefix",
        default=ReportConfig.url_prefix,
        metavar="PREFIX",
        help="prefix of the CSV urls inside the specs, relative to the docs root",
    )
    said(
        parser.add_argument(
            "--min-efficiency",
            type=float,
            metavar="FRACTION",
            help="bars below this fraction of their target are drawn as failures",
        ),
        "the pass fraction the run was judged by (run.json judged_by); 0.9 for a run that recorded none",
    )


def main(args: argparse.Namespace) -> int:
    config = ReportConfig(
        run_dir=args.run_dir,
        out_dir=args.out,
        unit=args.unit,
        images=not args.no_images,
        url_prefix=args.url_prefix,
        min_efficiency=args.min_efficiency,
    )
    return run(config)


__all__ = ["ReportConfig", "add_arguments", "main", "run"]
