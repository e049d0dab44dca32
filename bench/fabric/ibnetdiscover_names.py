"""The nodes of an ibnetdiscover file and the names they go by (``bench.fabric.ibnetdiscover`` reads the file).

A CA's NodeDescription names its host and HCA (``<host> <HCA>``, rdma-ndd's ``%h %d``, or MLNX_OFED's ``<host>
HCA-<n>``); one that several CAs share names none (an adapter's factory default), and a Quantum switch's SHARP
aggregation node is a CA that is part of its switch. What ``bench.fabric.ibnetdiscover``'s docstring says of
names is done here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bench.bounded import ascii_digits
from bench.exits import UserError
from bench.fabric.cabling import HostPort, SwitchPort

AGGREGATION_NODE = "Mellanox Technologies Aggregation Node"
"""The NodeDescription of a Quantum switch's SHARP aggregation node (a CA inside the switch)."""
NAME_FIX = (
    "set every HCA's NodeDescription to '<host> <HCA>' (rdma-ndd's default: 'systemctl enable --now rdma-ndd' on "
    "every node) and run ibnetdiscover again, or give the cabling as a .toml file"
)


@dataclass(frozen=True)
class PortLine:
    local: int
    peer: str
    peer_port: int
    link: str | None
    """The active link width and speed (``4xNDR``), else None."""
    peer_description: str | None
    """The peer's NodeDescription as this line quotes it."""
    line: int
    bare: bool = False
    """The line ends at the peer's lid, without a link width and speed (older ibnetdiscover)."""


@dataclass
class Node:
    kind: str
    ident: str
    description: str
    line: int
    ports: list[PortLine] = field(default_factory=list)


def host_port(node: Node, port: int) -> HostPort:
    """A CA's port: ``<host> <HCA>`` from its NodeDescription (its id stands for the HCA when it says less)."""
    host, _, hca = node.description.rpartition(" ")
    host = host.strip()
    if not host:  # one word, or none: a host without an HCA name
        host, hca = node.description or node.ident, node.ident
    return HostPort(host, hca, port)


def unnamed_adapters(nodes: dict[str, Node], where: str) -> dict[str, str]:
    """The CAs whose NodeDescription names no one host and HCA (several CAs share it: an adapter's factory
    default), id -> description; refused with the fix when no CA names its host. They become no host: a
    SHARP aggregation node is part of its switch and is dropped here too."""
    by_name: dict[tuple[str, str], list[Node]] = {}
    for node in list(nodes.values()):
        if node.kind == "ca" and node.description == AGGREGATION_NODE:
            node.kind = "router"  # no end of a node cable: the switch's own engine
        elif node.kind == "ca" and node.description:
            named = host_port(node, 1)
            by_name.setdefault((named.host, named.hca), []).append(node)
    unnamed = {n.ident: n.description for group in by_name.values() if len(group) > 1 for n in group}
    if unnamed and len(unnamed) == sum(len(group) for group in by_name.values()):
        first, second = next(group for group in by_name.values() if len(group) > 1)[:2]
        raise UserError(
            f"{where}:{second.line}: channel adapters {first.ident} and {second.ident} share the NodeDescription "
            f"{second.description!r}, which names no one host and HCA: {NAME_FIX}"
        )
    for ident in unnamed:
        nodes[ident].kind = "router"  # left out of the cabling: said in Cabling.unnamed
    return unnamed


def unnamed_ports(
    nodes: dict[str, Node], names: dict[str, str], unnamed: dict[str, str]
) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """(description, the switch ports its adapters are cabled to) for each shared NodeDescription."""
    ports: dict[str, list[str]] = {}
    for node in nodes.values():
        if node.kind == "switch":
            for p in node.ports:
                if p.peer in unnamed:
                    ports.setdefault(unnamed[p.peer], []).append(str(SwitchPort(names[node.ident], p.local)))
    return tuple((d, tuple(sorted(found))) for d, found in sorted(ports.items()))


def canonical_hcas(nodes: dict[str, Node]) -> dict[str, str]:
    """CA id -> ``mlx5_<n-1>`` for each CA named ``<host> HCA-<n>`` on a fabric where other CAs are named
    ``mlx5_<k>`` (MLNX_OFED's and rdma-ndd's naming side by side), unless its host already has a CA of that
    name (then the two are different adapters, and neither is renamed)."""
    named = {n.ident: host_port(n, 1) for n in nodes.values() if n.kind == "ca" and n.description}
    styles = {style(end.hca) for end in named.values()}
    if not {"HCA", "mlx5"} <= styles:
        return {}
    taken = {(end.host, end.hca) for end in named.values() if style(end.hca) == "mlx5"}
    out = {}
    for ident, end in named.items():
        if style(end.hca) == "HCA" and int(end.hca[4:]) >= 1:
            hca = f"mlx5_{int(end.hca[4:]) - 1}"
            if (end.host, hca) not in taken:
                out[ident] = hca
    return out


def style(hca: str) -> str | None:
    for prefix, style in (("HCA-", "HCA"), ("mlx5_", "mlx5")):
        rest = hca[len(prefix) :]
        if hca.startswith(prefix) and ascii_digits(rest) and len(rest) <= 3:
            return style
    return None
