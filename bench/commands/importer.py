"""``railbench import nccl-tests LOG... [--cluster NAME] [--out-root DIR] [--history FILE] [--no-history]``.

Each log (nccl-tests stdout in any of its formats, or the ``-J`` JSON file) becomes a run directory and a
history row (``bench.importer.run``), so months of old logs start the nightly history full.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.commands import flags
from bench.history.store import default_history_path
from bench.importer.config import DEFAULT_CLUSTER, DEFAULT_OUT_ROOT, ImportConfig
from bench.importer.run import run


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("kind", choices=["nccl-tests"], help="the tool that wrote the logs")
    parser.add_argument("logs", nargs="+", type=Path, metavar="LOG", help="stdout of *_perf runs, or -J JSON files")
    parser.add_argument(
        "--cluster",
        default=DEFAULT_CLUSTER,
        metavar="NAME",
        help="cluster name in the run directories and the history (compare matches runs of one cluster)",
    )
    parser.add_argument(
        "--out-root", type=Path, default=DEFAULT_OUT_ROOT, metavar="DIR", help="where the run directories go"
    )
    flags.add_history(parser, what="the runs")
    parser.add_argument("--collective", help="collective of tables the log does not name")
    parser.add_argument("--nranks", type=int, metavar="N", help="rank count of tables the log does not give")


def main(args: argparse.Namespace) -> int:
    config = flags.config_of(ImportConfig, args, logs=tuple(args.logs), history=args.history or default_history_path())
    return run(config)


__all__ = ["ImportConfig", "add_arguments", "main", "run"]
