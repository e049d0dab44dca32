"""Which HCA ports NCCL uses on this node for a given NCCL_IB_HCA, and why (``railbench hca``).

Torch-free and quick (well under half a second): it reads sysfs (or ``--devices``) and applies NCCL's
own parsing rules from ``bench.fabric.hca``. Exit status: 0 when the value selects ports and looks
right, 1 when it selects nothing or looks like a mistake, 2 for bad arguments. The command line is
``bench.commands.hca``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence

from bench.exits import EXIT_FAIL, EXIT_PASS
from bench.fabric import hca, sysfs
from bench.hca.config import HcaConfig
from bench.jsondoc import JSONObject


def candidates(config: HcaConfig, tree: sysfs.Sysfs | None = None) -> list[hca.Candidate]:
    """The ports to explain: ``--devices`` as given (state unknown), else every port sysfs (``tree``) shows."""
    if config.devices is not None:
        return [hca.Candidate(*hca.split_device(d)) for d in config.devices]
    tree = tree or sysfs.Sysfs(config.sysfs_root)
    return [hca.Candidate(p.device, p.port, p.state, p.link_layer, p.rate_gbps) for p in sysfs.ib_ports(tree)]


def to_json(config: HcaConfig, result: hca.HcaExplanation, problems: Sequence[sysfs.SysfsProblem] = ()) -> JSONObject:
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
