"""Each rank's own rail link, known before any rail group forms: its port's state and a bounded connect probe.

Every rank reads its rail port in sysfs (a socket rail's ``operstate`` and ``carrier``; an IB port's
``state`` and ``phys_state``) and, on socket rails, opens a listener on its rail address and connects from
that address to every peer of its rail at once, all within :data:`LINK_PROBE_S`. The reports travel through
``bench.runtime.coord`` (on NCCL the rendezvous store, never a communicator, since a communicator may
itself ride the dead link); every rank reads all of them and ``bench.rails.diagnosis.liveness.decide`` makes the same
rail groups on every rank.

Why a connect: a TCP handshake from the rail address to the peer's rail address crosses exactly the cable,
port and switch the rail group will use, carries a packet each way, and fails fast or within the deadline
when any of them is dead (the connecting end without a route says ENETUNREACH at once; an unreachable peer
costs the kernel's ARP resolution, about 3 s, or the deadline). It needs no communicator, so it cannot hang
the way a transport can (gloo retries a connection for several of its timeouts).
"""

from __future__ import annotations

import errno
import os
import selectors
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass

from bench.fabric.hca_list import select_hcas
from bench.fabric.rail_nics import rail_nic
from bench.fabric.sysfs import Sysfs, ib_ports, nvidia_gpus
from bench.netaddr import interface_ipv4
from bench.rails.diagnosis.liveness import LinkReport
from bench.rails.plan.layout import RailLayout
from bench.runtime import env as benv
from bench.runtime.coord import Coord

LINK_PROBE_S = 3.5
"""How long a rank keeps trying to connect to its rail peers. Long enough for a lost SYN to be sent again
(Linux retransmits after 1 s) and for the kernel to give up resolving a dead peer's address (3 ARP probes a
second apart), short against the rail step's timeout: a dead link costs seconds, not the run."""
RETRY_S = 0.25
"""Pause before trying a peer again after its connect failed."""
MAX_IN_FLIGHT = 256
"""Connects open at once: a 1024-node rail stays under the common 1024 open-file limit."""


@dataclass(frozen=True)
class Port:
    """This rank's rail port as sysfs says it."""

    device: str | None
    words: str
    up: bool | None


def socket_port(ifname: str, sysfs: Sysfs) -> Port:
    """A socket rail's interface: up unless ``operstate`` says down or the carrier is lost."""
    state = sysfs.read("class", "net", ifname, "operstate")
    if state is None:
        return Port(ifname, "absent", False)
    carrier = sysfs.read("class", "net", ifname, "carrier")  # unreadable while the interface is down
    words = state + (", no carrier" if carrier == "0" else "")
    return Port(ifname, words, state in ("up", "unknown") and carrier != "0")


def ib_port(rail: int, sysfs: Sysfs, gpu_bus: str | None = None) -> Port:
    """Rail ``rail``'s HCA port: its ``state`` (ACTIVE is up) and ``phys_state``.

    The port is the one ``NCCL_IB_HCA`` pins for this rank, else the rank's expected NIC: the port nearest its
    GPU in the PCIe tree among those ``NCCL_IB_HCA`` selects, as the path proof and NCCL map it
    (``bench.fabric.rail_nics``). ``gpu_bus``: the PCI address of the GPU this rank drives; without one (a CPU
    run) rail k's GPU is GPU k in PCI bus order, the one local rank k drives. Only where the node shows no GPU
    is the port the ``rail``-th selected in name order, in any state (a port that is down must not shift the
    higher rails onto their neighbours' NICs). Name order is not GPU order on every node: some clouds name
    their HCAs in another order than their GPUs' buses, and a DOWN port would then be charged to another rail.
    """
    ports = [p for p in ib_ports(sysfs) if p.link_layer in ("InfiniBand", "Ethernet")]
    hca = benv.get("NCCL_IB_HCA")
    chosen = select_hcas(hca, [p.name for p in ports])
    name = chosen[0] if len(chosen) == 1 else _nearest_port(rail, sysfs, hca, gpu_bus)
    if name is None and len(chosen) > 1:
        name = chosen[rail] if rail < len(chosen) else None
    port = next((p for p in ports if p.name == name), None)
    if port is None:
        return Port(None, "unknown (no HCA port known for this rail)", None)
    return Port(port.name, f"{port.state} ({port.phys_state})", port.state == "ACTIVE")


def _nearest_port(rail: int, sysfs: Sysfs, nccl_ib_hca: str | None, gpu_bus: str | None) -> str | None:
    """The port nearest this rank's GPU (``gpu_bus``, else GPU ``rail`` in bus order); None with no GPU."""
    if gpu_bus is None:
        on_bus = nvidia_gpus(sysfs)
        if rail >= len(on_bus):
            return None
        gpu_bus = on_bus[rail].address
    return rail_nic(sysfs, gpu_bus, nccl_ib_hca).nic


def _listen(address: str, backlog: int) -> socket.socket | None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind((address, 0))
        sock.listen(backlog)
    except OSError:
        sock.close()
        return None
    return sock


def connect_all(
    address: str, peers: Mapping[int, tuple[str, int]], deadline_s: float
) -> tuple[tuple[int, ...], tuple[tuple[int, str], ...]]:
    """Connect from ``address`` to every peer's listener at once, trying each again after a failure until it
    answers or ``deadline_s`` passes; returns the peers reached and (peer, last error) for the others."""
    selector = selectors.DefaultSelector()
    end = time.monotonic() + deadline_s
    waiting = dict(peers)
    last: dict[int, str] = {}
    retry_at: dict[int, float] = dict.fromkeys(peers, 0.0)
    reached: list[int] = []
    open_: dict[int, socket.socket] = {}

    def start(peer: int) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            sock.bind((address, 0))
            code = sock.connect_ex(waiting[peer])
        except OSError as exc:
            code = exc.errno or errno.EIO
        if code in (0, errno.EINPROGRESS):
            open_[peer] = sock
            selector.register(sock, selectors.EVENT_WRITE, peer)
            return
        sock.close()
        last[peer] = os.strerror(code)
        retry_at[peer] = time.monotonic() + RETRY_S

    try:
        while waiting and time.monotonic() < end:
            now = time.monotonic()
            for peer in [p for p in waiting if p not in open_ and retry_at[p] <= now][: MAX_IN_FLIGHT - len(open_)]:
                start(peer)
            for key, _ in selector.select(timeout=min(RETRY_S, max(0.0, end - time.monotonic()))):
                peer = int(key.data)
                sock = open_.pop(peer)
                selector.unregister(sock)
                code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                sock.close()
                if code == 0:
                    reached.append(peer)
                    del waiting[peer]
                else:
                    last[peer] = os.strerror(code)
                    retry_at[peer] = time.monotonic() + RETRY_S
    finally:
        for sock in open_.values():
            selector.unregister(sock)
            sock.close()
        selector.close()
    failed = tuple((p, last.get(p, f"no answer within {deadline_s:g} s")) for p in sorted(waiting))
    return tuple(sorted(reached)), failed


def probe_links(
    layout: RailLayout,
    rank: int,
    coord: Coord,
    ifname: str | None,
    sysfs: Sysfs,
    deadline_s: float = LINK_PROBE_S,
    gpu_bus: str | None = None,
) -> list[LinkReport]:
    """Every rank's ``LinkReport``, in rank order, on every rank (each rank calls this once, all together).

    ``ifname``: this rank's rail interface (socket rails), else None and the port is its HCA port, the one
    nearest ``gpu_bus`` (the PCI address of the rank's GPU; see :func:`ib_port`). The
    listeners are all open before anyone connects (the first exchange through ``coord``), and each stays open
    until every rank has reported (the second), so a late rank is not mistaken for a dead one.
    """
    node, rail = layout.where(rank)
    port = socket_port(ifname, sysfs) if ifname else ib_port(rail, sysfs, gpu_bus)
    address = interface_ipv4(ifname) if ifname else None
    listener = _listen(address, max(128, len(layout.nodes))) if address else None
    mine = f"{address} {listener.getsockname()[1]}" if address and listener else "-"
    try:
        posted = coord.all_gather(mine)
        reached: tuple[int, ...] = ()
        failed: tuple[tuple[int, str], ...] = ()
        if address:
            peers: dict[int, tuple[str, int]] = {}
            missing: list[tuple[int, str]] = []
            for other, per_node in enumerate(layout.ranks):
                if other == node:
                    continue
                where = posted[per_node[rail]].split()
                if len(where) == 2:
                    peers[other] = (where[0], int(where[1]))
                else:
                    missing.append((other, "no listener on its rail address"))
            reached, failed = connect_all(address, peers, deadline_s)
            failed = tuple(sorted(failed + tuple(missing)))
        report = LinkReport(node, rail, port.device, address, port.words, port.up, reached, failed)
        texts = coord.all_gather(report.to_json())
    finally:
        if listener is not None:
            listener.close()
    return [LinkReport.from_json(text) for text in texts]
