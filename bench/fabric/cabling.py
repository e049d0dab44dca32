"""The fabric's cabling: which switch port each node's HCA port and each leaf's uplink plugs into.

Two inputs give it (``load_cabling``):

* **ibnetdiscover's text output** (``bench.fabric.ibnetdiscover``): what the subnet manager's view of the
  fabric says is cabled, as found;
* **a small TOML file**, for a plan written by hand or a fabric without InfiniBand (the namespace testbed)::

      # the HCA of rail k on every node, in rail order (optional: else the profile's [rails] names, else
      # every cabled HCA in natural name order)
      rails = ["mlx5_1", "mlx5_2"]

      [nodes.node01]                 # a node: its HCA (port 1) -> switch:port; "mlx5_1:2" for port 2
      mlx5_1 = "leaf-su1-r0:1"
      mlx5_2 = "leaf-su1-r1:1"

      [switches.leaf-su1-r0]         # a switch: its port -> the other switch:port (a leaf's uplink)
      33 = "spine-1:1"

A cable joins a node's HCA port to a switch port, or two switch ports. Which switches are leaves and which
are spines, which rail a leaf carries and which scalable unit it belongs to, is not written down: it is read
from the cabling itself (``bench.fabric.cabling_plan``), so a miswired cable cannot hide in a label.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from bench.bounded import ascii_digits
from bench.exits import UserError
from bench.fabric.sysfs_io import natural_key
from bench.jsondoc import Parsed
from bench.textlines import printable

MAX_CABLES = 1 << 20
"""More cables than any fabric railbench tests (a 4,096-node, 8-rail fabric has about 66,000)."""
MAX_NAME_CHARS = 200
"""Longer than any host, HCA or switch name (NodeDescriptions are 64 bytes in the IBA)."""
MAX_RAILS = 64
"""More rails than any node has (a GPU node has one HCA port per GPU: 8 today, 16 at most on record)."""
MAX_PORT = 4096
"""Above any switch's port count (a Quantum-2 has 64; ibnetdiscover counts a director's ports per ASIC)."""

_ENDPOINT = re.compile(r"([^\s:]{1,200}):([0-9]{1,5})")


@dataclass(frozen=True, order=True)
class HostPort:
    """A node's HCA port: ``node07 mlx5_4 port 1``."""

    host: str
    hca: str
    port: int = 1

    def __str__(self) -> str:
        return f"{self.host} {self.hca} port {self.port}"


@dataclass(frozen=True, order=True)
class SwitchPort:
    """A switch port: ``leaf-su1-r3 port 7``."""

    switch: str
    port: int

    def __str__(self) -> str:
        return f"{self.switch} port {self.port}"


@dataclass(frozen=True)
class Cable:
    """One cable: a node's HCA port to a switch port (``a`` a HostPort), or two switch ports."""

    a: HostPort | SwitchPort
    b: SwitchPort
    link: str | None = None
    """The active width and speed where the source says (ibnetdiscover's ``4xNDR``), else None."""

    def __str__(self) -> str:
        return f"{self.a} <-> {self.b}"


@dataclass(frozen=True)
class Cabling:
    """Every cable of a fabric, as found in one file."""

    cables: tuple[Cable, ...]
    source: str
    """The file it came from."""
    rails: tuple[str, ...] = ()
    """The HCA of rail k on every node, in rail order, where the file says (TOML ``rails``)."""
    unnamed: tuple[tuple[str, tuple[str, ...]], ...] = ()
    """(NodeDescription, the switch ports its adapters are cabled to) for each NodeDescription that several
    adapters share (an adapter's factory default): their hosts cannot be told, their cables are left out."""
    host_ports: Mapping[HostPort, Cable] = field(init=False, repr=False, compare=False)
    _by_hca: Mapping[tuple[str, str], Cable] = field(init=False, repr=False, compare=False)
    _used: Mapping[str, frozenset[int]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        ports = {c.a: c for c in self.cables if isinstance(c.a, HostPort)}
        by_hca: dict[tuple[str, str], Cable] = {}
        for port in sorted(ports, reverse=True):  # the lowest-numbered port of an HCA wins
            by_hca[(port.host, port.hca)] = ports[port]
        used: dict[str, set[int]] = {}
        for cable in self.cables:
            for end in (cable.a, cable.b):
                if isinstance(end, SwitchPort):
                    used.setdefault(end.switch, set()).add(end.port)
        object.__setattr__(self, "host_ports", ports)
        object.__setattr__(self, "_by_hca", by_hca)
        object.__setattr__(self, "_used", {switch: frozenset(p) for switch, p in used.items()})

    @property
    def hosts(self) -> dict[str, tuple[str, ...]]:
        """Host -> its cabled HCAs (natural order)."""
        out: dict[str, set[str]] = {}
        for port in self.host_ports:
            out.setdefault(port.host, set()).add(port.hca)
        return {h: tuple(sorted(v, key=natural_key)) for h, v in sorted(out.items(), key=lambda i: natural_key(i[0]))}

    @property
    def switch_links(self) -> tuple[Cable, ...]:
        """The cables between two switches."""
        return tuple(c for c in self.cables if isinstance(c.a, SwitchPort))

    def cable_of(self, host: str, hca: str) -> Cable | None:
        """The cable of ``host``'s HCA ``hca`` (its lowest-numbered cabled port), or None."""
        return self._by_hca.get((host, hca))

    def used_ports(self, switch: str) -> frozenset[int]:
        """The ports of ``switch`` that have a cable."""
        return self._used.get(switch, frozenset())


def _name(text: str, what: str, where: str) -> str:
    name = text.strip()
    # isprintable: a control character in a name would reach the terminal and checks.json (bench.textlines)
    if not name or len(name) > MAX_NAME_CHARS or not name.isprintable() or any(ch.isspace() for ch in name):
        raise UserError(
            f"{where}: {what} {printable(text[:60])!r} must be a name of printable characters without spaces, at "
            f"most {MAX_NAME_CHARS} chars"
        )
    return name


def _port(text: str, what: str, where: str) -> int:
    if not ascii_digits(text) or len(text) > 5 or not 1 <= int(text) <= MAX_PORT:
        raise UserError(f"{where}: {what} {text[:20]!r} must be a port number from 1 to {MAX_PORT}")
    return int(text)


def switch_port(text: object, where: str) -> SwitchPort:
    """``"leaf-su1-r3:7"`` -> SwitchPort; UserError naming ``where`` otherwise."""
    match = _ENDPOINT.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise UserError(f'{where}: {str(text)[:60]!r} must be "switch:port", e.g. "leaf-su1-r3:7"')
    return SwitchPort(_name(match[1], "switch", where), _port(match[2], "port", where))


def normalised(cables: Iterable[Cable], where: str) -> tuple[Cable, ...]:
    """The cables with each switch-to-switch cable once (its lower end first), every port used once."""
    seen: dict[HostPort | SwitchPort, Cable] = {}
    out: dict[tuple[HostPort | SwitchPort, SwitchPort], Cable] = {}
    for cable in cables:
        a, b = cable.a, cable.b
        if isinstance(a, SwitchPort) and b < a:
            a, b = b, a
            cable = Cable(a, b, cable.link)
        key = (a, b)
        if key in out:
            continue
        for end in (a, b):
            if end in seen:
                raise UserError(f"{where}: {end} is cabled twice ({seen[end]} and {cable}): one cable per port")
            seen[end] = cable
        out[key] = cable
        if len(out) > MAX_CABLES:
            raise UserError(f"{where}: more than {MAX_CABLES} cables: this is not one fabric's cabling")
    return tuple(out.values())


def _rail_hcas(data: Parsed, where: str) -> list[str]:
    """``rails``: the HCA names in rail order, each once."""
    rails = data.get("rails", [])
    if not isinstance(rails, list) or not all(isinstance(r, str) for r in rails):
        raise UserError(f'{where}: rails must be a list of HCA names in rail order, e.g. ["mlx5_1", "mlx5_2"]')
    if len(set(rails)) != len(rails):
        raise UserError(f"{where}: rails lists an HCA twice: each rail has its own HCA")
    if len(rails) > MAX_RAILS:
        raise UserError(f"{where}: rails lists {len(rails)} HCAs, more than any node has ({MAX_RAILS})")
    return [str(r) for r in rails]


def cabling_from_toml(data: Parsed, where: str) -> Cabling:
    """The cabling of a parsed TOML document (see the module docstring)."""
    unknown = sorted(set(data) - {"rails", "nodes", "switches"})
    if unknown:
        raise UserError(f"{where}: unknown key {unknown[0]!r}: a cabling file has rails, [nodes.X] and [switches.X]")
    rails = _rail_hcas(data, where)
    cables: list[Cable] = []
    for table, is_node in (("nodes", True), ("switches", False)):
        entries = data.get(table, {})
        if not isinstance(entries, dict):
            raise UserError(f"{where}: [{table}] must hold one table per {table[:-1]}, e.g. [{table}.name]")
        for owner, ports in entries.items():
            here = f"{where}: [{table}.{owner}]"
            owner = _name(owner, table[:-1], where)
            if not isinstance(ports, dict):
                raise UserError(f'{here} must be a table of port = "switch:port"')
            for key, value in ports.items():
                far = switch_port(value, f"{here} {key}")
                if is_node:
                    hca, _, port = key.partition(":")
                    near: HostPort | SwitchPort = HostPort(
                        owner, _name(hca, "HCA", here), _port(port, "HCA port", here) if port else 1
                    )
                else:
                    near = SwitchPort(owner, _port(key, "port", here))
                cables.append(Cable(near, far))
    if not cables:
        raise UserError(f"{where}: no cables: list each node's HCAs under [nodes.NAME]")
    return Cabling(normalised(cables, where), where, tuple(rails))
