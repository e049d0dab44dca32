"""Whether every node's neighbour (ARP) table holds the entries the rails test's socket rails need at once.

Linux keeps one IPv4 neighbour table per kernel; ``net.ipv4.neigh.default.gc_thresh3`` (default 1024) is the
most entries it holds (ip-sysctl.rst, neigh/default). Past it the kernel's forced collection frees only idle
entries (``neigh_forced_gc``; the probe's are all in use), it logs ``neighbour: arp_cache: neighbor table
overflow!`` and sends nothing to a peer it has no entry for (kubernetes/kops#4533,
sonic-net/sonic-buildimage#2189). On socket rails every rank connects to every peer of its rail at once
(``bench.rails.measurement.links.connect_all``), so a node short of entries sees healthy peers answer nothing
and the link probe would name healthy cables dead: the worst verdict railbench can give (``health`` drains
nodes on it). IB rails probed through NCCL do not ARP on the rails and are not asked.

So before anything is measured, every node reads its own limit and the ranks agree (``bench.runtime.coord``):
a node whose table is smaller than the run needs refuses the run, exit 2, naming each such node, its limit, the
entries needed and the sysctl that fixes it, as a node whose ranks disagree on their NIC variables is refused
(``bench.runtime.before_init``). It is a setting of the node that makes the measurement meaningless, not a part
the measurement found broken, so no verdict is given and nothing is drained. A node whose limit cannot be read
(a stand-in tree without ``proc``, a container that hides ``neigh/default``) is not judged: the run goes on as
before.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench import sysroot
from bench.exits import UserError
from bench.fabric.sysfs import Sysfs
from bench.frame.guard import guarded
from bench.runtime.coord import coordinator
from bench.runtime.dist import DistContext, torch_timeout_s

GC_THRESH3 = ("sys", "net", "ipv4", "neigh", "default", "gc_thresh3")
"""The neighbour table's hard limit, under the node's ``/proc`` (``bench.sysroot.proc_root``)."""
SYSCTL = "net.ipv4.neigh.default.gc_thresh3"
NAMED = 8
"""Nodes named in the refusal; the rest are counted."""


def entries_needed(nodes: int, socket_rails: int) -> int:
    """Neighbour entries one node holds at once in a rails test of ``nodes`` nodes on ``socket_rails`` rails.

    * ``(nodes - 1) x socket_rails``: each of the node's ranks connects from its rail address to every other
      node's address on its rail at once (``links.connect_all``), and a gloo rail group is a full mesh
      (gloo's ``Context::connectFullMesh``): one entry per peer and rail interface, every one used within
      the same few seconds, so none can be reclaimed;
    * ``nodes - 1`` on the management network: gloo's world group there is a full mesh as well (NCCL's world
      reaches fewer, its bootstrap ring and the store, counted the same so the need is never understated).
    """
    if nodes < 2:
        return 0
    return (nodes - 1) * (socket_rails + 1)


def table_limit(sysfs_root: Path | str) -> int | None:
    """This node's ``gc_thresh3``; None where it cannot be read (no ``proc`` beside a stand-in tree, a container
    that hides ``neigh/default``, a value that is no number)."""
    return Sysfs(sysroot.proc_root(sysfs_root)).read_int(*GC_THRESH3)


@dataclass(frozen=True)
class ShortTable:
    """A node whose neighbour table holds fewer entries than the run needs."""

    host: str
    limit: int


def short_tables(limits: Sequence[tuple[str, int | None]], needed: int) -> list[ShortTable]:
    """The nodes of ``limits`` ((host, limit or None), any number per host) whose limit is below ``needed``,
    once each, in the order given; a node whose limit is unknown is not judged."""
    short: dict[str, ShortTable] = {}
    for host, limit in limits:
        if limit is not None and limit < needed and host not in short:
            short[host] = ShortTable(host, limit)
    return list(short.values())


def refusal(short: Sequence[ShortTable], needed: int, nodes: int, socket_rails: int) -> str | None:
    """The one line that refuses the run for ``short``, with the action; None when every table is large enough."""
    if not short:
        return None
    named = ", ".join(f"{s.host} (holds {s.limit})" for s in short[:NAMED])
    more = f" and {len(short) - NAMED} more" if len(short) > NAMED else ""
    return (
        f"neighbour (ARP) table too small on {named}{more}: this run needs {needed} entries at once on every node "
        f"({nodes - 1} peers x {socket_rails} socket rails + {nodes - 1} on the management network, {SYSCTL}); "
        f"past its limit the kernel sends nothing to a peer it has no entry for and healthy links would read as "
        f"dead. Run 'sysctl -w {SYSCTL}={2 * needed}' on every node and persist it in /etc/sysctl.d, or run fewer "
        "nodes"
    )


def refuse_short_tables(ctx: DistContext, socket_ifname: str | None, timeout_s: float) -> None:
    """Every rank, before anything is measured: a UserError (exit 2, said once by rank 0) where any node's table
    is smaller than :func:`entries_needed`; nothing on IB rails (``socket_ifname`` None) or a single node.

    One rank per node reads its node's limit; rank 0 alone decides, and every rank hears the same line. Under the
    watchdog, as every agreement before the measurement is: a rank that never answers is a named hang."""
    # Counted from the hosts, not ``rail_layout``: a launch with uneven nodes is refused where it always was.
    per_node = Counter(ctx.hosts)
    nodes, rails = len(per_node), max(per_node.values())
    if not socket_ifname or nodes < 2:
        return
    needed = entries_needed(nodes, rails)
    mine = table_limit(ctx.sysfs_root) if ctx.info.local_rank == 0 else None
    coord = coordinator(ctx.backend, ctx.store, ctx.info.rank, ctx.info.world_size, torch_timeout_s(timeout_s))
    hosts = ctx.hosts

    def decide(limits: list[int | None]) -> str:
        return refusal(short_tables(list(zip(hosts, limits, strict=True)), needed), needed, nodes, rails) or ""

    with guarded(ctx, timeout_s, lambda status, exit_status, failure: None) as watchdog:
        watchdog.enter("reading every node's neighbour (ARP) table limit")
        said = coord.agree(mine, decide)
        watchdog.leave()
    if said:
        raise UserError(said)
