"""IPv4 addresses of this host's interfaces, for picking a rendezvous address other nodes can reach."""

from __future__ import annotations

import fcntl
import ipaddress
import socket
import struct
from pathlib import Path

from bench.exits import UserError

_SIOCGIFADDR = 0x8915


def interface_ipv4(ifname: str) -> str | None:
    """The IPv4 address of ``ifname``, or None when it has none or does not exist."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            packed = fcntl.ioctl(sock.fileno(), _SIOCGIFADDR, struct.pack("256s", ifname.encode()[:15]))
        except OSError:
            return None
    return socket.inet_ntoa(packed[20:24])


def default_route_interface(route_table: Path = Path("/proc/net/route")) -> str | None:
    """The interface of the IPv4 default route, or None."""
    try:
        lines = route_table.read_text().splitlines()[1:]
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if len(fields) > 2 and fields[1] == "00000000":
            return fields[0]
    return None


def rendezvous_address(oob_ifname: str | None, single_host: bool) -> str:
    """The address rank 0 listens on: loopback when every rank is on this host, else a routable one.

    ``oob_ifname`` (the management interface; profiles set it) wins; then the default route's interface;
    then whatever the hostname resolves to, unless that is loopback (Debian and Ubuntu put a host's own name on
    127.0.1.1 in /etc/hosts: no other node could reach the store there). UserError when none gives one: a node
    with no default route whose hostname no resolver knows (a Slurm node named only in slurm.conf, a network
    namespace) or resolves to loopback.
    """
    if single_host:
        return "127.0.0.1"
    for ifname in (oob_ifname, default_route_interface()):
        if ifname:
            addr = interface_ipv4(ifname)
            if addr:
                return addr
    host = socket.gethostname()
    try:
        address = socket.gethostbyname(host)
    except OSError as exc:
        raise UserError(
            f"no rendezvous address for rank 0 on {host}: no default route and the hostname does not resolve "
            f"({exc.strerror or exc}); pass --oob-ifname with the management interface (or set [network] "
            "oob_ifname in the profile)"
        ) from None
    if ipaddress.ip_address(address).is_loopback:
        raise UserError(
            f"no rendezvous address for rank 0 on {host}: no default route and the hostname resolves to loopback "
            f"({address}, as /etc/hosts has it), which no other node reaches; pass --oob-ifname with the "
            "management interface (or set [network] oob_ifname in the profile)"
        )
    return address
