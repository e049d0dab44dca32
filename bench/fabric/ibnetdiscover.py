"""Read ibnetdiscover's topology file (its text output) into a ``Cabling``.

The format, as ibnetdiscover(8) writes it (``infiniband-diags/ibnetdiscover.c``): one block per node, the
switches first, then the channel adapters (CAs), then routers; each block opens with a header line and lists
one line per connected port::

    vendid=0x2c9
    devid=0xd2f0
    switchguid=0x...(...)
    Switch  64 "S-b8cef603005e1a40"    # "leaf-su1-r3" enhanced port 0 lid 17 lmc 0
    [1]     "H-9c63c00300a1b2c4"[1](9c63c00300a1b2c4)    # "node01 mlx5_4" lid 33 4xNDR
    [33]    "S-b8cef603005e2b00"[5]                      # "spine-2" lid 4 4xNDR

    Ca      1 "H-9c63c00300a1b2c4"     # "node01 mlx5_4"
    [1](9c63c00300a1b2c4)  "S-b8cef603005e1a40"[1]      # lid 33 lmc 0 "leaf-su1-r3" lid 17 4xNDR

A header names the node type (``Switch``, ``Ca``; routers are skipped), its port count, its id in quotes and,
after ``#``, its NodeDescription in quotes. A port line starts with the local port in brackets (``-g`` adds
``[ext N]``, a CA its port GUID in parentheses), then the peer's id in quotes with the peer's port in
brackets, and after ``#`` the peer's NodeDescription in quotes and the active link width and speed
(``4xNDR``). Lines are read with a length limit, control characters neutralised (``bench.textlines``), and
scanned with string methods only (no regex that could backtrack on a hostile line).

What real files do, and what is read from them:

* **Hosts from the switch side.** Every switch line names its peer's NodeDescription, so the cabling is whole
  from the switch blocks alone: output whose CA blocks were left out (a paste of the switches, a filter) reads
  its hosts from there.
* **A file that was cut** is refused, never read as a smaller fabric. ibnetdiscover writes every link from
  both of its ends, so a switch that is cabled to but has no block, a CA the switches name that has no block
  while other CAs have theirs (the file ends inside the host section), or a port line whose other end does
  not list it back (a block cut short) each say where the file stops being whole.
* **Names.** A CA's NodeDescription is ``<host> <HCA>`` (rdma-ndd's default ``%h %d``), so ``node01 mlx5_4``
  is node01's mlx5_4; MLNX_OFED's default is ``<host> HCA-<n>``, which names no HCA: the rails are then read
  by position (``bench.fabric.cabling_plan.rail_order`` says when that is safe, and refuses when not). A
  NodeDescription that several CAs share (an adapter's factory default, ``MT4129 ConnectX7 Mellanox
  Technologies``: some nodes never ran rdma-ndd) names no host: those adapters are left out and said
  (``Cabling.unnamed``), and a file where no CA names its host is refused with the fix. A switch is named by
  its NodeDescription when that is unique, else by its id. Where some hosts say ``HCA-<n>`` and others
  ``mlx5_<k>`` (two naming services on one fabric), ``HCA-<n>`` is read as ``mlx5_<n-1>``, the n-th adapter in
  device order (unless its host has a CA named so already), so one adapter is never two rails: a real SuperPOD
  dump shows it, the leaf that carries ``HCA-6`` of one unit's nodes carrying ``mlx5_5`` of another's.
* **SHARP aggregation nodes.** A Quantum switch's SHARP engine is a CA on its last port, described
  ``Mellanox Technologies Aggregation Node`` (NVIDIA SHARP deployment guide): part of the switch, not a host.
* **Redacted GUIDs.** Output pasted with its GUIDs cut (``"H-946d<redacted>"``) gives several hosts one id. A
  CA with no block of its own that the switch lines describe with different NodeDescriptions is read by its
  NodeDescription, one adapter each; where such an id has a block of its own the file cannot be read by id
  or by name, and is refused as partial.
* **Older output** (infiniband-diags of 2009) ends a port line at ``lid <N>`` without the link's width and
  speed. A file whose port lines all end so is read without link speeds; in a file whose other lines carry
  them, a line that ends at its lid was cut.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from pathlib import Path

from bench.bounded import ascii_digits
from bench.exits import UserError
from bench.fabric import other_tools
from bench.fabric.cabling import Cable, Cabling, HostPort, SwitchPort, normalised
from bench.fabric.ibnetdiscover_names import (
    Node,
    PortLine,
    canonical_hcas,
    host_port,
    unnamed_adapters,
    unnamed_ports,
)
from bench.textlines import numbered_lines, open_text

MAX_FILE_BYTES = 64 << 20
"""A 4,096-node fabric's ibnetdiscover output is about 20 MiB."""
NODE_TYPES = {"Switch": "switch", "Ca": "ca", "Rt": "router"}
ID_KINDS = {"S": "switch", "H": "ca", "R": "router"}
"""The node type an id's prefix says (``node_name`` in ibnetdiscover.c writes S-, H-, R-)."""
REDACTED_FIX = "give the output as ibnetdiscover printed it, GUIDs unredacted"
FIX = "give ibnetdiscover's whole output ('ibnetdiscover > fabric.txt' on a node with an IB port)"


def _quoted(text: str, start: int = 0) -> tuple[str, int] | None:
    """The first double-quoted string at or after ``start`` and the index just past it."""
    a = text.find('"', start)
    if a < 0:
        return None
    b = text.find('"', a + 1)
    if b < 0:
        return None
    return text[a + 1 : b], b + 1


def _bracketed(text: str, start: int) -> tuple[int, int] | None:
    """The number in ``[N]`` right at ``start`` (after spaces) and the index past ``]``."""
    i = start
    while i < len(text) and text[i] in " \t":
        i += 1
    if i >= len(text) or text[i] != "[":
        return None
    j = text.find("]", i)
    digits = text[i + 1 : j] if j > 0 else ""
    if not ascii_digits(digits) or len(digits) > 5:
        return None
    return int(digits), j + 1


def _link(comment: str) -> tuple[bool, str | None, bool]:
    """(whether the port line's comment is whole, the link's width and speed ``4xNDR`` where it says one,
    whether it ends at the lid).

    ibnetdiscover ends every port line with ``lid <N> <width><speed>`` (``-f`` adds ``s= w= v=`` after it; an
    unknown width or speed prints as ``??``); older versions end it at ``lid <N>`` (``parse`` tells the two
    apart by the whole file)."""
    words = comment.split()
    at = max((i for i, w in enumerate(words) if w == "lid"), default=-1)
    if at < 0 or at + 1 >= len(words) or not ascii_digits(words[at + 1]):
        return False, None, False
    if at + 2 == len(words):
        return True, None, True
    link = words[at + 2]
    width, x, speed = link.partition("x")
    return True, link if x and ascii_digits(width) and speed.isalnum() and len(link) <= 16 else None, False


def _header(line: str, number: int) -> Node | None:
    word = line.split(None, 1)[0] if line.strip() else ""
    if word not in NODE_TYPES:
        return None
    ident = _quoted(line)
    if ident is None:
        return None
    hash_at = line.find("#", ident[1])
    description = _quoted(line, hash_at) if hash_at >= 0 else None
    return Node(NODE_TYPES[word], ident[0], description[0].strip() if description else "", number)


def _port_line(line: str, number: int) -> PortLine | None:
    """The port a line describes; None when it is not whole (cut in the middle, damaged)."""
    first = _bracketed(line, 0)
    if first is None:
        return None
    local, at = first
    peer = _quoted(line, at)
    if peer is None:
        return None
    peer_port = _bracketed(line, peer[1])
    if peer_port is None:
        return None
    hash_at = line.find("#", peer_port[1])
    comment = line[hash_at + 1 :] if hash_at >= 0 else ""
    whole, link, bare = _link(comment)
    if not whole:
        return None
    described = _quoted(comment) if comment else None
    return PortLine(local, peer[0], peer_port[0], link, described[0].strip() if described else None, number, bare)


def _kind_of(ident: str) -> str | None:
    prefix, dash, _ = ident.partition("-")
    return ID_KINDS.get(prefix) if dash else None


def _blocks(lines: list[tuple[int, str | None]], where: str) -> dict[str, Node]:
    nodes: dict[str, Node] = {}
    current: Node | None = None
    for number, line in lines:
        if line is None:
            raise UserError(f"{where}:{number}: a line over the length limit: {FIX}")
        stripped = line.strip()
        if stripped.startswith("["):
            port = _port_line(stripped, number)
            if current is not None and port is None:
                raise UserError(f"{where}:{number}: a port line that is cut short or damaged: {FIX}")
            if current is not None and port is not None:
                current.ports.append(port)
            continue
        node = _header(stripped, number)
        if node is not None:
            if node.ident in nodes:
                first = nodes[node.ident].description
                if first != node.description:  # one id, two nodes: GUIDs cut from the paste
                    raise UserError(
                        f"{where}:{number}: id {node.ident} names two nodes ({first!r} and {node.description!r}): "
                        f"its GUID is redacted or shared, so the file cannot be read whole: {REDACTED_FIX}"
                    )
                raise UserError(f"{where}:{number}: node {node.ident} appears twice: give one ibnetdiscover run")
            nodes[node.ident] = current = node
    _bare_lines(nodes, where)
    return nodes


def _bare_lines(nodes: dict[str, Node], where: str) -> None:
    """UserError at the first port line that ends at its lid in a file whose other port lines carry a link."""
    ports = [p for n in nodes.values() for p in n.ports]
    if any(not p.bare for p in ports):
        cut = min((p.line for p in ports if p.bare), default=None)
        if cut is not None:
            raise UserError(f"{where}:{cut}: a port line that is cut short or damaged: {FIX}")


def _whole(nodes: dict[str, Node], where: str) -> None:
    """UserError where the file is not whole: a switch cabled to without a block, CAs missing from a host
    section that has begun, a link that only one of its two blocks lists."""
    listed = {(n.ident, p.local): p for n in nodes.values() for p in n.ports}
    has_cas = any(n.kind == "ca" for n in nodes.values())
    missing_cas: dict[str, PortLine] = {}
    for node in nodes.values():
        for port in node.ports:
            peer = nodes.get(port.peer)
            kind = _kind_of(port.peer) if peer is None else peer.kind
            if peer is None and kind == "switch":
                named = f' ("{port.peer_description}")' if port.peer_description else ""
                raise UserError(
                    f"{where}:{port.line}: switch {port.peer}{named} is cabled to but has no block of its own: the "
                    f"file is cut or filtered: {FIX}"
                )
            if peer is None and kind == "ca" and has_cas:
                missing_cas.setdefault(port.peer, port)
            if peer is None or kind == "router":
                continue
            back = listed.get((port.peer, port.peer_port))
            if back is None or back.peer != node.ident or back.peer_port != port.local:
                raise UserError(
                    f"{where}:{port.line}: {node.ident} port {port.local} is cabled to {port.peer} port "
                    f"{port.peer_port}, whose block (line {peer.line}) does not list that link back: the file is "
                    f"cut or damaged there: {FIX}"
                )
    if missing_cas:
        first = next(iter(missing_cas.values()))
        named = f' ("{first.peer_description}")' if first.peer_description else ""
        raise UserError(
            f"{where}: the file ends inside its host section: {len(missing_cas)} channel adapter(s) the switches "
            f"name have no Ca block (first: {first.peer}{named}, line {first.line}): {FIX}"
        )


def parse(lines: list[tuple[int, str | None]], where: str) -> Cabling:
    """The cabling described by ibnetdiscover's output, given as numbered lines."""
    nodes = _blocks(lines, where)
    switches = [n for n in nodes.values() if n.kind == "switch"]
    if not switches and any(n.kind == "ca" for n in nodes.values()):
        # A lone Ca block: the port ibnetdiscover ran from reached no switch (a GB200 tray's dump shows it)
        raise UserError(
            f"{where}: channel adapters but no switch: the port ibnetdiscover ran from reaches none (its link is "
            "down or not cabled: 'ibstat' shows its state): run it on a node whose IB port is Active"
        )
    if not switches:
        tool = other_tools.which((line for _, line in lines), "ibnetdiscover")
        said = f"{tool}'s output, not ibnetdiscover's topology" if tool else "no 'Switch' blocks"
        raise UserError(f"{where}: {said}: give ibnetdiscover's text output (or a cabling .toml file)")
    _read_shared_ids_by_name(nodes, switches, where)  # first: a redacted id is no cut file
    _whole(nodes, where)
    _hosts_from_switches(nodes, switches)
    described = Counter(n.description for n in switches)
    names = {n.ident: n.description if n.description and described[n.description] == 1 else n.ident for n in switches}
    unnamed = unnamed_adapters(nodes, where)
    cables = _cables(nodes, names, canonical_hcas(nodes))
    if not cables:
        raise UserError(f"{where}: no links between switches and HCAs: is this ibnetdiscover's full output?")
    return Cabling(normalised(cables, where), where, unnamed=unnamed_ports(nodes, names, unnamed))


def _read_shared_ids_by_name(nodes: dict[str, Node], switches: list[Node], where: str) -> None:
    """A CA id the switch lines describe with different NodeDescriptions (GUIDs redacted in a paste): each
    description its own adapter where the id has no block of its own; refused as partial where it has one."""
    described: dict[str, set[str]] = {}
    for switch in switches:
        for port in switch.ports:
            if _kind_of(port.peer) == "ca" and port.peer_description:
                described.setdefault(port.peer, set()).add(port.peer_description)
    shared = {ident for ident, names in described.items() if len(names) > 1}
    for ident in sorted(shared):
        if ident in nodes:
            raise UserError(
                f"{where}:{nodes[ident].line}: id {ident} names {len(described[ident])} different adapters "
                f"({', '.join(repr(d) for d in sorted(described[ident])[:2])}, ...): its GUID is redacted or shared, "
                f"so the file cannot be read whole: {REDACTED_FIX}"
            )
    for switch in switches:
        switch.ports = [
            replace(p, peer=f"{p.peer} {p.peer_description}") if p.peer in shared else p for p in switch.ports
        ]


def _hosts_from_switches(nodes: dict[str, Node], switches: list[Node]) -> None:
    """Hosts from the switch side: a CA with no block of its own is the one its switch line describes."""
    for switch in switches:
        for port in switch.ports:
            if port.peer not in nodes and _kind_of(port.peer) == "ca":
                nodes[port.peer] = Node("ca", port.peer, port.peer_description or "", port.line)


def _end(
    nodes: dict[str, Node], names: dict[str, str], ident: str, port: int, renamed: dict[str, str]
) -> HostPort | SwitchPort | None:
    """One end of a link: a switch's port (by its unique name), a host's HCA port, or None (a router, unknown)."""
    node = nodes.get(ident)
    if node is None or node.kind == "router":
        return None
    if node.kind == "switch":
        return SwitchPort(names[ident], port)
    end = host_port(node, port)
    return HostPort(end.host, renamed[ident], port) if ident in renamed else end  # the n-th adapter: the docstring


def _cables(nodes: dict[str, Node], names: dict[str, str], renamed: dict[str, str]) -> list[Cable]:
    """Every link that ends at a switch port, its host end first where it has one."""
    cables = []
    for node in nodes.values():
        for port in node.ports:
            near = _end(nodes, names, node.ident, port.local, renamed)
            far = _end(nodes, names, port.peer, port.peer_port, renamed)
            if near is None or far is None:
                continue
            if isinstance(near, SwitchPort) and isinstance(far, HostPort):
                near, far = far, near
            if isinstance(far, SwitchPort):  # a CA cabled straight to a CA has no switch port to check
                cables.append(Cable(near, far, port.link))
    return cables


def read(path: Path) -> Cabling:
    """``parse`` of the file at ``path`` (at most MAX_FILE_BYTES)."""
    try:
        size = path.stat().st_size if path.is_file() else None
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror}: check the path") from None
    if size is not None and size > MAX_FILE_BYTES:
        raise UserError(f"{path} is {size} bytes, over the {MAX_FILE_BYTES >> 20} MiB limit of a topology file")
    with open_text(path, MAX_FILE_BYTES, "give ibnetdiscover's text output (or a cabling .toml file)") as stream:
        return parse(list(numbered_lines(stream)), str(path))
