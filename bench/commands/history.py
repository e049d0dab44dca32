"""``railbench history add RUN_DIR...``, ``railbench history list`` and ``railbench history init``: the nightly
history store
(``bench.history.manage``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.commands import flags
from bench.history.manage import LIST_LIMIT, HistoryConfig, run
from bench.history.store import default_history_path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = sub.add_parser(
        "add", formatter_class=parser.formatter_class, help="add run directories to the history (idempotent)"
    )
    add.add_argument("run_dirs", nargs="+", type=Path, metavar="RUN_DIR", help="run directories to add")
    init = sub.add_parser(
        "init", formatter_class=parser.formatter_class, help="start an empty history (one that exists is kept)"
    )
    show = sub.add_parser(
        "list", formatter_class=parser.formatter_class, help="list the runs in the history, newest first"
    )
    show.add_argument("--cluster", metavar="NAME", help="only runs of this cluster")
    show.add_argument("--limit", type=int, default=LIST_LIMIT, metavar="N", help="the newest N runs")
    show.add_argument("--all", action="store_true", help="every run")
    show.add_argument("--json", action="store_true", help="one JSON object per line")
    for each in (add, show, init):
        flags.add_history(each)


def main(args: argparse.Namespace) -> int:
    config = HistoryConfig(
        action=args.action,
        history=args.history or default_history_path(),
        run_dirs=tuple(getattr(args, "run_dirs", ()) or ()),
        cluster=getattr(args, "cluster", None),
        limit=None if getattr(args, "all", False) else getattr(args, "limit", LIST_LIMIT),
        as_json=getattr(args, "json", False),
    )
    return run(config)


__all__ = ["HistoryConfig", "add_arguments", "main", "run"]
