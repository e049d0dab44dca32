"""NCCL_IB_HCA explained: which ports NCCL uses under a value, why each other port is left out, and which
values are probably mistakes.

The grammar and NCCL's exact matching rules live in ``bench.fabric.hca_list``; every name there is
re-exported here, so ``bench.fabric.hca.select_hcas`` and friends keep working.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from bench.bounded import ascii_digits

# Re-exported: the parsing half of this module's interface.
from bench.fabric.hca_list import ANY_PORT as ANY_PORT
from bench.fabric.hca_list import C_SPACE as C_SPACE
from bench.fabric.hca_list import MAX_IB_DEVS as MAX_IB_DEVS
from bench.fabric.hca_list import MAX_NAME_BYTES as MAX_NAME_BYTES
from bench.fabric.hca_list import MAX_SOCKET_IFS as MAX_SOCKET_IFS
from bench.fabric.hca_list import HcaEntry as HcaEntry
from bench.fabric.hca_list import HcaList as HcaList
from bench.fabric.hca_list import c_atoi as c_atoi
from bench.fabric.hca_list import match_name as match_name
from bench.fabric.hca_list import match_port as match_port
from bench.fabric.hca_list import nccl_default_ifnames as nccl_default_ifnames
from bench.fabric.hca_list import parse_list as parse_list
from bench.fabric.hca_list import select_hcas as select_hcas
from bench.fabric.hca_list import select_ifnames as select_ifnames
from bench.fabric.hca_list import show as show
from bench.fabric.hca_list import split_device as split_device

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
        if entry.text != entry.text.strip(C_SPACE):
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
        matched = [n for n in names if match_name(n, entry.name, parsed.exact)]
        ports = [c for c in candidates if c.device in matched and match_port(c.port, entry.port)]
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
    if not ascii_digits(entry.port_text) or str(entry.port) != entry.port_text:
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


def _layer_warnings(parsed: HcaList, decisions: Sequence[PortDecision]) -> list[HcaWarning]:
    """Ports of two link layers among those NCCL uses: typically a front-end Ethernet (RoCE) port beside the
    InfiniBand rails, which NCCL takes as one more network device when NCCL_IB_HCA does not leave it out."""
    layers: dict[str, list[str]] = {}
    for d in decisions:
        if d.selected and d.link_layer:
            layers.setdefault(d.link_layer, []).append(d.name)
    if len(layers) < 2:
        return []
    # the odd ones out are the layer with the fewest ports (Ethernet on a tie: the usual front-end port)
    odd_layer = min(layers, key=lambda layer: (len(layers[layer]), layer != "Ethernet"))
    odd = layers[odd_layer]
    rest = sum(len(names) for layer, names in layers.items() if layer != odd_layer)
    others = " and ".join(sorted(layer for layer in layers if layer != odd_layer))
    shown = ", ".join(odd[:4]) + (f" and {len(odd) - 4} more" if len(odd) > 4 else "")
    named = "RoCE" if odd_layer == "Ethernet" else odd_layer
    names = ",".join(dict.fromkeys(name.split(":")[0] for name in odd))
    them = "it" if len(odd) == 1 else "them"
    if parsed.value is None:
        fix = f"leave {them} out with NCCL_IB_HCA=^={names}"
    elif parsed.invert:
        fix = f"add {them} to the exclude list: NCCL_IB_HCA={show(parsed.value, 60)},{names}"
    else:
        fix = f"make NCCL_IB_HCA leave {them} out"
    return [
        HcaWarning(
            "mixed-link-layers",
            f"NCCL uses ports of two link layers: {shown} {'is' if len(odd) == 1 else 'are'} {odd_layer} ({named}) "
            f"beside {rest} {others} port{'s' if rest != 1 else ''}, a separate fabric that no {others} port "
            f"reaches (often a front-end port not meant for RDMA): {fix}",
        )
    ]


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
    warnings = (
        _list_warnings(parsed, MAX_IB_DEVS) + _entry_warnings(parsed, candidates) + _layer_warnings(parsed, decisions)
    )
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
