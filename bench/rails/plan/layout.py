"""Who is on which rail: nodes from the ranks' hostnames, rail k = local rank k, and rail interfaces.

In a rail-optimised fabric GPU k of every node reaches NIC k, which sits on leaf switch k. So the rail
group of rail k holds local rank k of every node, and on socket rails (RunPod's eth1..eth8, the testbed's
rail0..) local rank k binds the k-th interface that ``--socket-ifname`` selects (NCCL_SOCKET_IFNAME's
grammar: ``^`` excludes, ``=`` matches exactly, otherwise prefixes).

Pure functions: the hostnames and interface names come in as arguments.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bench.exits import UserError
from bench.fabric.hca import select_ifnames
from bench.fabric.sysfs import natural_key


@dataclass(frozen=True)
class RailLayout:
    """The nodes of a run and the global rank of (node, rail)."""

    nodes: tuple[str, ...]
    """Hostnames in node order (the node of the lowest rank first)."""
    ranks: tuple[tuple[int, ...], ...]
    """``ranks[node][rail]``: the global rank of that node's local rank ``rail``."""

    @property
    def rails(self) -> int:
        return len(self.ranks[0]) if self.ranks else 0

    def rail_group(self, rail: int) -> list[int]:
        """Global ranks of rail ``rail``'s group, in node order (group rank i is node i)."""
        return [per_node[rail] for per_node in self.ranks]

    def where(self, rank: int) -> tuple[int, int]:
        """(node index, rail) of a global rank."""
        for node, per_node in enumerate(self.ranks):
            if rank in per_node:
                return node, per_node.index(rank)
        raise ValueError(f"rank {rank} is not in the layout")


def rail_layout(hosts: Sequence[str]) -> RailLayout:
    """The layout from every rank's hostname (in rank order); every node must run the same number of ranks."""
    if not hosts:
        raise UserError("no ranks: start railbench rails under a launcher or with --np")
    by_node: dict[str, list[int]] = {}
    for rank, host in enumerate(hosts):
        by_node.setdefault(host, []).append(rank)
    counts = {host: len(ranks) for host, ranks in by_node.items()}
    if len(set(counts.values())) > 1:
        shown = ", ".join(f"{h}: {n}" for h, n in counts.items())
        raise UserError(
            f"rail groups need the same number of ranks on every node, but they differ ({shown}): "
            "launch one rank per GPU on every node (e.g. mpirun -N 8)"
        )
    return RailLayout(tuple(by_node), tuple(tuple(ranks) for ranks in by_node.values()))


def rail_interfaces(socket_ifname: str, available: Sequence[str]) -> list[str]:
    """The interfaces ``socket_ifname`` selects, in natural order: local rank k uses the k-th."""
    return sorted(select_ifnames(socket_ifname, list(available)), key=natural_key)


def interface_for_rail(socket_ifname: str, available: Sequence[str], rail: int, host: str) -> str:
    """The interface local rank ``rail`` binds on ``host``; UserError when the selection is too short."""
    chosen = rail_interfaces(socket_ifname, available)
    if rail >= len(chosen):
        shown = ", ".join(chosen) or "nothing"
        raise UserError(
            f"--socket-ifname {socket_ifname!r} selects {shown} on {host}, but local rank {rail} needs rail "
            f"interface number {rail + 1}: name one interface per rank (e.g. '=eth1,eth2,...') or start fewer ranks"
        )
    return chosen[rail]
