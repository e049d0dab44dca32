"""The soak's judges over its windows (docs/design.md, "Soak"): pure functions of the windows kept
(``bench.rundir.soak_windows``) and the profile, so a resumed soak, the certificate and the tests judge the same
windows the same way.

:func:`soak_items` gives one item per gate (``bench.frame.decide``; JUnit's one case per gate): the error
counters in each window and over the soak (``bench.soak.gates``), the parts named in some windows
(``bench.soak.duty``), the trends (``bench.soak.trend``) and the world collectives over the soak. A gate with
nothing it could judge is ``skip`` or ``measured``, never a pass. :func:`soak_findings` is every finding they
carry.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from bench.frame.decide import Item, State
from bench.profile.actions import device_words
from bench.profile.cluster import Profile
from bench.rundir.finding_words import soak_cleared_line
from bench.rundir.findings import Finding, soak_finding
from bench.rundir.part import Part
from bench.rundir.soak_records import ErrorGate, Intermittent, SoakFound, Trend
from bench.rundir.soak_windows import SoakWindow
from bench.soak import duty, gates, trend

GROUP = "railbench.soak"
FLAP_COUNTERS = frozenset({"link_downed", "carrier_changes"})
COLLECTIVE_ACTION = (
    "look at the links and GPUs the same windows named (the soak's timeline); where none was, run railbench rails "
    "to find the part"
)
GATES = ("errors-per-window", "errors-total", "intermittent", "trends", "collectives")
"""The items' names, one per gate, in order (JUnit's cases ``railbench.soak.<gate>``)."""
CLEARED_SHOWN = 8
"""Parts named in some windows but not convicted, listed in the item's details."""


def soak_findings(windows: Iterable[SoakWindow], profile: Profile) -> list[Finding]:
    """Every finding of every gate, in the gates' order."""
    return [f for item in soak_items(windows, profile) for f in item.findings]


def kept_findings(items: Sequence[Item]) -> tuple[SoakFound, ...]:
    """The soak findings of ``items`` as run.json's ``soak.findings`` keeps them: each judge's record and its action."""
    kept = []
    for finding in (f for item in items for f in item.findings):
        if isinstance(finding.evidence, ErrorGate | Intermittent | Trend):
            kept.append(SoakFound(finding.evidence, finding.action))
    return tuple(kept)


def soak_items(windows: Iterable[SoakWindow], profile: Profile) -> list[Item]:
    """One item per gate (see the module docstring); every gate a skip when no window was kept. ``windows`` is
    read once, in order: ``bench.rundir.soak_windows.iter_windows`` keeps one window in memory at a time."""
    tally = Tally(profile)
    for window in windows:
        tally.add(window)
    return tally.items()


@dataclass
class Tally:
    """What the gates keep of the windows, per part: the counters that rose, the windows that named it, its
    series of rates and clocks; never the windows themselves. :meth:`add` each window in order, then
    :meth:`items`."""

    profile: Profile
    windows: int = 0
    ran_collectives: bool = False
    """Any window ran a world collective (judged or not)."""
    ports: gates.Ports = field(default_factory=dict)
    links: dict[tuple[str, int], duty.Series] = field(default_factory=dict)
    parts: dict[Part, duty.Series] = field(default_factory=dict)
    gpus: dict[tuple[str, int], duty.Series] = field(default_factory=dict)
    collectives: dict[tuple[str, int], duty.Series] = field(default_factory=dict)
    busbw: dict[tuple[str, int], trend.Points] = field(default_factory=dict)
    clocks: dict[tuple[str, int], trend.Points] = field(default_factory=dict)
    window_limits: Mapping[str, int] = field(init=False)
    """Counter -> its per-window limit: a rise past it is hard evidence for the duty cycle."""

    def __post_init__(self) -> None:
        self.window_limits = self.profile.soak.limits(self.profile.errors.fail_on_rise)[0]

    def add(self, window: SoakWindow) -> None:
        self.windows += 1
        self.ran_collectives = self.ran_collectives or bool(window.collectives)
        gates.count(self.ports, window)
        duty.add_links(self.links, window, self.window_limits)
        duty.add_parts(self.parts, window)
        duty.add_gpus(self.gpus, window)
        duty.add_collectives(self.collectives, window, self.profile.pass_fraction)
        trend.add_busbw(self.busbw, window)
        trend.add_clocks(self.clocks, window)

    def items(self) -> list[Item]:
        """The gates' items over the windows added so far: a soak that keeps its tally and adds each window as it
        ends says what is named so far without reading the windows again."""
        if not self.windows:
            return [Item(GROUP, name, "skip", "no window of the soak finished") for name in GATES]
        return [*_error_items(self), _intermittent_item(self), _trend_item(self), _collective_item(self)]


def _state(findings: Sequence[Finding]) -> State:
    if any(f.severity == "fail" for f in findings):
        return "fail"
    return "warn" if findings else "pass"


def _error_items(tally: Tally) -> list[Item]:
    if not tally.ports:
        why = "no window read a port's or a GPU's error counters (no link's device and no GPU was known)"
        return [Item(GROUP, "errors-per-window", "skip", why), Item(GROUP, "errors-total", "skip", why)]
    profile = tally.profile
    limits = gates.Limits.of(profile)
    details = f"{len(tally.ports)} ports and GPUs over {tally.windows} windows"
    items = []
    for name, found in (
        ("errors-per-window", gates.window_gates(tally.ports, limits)),
        ("errors-total", gates.total_gates(tally.ports, limits)),
    ):
        findings = tuple(soak_finding(g, _gate_action(profile, g)) for g in found)
        items.append(Item(GROUP, name, _state(findings), details=details, findings=findings))
    return items


def _intermittent_item(tally: Tally) -> Item:
    profile = tally.profile
    rates = (profile.soak.window_false_alarm, profile.soak.false_alarm)
    for s in tally.parts.values():
        s.measured = tally.windows  # a node, a rail, a switch is under test in every window
    links = duty.judge(list(tally.links.values()), *rates, pooled=True)
    # the parts above the links are as many as the windows could name, at least one per link: never fewer
    parts = duty.judge(list(tally.parts.values()), *rates, family=links.measured)
    gpus = duty.judge(list(tally.gpus.values()), *rates)
    if not links.measured and not parts.measured and not gpus.measured:
        return Item(GROUP, "intermittent", "skip", "no window measured a link or a GPU, or named a part")
    convicted = [*duty.absorbed(links.convicted, parts.convicted), *gpus.convicted, *parts.convicted]
    findings = tuple(soak_finding(r, _part_action(profile, r.part, r.symptom)) for r in convicted)
    cleared = [*links.cleared, *parts.cleared]
    lines = [
        f"{links.measured} links and {gpus.measured} GPUs measured, {parts.measured} other parts named, over "
        f"{tally.windows} windows; a window names a healthy link at most {100 * links.rate:.3g}% of the time"
    ]
    lines += [soak_cleared_line(r) for r in cleared[:CLEARED_SHOWN]]
    if len(cleared) > CLEARED_SHOWN:
        lines.append(f"and {len(cleared) - CLEARED_SHOWN} more named in some windows, not convicted")
    return Item(GROUP, "intermittent", _state(findings), details="\n".join(lines), findings=findings)


def _trend_item(tally: Tally) -> Item:
    limits = tally.profile.soak
    links = trend.judge(list(tally.busbw.values()), limits)
    clocks = trend.judge(list(tally.clocks.values()), limits)
    if not links.tested and not clocks.tested:
        longest = max(links.longest, clocks.longest)
        if not longest:
            return Item(GROUP, "trends", "skip", "no window measured a link's rate or a GPU's clock")
        why = (
            f"no trend judged: the longest series has {longest} windows, a trend needs {limits.trend_min_windows} "
            "([soak] trend_min_windows)"
        )
        return Item(GROUP, "trends", "measured", why)
    found = [*links.found, *clocks.found]
    findings = tuple(soak_finding(t, _trend_action(tally.profile, t)) for t in found)
    details = f"{links.tested} link rates and {clocks.tested} GPU clocks tested over {tally.windows} windows"
    if links.short or clocks.short:
        needs = tally.profile.soak.trend_min_windows
        details += f"; {links.short + clocks.short} series of fewer than {needs} windows not judged"
    return Item(GROUP, "trends", _state(findings), details=details, findings=findings)


def _collective_item(tally: Tally) -> Item:
    if not tally.collectives:
        if not tally.ran_collectives:
            return Item(GROUP, "collectives", "skip", "no world collective ran in the soak's windows")
        why = "the world collectives have no target on this profile: measured, not judged (give node_target_gbps)"
        return Item(GROUP, "collectives", "measured", why)
    soak = tally.profile.soak
    # no floor from the sizes themselves: one cause (a congested spine) slows every size at once
    judged = duty.judge(list(tally.collectives.values()), soak.window_false_alarm, soak.false_alarm)
    findings = tuple(soak_finding(r, COLLECTIVE_ACTION) for r in judged.convicted)
    details = "\n".join(
        [f"{judged.measured} collective sizes judged over {tally.windows} windows"]
        + [soak_cleared_line(r) for r in judged.cleared[:CLEARED_SHOWN]]
    )
    return Item(GROUP, "collectives", _state(findings), details=details, findings=findings)


def _gate_action(profile: Profile, gate: ErrorGate) -> str:
    part = gate.part
    if part.kind == "gpu":
        check = "gpu-ecc" if gate.counter == gates.ECC else "gpu-xid"
        return profile.actions.check_action(check, node=part.node, device=part.gpus, pci=_pci(part))
    if gate.counter in FLAP_COUNTERS:
        return profile.actions.for_check("link-flaps", part.node or "?", part.device)
    return profile.actions.action("errors", node=part.node, rail=part.rail, **device_words(part.device))


def _part_action(profile: Profile, part: Part, symptom: str) -> str:
    if part.kind == "run":
        return COLLECTIVE_ACTION
    if part.kind == "link":
        if symptom == "flapping":
            return profile.actions.for_check("link-flaps", part.node or "?", part.device)
        key = {"dead": "dead", "errors": "link_errors"}.get(symptom, "link")
        return profile.actions.action(key, node=part.node, rail=part.rail, **device_words(part.device))
    if symptom == "throttled":
        return profile.actions.check_action("gpu-clocks", node=part.node, device=part.gpus, pci=_pci(part))
    key = "gpu" if part.intra and part.kind == "gpu" else "gpu_pair" if part.kind == "gpu-pair" else part.kind
    gpu = part.gpu.index if part.gpu else None
    peer = part.peer_gpu.index if part.peer_gpu else part.peer
    words = {"node": part.node, "peer": peer, "rail": part.rail, "gpu": gpu, "unit": part.unit}
    words |= {"switch": ", ".join(part.switches) or None, "uplinks": ", ".join(part.ports) or None}
    try:
        return profile.actions.action(key, **words, **device_words(part.device))
    except KeyError:
        return ""  # a kind the actions table has no sentence for (a check the window named)


def _trend_action(profile: Profile, found: Trend) -> str:
    part = found.part
    if found.what == "sm_clock":
        return profile.actions.check_action("gpu-clocks", node=part.node, device=part.gpus, pci=_pci(part))
    return profile.actions.action("link", node=part.node, rail=part.rail, **device_words(part.device))


def _pci(part: Part) -> str:
    """A GPU's PCI address where known; else how to find it."""
    if part.gpu and part.gpu.bus_id:
        return part.gpu.bus_id
    return f"nvidia-smi -i {part.gpu.index if part.gpu else '?'}"
