"""Many nodes: per-node reports, versions, gathering to rank 0 with mpi4py, and finding the odd nodes.

Every node runs the same checks; rank 0 gathers one ``NodeReport`` per node and compares them. Two nodes
that give different answers to the same check, or run different torch/NCCL/driver/firmware versions, are
named. mpi4py is imported only under an MPI-family launcher, and torch never (its version comes from the
package metadata).
"""

from __future__ import annotations

import platform
import socket
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from bench import codec, sysroot
from bench.fabric.sysfs import nvidia_driver_version
from bench.jsondoc import JSONObject, JSONValue
from bench.preflight.checks import CheckResult, Context, verdict
from bench.preflight.nccl_library import nccl_version, package_version
from bench.profile.cluster import Profile
from bench.version import __version__

V = TypeVar("V")

VERSION_KEYS = ("railbench", "python", "torch", "nccl", "driver", "firmware")


def node_versions(profile: Profile, sysfs_root: Path) -> dict[str, str | None]:
    """The versions every node must agree on."""
    ctx = Context(profile, sysfs_root, (), {})
    rail_devices = {p.device for p in ctx.rails}
    firmware = sorted({d.fw_ver for d in ctx.devices if d.name in rail_devices and d.fw_ver})
    return {
        "railbench": __version__,
        "python": platform.python_version(),
        "torch": package_version("torch"),
        "nccl": nccl_version(),
        "driver": nvidia_driver_version(ctx.sysfs),
        "firmware": ",".join(firmware) or None,
    }


def node_label(sysfs_root: Path) -> str:
    """The hostname; with a stand-in sysfs root, ``host[root-name]`` so what-if nodes stay apart."""
    host = socket.gethostname()
    return host if Path(sysfs_root) == sysroot.LIVE else f"{host}[{Path(sysfs_root).name}]"


@dataclass(frozen=True)
class NodeReport:
    """One node's answers."""

    node: str
    results: tuple[CheckResult, ...]
    versions: Mapping[str, str | None]
    nccl_evidence: Mapping[str, JSONValue] | None = None
    """``bench.nccllogs.nccl_evidence.evidence`` of the ``--nccl-log`` files checked on this node."""

    @property
    def verdict(self) -> str:
        return verdict(self.results)

    def to_json(self) -> JSONObject:
        doc: JSONObject = {
            "node": self.node,
            "verdict": self.verdict,
            "versions": dict(self.versions),
            "results": [codec.encode(r) for r in self.results],
        }
        if self.nccl_evidence is not None:
            doc["nccl_evidence"] = dict(self.nccl_evidence)
        return doc

    @classmethod
    def from_json(cls, doc: Mapping[str, JSONValue]) -> NodeReport:
        """What :meth:`to_json` wrote on another rank (gathered over MPI). Every rank runs this same code, so a
        field of another type is a bug here, not damaged input: ValueError (a result's is ``bench.codec``'s
        Refused, one), as a missing key is KeyError."""
        node, results, versions, evidence = doc["node"], doc["results"], doc["versions"], doc.get("nccl_evidence")
        if not (
            isinstance(node, str)
            and isinstance(results, list)
            and all(isinstance(r, Mapping) for r in results)
            and isinstance(versions, Mapping)
            and all(isinstance(v, str | None) for v in versions.values())
            and isinstance(evidence, Mapping | None)
        ):
            raise ValueError(f"not a node report: {dict(doc)!r:.200}")
        checked = tuple(codec.decode(CheckResult, r) for r in results)
        return cls(node, checked, {k: v for k, v in versions.items() if isinstance(v, str | None)}, evidence)


def _odd(values: Mapping[str, V]) -> tuple[V, list[str]]:
    """The most common value and the nodes that differ from it."""
    common = Counter(values.values()).most_common(1)[0][0]
    return common, [node for node, value in values.items() if value != common]


def _sides(values: Mapping[str, object]) -> str:
    groups: dict[object, list[str]] = defaultdict(list)
    for node, value in values.items():
        groups[value].append(node)
    ordered = sorted(groups.items(), key=lambda item: len(item[1]))
    return "; ".join(f"{value} on {', '.join(nodes)}" for value, nodes in ordered)


_SEVERITY = {"skip": 0, "pass": 1, "warn": 2, "fail": 3}


def answer(results: Sequence[CheckResult], check: str) -> str:
    """A node's answer to one check: its worst status, with the devices it names when it fails or warns."""
    mine = [r for r in results if r.check == check]
    if not mine:
        return "absent"
    worst = max(mine, key=lambda r: _SEVERITY[r.status]).status
    devices = sorted({r.device for r in mine if r.status == worst and r.device and worst in ("fail", "warn")})
    return f"{worst} ({', '.join(devices)})" if devices else worst


def disagreements(reports: Sequence[NodeReport]) -> list[tuple[str, CheckResult]]:
    """Each check the nodes answer differently, with its ``same-answers`` failure (the odd node its device)."""
    out: list[tuple[str, CheckResult]] = []
    names = list(dict.fromkeys(r.check for report in reports for r in report.results))
    for check in names:
        answers = {report.node: answer(report.results, check) for report in reports}
        _, odd = _odd(answers)
        if odd:
            said = f"nodes disagree on {check}: {_sides(answers)}"
            out.append((check, CheckResult("same-answers", "fail", said, odd[0])))
    return out


def compare_nodes(reports: Sequence[NodeReport]) -> list[CheckResult]:
    """Cross-node results: the same answers and the same versions everywhere, odd nodes named."""
    out = [result for _, result in disagreements(reports)]
    if not out:
        out.append(CheckResult("same-answers", "pass", f"{len(reports)} nodes give the same answers"))
    mismatched = False
    for key in VERSION_KEYS:
        values = {r.node: r.versions.get(key) or "unknown" for r in reports}
        _, odd = _odd(values)
        if odd:
            mismatched = True
            out.append(CheckResult("same-versions", "fail", f"{key} differs: {_sides(values)}", odd[0]))
    if not mismatched:
        shown = ", ".join(f"{k} {reports[0].versions.get(k) or 'unknown'}" for k in VERSION_KEYS)
        out.append(CheckResult("same-versions", "pass", f"{len(reports)} nodes run {shown}"))
    return out


def gather_reports(report: NodeReport) -> list[NodeReport] | None:
    """Gather every rank's report to rank 0 with mpi4py: rank 0 gets one report per node, others None."""
    from mpi4py import MPI  # lazy: only under an MPI-family launcher

    gathered = MPI.COMM_WORLD.gather(report.to_json(), root=0)
    if gathered is None:
        return None
    per_node: dict[str, NodeReport] = {}
    for doc in gathered:
        per_node.setdefault(doc["node"], NodeReport.from_json(doc))  # ranks on one node: the first speaks
    return list(per_node.values())


def broadcast_status(status: int) -> int:
    """Rank 0's exit status, on every rank (so mpirun's own status is the verdict)."""
    from mpi4py import MPI

    return int(MPI.COMM_WORLD.bcast(status, root=0))
