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

``select_hcas`` is the public function (also ``bench.select_hcas``); ``explain`` adds per-port reasons and
warnings about values that are probably mistakes.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from bench.errors import UserError

MAX_IB_DEVS = 32
"""NCCL reads at most this many NCCL_IB_HCA entries."""
MAX_SOCKET_IFS = 16
"""NCCL reads at most this many NCCL_SOCKET_IFNAME entries (``MAX_IFS``)."""
MAX_NAME_BYTES = 63
"""``struct netIf.prefix`` is ``char[64]``: longer names are cut by ``snprintf``."""
ANY_PORT = -1

_C_SPACE = " \t\n\v\f\r"


def c_atoi(text: str) -> int:
    """C ``atoi`` as glibc does it: ``(int) strtol(text, NULL, 10)``.

    Leading C whitespace, an optional sign, then ASCII digits up to the first other character; no digits
    gives 0. ``strtol`` saturates at the ``long`` range and the cast keeps the low 32 bits, so a huge port
    such as ``99999999999999999999`` becomes -1, which NCCL then treats as "any port".
    """
    match = re.match(rf"[{_C_SPACE}]*([+-]?)([0-9]*)", text)
    assert match is not None  # the pattern matches the empty string
    sign, digits = match.groups()
    value = int(digits) if digits else 0
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
            if _match_name(device, entry.name, self.exact) and _match_port(port, entry.port):
                return entry
        return None


def _cut(name: str) -> str:
    raw = name.encode("utf-8", "surrogateescape")
    if len(raw) <= MAX_NAME_BYTES:
        return name
    return raw[:MAX_NAME_BYTES].decode("utf-8", "surrogateescape")


def _match_name(device: str, ref: str, exact: bool) -> bool:
    # matchIf(): exact compares strlen(device)+1 bytes (so the terminator too), prefix strlen(ref) bytes.
    return device == ref if exact else device.startswith(ref)


def _match_port(port: int, ref_port: int) -> bool:
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
    if not sep or not name or not port.isdigit() or not device.isascii() or not device.isprintable():
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


def nccl_default_ifnames(available: Sequence[str]) -> list[str]:
    """The interfaces NCCL picks when NCCL_SOCKET_IFNAME is unset (of those that are up with an address).

    NCCL tries ``ib`` interfaces first, then anything but ``docker``/``lo``, then ``docker``, then ``lo``.
    """
    for fallback in ("ib", "^docker,lo", "docker", "lo"):
        chosen = select_ifnames(fallback, available)
        if chosen:
            return chosen
    return []


# ---------------------------------------------------------------------------------------------------------
# explain: per-port reasons and warnings


@dataclass(frozen=True)
class Candidate:
    """A port as NCCL would see it; unknown state or link layer counts as usable."""

    device: str
    port: int
    state: str | None = None
    """e.g. ``"ACTIVE"``, ``"DOWN"``; None when not known (``--devices``)."""
    link_layer: str | None = None
    """``"InfiniBand"`` or ``"Ethernet"``; None when not known."""
    rate_gbps: float | None = None

    @property
    def name(self) -> str:
        return f"{self.device}:{self.port}"


@dataclass(frozen=True)
class PortDecision:
    """What NCCL does with one port, and why."""

    name: str
    selected: bool
    reason: str
    index: int | None
    """Position in NCCL's ``NET/IB : Using [i]...`` list (the number in ``via NET/IB/i``)."""
    link_layer: str | None
    state: str | None
    rate_gbps: float | None


@dataclass(frozen=True)
class HcaWarning:
    """A value that is probably a mistake."""

    code: str
    message: str


@dataclass(frozen=True)
class HcaExplanation:
    """``explain``'s answer."""

    value: str | None
    parsed: HcaList
    decisions: tuple[PortDecision, ...]
    warnings: tuple[HcaWarning, ...]

    @property
    def selected(self) -> list[str]:
        return [d.name for d in self.decisions if d.selected]

    @property
    def verdict(self) -> Literal["ok", "warn", "none"]:
        """``none``: NCCL finds no device (falls back to sockets); ``warn``: a probable mistake."""
        if not self.selected:
            return "none"
        return "warn" if self.warnings else "ok"


def show(text: str, limit: int = 60) -> str:
    """A user value made printable: non-ASCII escaped, long values cut with their length."""
    safe = text.encode("ascii", "backslashreplace").decode("ascii")
    safe = "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in safe)
    if len(safe) > limit:
        return f"{safe[:limit]}... ({len(text)} chars)"
    return safe


def _usable(candidate: Candidate) -> str | None:
    """Why NCCL skips the port before looking at the list, or None."""
    if candidate.state is not None and candidate.state.upper() != "ACTIVE":
        return f"port not ACTIVE (state {candidate.state})"
    if candidate.link_layer is not None and candidate.link_layer not in ("InfiniBand", "Ethernet"):
        return f"link layer {candidate.link_layer} is neither InfiniBand nor Ethernet"
    return None


def _list_reason(parsed: HcaList, candidate: Candidate) -> tuple[bool, str]:
    entry = parsed.matching_entry(candidate.device, candidate.port)
    if parsed.value is None:
        return True, "NCCL_IB_HCA unset: every active port is used"
    if not parsed.entries:
        if parsed.invert:
            return False, "excluded: '^' with an empty list excludes every device"
        return True, "empty list: every active port is used"
    kind = "exact name" if parsed.exact else "prefix"
    if parsed.invert:
        if entry is None:
            return True, "not in the exclude list"
        return False, f"excluded by {kind} entry '{show(entry.text)}'"
    if entry is None:
        return False, "no entry of the include list matches"
    return True, f"included by {kind} entry '{show(entry.text)}'"


def _entry_warnings(parsed: HcaList, candidates: Sequence[Candidate]) -> list[HcaWarning]:
    out: list[HcaWarning] = []
    names = list(dict.fromkeys(c.device for c in candidates))
    nothing: list[str] = []
    for position, entry in enumerate(parsed.entries):
        text = show(entry.text)
        if position == 0 and parsed.exact and not parsed.invert and entry.text.startswith("^"):
            out.append(
                HcaWarning(
                    "modifier-order",
                    f"the value starts with '=^': that is an include list of the exact name '{text}', "
                    f"not an exclusion; write '^={show(entry.text[1:])}'",
                )
            )
        elif entry.text[:1] in ("^", "="):
            out.append(
                HcaWarning(
                    "modifier-in-entry",
                    f"entry '{text}' is a literal name: '^' and '=' only count at the very start of the "
                    f"value, so it matches nothing; put the modifier once in front of the whole list",
                )
            )
        if entry.text != entry.text.strip(_C_SPACE):
            out.append(
                HcaWarning("whitespace", f"entry '{text}' has spaces around it: NCCL keeps them, so it matches nothing")
            )
        bad = [ch for ch in entry.text if not ch.isascii()]
        if bad:
            what = ", ".join(f"U+{ord(ch):04X} {unicodedata.name(ch, 'unnamed')}" for ch in dict.fromkeys(bad))
            out.append(HcaWarning("non-ascii", f"entry '{text}' contains {what}: device names are ASCII"))
        if len(entry.name) != len(entry.text.split(":")[0]):
            out.append(HcaWarning("truncated", f"entry '{text}' is longer than 63 bytes: NCCL cuts it"))
        out.extend(_port_warnings(entry))
        matched = [n for n in names if _match_name(n, entry.name, parsed.exact)]
        ports = [c for c in candidates if c.device in matched and _match_port(c.port, entry.port)]
        if not ports and candidates:
            nothing.append(f"'{text}' (no port {entry.port})" if matched else f"'{text}'")
        longer = [n for n in matched if n != entry.name]
        if longer and not parsed.exact:
            fix = ("^=" if parsed.invert else "=") + ",".join(e.text for e in parsed.entries)
            out.append(
                HcaWarning(
                    "prefix-catches-more",
                    f"entry '{text}' is a prefix and also catches {', '.join(longer)}; "
                    f"for exact names write '{show(fix)}'",
                )
            )
    if nothing:
        shown = ", ".join(nothing[:8]) + (f" and {len(nothing) - 8} more" if len(nothing) > 8 else "")
        plural = "entry matches" if len(nothing) == 1 else "entries match"
        out.append(HcaWarning("matches-nothing", f"{plural} no device on this node: {shown}"))
    return out


def _port_warnings(entry: HcaEntry) -> list[HcaWarning]:
    if entry.port_text is None:
        return []
    text = show(entry.text)
    if entry.port_text == "":
        return [
            HcaWarning(
                "empty-port",
                f"entry '{text}' has an empty port: NCCL >= 2.30.7 reads it as any port, older NCCL as port 0, "
                "which matches nothing; drop the ':'",
            )
        ]
    if entry.port == ANY_PORT:
        return [
            HcaWarning("port-any", f"entry '{text}': atoi turns port '{show(entry.port_text)}' into -1, i.e. any port")
        ]
    if entry.port <= 0:
        return [
            HcaWarning(
                "port-zero",
                f"entry '{text}': atoi turns port '{show(entry.port_text)}' into {entry.port}, which matches no "
                "port (ports start at 1)",
            )
        ]
    if not entry.port_text.isdigit() or str(entry.port) != entry.port_text:
        return [
            HcaWarning(
                "port-atoi",
                f"entry '{text}': atoi reads port '{show(entry.port_text)}' as {entry.port}; write ':{entry.port}'",
            )
        ]
    return []


def _list_warnings(parsed: HcaList, max_entries: int) -> list[HcaWarning]:
    out: list[HcaWarning] = []
    if parsed.value is None:
        return out
    if not parsed.entries and parsed.value != "":
        if parsed.invert:
            out.append(
                HcaWarning("empty-exclude", f"'{show(parsed.value)}' has no entries: '^' alone excludes every device")
            )
        else:
            out.append(HcaWarning("empty-list", f"'{show(parsed.value)}' has no entries: every device is used"))
    if parsed.dropped:
        dropped = ", ".join(f"'{show(d)}'" for d in parsed.dropped)
        out.append(HcaWarning("empty-name", f"entries with an empty name are dropped: {dropped}"))
    if parsed.ignored:
        out.append(
            HcaWarning(
                "too-many",
                f"NCCL reads only the first {max_entries} entries; {len(parsed.ignored)} more are ignored",
            )
        )
    return out


def explain(nccl_ib_hca: str | None, candidates: Sequence[Candidate]) -> HcaExplanation:
    """Which ports NCCL uses under ``nccl_ib_hca``, why each other port is left out, and what looks wrong."""
    parsed = parse_list(nccl_ib_hca)
    decisions: list[PortDecision] = []
    index = 0
    for candidate in candidates:
        skip = _usable(candidate)
        if skip is not None:
            selected, reason = False, skip
        else:
            selected, reason = _list_reason(parsed, candidate)
        decisions.append(
            PortDecision(
                candidate.name,
                selected,
                reason,
                index if selected else None,
                candidate.link_layer,
                candidate.state,
                candidate.rate_gbps,
            )
        )
        index += selected
    warnings = _list_warnings(parsed, MAX_IB_DEVS) + _entry_warnings(parsed, candidates)
    if not any(d.selected for d in decisions):
        why = "no IB device exists on this node" if not candidates else "no port is left"
        warnings.append(
            HcaWarning(
                "no-device",
                f"{why}: NCCL logs 'NET/IB : No device found.' and falls back to sockets",
            )
        )
    return HcaExplanation(nccl_ib_hca, parsed, tuple(decisions), tuple(warnings))


def describe(parsed: HcaList) -> str:
    """One line saying how NCCL reads the value."""
    if parsed.value is None:
        return "NCCL uses every active port"
    names = "exact names" if parsed.exact else "prefixes (an entry also matches longer names: mlx5_1 -> mlx5_10)"
    mode = ("exclude" if parsed.invert else "include") + " list, " + names
    entries = ", ".join(show(e.text, 24) for e in parsed.entries[:8])
    more = f" and {len(parsed.entries) - 8} more" if len(parsed.entries) > 8 else ""
    count = f"{len(parsed.entries)} entr{'y' if len(parsed.entries) == 1 else 'ies'}"
    return f"{mode}; {count}" + (f": {entries}{more}" if entries else "")
