"""What the rails test measured, as records, and what rank 0 knows once it has judged them.

Pure data: rank 0 gathers the raw measurements from every rank and everything below reads them without
talking to anyone. Their rows and rails.json's sections are said by ``bench.rails.documents``, the terminal's
table by ``bench.rails.output``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from bench.jsondoc import JSONObject
from bench.measure.collectives import get_collective
from bench.rails.diagnosis.gpu_outcome import IntraNodeOutcome
from bench.rails.diagnosis.localise import PairSample
from bench.rails.diagnosis.matrix import PairColumns as PairColumns  # rank 0 judges the matrix from these
from bench.rails.diagnosis.matrix import PairTime
from bench.rails.diagnosis.matrix import pair_matrix as pair_matrix
from bench.rundir import railsdoc
from bench.rundir.defect_kinds import fails_rail
from bench.rundir.findings import (
    CounterFinding,
    Finding,
    Shortfall,
    counter_finding,
    names_rail,
    rail_finding,
    shortfall_finding,
)
from bench.rundir.named_parts import NamedPart
from bench.rundir.rails_records import RailDefect

Mode = Literal["concurrent", "isolated"]


@dataclass(frozen=True)
class RailResult:
    """One collective in one rail group (GPU k of every node)."""

    rail: int
    collective: str
    mode: Mode
    """``concurrent``: every rail group at once (the realistic load); ``isolated``: this rail alone."""
    nnodes: int
    nbytes: int
    count: int
    iters: int
    time_us: float
    time_us_min: float
    time_us_max: float
    wrong: int | None
    samples_us: tuple[float, ...] = ()
    """Each measurement's ``time_us`` in the order taken, where the rail group was measured again because it fell
    short of its mark (``bench.rails.measurement.steps.rails_again``); empty for one measurement. ``time_us`` is
    then the best of them (:func:`best_samples`)."""

    @property
    def busbw_Gbps(self) -> float:
        return self.busbw_at(self.time_us)

    def busbw_at(self, time_us: float) -> float:
        """The bus bandwidth of one of this result's calls timed at ``time_us``."""
        if time_us <= 0:
            return 0.0
        factor = get_collective(self.collective).busbw_factor(self.nnodes)
        return self.nbytes / (time_us * 1e-6) * factor * 8 / 1e9

    @property
    def measured(self) -> int:
        """How many times this rail group's collective was measured."""
        return max(1, len(self.samples_us))


def best_samples(results: Sequence[RailResult]) -> list[RailResult]:
    """One result per rail group, collective and mode, in the order first measured: where one was measured again
    (a rail group that fell short of its mark, ``bench.rails.measurement.steps.rails_again``), its fastest
    measurement, the spread of all of them, every measurement's time in ``samples_us`` and any wrong elements seen.

    A rail group's rate can only be lowered by what else runs (another job, a link retraining, a hot spot), never
    raised past what its links carry: the best of its measurements is the closest to what the rail can do, and it
    falls short only when every one of them does. A slow part slows every measurement and still fails."""
    kept: dict[tuple[int, str, str], list[RailResult]] = {}
    for r in results:
        kept.setdefault((r.rail, r.collective, r.mode), []).append(r)
    out = []
    for same in kept.values():
        if len(same) == 1:
            out.append(same[0])
            continue
        timed = [r for r in same if r.time_us > 0]
        best = min(timed, key=lambda r: r.time_us) if timed else same[0]
        wrongs = [r.wrong for r in same if r.wrong]
        out.append(
            dataclasses.replace(
                best,
                time_us_min=min(r.time_us_min for r in same),
                time_us_max=max(r.time_us_max for r in same),
                wrong=max(wrongs) if wrongs else best.wrong,
                samples_us=tuple(t for r in same for t in (r.samples_us or (r.time_us,))),
            )
        )
    return out


@dataclass(frozen=True)
class ExpectedNic:
    """The NIC one node's rank of rail k should leave through (``bench.rails.rank``)."""

    device: str | None
    """``mlx5_4:1`` (the port nearest GPU k) or the interface the rank binds (``eth1``); None when unknown."""
    state: str | None = None
    """The IB port's state (``ACTIVE``, ``DOWN``...); None for interfaces."""
    distance: str | None = None
    """PCI distance from GPU k (``PIX``, ``PXB``, ``PHB``, ``NODE``, ``SYS``); None without a GPU."""
    gpu: str | None = None
    """GPU k's PCI address."""
    shared: bool = False
    """GPU k shares its nearest NICs with other GPUs, or has several: NCCL spreads the rail over them."""

    @property
    def down(self) -> bool:
        """An IB port that is not ACTIVE: NCCL will not use it (a dead link)."""
        return self.state is not None and self.state != "ACTIVE"

    def to_json(self) -> JSONObject:
        return {
            "expected": self.device,
            "state": self.state,
            "distance": self.distance,
            "gpu": self.gpu,
            "shared": self.shared,
        }


@dataclass(frozen=True)
class RailDevices:
    """Which device carried rail k's bytes on each node, from counter deltas while rail k ran alone."""

    rail: int
    device: Mapping[str, str | None]
    """node -> the device with the most bytes (None when no device moved enough)."""
    moved: Mapping[str, Mapping[str, int]]
    """node -> device -> bytes (tx + rx) in the window."""
    expected: Mapping[str, str | None] = field(default_factory=dict)
    """node -> the NIC this rail should use (the interface bound on socket rails, the NIC nearest GPU k on IB),
    where known."""
    carried: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """node -> every device that moved at least the rail's share of bytes, busiest first."""
    nics: Mapping[str, ExpectedNic] = field(default_factory=dict)
    """node -> what its rank of this rail expected (state and PCI distance included)."""

    def path_json(self) -> dict[str, JSONObject]:
        """rails.json's ``path``: per node, the NIC expected and the NICs that carried the rail's bytes."""
        out: dict[str, JSONObject] = {}
        for node in dict.fromkeys([*self.device, *self.nics]):
            nic = self.nics.get(node) or ExpectedNic(self.expected.get(node))
            out[node] = {**nic.to_json(), "carried": list(self.carried.get(node, ()))}
        return out


def short_device(device: str | None) -> str | None:
    """``mlx5_4:1`` -> ``mlx5_4`` (an HCA, as people name it); interfaces unchanged."""
    return None if device is None else device.split(":")[0]


def pair_samples(times: Sequence[PairTime], nodes: Sequence[str]) -> list[PairSample]:
    """One sample per (pair, rail, repeat or confirmation pass): the slower direction, since a cable is only as
    good as that; stopped when either direction ran out of time."""
    slowest: dict[tuple[int, int, int, int, int], PairTime] = {}
    stopped: set[tuple[int, int, int, int, int]] = set()
    for t in times:
        key = (min(t.node, t.peer), max(t.node, t.peer), t.rail, t.repeat, t.confirm)
        if key not in slowest or t.time_us > slowest[key].time_us:
            slowest[key] = t
        if t.stopped:
            stopped.add(key)
    return [
        PairSample(nodes[a], nodes[b], rail, busbw_Gbps(t.nbytes, t.time_us), repeat, key in stopped, confirm)
        for key, t in sorted(slowest.items())
        for a, b, rail, repeat, confirm in [key]
    ]


def busbw_Gbps(nbytes: int, time_us: float) -> float:
    """Point-to-point: busbw = algbw = S / t, in Gb/s."""
    return nbytes * 8 / (time_us * 1e-6) / 1e9 if time_us > 0 else 0.0


def device_map(devices: Sequence[RailDevices]) -> dict[tuple[str, int], str]:
    """(node, rail) -> device name for the defect report."""
    out: dict[tuple[str, int], str] = {}
    for rd in devices:
        for node, device in rd.device.items():
            name = short_device(device)
            if name:
                out[(node, rd.rail)] = name
    return out


@dataclass(frozen=True)
class RailsOutcome:
    """What rank 0 knows after the rails test: rails.json's record as far as it is final (``written``), beside
    the working forms its other sections are said from when it is written (``bench.rails.output.rails_doc``)."""

    written: railsdoc.RailsDoc = field(default_factory=railsdoc.RailsDoc)
    """rails.json's record with the sections the judge gives in their written form: ``skipped`` (why nothing was
    measured: a single node), ``nodes``, the ``transients`` (suspect pairs that measured normal again when
    re-measured: recorded, not failed), ``too_noisy`` (why the pair matrix named nothing), the ``error_windows``
    (per window of the test, the devices whose error counters said something), ``process_groups`` (the world's
    and one per rail group formed, the pairs running inside their rail's; with the intra-node matrix, one more
    per node) and the ``links`` (each (node, rail) link as found before the rail groups formed,
    ``bench.rails.diagnosis.judge.link_records``). Its other sections are empty here: they are said from the fields
    below."""
    rails: int = 0
    """How many rails (local ranks per node); rails.json's ``rails`` section is said from ``devices``."""
    rail_results: list[RailResult] = field(default_factory=list)
    pair_times: list[PairTime] = field(default_factory=list)
    devices: list[RailDevices] = field(default_factory=list)
    defects: tuple[RailDefect, ...] = ()
    """Every defect, each built once by the conviction step from a part named (``bench.rails.diagnosis.corroborate``:
    its counters, its causes and its action); each one's ``line`` is said when rails.json is written
    (``bench.rails.output.described``). Empty until then."""
    findings: list[CounterFinding] = field(default_factory=list)
    """Counter evidence that contradicts the layout (a rail over the wrong device, traffic on mgmt)."""
    expected: dict[int, float | None] = field(default_factory=dict)
    """Line rate per rail (None where unknown)."""
    below_target: list[Shortfall] = field(default_factory=list)
    """Rail-group results under pass_fraction x line rate, or with wrong elements."""
    counters: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    """Per node, the bytes each device carried over the whole rails test, and its error-counter deltas."""
    intra_node: IntraNodeOutcome | None = None
    """The intra-node pair matrix (``--intra-node``), None when it did not run."""
    node_causes: tuple[railsdoc.DefectCause, ...] = ()
    """Every fault each node's GPUDirect path checks found (``bench.rails.measurement.local_causes``), ``explains`` set
    on those a defect carries. Set by the conviction step, beside the defects' causes."""
    named: tuple[NamedPart, ...] = ()
    """Every part the judge named (``bench.rails.diagnosis.judge``), whole, before its conviction: the dead parts
    liveness found, the paths the counters contradict, then what localisation named."""

    @property
    def nodes(self) -> tuple[str, ...]:
        """The nodes in rank order: every node number in the working forms (a pair time's ``node`` and ``peer``)
        is an index into them."""
        return self.written.nodes

    @property
    def process_groups(self) -> int | None:
        """The process groups made so far, which the intra-node matrix adds its own to."""
        return self.written.process_groups

    @property
    def failing(self) -> tuple[RailDefect, ...]:
        """The defects that fail the verdict (an ``errors`` defect only warns unless the profile says so)."""
        return tuple(d for d in self.defects if d.severity == "fail")

    @property
    def warnings(self) -> tuple[RailDefect, ...]:
        return tuple(d for d in self.defects if d.severity == "warn")

    @property
    def failed(self) -> bool:
        intra_failed = self.intra_node is not None and self.intra_node.failed
        return bool(self.failing or self.findings or self.below_target or intra_failed)

    def rail_reasons(self, rail: int) -> list[Finding]:
        """Why rail ``rail`` fails (empty: it passes), each a finding the items say
        (``bench.rails.diagnosis.items``)."""
        # A pair that is its rail's only pair measured is every pair of that rail: it fails the rail too.
        failing = [d for d in self.failing if fails_rail(d.kind, d.rail, rail) or (d.only_pair and d.rail == rail)]
        # its own parts (the rail, its links, leaf and uplinks) first, then a spine layer that names every rail
        reasons = [rail_finding(d) for d in sorted(failing, key=lambda d: d.rail is None)]
        reasons += [shortfall_finding(s) for s in self.below_target if s.rail == rail]
        reasons += [f for f in self.counter_findings if names_rail(f, rail)]
        return reasons

    def node_reasons(self, node: str) -> list[Finding]:
        """Why node ``node`` fails (empty: it passes)."""
        reasons = [f for f in (rail_finding(d) for d in self.failing) if f.part.covers(node=node)]
        reasons += [f for f in self.counter_findings if f.part.covers(node=node)]
        reasons += self.intra_node.node_reasons(node) if self.intra_node is not None else []
        return reasons

    @property
    def counter_findings(self) -> list[Finding]:
        """What the counters contradict, as findings."""
        return [counter_finding(f) for f in self.findings]
