"""The soak's error gates (docs/design.md, "Soak: gates"): per port and per GPU, an error counter may not rise
past the profile's ``[soak]`` limits in one window, nor in total over the soak.

A port is a (node, rail, device) link of the windows, judged in a window whose line names its device (the
counters are read per device). Its counters' rises are summed as counts only: a counter that saturated or was
cleared in a window gave no count (``bench.fabric.error_counters``) and is listed by window, never turned into a
number. A GPU's uncorrected ECC errors and the Xids of ``[gpudirect] fail_xids`` may not appear at all; any other
Xid, and any counter no limit gates, is said as a warning.

Memory is the counters that rose, by port, never a per-window table.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from bench.profile.cluster import Profile
from bench.rundir.part import LocalGpu, Part
from bench.rundir.soak_records import ErrorGate, Scope
from bench.rundir.soak_windows import SoakWindow

ECC = "ecc_uncorrected"


def xid_counter(code: int) -> str:
    """An Xid's name as a gate's counter: ``xid 79``."""
    return f"xid {code}"


def link_part(node: str, rail: int, device: str | None) -> Part:
    """A (node, rail) link of the windows as the part a soak finding names."""
    return Part(kind="link", node=node, rail=rail, device=device)


def gpu_part(node: str, gpu: int) -> Part:
    """A GPU of the windows as the part a soak finding names (``node03 GPU 5``)."""
    return Part(kind="gpu", node=node, gpu=LocalGpu(gpu), intra=True)


@dataclass
class Counted:
    """One port's or GPU's counters over the windows: the windows judged, each counter's rises by window, and the
    windows where a counter gave no count."""

    part: Part
    windows: int = 0
    rises: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    uncounted: dict[str, list[int]] = field(default_factory=dict)

    def rose(self, counter: str, window: int, rise: int) -> None:
        if rise > 0:
            self.rises.setdefault(counter, []).append((window, rise))

    def gave_no_count(self, counters: Iterable[str], window: int) -> None:
        for counter in counters:
            self.uncounted.setdefault(counter, []).append(window)


Ports = dict[tuple[str, int, str], Counted]
"""(node, rail or GPU, device or ``gpu``) -> its counters."""


def count(ports: Ports, window: SoakWindow) -> None:
    """Add what ``window`` says of every port and GPU it judged to ``ports``."""
    for link in window.links:
        if link.device is None:
            continue  # the window did not know the port: its counters were not read
        c = ports.get((link.node, link.rail, link.device))
        if c is None:
            c = ports[(link.node, link.rail, link.device)] = Counted(link_part(link.node, link.rail, link.device))
        c.windows += 1
        for name, rise in link.errors.items():
            c.rose(name, window.index, rise)
        if link.errors_saturated or link.errors_reset:
            c.gave_no_count((*(link.errors_saturated or ()), *(link.errors_reset or ())), window.index)
    for gpu in window.gpus:
        c = ports.get((gpu.node, gpu.gpu, "gpu"))
        if c is None:
            c = ports[(gpu.node, gpu.gpu, "gpu")] = Counted(gpu_part(gpu.node, gpu.gpu))
        c.windows += 1
        c.rose(ECC, window.index, gpu.ecc_uncorrected)
        for code in sorted(set(gpu.xid)):
            c.rose(xid_counter(code), window.index, gpu.xid.count(code))


@dataclass(frozen=True)
class Limits:
    """Counter -> its limit in one window and over the soak, for ports and for GPUs."""

    port_window: Mapping[str, int]
    port_total: Mapping[str, int]
    gpu: Mapping[str, int]

    @classmethod
    def of(cls, profile: Profile) -> Limits:
        window, total = profile.soak.limits(profile.errors.fail_on_rise)
        gpu = {ECC: 0} | {xid_counter(code): 0 for code in profile.gpudirect.fail_xids}
        return cls(window, total, gpu)

    def limit(self, part: Part, counter: str, scope: Scope) -> int | None:
        if part.kind == "gpu":
            return self.gpu.get(counter)
        return (self.port_window if scope == "window" else self.port_total).get(counter)


def window_gates(ports: Ports, limits: Limits) -> list[ErrorGate]:
    """Each counter of each part that rose past its per-window limit (its worst window named), and each that
    rose where no limit gates it (a warning)."""
    out = []
    for c in ports.values():
        for counter, rises in c.rises.items():
            gate = _gate(c.part, c, counter, rises, "window", limits.limit(c.part, counter, "window"))
            if gate.over or gate.limit is None:
                out.append(gate)
    return out


def total_gates(ports: Ports, limits: Limits) -> list[ErrorGate]:
    """Each gated counter of each part whose rises over the soak pass its whole-soak limit, and each gated one
    that saturated or was cleared in some window (a warning: those windows gave no count)."""
    out = []
    for c in ports.values():
        for counter in {**c.rises, **c.uncounted}:
            limit = limits.limit(c.part, counter, "soak")
            if limit is None:
                continue  # an ungated counter is said once, by the window gate
            gate = _gate(c.part, c, counter, c.rises.get(counter, []), "soak", limit)
            if gate.over or gate.uncounted:
                out.append(gate)
    return out


def _gate(
    part: Part, c: Counted, counter: str, rises: Sequence[tuple[int, int]], scope: Scope, limit: int | None
) -> ErrorGate:
    # the largest rise, the earliest of those that tie
    worst_window, worst = max(rises, key=lambda wr: (wr[1], -wr[0]), default=(None, 0))
    return ErrorGate(
        part=part,
        counter=counter,
        scope=scope,
        worst_rise=worst,
        worst_window=worst_window,
        total=sum(rise for _, rise in rises),
        limit=limit,
        windows_risen=len(rises),
        windows=c.windows,
        uncounted=tuple(c.uncounted.get(counter, ())),
    )
