"""The one renderer of findings (docs/design.md, "Adding a finding"): every sentence railbench says about what it
found is made here, from the records' fields, and called only by output code: the line rails.json carries and
the terminal prints, run.json's reasons and junit.xml's messages (the items' sentences), run.json's failure of a
link that died, the certificate's row, the Slurm drain reason's part, finding and action. Nothing reads these
words back: readers decide by the records' fields (``bench.rundir.findings``, ``bench.rundir.part``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from bench.finding import EvidenceFinding
from bench.rundir.checksjson import CheckResult
from bench.rundir.findings import CollectiveMiss, CounterFinding, Finding, Shortfall, evidence_finding
from bench.rundir.rails_records import DefectCause, DefectErrors, GpuDefect, RailDefect
from bench.rundir.sections import Failure
from bench.rundir.soak_records import ErrorGate, Intermittent, Trend
from bench.rundir.soak_words import cleared_line, gate_line, intermittent_line, trend_line
from bench.units import format_size

SIZES_SHOWN = 3
"""A world collective's failed sizes named in its item's sentence; the rest are counted."""


def describe(defect: RailDefect) -> str:
    """One human line, e.g. ``node07 rail 3 (mlx5_4): 212 Gb/s = 53% of 400 Gb/s in 7/7 pairs → link fault``,
    then what its error counters said and its action where known (``; 1,204 symbol_error on mlx5_4 port 1
    during the test; action: reseat or replace the cable/transceiver on node07 mlx5_4 port 1``)."""
    line = f"{defect.address.where}: {_rail_what(defect)}{_rail_clauses(defect)}"
    return f"{line}; action: {defect.action}" if defect.action else line


def _rail_clauses(defect: RailDefect) -> str:
    """What its error counters said and what on its node explains it, each after ``; ``."""
    said = f"; {errors_clause(defect.errors, defect.node)}" if defect.errors is not None else ""
    return said + cause_clause(defect.causes)


def cause_clause(causes: tuple[DefectCause, ...]) -> str:
    """``; cause on the node: GPU 3 (0000:73:00.0) ... PCIe link at x8 ...`` (and how many more), or nothing."""
    if not causes:
        return ""
    more = f" (and {len(causes) - 1} more)" if len(causes) > 1 else ""
    return f"; cause on the node: {causes[0].result.check}: {causes[0].result.reason}{more}"


def _rail_what(defect: RailDefect) -> str:
    """What convicts a rails defect, after its where: ``212 Gb/s = 53% of 400 Gb/s in 7/7 pairs → link fault``."""
    c = defect.conviction
    if defect.kind == "path" or (c.symptom == "dead" and not c.pairs and c.evidence):
        # Told by the counters or the port's state, not by a rate.
        return f"{c.evidence[0]} → {defect.kind} {c.symptom}"
    measured, expected = c.measured_Gbps or 0.0, c.expected_Gbps or 0.0
    percent = 100.0 * measured / expected if expected > 0 else 0.0
    of = "of" if c.basis == "line rate" else "of peers'"
    rate = f"{gbps(measured)} Gb/s = {percent:.0f}% {of} {gbps(expected)} Gb/s"
    if defect.kind == "errors":
        held = f"bandwidth held at {rate} in {c.pairs} pairs" if c.pairs else "no pair measured it"
        return f"{held} → link errors ({'FAIL' if defect.severity == 'fail' else 'warning'})"
    # Two live nodes on the rail: its one pair is every pair of the rail and of both ends' links.
    untold = (
        f", the rail's only pair: {defect.node}'s link, {defect.peer}'s link or the switch, one pair cannot tell which"
        if defect.only_pair
        else ""
    )
    if c.symptom == "flaky":
        found = f"slow in {c.slow_samples}/{c.samples} samples, spread {100 * (c.spread or 0.0):.0f}%{untold}"
    elif c.symptom == "dead":
        # Nothing moved, so there is no rate to compare.
        return f"no traffic in {c.slow_pairs}/{c.pairs} pairs{untold} → {defect.kind} dead"
    else:
        found = f"in {c.slow_pairs}/{c.pairs} pairs{untold}"
    verdict = {"slow": "fault", "dead": "dead", "flaky": "flaky"}.get(c.symptom or "", c.symptom)
    return f"{rate} {found} → {defect.kind} {verdict}"


def _device_words(device: str | None) -> str:
    if device is None:
        return "?"
    hca, colon, port = device.partition(":")
    return f"{hca} port {port}" if colon else hca


def errors_clause(evidence: tuple[DefectErrors, ...], node: str | None, limit: int = 4) -> str:
    """``1,204 symbol_error and 2 link_downed on mlx5_4 port 1 during the test`` (the node named when the
    defect itself does not name it); ``no error counter rose on ...`` when every device stayed quiet."""
    if not evidence:
        return "no error counters were read for its devices"

    def on(e: DefectErrors) -> str:
        return _device_words(e.device) if e.node == node else f"{e.node} {_device_words(e.device)}"

    said = []
    for e in [e for e in evidence if not e.quiet][:limit]:
        parts = []
        if e.errors:
            parts.append(" and ".join(f"{count:,} {name}" for name, count in e.errors.items()))
        if e.errors_saturated:
            parts.append(f"{', '.join(e.errors_saturated)} saturated (no count)")
        if e.errors_reset:
            parts.append(f"{', '.join(e.errors_reset)} cleared")
        said.append(f"{', '.join(parts)} on {on(e)}")
    loud = sum(1 for e in evidence if not e.quiet)
    if not said:
        where = on(evidence[0]) if len(evidence) == 1 else f"its {len(evidence)} devices"
        return f"no error counter rose on {where} during the test"
    more = f" and {loud - limit} more devices" if loud > limit else ""
    return f"{'; '.join(said)}{more} during the test"


def gbps(value: float) -> str:
    """Three significant figures: 212, 21.2, 0.291."""
    if value >= 100:
        return f"{value:.0f}"
    return f"{value:.3g}"


def describe_gpu(defect: GpuDefect) -> str:
    """One line: ``node03 GPU 5 (0000:9a:00.0): 120 Gb/s = 25% of peers' 480 Gb/s in 7/7 local pairs → gpu fault``,
    then ``; action: ...`` where one is known."""
    line = f"{defect.address.where}: {_gpu_what(defect)}{cause_clause(defect.causes)}"
    return f"{line}; action: {defect.action}" if defect.action else line


def _gpu_what(defect: GpuDefect) -> str:
    c = defect.conviction
    if c.symptom == "dead":
        return f"no traffic in {c.slow_pairs}/{c.pairs} local pairs → {defect.kind} dead"
    measured, expected = c.measured_Gbps or 0.0, c.expected_Gbps or 0.0
    percent = 100.0 * measured / expected if expected > 0 else 0.0
    of = "of target" if c.basis == "target" else "of peers'"
    rate = f"{gbps(measured)} Gb/s = {percent:.0f}% {of} {gbps(expected)} Gb/s"
    if c.symptom == "flaky":
        found = f"slow in {c.slow_samples}/{c.samples} samples"
    else:
        found = f"in {c.slow_pairs}/{c.pairs} local pairs"
    return f"{rate} {found} → {defect.kind} {'fault' if c.symptom == 'slow' else 'flaky'}"


def shortfall_line(s: Shortfall) -> str:
    """``rail 1 all_reduce (concurrent): 0.275 Gb/s = 55% of 0.5 Gb/s (needs 0.45 Gb/s: 90% of line plus NCCL's
    latency over 2 nodes)``, or ``rail 1 all_reduce: 3 wrong elements``."""
    if s.wrong:
        return f"rail {s.rail} {s.collective}: {s.wrong} wrong elements"
    rate = s.line_rate_Gbps or 0.0
    percent = 100 * s.busbw_Gbps / rate if rate > 0 else 0.0
    # Measured again after falling short: each measurement is said, the best judged (rails_outcome.best_samples).
    every = ", ".join(f"{g:.3g}" for g in s.samples_Gbps)
    again = f", the best of {len(s.samples_Gbps)} measurements: {every} Gb/s" if s.samples_Gbps else ""
    return (
        f"rail {s.rail} {s.collective} ({s.mode}): {s.busbw_Gbps:.3g} Gb/s = {percent:.0f}% of {rate:g} Gb/s{again} "
        f"(needs {s.needed_Gbps or 0.0:.3g} Gb/s: {100 * (s.pass_fraction or 0.0):.0f}% of line plus NCCL's latency "
        f"over {s.nnodes} nodes)"
    )


def counter_line(c: CounterFinding) -> str:
    """``node03 rail 3: its bytes went over eth0, which must stay quiet``; ``node03: rails 0, 1 all went over
    mlx5_4`` for what the node as a whole did."""
    return f"{c.node}: {c.said}" if c.whole_node else f"{c.node} {c.said}"


def measurements_GBps(busbw_Gbps: Sequence[float]) -> str:
    """Each measurement of a world collective in GB/s, as nccl-tests and the row give busbw: ``270, 300, 290``."""
    return ", ".join(f"{g / 8:.4g}" for g in busbw_Gbps)


def collective_line(miss: CollectiveMiss) -> str:
    """``all_gather at 256M: busbw 200 GB/s is 50% of its 400 GB/s target (3200 Gb/s; needs 90%)``, or
    ``sendrecv at 1K: 3 wrong elements``: a collective's busbw and target in GB/s as nccl-tests gives them, the
    target's line rate in Gb/s beside it (docs/design.md, "Units and formulas")."""
    at = f"{miss.collective} at {format_size(miss.bytes)}"
    if miss.wrong:
        return f"{at}: {miss.wrong} wrong elements"
    target = miss.target_Gbps or 0.0
    # Measured again after falling short: each measurement is said, the best judged (bench.sweep.rank).
    every = measurements_GBps(miss.samples_Gbps)
    again = f", the best of {len(miss.samples_Gbps)} measurements: {every} GB/s" if miss.samples_Gbps else ""
    return (
        f"{at}: busbw {miss.busbw_Gbps / 8:.4g} GB/s is {100 * (miss.efficiency or 0.0):.0f}% of its "
        f"{target / 8:.4g} GB/s target ({target:.4g} Gb/s; needs {100 * (miss.pass_fraction or 0.0):.0f}%){again}"
    )


def soak_cleared_line(record: Intermittent) -> str:
    """A part a soak's windows named now and then, not convicted (the intermittent gate's details)."""
    return cleared_line(record)


def check_line(where: str, result: CheckResult) -> str:
    """A check's answer as its item says it: ``node03 pcie-link: GPU 3 at x8``; ``across nodes`` for a
    comparison of the nodes."""
    return f"{where} {result.check}: {result.reason}"


def sentence(finding: Finding) -> str:
    """The one line for the terminal's FAIL line, run.json's reason and junit.xml's message."""
    e = finding.evidence
    if isinstance(e, RailDefect):
        return describe(e)
    if isinstance(e, GpuDefect):
        return describe_gpu(e)
    if isinstance(e, CheckResult):
        return check_line(finding.part.where, e)
    if isinstance(e, Shortfall):
        return shortfall_line(e)
    if isinstance(e, CounterFinding):
        return counter_line(e)
    if isinstance(e, CollectiveMiss):
        return collective_line(e)
    if isinstance(e, ErrorGate):
        return gate_line(e, finding.action)
    if isinstance(e, Intermittent):
        return intermittent_line(e, finding.action)
    if isinstance(e, Trend):
        return trend_line(e, finding.action)
    # run.json's failure, and what NCCL's log or the counters said: the words their judge wrote, whole
    return e.message


def acted(finding: Finding) -> str:
    """:func:`sentence` with what to do after it, where the sentence does not say it already (a check's answer:
    ``node03 pcie-link: GPU 3 at x8; action: reseat GPU 3``)."""
    said = sentence(finding)
    if isinstance(finding.evidence, CheckResult) and finding.action:
        return f"{said}; action: {finding.action}"
    return said


def item_reason(findings: Sequence[Finding], node: str | None = None) -> str:
    """The sentence of an item that carries ``findings`` (run.json's reason, junit.xml's message, the
    terminal's ``# FAIL`` line): each finding's :func:`acted` line, after ``; ``. An item of one ``node`` (its
    line in accept) names the node itself: a check of that node says only ``pcie-link: GPU 3 at x8``. A world
    collective names its first :data:`SIZES_SHOWN` misses and counts the rest."""
    said = [_in_item(f, node) for f in findings]
    if len(said) > SIZES_SHOWN and all(isinstance(f.evidence, CollectiveMiss) for f in findings):
        return "; ".join(said[:SIZES_SHOWN]) + f" and {len(said) - SIZES_SHOWN} more"
    return "; ".join(said)


def _in_item(finding: Finding, node: str | None) -> str:
    e = finding.evidence
    if node is not None and isinstance(e, CheckResult) and finding.part.node == node:
        return f"{e.check}: {e.reason}"
    return acted(finding)


def link_died(records: Sequence[EvidenceFinding]) -> str:
    """run.json's failure of links that died under NCCL (``bench.frame.postmortem``): what NCCL's logs said of
    each link, after ``; ``."""
    return "; ".join(sentence(evidence_finding(r, "run")) for r in records)


def sentences(findings: Sequence[Finding]) -> list[str]:
    """Each finding's :func:`sentence`, in order."""
    return [sentence(f) for f in findings]


@dataclass(frozen=True)
class DefectRow:
    """One broken part as the certificate's defects table shows it: what kind, where, what was measured, and
    what to do, each in its column."""

    kind: str
    node: str
    rail: str
    part: str
    """The NIC, port, interface or GPU."""
    finding: str
    """What convicts it, without the where its columns say and without the action."""
    action: str
    step: str
    """The step that named it: preflight, rails, intra-node or run."""


WHERE_IN_COLUMNS = frozenset({"link", "errors", "path", "rail", "node", "pair"})
"""Rails kinds whose where the node, rail and NIC columns say whole; a cable's leaf port and a switch part's
switches are said in its finding."""


def row(finding: Finding) -> DefectRow:
    """The certificate's row of ``finding``."""
    e, part = finding.evidence, finding.part
    if isinstance(e, RailDefect):
        return _rail_row(finding, e)
    if isinstance(e, GpuDefect):
        what = f"{_gpu_what(e)}{cause_clause(e.causes)}" if part.known else e.line or e.kind
        return DefectRow(e.kind or "gpu", e.node or "", "", e.part, what, finding.action, finding.step)
    if isinstance(e, CheckResult):
        said = f"{e.check}: {e.reason}"
        return DefectRow("check", part.node or "", "", e.device or "", said, finding.action, finding.step)
    if isinstance(e, Failure):
        hosts = ", ".join(str(h) for h in e.hosts or ())
        return DefectRow(e.kind or "failure", hosts, "", "", e.message, finding.action, finding.step)
    rail = "" if part.rail is None else str(part.rail)
    if isinstance(e, ErrorGate | Intermittent | Trend):
        # the action has its own column: the sentence without it
        said = sentence(replace(finding, action=""))
        return DefectRow(part.kind, part.node or "", rail, part.device or "", said, finding.action, finding.step)
    return DefectRow(part.kind, part.node or "", rail, "", sentence(finding), finding.action, finding.step)


def _rail_row(finding: Finding, d: RailDefect) -> DefectRow:
    part = finding.part
    if not part.known:
        # A kind an older release wrote: its line as that release said it.
        what = d.line or f"{d.kind} {d.conviction.symptom or ''}".strip()
    else:
        what = f"{_rail_what(d)}{_rail_clauses(d)}"
        if d.kind not in WHERE_IN_COLUMNS:
            what = f"{part.where}: {what}"
    if finding.seen:
        what += f"; the checks saw it too: {'; '.join(seen_words(finding))}"
    node = f"{d.node} ↔ {d.peer}" if d.node and d.peer else (d.node or ("every node" if d.rail is not None else ""))
    rail = str(d.rail) if d.rail is not None else ("every rail" if d.node and d.kind == "node" else "")
    return DefectRow(d.kind or "defect", node, rail, d.device or "", what, finding.action, finding.step)


def seen_words(finding: Finding) -> list[str]:
    """The check answers that saw the same fault: ``node07 rail: mlx5_4:1 is DOWN``."""
    return [check_line(s.node or "across nodes", s.result) for s in finding.seen]


def drain_words(finding: Finding) -> tuple[str, str, str]:
    """The part, the finding and the action a Slurm drain reason says of a part of one node:
    ``rail 1 (rail1)``, ``link dead``, ``check the port state and the cable of node02 rail1``."""
    e, part = finding.evidence, finding.part
    if part.kind == "run":
        # the node as a whole: a check that hung on it (its words name the check), the run's failure
        return "", e.reason if isinstance(e, CheckResult) else sentence(finding), finding.action
    if isinstance(e, CheckResult):
        named = f"{e.check} {e.device}" if e.device else e.check
        return named, _own_words(e), finding.action
    if isinstance(e, GpuDefect):
        return e.part, f"{e.kind} {finding.symptom}".strip(), finding.action
    if part.intra and part.gpu is not None:
        # a GPU a soak's windows named (its errors, its clocks): the GPU, not a rail
        return part.gpus, f"{part.kind} {finding.symptom}".strip(), finding.action
    if part.kind == "node":
        return "every rail", f"{part.kind} {finding.symptom}".strip(), finding.action
    device = f" ({part.device})" if part.device else ""
    return f"rail {part.rail}{device}", f"{part.kind} {finding.symptom}".strip(), finding.action


def _own_words(result: CheckResult) -> str:
    """A check's words without the device the drain reason's part already names, as the check wrote them apart
    (``CheckResult.said``); its whole reason where it opens with no device."""
    return result.said if result.said is not None else result.reason


def not_drained_words(finding: Finding) -> str:
    """Why ``finding`` drains no node: a setting of the run, or a part above the nodes."""
    e, part = finding.evidence, finding.part
    if isinstance(e, CheckResult):
        return f"{part.node or ''} {e.check}: a setting of the run, not a part of the node"
    where = f"rail {part.rail}" if part.rail is not None else "every rail"
    named = f"{part.node}-{part.peer} {where}" if part.node and part.peer else where
    said = f"{part.kind} {finding.symptom}".strip()
    return f"{named} {said}: a part above the nodes, no node drained ({finding.action})"
