"""The soak's duty-cycle judge (docs/design.md, "Soak: duty cycle"): a part named in k of the n windows it was
measured in is one finding with its duty cycle k/n and its first and last window, never k transients.

Two kinds of evidence. Hard: a flap, a dead link, an error counter over its per-window limit, wrong elements of
a world collective: one window convicts. Statistical: a window whose own judgement named the part slow; every
window's judgement names a healthy part now and then (the profile's ``[soak] window_false_alarm``, p), so the
part is convicted only when k is improbable for a healthy one, P(K >= k | n, p) under the binomial law, after
Holm's correction over every part of the family measured (``[soak] false_alarm``). 1,000 clean windows of 512
links name nothing; a link slow in every window is a persistent fault, said with its duty of 100%. A GPU whose
clocks were held down for its health at a window's end is hard evidence too.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from bench.preflight.gpu_checks import FAILING_CLOCK_EVENTS
from bench.rundir.part import Part
from bench.rundir.soak_records import Intermittent
from bench.rundir.soak_windows import SoakWindow
from bench.soak.gates import gpu_part, link_part
from bench.soak.stats import binomial_tail, holm

LINK_KINDS = frozenset({"link", "errors", "cable", "path"})
"""Kinds whose part is one (node, rail) link: the windows' link lines say it, once."""
HARD_SYMPTOMS = ("flapping", "dead", "errors", "wrong", "throttled")
"""Symptoms one window proves (worst first); any other (``slow``, ``flaky``) is statistical."""


@dataclass
class Series:
    """One part over the windows: how many measured it, which named it, how many of those on hard evidence,
    and the symptoms they said."""

    part: Part
    measured: int = 0
    named: list[int] = field(default_factory=list)
    hard: int = 0
    symptoms: set[str] = field(default_factory=set)
    collective: str | None = None
    bytes: int | None = None

    def saw(self, window: int, named: bool, symptom: str | None = None) -> None:
        self.measured += 1
        if named:
            self.named.append(window)
            said = symptom or "slow"
            self.symptoms.add(said)
            self.hard += said in HARD_SYMPTOMS

    @property
    def symptom(self) -> str:
        """The worst its windows said."""
        return next((s for s in HARD_SYMPTOMS if s in self.symptoms), min(self.symptoms, default="slow"))


@dataclass(frozen=True)
class Convictions:
    """A family's verdicts: the parts convicted, and those named in some window but not convicted."""

    convicted: list[Intermittent]
    cleared: list[Intermittent]
    measured: int
    """Parts of the family measured in at least one window."""
    rate: float
    """The windows' false-alarm rate the statistical evidence was tested against."""


def _link_symptoms(window: SoakWindow) -> dict[tuple[str, int], str]:
    return {
        (n.part.node, n.part.rail): n.symptom
        for n in window.named
        if n.part.kind in LINK_KINDS and n.part.node is not None and n.part.rail is not None
    }


def add_links(links: dict[tuple[str, int], Series], window: SoakWindow, window_limits: Mapping[str, int]) -> None:
    """Add ``window`` to each (node, rail) link it measured (ran cells in it, found it dead or flapping, a counter
    over its limit, or named it)."""
    said = _link_symptoms(window)
    for link in window.links:
        over = any(rise > window_limits[c] for c, rise in link.errors.items() if c in window_limits)
        if not (link.cells or link.dead or link.flaps or link.named or over):
            continue  # its pairs rotated out of this window
        s = links.get((link.node, link.rail))
        if s is None:
            s = links[(link.node, link.rail)] = Series(link_part(link.node, link.rail, link.device))
        elif s.part.device is None and link.device is not None:
            s.part = link_part(link.node, link.rail, link.device)
        hard = "flapping" if link.flaps else "dead" if link.dead else "errors" if over else None
        s.saw(window.index, bool(hard) or link.named, hard or said.get((link.node, link.rail)))


def add_parts(parts: dict[Part, Series], window: SoakWindow) -> None:
    """Add ``window`` to the other parts it named (a node, a rail, a pair, a switch, a GPU); each is measured in
    every window (a whole node or rail is under test in each): :func:`judge` is told how many."""
    said: dict[Part, set[str]] = {}
    for n in window.named:
        if n.part.kind == "run" or (n.part.kind in LINK_KINDS and n.part.rail is not None):
            continue  # a world collective's (``add_collectives``) or a link's (``add_links``)
        said.setdefault(n.part, set()).add(n.symptom)
    for part, symptoms in said.items():
        s = parts.setdefault(part, Series(part))
        s.named.append(window.index)
        s.hard += any(symptom in HARD_SYMPTOMS for symptom in symptoms)
        s.symptoms |= symptoms


def add_collectives(collectives: dict[tuple[str, int], Series], window: SoakWindow, pass_fraction: float) -> None:
    """Add ``window`` to each world collective at each size it judged (a target, or wrong elements): wrong
    elements are hard evidence, a busbw below ``pass_fraction`` of its target a statistical one."""
    for c in window.collectives:
        if c.target_Gbps is None and not c.wrong:
            continue
        key = (c.collective, c.bytes)
        s = collectives.setdefault(key, Series(Part(kind="run"), collective=c.collective, bytes=c.bytes))
        slow = c.target_Gbps is not None and c.busbw_Gbps < pass_fraction * c.target_Gbps
        s.saw(window.index, bool(c.wrong) or slow, "wrong" if c.wrong else "slow")


def add_gpus(gpus: dict[tuple[str, int], Series], window: SoakWindow) -> None:
    """Add ``window`` to each GPU it read: one whose clocks were held down for its health at the window's end
    (heat, a power brake: ``bench.preflight.gpu_checks.FAILING_CLOCK_EVENTS``) is hard evidence; the power cap
    and application clocks are settings, not faults."""
    for gpu in window.gpus:
        s = gpus.get((gpu.node, gpu.gpu))
        if s is None:
            s = gpus[(gpu.node, gpu.gpu)] = Series(gpu_part(gpu.node, gpu.gpu))
        held = any(reason in FAILING_CLOCK_EVENTS for reason in gpu.throttle)
        s.saw(window.index, held, "throttled")


def judge(
    series: Sequence[Series], window_false_alarm: float, false_alarm: float, *, family: int = 0, pooled: bool = False
) -> Convictions:
    """Convict the parts of one family: hard evidence in any window, or windows that named it slow too many to
    be the windows' false alarms (Holm over the family, of at least ``family`` parts). ``pooled``: ``series``
    holds every part the windows measured, named or not, so the rate at which they name the typical one (the
    median over the parts) is a floor under the windows' false-alarm rate, should the windows' own test name
    healthy parts more often than the profile says."""
    measured = [s for s in series if s.measured]
    rate = window_false_alarm
    if pooled and measured:
        rate = max(rate, statistics.median((len(s.named) - s.hard) / s.measured for s in measured))
    p_values = [0.0 if s.hard else binomial_tail(len(s.named), s.measured, rate) for s in measured]
    rejected = holm(p_values, false_alarm, family)
    convicted: list[Intermittent] = []
    cleared: list[Intermittent] = []
    for s, p, guilty in zip(measured, p_values, rejected, strict=True):
        if not s.named:
            continue
        record = Intermittent(
            part=s.part,
            symptom=s.symptom,
            windows_named=len(s.named),
            windows_measured=s.measured,
            first=s.named[0],
            last=s.named[-1],
            windows=tuple(s.named),
            hard=s.hard,
            p_value=None if s.hard else p,
            collective=s.collective,
            bytes=s.bytes,
        )
        (convicted if guilty or s.hard else cleared).append(record)
    return Convictions(convicted, cleared, len(measured), rate)


def absorbed(links: Sequence[Intermittent], parts: Sequence[Intermittent]) -> list[Intermittent]:
    """``links`` less those a convicted part above them (their node, their rail) explains: named in no window
    the part was not."""
    return [
        link
        for link in links
        if not any(
            p.part.node is not None
            and p.part.covers(node=link.part.node, rail=link.part.rail)
            and set(link.windows) <= set(p.windows)
            for p in parts
        )
    ]
