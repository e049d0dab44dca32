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
"""

from __future__ import annotations

import socket

from bench.fabric.hca_list import check_socket_ifname, select_ifnames, show
from bench.netaddr import interface_ipv4
from bench.runtime import env as benv
from bench.runtime.env import RankInfo


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


def management_socket_ifname(master_addr: str | None, master_port: int | None) -> str | None:
    """``NCCL_SOCKET_IFNAME`` for NCCL's bootstrap and IB handshakes: ``=`` and the exact name of the interface
    that carries the rendezvous (``=lo`` when every rank is on this host); None when it cannot be told."""
    if not master_addr:
        return None
    name = interface_towards(master_addr, master_port or 0)
    return f"={check_socket_ifname(name, 'the management interface')}" if name else None


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


def on_management(info: RankInfo) -> str | None:
    """This rank's default ``NCCL_SOCKET_IFNAME`` (see the module docstring); where the site set its own, rank 0
    says in one line that it is kept and what it selects, if that is not the management interface."""
    management = management_socket_ifname(info.master_addr, info.master_port)
    site = benv.get("NCCL_SOCKET_IFNAME")
    if site is not None and management is not None and info.rank == 0:
        said = site_value_line(site, management, local_interfaces())
        if said:
            print(said, flush=True)
    return management
