"""``railbench check``: preflight of this node (and, under mpirun/srun, of every node) against a profile.

Exit status: 0 pass (warnings allowed), 1 any check failed, 2 bad input (see ``bench.check.node``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.check.config import CheckConfig
from bench.check.node import run
from bench.commands import flags


def add_arguments(parser: argparse.ArgumentParser) -> None:
    flags.add_profile(parser, default=None)
    flags.add_node_sources(parser)
    parser.add_argument(
        "--nccl-log", type=Path, nargs="+", default=[], metavar="FILE", help="NCCL_DEBUG=INFO logs to judge"
    )
    flags.add_node_captures(
        parser,
        kernel_log="kernel log to scan for link flaps and Xid events",
        kernel_log_default="journalctl -k, else kern.log or syslog",
    )
    parser.add_argument(
        "--topology",
        type=Path,
        default=None,
        metavar="FILE",
        help="the fabric's cabling (ibnetdiscover output or a cabling .toml) to check against the rail plan",
    )
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--no-gather", action="store_true", help="under mpirun, check each node on its own")


def main(args: argparse.Namespace) -> int:
    config = CheckConfig(
        profile=args.profile,
        sysfs_root=args.sysfs_root,
        nccl_logs=tuple(args.nccl_log),
        json=args.json,
        gather="off" if args.no_gather else "auto",
        error_window_s=args.error_window,
        kernel_log=args.kernel_log,
        nvidia_smi=tuple(args.nvidia_smi),
        ibv_devinfo=args.ibv_devinfo,
        topology=args.topology,
    )
    return run(config)


__all__ = ["CheckConfig", "add_arguments", "main", "run"]
