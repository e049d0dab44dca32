"""NCCL's own sockets on the management network: the default ``NCCL_SOCKET_IFNAME`` of ``rails`` and ``accept``.

NCCL opens TCP sockets beside its data path: the bootstrap ring every communicator is made over
(``src/bootstrap.cc`` ``bootstrapNetInit``) and, on IB, each connection's handshake, the exchange of queue-pair
numbers before any RDMA moves (``src/transport/net_ib/init.cc`` ``ncclIbInit`` keeps one interface for it, found
as the bootstrap's is). Both take their interface from ``ncclFindInterfaces`` (``src/misc/socket.cc``): with
``NCCL_SOCKET_IFNAME`` unset it takes interfaces whose names start with ``ib`` first, that is IPoIB on the rails
themselves, and only then anything but ``docker``/``lo``. A dead link on that rail then breaks the world's init,
or every rail group's handshake, instead of being named as one dead link.

On IB profiles railbench therefore sets ``NCCL_SOCKET_IFNAME`` to the interface that carries the rendezvous
store, which every rank has just reached over the management network: ``=`` and its exact name, the same on
every rank of a node (the agreement check of ``bench.runtime.before_init`` refuses otherwise). A site's own
value wins (it knows its network) and rank 0 says it in one line where it selects something else. Socket
profiles are left alone: there ``NCCL_SOCKET_IFNAME`` is the rails' data path.

Loopback only for a job on one host. torchrun sets ``MASTER_ADDR`` to rank 0's FQDN (its c10d rendezvous,
``torch/distributed/elastic/rendezvous/api.py`` ``RendezvousStoreInfo.build``: ``socket.getfqdn()``), and so does
a user who passes ``$(hostname -f)``; Debian and Ubuntu map that name to 127.0.1.1 in ``/etc/hosts``, so on rank
0's node the route to it is ``lo``. The store still works (its server listens on every address), but NCCL's
bootstrap root would listen on loopback (``bootstrapGetUniqueId`` binds the ``NCCL_SOCKET_IFNAME`` interface) and
no other node could join. So where the ranks span hosts (their hostnames, gathered through the store, or the
launcher's world larger than its local world) a loopback route is refused, and so is no route at all: the
management interface is then ``--oob-ifname`` (or the profile's ``oob_ifname``), else the default route's, else
NCCL's own choice, said in one line by the node's first rank.
"""

from __future__ import annotations

import ipaddress
import socket

from bench.fabric.hca_list import check_socket_ifname, select_ifnames, show
from bench.netaddr import default_route_interface, interface_ipv4
from bench.runtime import env as benv
from bench.runtime.before_init import Prelude, gather_str


def interface_towards(address: str, port: int) -> str | None:
    """The name of this host's interface whose source address the kernel picks to reach ``address``.

    A UDP ``connect`` sends nothing: it only asks the routing table, so it costs no packet and cannot hang.
    None where the address does not resolve or no interface holds the chosen source address.
    """
    try:
        target = socket.gethostbyname(address)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect((target, port or 9))
            source = str(probe.getsockname()[0])
    except OSError:
        return None
    for _, name in socket.if_nameindex():
        if interface_ipv4(name) == source:
            return name
    return None


def is_loopback(name: str) -> bool:
    """Whether interface ``name`` is the loopback one: its IPv4 address is in 127.0.0.0/8 (``lo`` by name where it
    holds none)."""
    address = interface_ipv4(name)
    return ipaddress.ip_address(address).is_loopback if address else name == "lo"


def management_socket_ifname(
    master_addr: str | None, master_port: int | None, spans_hosts: bool = False, oob_ifname: str | None = None
) -> str | None:
    """``NCCL_SOCKET_IFNAME`` for NCCL's bootstrap and IB handshakes: ``=`` and the exact name of the interface
    that carries the rendezvous, None when it cannot be told (NCCL's own choice). Loopback only when every rank
    is on this host: for a job that ``spans_hosts`` a route through loopback (or none) gives way to
    ``oob_ifname``, then the default route's interface (see the module docstring)."""
    towards = interface_towards(master_addr, master_port or 0) if master_addr else None
    if towards and not (spans_hosts and is_loopback(towards)):
        return f"={check_socket_ifname(towards, 'the management interface')}"
    if not spans_hosts:
        return None
    for name in (oob_ifname, default_route_interface()):
        if name and interface_ipv4(name) and not is_loopback(name):
            return f"={check_socket_ifname(name, 'the management interface')}"
    return None


def left_to_nccl_line(master_addr: str | None, host: str, hosts: int) -> str:
    """The one line a node's first rank prints where a job across hosts finds no management interface."""
    route = f"MASTER_ADDR {master_addr} resolves to loopback here" if master_addr else "no rendezvous address"
    return (
        f"# NCCL_SOCKET_IFNAME left to NCCL on {host}: {route}, the job spans {hosts} hosts, and neither "
        "--oob-ifname (the profile's oob_ifname) nor a default route names another interface; NCCL picks its "
        "own (IPoIB on a rail first): pass --oob-ifname with the management interface"
    )


def site_value_line(site: str, management: str, available: list[str]) -> str | None:
    """The one line rank 0 prints where the site's ``NCCL_SOCKET_IFNAME`` selects other interfaces than the
    management one; None where it selects just that one."""
    wanted = management.lstrip("=")
    chosen = select_ifnames(site, available)
    if chosen == [wanted]:
        return None
    on = ", ".join(chosen[:4]) or "no interface here"
    return (
        f"# NCCL_SOCKET_IFNAME={show(site, 40)} from the environment kept (selects {on}): NCCL's bootstrap and IB "
        f"handshakes ride it, not the management interface {wanted} that carries the rendezvous; a dead link "
        "on it breaks the world's start instead of being named"
    )


def local_interfaces() -> list[str]:
    """This host's interface names, in the kernel's order."""
    return [name for _, name in socket.if_nameindex()]


def on_management(prelude: Prelude, oob_ifname: str | None) -> str | None:
    """This rank's default ``NCCL_SOCKET_IFNAME`` (see the module docstring), on every rank alike: the ranks'
    hostnames are gathered through the store to tell whether the job spans hosts. Where the site set its own,
    rank 0 says in one line that it is kept and what it selects, if that is not the management interface; where
    a job across hosts finds none, the node's first rank says NCCL picks its own."""
    info, host = prelude.info, socket.gethostname()
    hosts = len(set(gather_str(prelude, "bootstrap_hosts", host)))
    spans = hosts > 1 or info.world_size > info.local_world_size
    management = management_socket_ifname(info.master_addr, info.master_port, spans, oob_ifname)
    site = benv.get("NCCL_SOCKET_IFNAME")
    if site is not None and management is not None and info.rank == 0:
        said = site_value_line(site, management, local_interfaces())
        if said:
            print(said, flush=True)
    if site is None and management is None and spans and info.local_rank == 0:
        print(left_to_nccl_line(info.master_addr, host, max(hosts, info.nnodes)), flush=True)
    return management
