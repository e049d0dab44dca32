"""``railbench health``: this node's health check for Slurm (HealthCheckProgram, Prolog, Epilog).

Exit status: 0 healthy, 1 a check failed, 2 bad input (see ``bench.health.node``).
"""

from __future__ import annotations

import argparse

from bench.commands import flags
from bench.commands.helptext import said
from bench.health.config import DEFAULT_TIME_LIMIT_S, HealthConfig
from bench.health.node import run


def add_arguments(parser: argparse.ArgumentParser) -> None:
    flags.add_profile(parser, default=None)
    said(
        parser.add_argument("--node", metavar="NAME", help="this node's name in Slurm"),
        "SLURMD_NODENAME (slurmd sets it), else the host name",
    )
    flags.add_drain(parser, what="this node when a check fails; resume it when it passes and railbench drained it")
    parser.add_argument(
        "--time-limit",
        type=flags.number("--time-limit"),
        default=DEFAULT_TIME_LIMIT_S,
        metavar="SECONDS",
        help="a check still running after this long is a finding (slurmd stops a health check at 60 s)",
    )
    flags.add_node_sources(parser)
    flags.add_node_captures(
        parser,
        kernel_log="a captured kernel log to read Xid events from",
        kernel_log_default="this machine's journal, on its own /sys only",
    )


def main(args: argparse.Namespace) -> int:
    return run(
        HealthConfig(
            profile=args.profile,
            node=args.node,
            drain=args.drain,
            time_limit_s=args.time_limit,
            sysfs_root=args.sysfs_root,
            error_window_s=args.error_window,
            kernel_log=args.kernel_log,
            nvidia_smi=tuple(args.nvidia_smi),
            ibv_devinfo=args.ibv_devinfo,
        )
    )


__all__ = ["HealthConfig", "add_arguments", "main", "run"]
