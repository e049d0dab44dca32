"""``railbench hca [--nccl-ib-hca VALUE] [--devices LIST | --sysfs-root DIR] [--json]``.

Which HCA ports NCCL uses on this node for a given NCCL_IB_HCA, and why (``bench.hca.explain``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bench import sysroot
from bench.commands.helptext import said
from bench.exits import UserError
from bench.hca.config import HcaConfig
from bench.hca.explain import candidates, render, run, to_json
from bench.runtime import env as benv

_FROM_ENV = "\0from-env"  # argparse default: nobody can type a NUL on a command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    said(
        parser.add_argument(
            "--nccl-ib-hca",
            nargs="?",
            const=None,
            default=_FROM_ENV,
            metavar="VALUE",
            help="the NCCL_IB_HCA value to explain; the flag alone means unset",
        ),
        "the environment's NCCL_IB_HCA",
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--devices",
        metavar="LIST",
        help="comma-separated ports to consider, e.g. mlx5_0:1,mlx5_1:1 (a bare name means port 1)",
    )
    source.add_argument("--sysfs-root", type=Path, default=sysroot.LIVE, metavar="DIR", help="stands in for /sys")
    parser.add_argument("--json", action="store_true", help="print JSON")


def _parse_devices(text: str) -> tuple[str, ...]:
    devices = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        devices.append(item if ":" in item else f"{item}:1")
    if not devices:
        raise UserError("--devices is empty: give ports like mlx5_0:1,mlx5_1:1")
    return tuple(devices)


def main(args: argparse.Namespace) -> int:
    if args.nccl_ib_hca == _FROM_ENV:
        value, source = benv.get("NCCL_IB_HCA"), "env"
    else:
        value, source = args.nccl_ib_hca, "cli"
    if args.devices is None and not args.sysfs_root.exists():
        raise UserError(f"--sysfs-root {args.sysfs_root} does not exist: give /sys, or a copy of another node's /sys")
    config = HcaConfig(
        value=value,
        value_source=source,  # type: ignore[arg-type]
        devices=_parse_devices(args.devices) if args.devices is not None else None,
        sysfs_root=args.sysfs_root,
        json=args.json,
    )
    return run(config)


__all__ = ["HcaConfig", "add_arguments", "candidates", "main", "render", "run", "to_json"]
