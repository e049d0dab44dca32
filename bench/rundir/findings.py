"""What railbench found, as one envelope (docs/design.md, "Adding a finding"): a :class:`Finding` is the part
it names (``bench.rundir.part.Part``), how bad it is, what the part did, the step that found it, the evidence
record held whole and what to do about it. Each record a step writes (a rails defect, an intra-node defect, a
check's answer, the run's failure, a rail group below its target, a counter finding, a world collective below
its target, what NCCL's logs and the byte counters said around the world sweep, what a soak's judges found over
its windows) becomes one by its view below, from its fields alone; ``bench.rundir.finding_words`` says it, once,
for every output.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from bench.finding import EvidenceFinding
from bench.rundir.checksjson import CheckResult
from bench.rundir.part import Part
from bench.rundir.rails_records import GpuDefect, RailDefect
from bench.rundir.sections import Failure
from bench.rundir.soak_records import ErrorGate, Intermittent, Trend

Severity = Literal["fail", "warn"]
Step = Literal["preflight", "rails", "intra-node", "run", "sweep", "soak"]
"""``sweep``: the world sweep's (``railbench run``'s collectives and the evidence around them); ``run``: the
run's failure (a hang, a lost rank, a link that died); ``soak``: what a soak's judges found over its windows
(``bench.soak.judge``)."""


@dataclass(frozen=True)
class Shortfall:
    """A rail group that fell short of its target, or returned wrong elements (rails.json's ``below_target``)."""

    rail: int
    collective: str
    mode: str
    """``concurrent`` or ``isolated``."""
    busbw_Gbps: float
    line_rate_Gbps: float | None = None
    needed_Gbps: float | None = None
    """Its mark: ``pass_fraction`` of the line rate plus NCCL's latency over ``nnodes``
    (``bench.rails.diagnosis.rail_target``)."""
    pass_fraction: float | None = None
    nnodes: int = 0
    wrong: int | None = None
    """Wrong elements: the result is wrong, whatever its rate."""
    samples_Gbps: tuple[float, ...] = ()
    """Each measurement's busbw in the order taken, where it was measured again and fell short every time
    (``busbw_Gbps`` is the best of them); empty for one measurement."""


@dataclass(frozen=True)
class CounterFinding:
    """What the byte counters said against the layout (``bench.rails.diagnosis.evidence.findings``): a rail over the
    wrong device, traffic on a device that must stay quiet."""

    node: str
    rails: tuple[int, ...]
    """The rails it is about (every rail it names)."""
    said: str
    """What the counters showed, after the node's name (``rail 3: its bytes went over eth0, which must stay
    quiet``)."""
    whole_node: bool = False
    """Said of the node as a whole (several rails over one device): its name then a colon."""


@dataclass(frozen=True)
class Seen:
    """A check's answer that saw the same fault as a rails defect (``bench.preflight.told``): said in the
    defect's finding, never as a finding of its own."""

    node: str
    """The node that answered; empty for a comparison across the nodes."""
    result: CheckResult


@dataclass(frozen=True)
class CollectiveMiss:
    """A row of the world sweep that fails its collective (``bench.sweep.items``): elements that came back wrong,
    or a busbw below ``pass_fraction`` of its target at a judged size. A row that does both is two misses."""

    collective: str
    bytes: int
    busbw_Gbps: float
    wrong: int = 0
    """Wrong elements: the result is wrong, whatever its rate (0 for a miss of the target)."""
    target_Gbps: float | None = None
    efficiency: float | None = None
    """``busbw_Gbps`` over ``target_Gbps``, as the row says it."""
    pass_fraction: float | None = None
    samples_Gbps: tuple[float, ...] = ()
    """Each measurement's busbw in the order taken, where the row was measured again and fell short every time
    (``busbw_Gbps`` is the best of them); empty for one measurement."""


SoakEvidence = ErrorGate | Intermittent | Trend
Evidence = (
    RailDefect
    | GpuDefect
    | CheckResult
    | Failure
    | Shortfall
    | CounterFinding
    | CollectiveMiss
    | EvidenceFinding
    | ErrorGate
    | Intermittent
    | Trend
)


@dataclass(frozen=True)
class Finding:
    """One thing railbench found: where, how bad, what, by which step, on what evidence, and what to do."""

    part: Part
    severity: Severity
    symptom: str
    """``slow``, ``flaky``, ``dead``, ``errors``, ``misrouted``; a check's ``fail``; the run's failure kind."""
    step: Step
    evidence: Evidence
    """The record that convicts the part, whole (its own fields say the numbers)."""
    action: str = ""
    """What a technician does (the profile's ``[actions]`` sentence); empty where none applies."""
    action_key: str | None = None
    """The ``[actions]`` key the sentence came from, where the record says it."""
    seen: tuple[Seen, ...] = ()
    """Check answers that saw the same fault."""


def rail_finding(defect: RailDefect, seen: Sequence[Seen] = ()) -> Finding:
    """A rails defect (rails.json's ``defects``) as a finding."""
    return Finding(
        part=defect.address,
        severity="warn" if defect.severity == "warn" else "fail",
        symptom=defect.conviction.symptom or "",
        step="rails",
        evidence=defect,
        action=defect.action,
        seen=tuple(seen),
    )


def gpu_finding(defect: GpuDefect) -> Finding:
    """An intra-node defect (rails.json's ``intra_node.defects``) as a finding; one with no severity fails."""
    return Finding(
        part=defect.address,
        severity="warn" if defect.severity == "warn" else "fail",
        symptom=defect.conviction.symptom or "",
        step="intra-node",
        evidence=defect,
        action=defect.action,
    )


def check_finding(node: str, result: CheckResult, action: str | None = None, *, fabric: bool = False) -> Finding:
    """A check's failing or warning answer on ``node`` (empty across the nodes, or for the fabric's cabling:
    ``fabric``); ``action`` where the record carries none (checks.json written before it did: the profile's
    default for the check)."""
    return Finding(
        part=Part(kind="check", node=node or None, device=result.device, check=result.check, fabric=fabric),
        severity="warn" if result.status == "warn" else "fail",
        symptom=result.status,
        step="preflight",
        evidence=result,
        action=result.action or action or "",
        action_key=result.check,
    )


def hung_finding(node: str, result: CheckResult, action: str, stuck_in: str | None = None) -> Finding:
    """A check that did not finish on ``node`` within its time limit (``bench.preflight.deadline``): a finding on
    the node as a whole, whose words name the check that hung; its part keeps that check's name, ``stuck_in``
    (``Bounded.stuck_in``), as data."""
    return Finding(
        part=Part(kind="run", node=node, check=stuck_in),
        severity="fail",
        symptom="hang",
        step="preflight",
        evidence=result,
        action=action,
    )


def failure_finding(failure: Failure) -> Finding:
    """run.json's ``failure`` (a hang, a lost rank, a dead link) as a finding on the run."""
    hosts = tuple(str(h) for h in failure.hosts or ())
    return Finding(
        part=Part(kind="run", node=hosts[0] if len(hosts) == 1 else None),
        severity="fail",
        symptom=failure.kind,
        step="run",
        evidence=failure,
        action=failure.action or "",
    )


def shortfall_finding(shortfall: Shortfall) -> Finding:
    """A rail group below its target as a finding on its rail."""
    return Finding(
        part=Part(kind="rail-group", rail=shortfall.rail),
        severity="fail",
        symptom="wrong" if shortfall.wrong else "slow",
        step="rails",
        evidence=shortfall,
    )


def counter_finding(said: CounterFinding) -> Finding:
    """A counter finding as a finding on its node (and, through its evidence, the rails it names)."""
    return Finding(
        part=Part(kind="counters", node=said.node),
        severity="fail",
        symptom="misrouted",
        step="rails",
        evidence=said,
    )


def collective_finding(miss: CollectiveMiss) -> Finding:
    """A world collective's miss as a finding on the run: every node and every rail took part in it."""
    return Finding(
        part=Part(kind="run"),
        severity="fail",
        symptom="wrong" if miss.wrong else "slow",
        step="sweep",
        evidence=miss,
    )


def evidence_finding(record: EvidenceFinding, step: Step = "sweep") -> Finding:
    """What NCCL's log or the byte counters said (run.json's ``findings``), as a finding on the device it names
    (an HCA, a port, an interface) of its host, else on its host (or the run, where it names none); its symptom
    is its severity, as a check's answer's is its status."""
    return Finding(
        part=Part(kind="device" if record.device else "run", node=record.host, device=record.device),
        severity=record.severity,
        symptom=record.severity,
        step=step,
        evidence=record,
    )


def soak_finding(record: SoakEvidence, action: str = "") -> Finding:
    """What a soak's judges found as a finding on the part its record names: an error counter over its limit
    fails (one that no limit gates, or that gave no count, warns); an intermittent part is ``intermittent``
    (its record says slow, dead, flapping...), a persistent one its own symptom; a trend fails."""
    if isinstance(record, ErrorGate):
        severity: Severity = "fail" if record.over else "warn"
        symptom = "errors"
    elif isinstance(record, Intermittent):
        severity, symptom = "fail", record.symptom if record.persistent else "intermittent"
    else:
        severity, symptom = "fail", "trend"
    return Finding(part=record.part, severity=severity, symptom=symptom, step="soak", evidence=record, action=action)


def names_rail(finding: Finding, rail: int) -> bool:
    """Whether ``finding`` is about rail ``rail``: its part's, or every rail its counter evidence names."""
    if isinstance(finding.evidence, CounterFinding):
        return rail in finding.evidence.rails
    return finding.part.rail == rail
