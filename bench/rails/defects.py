"""The one human line for what localisation names: a defect (a broken part and the samples that convict it)
and a transient (a suspect that did not reproduce when measured again).

The records themselves are rails.json's (``bench.rundir.rails_records``: the rails layer builds them, the
report reads them back); their kinds are ``bench.rundir.defect_kinds``. Here are the words only: the line
each record carries in rails.json is :func:`described`'s.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from bench.rundir.rails_records import DefectCause, DefectErrors, RailDefect, Transient

Symptom = Literal["slow", "flaky", "dead", "errors", "misrouted"]
Severity = Literal["fail", "warn"]

EVIDENCE_LIMIT = 64
"""Pairs listed in one defect's evidence; a rail fault on 512 nodes has 130,816 slow pairs."""


def described(defect: RailDefect) -> RailDefect:
    """``defect`` with its line, as rails.json carries it: said last, once its counters, causes and action are
    known."""
    return dataclasses.replace(defect, line=describe(defect))


def describe(defect: RailDefect) -> str:
    """One human line, e.g. ``node07 rail 3 (mlx5_4): 212 Gb/s = 53% of 400 Gb/s in 7/7 pairs → link fault``,
    then what its error counters said and its action where known (``; 1,204 symbol_error on mlx5_4 port 1
    during the test; action: reseat or replace the cable/transceiver on node07 mlx5_4 port 1``)."""
    line = _finding(defect)
    if defect.errors is not None:
        line += f"; {errors_clause(defect.errors, defect.node)}"
    line += cause_clause(defect.causes)
    return f"{line}; action: {defect.action}" if defect.action else line


def cause_clause(causes: tuple[DefectCause, ...]) -> str:
    """``; cause on the node: GPU 3 (0000:73:00.0) ... PCIe link at x8 ...`` (and how many more), or nothing."""
    if not causes:
        return ""
    more = f" (and {len(causes) - 1} more)" if len(causes) > 1 else ""
    return f"; cause on the node: {causes[0].result.check}: {causes[0].result.reason}{more}"


def _finding(defect: RailDefect) -> str:
    where = defect.address.where
    c = defect.conviction
    if defect.kind == "path" or (c.symptom == "dead" and not c.pairs and c.evidence):
        # Told by the counters or the port's state, not by a rate.
        return f"{where}: {c.evidence[0]} → {defect.kind} {c.symptom}"
    measured, expected = c.measured_Gbps or 0.0, c.expected_Gbps or 0.0
    percent = 100.0 * measured / expected if expected > 0 else 0.0
    of = "of" if c.basis == "line rate" else "of peers'"
    rate = f"{gbps(measured)} Gb/s = {percent:.0f}% {of} {gbps(expected)} Gb/s"
    if defect.kind == "errors":
        held = f"bandwidth held at {rate} in {c.pairs} pairs" if c.pairs else "no pair measured it"
        return f"{where}: {held} → link errors ({'FAIL' if defect.severity == 'fail' else 'warning'})"
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
        return f"{where}: no traffic in {c.slow_pairs}/{c.pairs} pairs{untold} → {defect.kind} dead"
    else:
        found = f"in {c.slow_pairs}/{c.pairs} pairs{untold}"
    verdict = {"slow": "fault", "dead": "dead", "flaky": "flaky"}.get(c.symptom or "", c.symptom)
    return f"{where}: {rate} {found} → {defect.kind} {verdict}"


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


def describe_transient(t: Transient) -> str:
    """``node02-node05 rail 1: slow at 1.2 Gb/s, normal when re-measured (9.8, 10.1 Gb/s) → transient``."""
    return transient_line(f"{t.node}-{t.peer} rail {t.rail}", t)


def transient_line(where: str, t: Transient) -> str:
    """A transient said at ``where`` (a pair on a rail, or two GPUs of a node): its slowest sample and its
    re-measurements."""
    low = min(t.samples_Gbps) if t.samples_Gbps else 0.0
    again = ", ".join(gbps(v) for v in t.confirm_Gbps)
    return f"{where}: slow at {gbps(low)} Gb/s, normal when re-measured ({again} Gb/s) → transient"


def gbps(value: float) -> str:
    """Three significant figures: 212, 21.2, 0.291."""
    if value >= 100:
        return f"{value:.0f}"
    return f"{value:.3g}"
