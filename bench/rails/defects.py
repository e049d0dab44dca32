"""What localisation names: a defect (a broken part and the samples that convict it), a transient (a suspect
that did not reproduce when measured again), and the one human line for each.

Plain records with no statistics in them; ``bench.rails.localise`` makes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from bench.jsondoc import JSONObject
from bench.rundir import railsdoc

DefectKind = Literal["link", "rail", "node", "pair", "errors", "path", "cable", "leaf", "uplink", "spine"]
"""``errors``: a link whose error counters rose during its own windows while its bandwidth held; ``path``: a
rail's bytes on a NIC other than the one next to its GPU (``bench.rails.evidence.path_defects``). With the
fabric's cabling (``rails --topology``) a link is a ``cable`` (node port <-> leaf port), and ``leaf``,
``uplink`` and ``spine`` name parts above the node (``bench.rails.switches``)."""
Symptom = Literal["slow", "flaky", "dead", "errors", "misrouted"]
Severity = Literal["fail", "warn"]

EVIDENCE_LIMIT = 64
"""Pairs listed in one defect's evidence; a rail fault on 512 nodes has 130,816 slow pairs."""


def _rounded(values: tuple[float, ...]) -> tuple[float, ...]:
    return tuple(round(v, 6) for v in values)


@dataclass(frozen=True)
class CounterEvidence:
    """The error counters of one device a defect names, summed over the defect's own windows."""

    node: str
    device: str
    """``mlx5_4:1`` (an IB port) or an interface name."""
    risen: tuple[tuple[str, int], ...] = ()
    """(counter, increase) of every counter that rose."""
    saturated: tuple[str, ...] = ()
    """Counters at their maximum in some window: they cannot say how many arrived, so no count is given."""
    reset: tuple[str, ...] = ()
    """Counters cleared during some window."""

    @property
    def quiet(self) -> bool:
        return not (self.risen or self.saturated or self.reset)

    def record(self) -> railsdoc.DefectErrors:
        return railsdoc.DefectErrors(
            node=self.node,
            device=self.device,
            errors=dict(self.risen),
            errors_saturated=self.saturated,
            errors_reset=self.reset,
        )


@dataclass(frozen=True)
class Defect:
    """One broken part and the measurements that convict it."""

    kind: DefectKind
    node: str | None
    """None for a rail fault."""
    rail: int | None
    """None for a node fault."""
    device: str | None
    """The HCA or interface that carries this rail on this node, e.g. ``mlx5_4``, where known."""
    measured_Gbps: float
    """Median busbw of the convicting measurements (of the slow samples, for a flaky part)."""
    expected_Gbps: float
    """The line rate where known, else the peers' healthy level."""
    basis: Literal["line rate", "peers"]
    symptom: Symptom
    slow_pairs: int
    """Pairs with at least one slow sample."""
    pairs: int
    """Pairs that test this part."""
    slow_samples: int
    samples: int
    spread: float
    """(max - min) / median over the part's samples: high for a flaky part."""
    evidence: tuple[str, ...]
    """The slow pairs, ``"node02-node07/rail3"`` (at most EVIDENCE_LIMIT)."""
    peer: str | None = None
    """The other node, for a pair fault."""
    sample_values: tuple[tuple[str, tuple[float, ...]], ...] = ()
    """Every sample (matrix repeats, then confirmations) of each slow pair in ``evidence``, in Gb/s."""
    errors: tuple[CounterEvidence, ...] | None = None
    """The error counters of the devices it names over the whole test (``bench.rails.corroborate``);
    None when they were not read."""
    action: str = ""
    """What a technician does about it (the profile's ``[actions]``)."""
    severity: Severity = "fail"
    """``warn`` for an ``errors`` defect unless the profile's ``[errors] fail_on_errors`` says otherwise."""
    expected_device: str | None = None
    """A ``path`` defect's NIC nearest the rail's GPU (``mlx5_4:1``), or a dead port's own."""
    carried: tuple[str, ...] = ()
    """A ``path`` defect's NICs that carried the rail's bytes, busiest first."""
    switches: tuple[str, ...] = ()
    """With a topology: the leaf of a cable or leaf; the candidate leaves of an uplink; the spines of a spine."""
    ports: tuple[str, ...] = ()
    """With a topology: the switch ports to check (a cable's leaf port, the uplinks ``leaf port <-> spine port``)."""
    unit: str | None = None
    """With a topology: the scalable unit of a leaf, or of an uplink's leaf, ``unit 2 (node33-node64)``."""
    causes: tuple[railsdoc.DefectCause, ...] = ()
    """Faults on the node's own GPUDirect path that explain it (``bench.rails.local_causes``): a GPU at x8 behind
    a slow rail. The action is then the first one's."""

    def record(self) -> railsdoc.RailDefect:
        """The defect as rails.json says it (``defects``)."""
        return railsdoc.RailDefect(
            expected_device=self.expected_device,
            carried=self.carried,
            kind=self.kind,
            node=self.node,
            peer=self.peer,
            rail=self.rail,
            device=self.device,
            measured_Gbps=round(self.measured_Gbps, 6),
            expected_Gbps=round(self.expected_Gbps, 6),
            basis=self.basis,
            symptom=self.symptom,
            slow_pairs=self.slow_pairs,
            pairs=self.pairs,
            slow_samples=self.slow_samples,
            samples=self.samples,
            spread=round(self.spread, 6),
            evidence=self.evidence,
            samples_Gbps={cell: _rounded(values) for cell, values in self.sample_values},
            errors=None if self.errors is None else tuple(e.record() for e in self.errors),
            action=self.action,
            severity=self.severity,
            switches=self.switches,
            ports=self.ports,
            unit=self.unit,
            line=describe(self),
            causes=self.causes,
        )

    def as_dict(self) -> JSONObject:
        return self.record().to_json()


@dataclass(frozen=True)
class TransientPair:
    """A suspect pair that measured normal again when re-measured: recorded, not a fault."""

    node: str
    peer: str
    rail: int
    samples_Gbps: tuple[float, ...]
    """The matrix's samples of this pair (one per repeat), the slow one among them."""
    confirm_Gbps: tuple[float, ...]
    """The re-measurements, same partner and same concurrent load."""

    def record(self) -> railsdoc.Transient:
        return railsdoc.Transient(
            node=self.node,
            peer=self.peer,
            rail=self.rail,
            samples_Gbps=_rounded(self.samples_Gbps),
            confirm_Gbps=_rounded(self.confirm_Gbps),
        )

    def as_dict(self) -> JSONObject:
        return self.record().to_json()


def describe(defect: Defect) -> str:
    """One human line, e.g. ``node07 rail 3 (mlx5_4): 212 Gb/s = 53% of 400 Gb/s in 7/7 pairs → link fault``,
    then what its error counters said and its action where known (``; 1,204 symbol_error on mlx5_4 port 1
    during the test; action: reseat or replace the cable/transceiver on node07 mlx5_4 port 1``)."""
    line = _finding(defect)
    if defect.errors is not None:
        line += f"; {errors_clause(defect.errors, defect.node)}"
    line += cause_clause(defect.causes)
    return f"{line}; action: {defect.action}" if defect.action else line


def cause_clause(causes: tuple[railsdoc.DefectCause, ...]) -> str:
    """``; cause on the node: GPU 3 (0000:73:00.0) ... PCIe link at x8 ...`` (and how many more), or nothing."""
    if not causes:
        return ""
    more = f" (and {len(causes) - 1} more)" if len(causes) > 1 else ""
    return f"; cause on the node: {causes[0].check}: {causes[0].reason}{more}"


def _finding(defect: Defect) -> str:
    device = f"{defect.device}, " if defect.device else ""
    if defect.kind in ("leaf", "uplink", "spine"):
        where = _switch_words(defect)
    elif defect.kind == "cable":
        ends = f"{defect.node} {defect.device or 'rail ' + str(defect.rail)}"
        where = f"{defect.node} rail {defect.rail} (cable {ends} <-> {defect.ports[0] if defect.ports else '?'})"
    elif defect.kind == "rail":
        where = f"rail {defect.rail} ({device}every node)"
    elif defect.kind == "node":
        where = f"{defect.node} (every rail)"
    elif defect.kind == "pair":
        where = f"{defect.node}-{defect.peer} rail {defect.rail}"
    else:
        where = f"{defect.node} rail {defect.rail}" + (f" ({defect.device})" if defect.device else "")
    if defect.kind == "path" or (defect.symptom == "dead" and not defect.pairs and defect.evidence):
        # Told by the counters or the port's state, not by a rate.
        return f"{where}: {defect.evidence[0]} → {defect.kind} {defect.symptom}"
    percent = 100.0 * defect.measured_Gbps / defect.expected_Gbps if defect.expected_Gbps > 0 else 0.0
    of = "of" if defect.basis == "line rate" else "of peers'"
    rate = f"{gbps(defect.measured_Gbps)} Gb/s = {percent:.0f}% {of} {gbps(defect.expected_Gbps)} Gb/s"
    if defect.kind == "errors":
        held = f"bandwidth held at {rate} in {defect.pairs} pairs" if defect.pairs else "no pair measured it"
        return f"{where}: {held} → link errors ({'FAIL' if defect.severity == 'fail' else 'warning'})"
    if defect.symptom == "flaky":
        found = f"slow in {defect.slow_samples}/{defect.samples} samples, spread {100 * defect.spread:.0f}%"
    elif defect.symptom == "dead":
        # Nothing moved, so there is no rate to compare.
        return f"{where}: no traffic in {defect.slow_pairs}/{defect.pairs} pairs → {defect.kind} dead"
    else:
        found = f"in {defect.slow_pairs}/{defect.pairs} pairs"
    verdict = {"slow": "fault", "dead": "dead", "flaky": "flaky"}[defect.symptom]
    return f"{where}: {rate} {found} → {defect.kind} {verdict}"


def _switch_words(defect: Defect) -> str:
    """``leaf leaf-su1-r3 (rail 3, unit 1 (node01-node32))``, ``uplinks of leaf-su2-r3 (rail 3, ...)``,
    ``uplinks between leaf-su1-r3 and leaf-su2-r3 (rail 3)``, ``spines spine-1..spine-8 (every rail)``."""
    rail = "every rail" if defect.rail is None else f"rail {defect.rail}"
    unit = f", {defect.unit}" if defect.unit else ""
    names = list(defect.switches)
    if defect.kind == "leaf":
        return f"leaf {names[0] if names else '?'} ({rail}{unit})"
    if defect.kind == "uplink":
        if len(names) == 2:
            return f"uplinks between {names[0]} and {names[1]} ({rail})"
        return f"uplinks of {names[0] if names else '?'} ({rail}{unit})"
    shown = f"{names[0]}..{names[-1]}" if len(names) > 2 else " and ".join(names) or "?"
    return f"spine {shown} ({rail}, between units)" if len(names) == 1 else f"spines {shown} ({rail}, between units)"


def _device_words(device: str) -> str:
    hca, colon, port = device.partition(":")
    return f"{hca} port {port}" if colon else hca


def errors_clause(evidence: tuple[CounterEvidence, ...], node: str | None, limit: int = 4) -> str:
    """``1,204 symbol_error and 2 link_downed on mlx5_4 port 1 during the test`` (the node named when the
    defect itself does not name it); ``no error counter rose on ...`` when every device stayed quiet."""
    if not evidence:
        return "no error counters were read for its devices"

    def on(e: CounterEvidence) -> str:
        return _device_words(e.device) if e.node == node else f"{e.node} {_device_words(e.device)}"

    said = []
    for e in [e for e in evidence if not e.quiet][:limit]:
        parts = []
        if e.risen:
            parts.append(" and ".join(f"{count:,} {name}" for name, count in e.risen))
        if e.saturated:
            parts.append(f"{', '.join(e.saturated)} saturated (no count)")
        if e.reset:
            parts.append(f"{', '.join(e.reset)} cleared")
        said.append(f"{', '.join(parts)} on {on(e)}")
    loud = sum(1 for e in evidence if not e.quiet)
    if not said:
        where = on(evidence[0]) if len(evidence) == 1 else f"its {len(evidence)} devices"
        return f"no error counter rose on {where} during the test"
    more = f" and {loud - limit} more devices" if loud > limit else ""
    return f"{'; '.join(said)}{more} during the test"


def describe_transient(t: TransientPair) -> str:
    """``node02-node05 rail 1: slow at 1.2 Gb/s, normal when re-measured (9.8, 10.1 Gb/s) → transient``."""
    low = min(t.samples_Gbps) if t.samples_Gbps else 0.0
    again = ", ".join(gbps(v) for v in t.confirm_Gbps)
    where = f"{t.node}-{t.peer} rail {t.rail}"
    return f"{where}: slow at {gbps(low)} Gb/s, normal when re-measured ({again} Gb/s) → transient"


def gbps(value: float) -> str:
    """Three significant figures: 212, 21.2, 0.291."""
    if value >= 100:
        return f"{value:.0f}"
    return f"{value:.3g}"
