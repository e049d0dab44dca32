"""``railbench hca``: which HCA ports NCCL uses on this node for a given NCCL_IB_HCA, and why.

Torch-free and quick (well under half a second): it reads sysfs (or ``--devices``) and applies NCCL's
own parsing rules from ``bench.fabric.hca``. Exit status: 0 when the value selects ports and looks
right, 1 when it selects nothing or looks like a mistake, 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from bench.exits import EXIT_FAIL, EXIT_PASS, UserError
from bench.fabric import hca, sysfs
from bench.runtime import env as benv

_FROM_ENV = "\0from-env"  # argparse default: nobody can type a NUL on a command line


@dataclass(frozen=True)
class HcaConfig:
    """What ``railbench hca`` explains."""

    value: str | None
    """The NCCL_IB_HCA value; None means unset."""
    value_source: Literal["cli", "env"]
    """Where the value came from (``env`` also when the environment does not set it)."""
    devices: tuple[str, ...] | None
    """``name:port`` ports to consider instead of reading sysfs."""
    sysfs_root: Path = Path("/sys")
    """Stands in for /sys (DIR/class/infiniband/...)."""
    json: bool = False
    """Print JSON instead of the text table."""

    def __post_init__(self) -> None:
        if self.devices is not None:
            for device in self.devices:
                hca.split_device(device)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--nccl-ib-hca",
        nargs="?",
        const=None,
        default=_FROM_ENV,
        metavar="VALUE",
        help="the NCCL_IB_HCA value to explain (default: the environment's; the flag alone means unset)",
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--devices",
        metavar="LIST",
        help="comma-separated ports to consider, e.g. mlx5_0:1,mlx5_1:1 (a bare name means port 1)",
    )
    source.add_argument("--sysfs-root", type=Path, default=Path("/sys"), metavar="DIR", help="stands in for /sys")
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


def candidates(config: HcaConfig, tree: sysfs.Sysfs | None = None) -> list[hca.Candidate]:
    """The ports to explain: ``--devices`` as given (state unknown), else every port sysfs (``tree``) shows."""
    if config.devices is not None:
        return [hca.Candidate(*hca.split_device(d)) for d in config.devices]
    tree = tree or sysfs.Sysfs(config.sysfs_root)
    return [hca.Candidate(p.device, p.port, p.state, p.link_layer, p.rate_gbps) for p in sysfs.ib_ports(tree)]


def to_json(
    config: HcaConfig, result: hca.HcaExplanation, problems: Sequence[sysfs.SysfsProblem] = ()
) -> dict[str, Any]:
    """The JSON document ``--json`` prints."""
    parsed = result.parsed
    return {
        "nccl_ib_hca": result.value,
        "source": "unset" if result.value is None else config.value_source,
        "exclude": parsed.invert,
        "exact": parsed.exact,
        "entries": [{"text": e.text, "name": e.name, "port": e.port} for e in parsed.entries],
        "ports": [
            {
                "device": d.name,
                "selected": d.selected,
                "index": d.index,
                "reason": d.reason,
                "link_layer": d.link_layer,
                "state": d.state,
                "rate_gbps": d.rate_gbps,
            }
            for d in result.decisions
        ],
        "selected": result.selected,
        "warnings": [{"code": w.code, "message": w.message} for w in result.warnings],
        "sysfs_problems": [{"path": p.path, "message": p.message} for p in problems],
        "verdict": "damaged" if problems else result.verdict,
    }


def render(config: HcaConfig, result: hca.HcaExplanation, problems: Sequence[sysfs.SysfsProblem] = ()) -> str:
    """The text answer."""
    if result.value is None:
        head = "NCCL_IB_HCA is unset"
    else:
        origin = "--nccl-ib-hca" if config.value_source == "cli" else "environment"
        head = f"NCCL_IB_HCA='{hca.show(result.value)}' ({origin})"
    lines = [f"{head}: {hca.describe(result.parsed)}"]
    where = "--devices" if config.devices is not None else f"{config.sysfs_root}/class/infiniband"
    if not result.decisions:
        lines.append(f"no IB ports found in {where}")
    else:
        lines.append(f"NCCL uses {len(result.selected)} of {len(result.decisions)} ports ({where}):")
        for d in result.decisions:
            facts = " ".join(
                x
                for x in (
                    d.link_layer or "",
                    d.state or "",
                    f"{d.rate_gbps:g} Gb/s" if d.rate_gbps else "",
                )
                if x
            )
            mark = f"use [{d.index}]" if d.selected else "skip"
            lines.append(f"  {d.name:<16} {facts:<32} {mark:<8} {d.reason}")
    if result.warnings:
        lines.append("warnings:")
        lines.extend(f"  - {w.message}" for w in result.warnings)
    if problems:
        lines.append("damaged sysfs entries (the ports above may be incomplete):")
        lines.extend(f"  - {p.message}" for p in problems)
        lines.append("verdict: DAMAGED: the sysfs tree could not be read in full")
        return "\n".join(lines)
    verdict = {"ok": "OK", "warn": "WARN: probably not what you meant", "none": "NONE: NCCL finds no IB device"}
    lines.append(f"verdict: {verdict[result.verdict]}")
    return "\n".join(lines)


def run(config: HcaConfig) -> int:
    """Explain ``config.value`` and print the answer; 0 when it selects ports and looks right, else 1 (also
    when the sysfs tree has damaged entries: the answer may then be missing ports)."""
    tree = sysfs.Sysfs(config.sysfs_root)
    result = hca.explain(config.value, candidates(config, tree))
    problems = tree.problems
    if config.json:
        sys.stdout.write(json.dumps(to_json(config, result, problems), indent=2) + "\n")
    else:
        sys.stdout.write(render(config, result, problems) + "\n")
    return EXIT_PASS if result.verdict == "ok" and not problems else EXIT_FAIL
