"""NCCL_IB_HCA and NCCL_SOCKET_IFNAME with NCCL's exact semantics, and an explanation of a value.

NCCL (``src/transport/net_ib/init.cc`` and ``src/misc/utils.cc`` ``parseStringList``/``matchIfList``):

* ``^`` as the very first character makes the list an exclude list; then ``=`` as the next character makes
  every entry an exact name, otherwise each entry is a *prefix* (``mlx5_1`` also matches ``mlx5_10``).
  Nowhere else do ``^`` and ``=`` mean anything: in ``^=mlx5_8,^=mlx5_14`` the second entry is the literal
  name ``^=mlx5_14``, and ``=^mlx5_0`` is an include list of the exact name ``^mlx5_0``.
* The rest is split on ``,`` (empty items vanish, as with ``strtok``); each item is
  ``name[:port[:rail[:plane]]]``. An item with an empty name is dropped. A missing or empty port matches
  every port; a port is read with C ``atoi``, so ``mlx5_0:abc`` is port 0 and matches no real port.
  No whitespace is trimmed. At most 32 entries (``MAX_IB_DEVS``; 16 for sockets) are read and a name keeps
  at most 63 bytes.
* An empty list (unset, ``""``, or only dropped entries) matches every device; with ``^`` it therefore
  excludes every device.
* Only ACTIVE ports whose link layer is InfiniBand or Ethernet are candidates at all.

``select_hcas`` is the public function (also ``bench.select_hcas``); ``bench.fabric.hca.explain`` adds
per-port reasons and warnings about values that are probably mistakes. ``bench.fabric.hca`` re-exports
every name here.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from bench.bounded import ascii_digits
from bench.exits import UserError

MAX_IB_DEVS = 32
"""NCCL reads at most this many NCCL_IB_HCA entries."""
MAX_SOCKET_IFS = 16
"""NCCL reads at most this many NCCL_SOCKET_IFNAME entries (``MAX_IFS``)."""
MAX_NAME_BYTES = 63
"""``struct netIf.prefix`` is ``char[64]``: longer names are cut by ``snprintf``."""
ANY_PORT = -1

C_SPACE = " \t\n\v\f\r"


def c_atoi(text: str) -> int:
    """C ``atoi`` as glibc does it: ``(int) strtol(text, NULL, 10)``.

    Leading C whitespace, an optional sign, then ASCII digits up to the first other character; no digits
    gives 0. ``strtol`` saturates at the ``long`` range and the cast keeps the low 32 bits, so a huge port
    such as ``99999999999999999999`` becomes -1, which NCCL then treats as "any port".
    """
    match = re.match(rf"[{C_SPACE}]*([+-]?)([0-9]*)", text)
    assert match is not None  # the pattern matches the empty string
    sign, digits = match.groups()
    digits = digits.lstrip("0")  # past 19 digits strtol has saturated anyway; int() refuses 4,300 or more
    value = int(digits or "0") if len(digits) <= 19 else 1 << 63
    if sign == "-":
        value = -value
    value = max(-(1 << 63), min((1 << 63) - 1, value))
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


@dataclass(frozen=True)
class HcaEntry:
    """One parsed list entry."""

    text: str
    """The entry as written, e.g. ``"mlx5_0:1"``."""
    name: str
    """The name NCCL compares (cut to 63 bytes)."""
    port: int
    """The port NCCL compares; ``ANY_PORT`` (-1) for a missing or empty port."""
    port_text: str | None
    """The port as written; None when there was no ``:``."""


@dataclass(frozen=True)
class HcaList:
    """A parsed NCCL_IB_HCA (or NCCL_SOCKET_IFNAME) value."""

    value: str | None
    """The raw value; None when the variable is unset."""
    invert: bool
    """Leading ``^``: an exclude list."""
    exact: bool
    """``=`` right after the optional ``^``: exact names instead of prefixes."""
    entries: tuple[HcaEntry, ...]
    dropped: tuple[str, ...]
    """Items that NCCL drops because their name is empty (``:1``)."""
    ignored: tuple[str, ...]
    """Items past NCCL's entry limit."""

    def matches(self, device: str, port: int = ANY_PORT) -> bool:
        """Whether NCCL keeps ``device`` port ``port``: ``matchIfList(...) ^ searchNot``."""
        # NCCL: "Make an exception for the case where no user list is defined": an empty list matches all.
        hit = not self.entries or self.matching_entry(device, port) is not None
        return hit != self.invert

    def matching_entry(self, device: str, port: int = ANY_PORT) -> HcaEntry | None:
        """The first entry that matches ``device``/``port``, as NCCL walks the list."""
        for entry in self.entries:
            if match_name(device, entry.name, self.exact) and match_port(port, entry.port):
                return entry
        return None


def _cut(name: str) -> str:
    raw = name.encode("utf-8", "surrogateescape")
    if len(raw) <= MAX_NAME_BYTES:
        return name
    return raw[:MAX_NAME_BYTES].decode("utf-8", "surrogateescape")


def match_name(device: str, ref: str, exact: bool) -> bool:
    # matchIf(): exact compares strlen(device)+1 bytes (so the terminator too), prefix strlen(ref) bytes.
    return device == ref if exact else device.startswith(ref)


def match_port(port: int, ref_port: int) -> bool:
    return ANY_PORT in (port, ref_port) or port == ref_port


def parse_list(value: str | None, max_entries: int = MAX_IB_DEVS) -> HcaList:
    """Parse a value as NCCL does (see the module docstring)."""
    if value is None:
        return HcaList(None, False, False, (), (), ())
    rest = value
    invert = rest.startswith("^")
    if invert:
        rest = rest[1:]
    exact = rest.startswith("=")
    if exact:
        rest = rest[1:]
    entries: list[HcaEntry] = []
    dropped: list[str] = []
    ignored: list[str] = []
    for item in (piece for piece in rest.split(",") if piece):
        if len(entries) >= max_entries:
            ignored.append(item)
            continue
        fields = item.split(":")
        if fields[0] == "":
            dropped.append(item)
            continue
        port_text = fields[1] if len(fields) > 1 else None
        port = c_atoi(port_text) if port_text else ANY_PORT
        entries.append(HcaEntry(item, _cut(fields[0]), port, port_text))
    return HcaList(value, invert, exact, tuple(entries), tuple(dropped), tuple(ignored))


def split_device(device: str) -> tuple[str, int]:
    """``"mlx5_1:1"`` -> ``("mlx5_1", 1)``; a bad string raises UserError."""
    name, sep, port = device.rpartition(":")
    if not sep or not name or not ascii_digits(port) or not device.isascii() or not device.isprintable():
        raise UserError(f"device '{show(device)}' is not NAME:PORT in ASCII: write it like mlx5_1:1")
    return name, int(port)


def select_hcas(nccl_ib_hca: str | None, available: Sequence[str]) -> list[str]:
    """The subset of ``available`` ("name:port" strings, in order) that NCCL uses under ``nccl_ib_hca``.

    ``available`` should hold the candidate ports (ACTIVE, link layer InfiniBand or Ethernet); the order of
    ``available`` is kept, as NCCL keeps the ibverbs enumeration order. ``nccl_ib_hca`` None means unset.

    >>> select_hcas("^mlx5_1", ["mlx5_0:1", "mlx5_1:1", "mlx5_10:1"])
    ['mlx5_0:1']
    >>> select_hcas("^=mlx5_8,^=mlx5_14", ["mlx5_8:1", "mlx5_14:1"])
    ['mlx5_14:1']
    """
    parsed = parse_list(nccl_ib_hca)
    selected = []
    for device in available:
        name, port = split_device(device)
        if parsed.matches(name, port):
            selected.append(device)
    return selected


def select_ifnames(value: str | None, available: Sequence[str]) -> list[str]:
    """The subset of ``available`` interface names that NCCL_SOCKET_IFNAME=``value`` keeps.

    Same grammar as NCCL_IB_HCA without ports (NCCL matches interfaces with port -1, so a ``:port`` in an
    entry is ignored). This is the grammar only; when the variable is unset NCCL searches on its own, see
    ``nccl_default_ifnames``.
    """
    parsed = parse_list(value, MAX_SOCKET_IFS)
    return [name for name in available if parsed.matches(name)]


def check_socket_ifname(name: str, what: str) -> str:
    """``name`` when ``NCCL_SOCKET_IFNAME`` of ``=`` and it selects that one interface; UserError (one line) naming
    ``what`` otherwise. Linux lets an interface name hold ``,`` and control characters (``dev_valid_name``
    refuses only ``/``, ``:`` and whitespace), but NCCL splits the variable at every ``,`` and ``:`` (the
    grammar above), so ``a,b`` would select two interfaces or none, and an ESC would reach NCCL's own log
    lines and the terminal raw."""
    bad = next((c for c in name if c in ",:" or c.isspace() or not c.isprintable()), None)
    if name and bad is None:
        return name
    problem = (
        "it is empty" if not name else f"NCCL cannot take it in NCCL_SOCKET_IFNAME (it holds U+{ord(bad or ' '):04X})"
    )
    raise UserError(
        f"{what} '{show(name)}' cannot be named to NCCL: {problem}; rename the interface, or set "
        "NCCL_SOCKET_IFNAME yourself to select the management interface"
    )


def nccl_default_ifnames(available: Sequence[str]) -> list[str]:
    """The interfaces NCCL picks when NCCL_SOCKET_IFNAME is unset (of those that are up with an address).

    NCCL tries ``ib`` interfaces first, then anything but ``docker``/``lo``, then ``docker``, then ``lo``.
    """
    for fallback in ("ib", "^docker,lo", "docker", "lo"):
        chosen = select_ifnames(fallback, available)
        if chosen:
            return chosen
    return []


def show(text: str, limit: int = 60) -> str:
    """A user value made printable: non-ASCII escaped, long values cut with their length."""
    safe = text.encode("ascii", "backslashreplace").decode("ascii")
    safe = "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in safe)
    if len(safe) > limit:
        return f"{safe[:limit]}... ({len(text)} chars)"
    return safe
