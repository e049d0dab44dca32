"""Read ibnetdiscover's topology file (its text output) into a ``Cabling``.

The format, as ibnetdiscover(8) documents it: one block per node, each opened by a header line and followed
by one line per connected port::

    vendid=0x2c9
    devid=0xd2f0
    switchguid=0x...(...)
    Switch  64 "S-b8cef603005e1a40"    # "leaf-su1-r3" enhanced port 0 lid 17 lmc 0
    [1]     "H-9c63c00300a1b2c4"[1](9c63c00300a1b2c4)    # "node01 mlx5_4" lid 33 4xNDR
    [33]    "S-b8cef603005e2b00"[5]                      # "spine-2" lid 4 4xNDR

    Ca      1 "H-9c63c00300a1b2c4"     # "node01 mlx5_4"
    [1](9c63c00300a1b2c4)  "S-b8cef603005e1a40"[1]      # lid 33 lmc 0 "leaf-su1-r3" lid 17 4xNDR

A header names the node type (``Switch``, ``Ca``; routers are skipped), its port count, its id in quotes and,
after ``#``, its NodeDescription in quotes. A port line starts with the local port in brackets (a switch may
add ``[ext N]``, a CA its port GUID in parentheses), then the peer's id in quotes with the peer's port in
brackets, and ends with the active link width and speed (``4xNDR``).

Names: a CA's NodeDescription is ``<host> <HCA>`` (rdma-ndd's default ``%h %d``), so ``node01 mlx5_4`` is
node01's mlx5_4; a switch is named by its NodeDescription when that is unique, else by its id. Every link
appears from both of its ends; each becomes one cable. Lines are read with a length limit and scanned with
string methods only (no regex that could backtrack on a hostile line).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from bench.exits import UserError
from bench.fabric.cabling import Cable, Cabling, HostPort, SwitchPort, normalised
from bench.textlines import numbered_lines, open_text

MAX_FILE_BYTES = 64 << 20
"""A 4,096-node fabric's ibnetdiscover output is about 20 MiB."""
NODE_TYPES = {"Switch": "switch", "Ca": "ca", "Rt": "router"}


@dataclass
class _Node:
    kind: str
    ident: str
    description: str
    line: int
    ports: list[tuple[int, str, int, str | None]] = field(default_factory=list)
    """(local port, peer id, peer port, link width and speed)."""


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
    while i < len(text) and text[i] == " ":
        i += 1
    if i >= len(text) or text[i] != "[":
        return None
    j = text.find("]", i)
    digits = text[i + 1 : j] if j > 0 else ""
    if not digits.isdigit() or len(digits) > 5:
        return None
    return int(digits), j + 1


def _link(comment: str) -> str | None:
    """``4xNDR`` from the end of a port line's comment, else None."""
    words = comment.split()
    last = words[-1] if words else ""
    width, x, speed = last.partition("x")
    return last if x and width.isdigit() and speed.isalnum() and len(last) <= 16 else None


def _header(line: str, number: int) -> _Node | None:
    word = line.split(None, 1)[0] if line.strip() else ""
    if word not in NODE_TYPES:
        return None
    ident = _quoted(line)
    if ident is None:
        return None
    hash_at = line.find("#", ident[1])
    description = _quoted(line, hash_at) if hash_at >= 0 else None
    return _Node(NODE_TYPES[word], ident[0], description[0].strip() if description else "", number)


def _port_line(line: str) -> tuple[int, str, int, str | None] | None:
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
    return local, peer[0], peer_port[0], _link(line[hash_at + 1 :]) if hash_at >= 0 else None


def parse(lines: list[tuple[int, str | None]], where: str) -> Cabling:
    """The cabling described by ibnetdiscover's output, given as numbered lines."""
    nodes: dict[str, _Node] = {}
    current: _Node | None = None
    for number, line in lines:
        if line is None:
            raise UserError(f"{where}:{number}: a line over the length limit: give ibnetdiscover's own output")
        stripped = line.strip()
        if stripped.startswith("["):
            port = _port_line(stripped)
            if current is not None and port is not None:
                current.ports.append(port)
            continue
        node = _header(stripped, number)
        if node is not None:
            if node.ident in nodes:
                raise UserError(f"{where}:{number}: node {node.ident} appears twice: give one ibnetdiscover run")
            nodes[node.ident] = current = node
    switches = [n for n in nodes.values() if n.kind == "switch"]
    if not switches:
        raise UserError(f"{where}: no 'Switch' blocks: give ibnetdiscover's text output (or a cabling .toml file)")
    described = [n.description for n in switches]
    names = {
        n.ident: n.description if n.description and described.count(n.description) == 1 else n.ident for n in switches
    }

    def end(ident: str, port: int) -> HostPort | SwitchPort | None:
        node = nodes.get(ident)
        if node is None or node.kind == "router":
            return None
        if node.kind == "switch":
            return SwitchPort(names[ident], port)
        host, _, hca = node.description.rpartition(" ")
        if not host:  # no "<host> <HCA>" description: the CA's id stands for both
            host, hca = node.description or ident, ident
        return HostPort(host, hca, port)

    cables = []
    for node in nodes.values():
        for local, peer, peer_port, link in node.ports:
            near, far = end(node.ident, local), end(peer, peer_port)
            if near is None or far is None:
                continue
            if isinstance(near, SwitchPort) and isinstance(far, HostPort):
                near, far = far, near
            if isinstance(far, SwitchPort):  # a CA cabled straight to a CA has no switch port to check
                cables.append(Cable(near, far, link))
    if not cables:
        raise UserError(f"{where}: no links between switches and HCAs: is this ibnetdiscover's full output?")
    return Cabling(normalised(cables, where), where)


def read(path: Path) -> Cabling:
    """``parse`` of the file at ``path`` (at most MAX_FILE_BYTES)."""
    try:
        size = path.stat().st_size if path.is_file() else None
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror}: check the path") from None
    if size is not None and size > MAX_FILE_BYTES:
        raise UserError(f"{path} is {size} bytes, over the {MAX_FILE_BYTES >> 20} MiB limit of a topology file")
    with open_text(path) as stream:
        return parse(list(numbered_lines(stream)), str(path))
