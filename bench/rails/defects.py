"""What localisation names: a defect (a broken part and the samples that convict it), a transient (a suspect
that did not reproduce when measured again), and the one human line for each.

Plain records with no statistics in them; ``bench.rails.localise`` makes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

DefectKind = Literal["link", "rail", "node", "pair"]
Symptom = Literal["slow", "flaky", "dead"]

EVIDENCE_LIMIT = 64
"""Pairs listed in one defect's evidence; a rail fault on 512 nodes has 130,816 slow pairs."""


def _rounded(values: tuple[float, ...]) -> list[float]:
    return [round(v, 6) for v in values]


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

    def as_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "node": self.node,
            "peer": self.peer,
            "rail": self.rail,
            "device": self.device,
            "measured_Gbps": round(self.measured_Gbps, 6),
            "expected_Gbps": round(self.expected_Gbps, 6),
            "basis": self.basis,
            "symptom": self.symptom,
            "slow_pairs": self.slow_pairs,
            "pairs": self.pairs,
            "slow_samples": self.slow_samples,
            "samples": self.samples,
            "spread": round(self.spread, 6),
            "evidence": list(self.evidence),
            "samples_Gbps": {cell: _rounded(values) for cell, values in self.sample_values},
        }


@dataclass(frozen=True)
class Transient:
    """A suspect pair that measured normal again when re-measured: recorded, not a fault."""

    node: str
    peer: str
    rail: int
    samples_Gbps: tuple[float, ...]
    """The matrix's samples of this pair (one per repeat), the slow one among them."""
    confirm_Gbps: tuple[float, ...]
    """The re-measurements, same partner and same concurrent load."""

    def as_dict(self) -> dict[str, object]:
        return {
            "node": self.node,
            "peer": self.peer,
            "rail": self.rail,
            "samples_Gbps": _rounded(self.samples_Gbps),
            "confirm_Gbps": _rounded(self.confirm_Gbps),
        }


def describe(defect: Defect) -> str:
    """One human line, e.g. ``node07 rail 3 (mlx5_4): 212 Gb/s = 53% of 400 Gb/s in 7/7 pairs → link fault``."""
    device = f"{defect.device}, " if defect.device else ""
    if defect.kind == "rail":
        where = f"rail {defect.rail} ({device}every node)"
    elif defect.kind == "node":
        where = f"{defect.node} (every rail)"
    elif defect.kind == "pair":
        where = f"{defect.node}-{defect.peer} rail {defect.rail}"
    else:
        where = f"{defect.node} rail {defect.rail}" + (f" ({defect.device})" if defect.device else "")
    percent = 100.0 * defect.measured_Gbps / defect.expected_Gbps if defect.expected_Gbps > 0 else 0.0
    of = "of" if defect.basis == "line rate" else "of peers'"
    rate = f"{gbps(defect.measured_Gbps)} Gb/s = {percent:.0f}% {of} {gbps(defect.expected_Gbps)} Gb/s"
    if defect.symptom == "flaky":
        found = f"slow in {defect.slow_samples}/{defect.samples} samples, spread {100 * defect.spread:.0f}%"
    elif defect.symptom == "dead":
        # Nothing moved, so there is no rate to compare.
        return f"{where}: no traffic in {defect.slow_pairs}/{defect.pairs} pairs → {defect.kind} dead"
    else:
        found = f"in {defect.slow_pairs}/{defect.pairs} pairs"
    verdict = {"slow": "fault", "dead": "dead", "flaky": "flaky"}[defect.symptom]
    return f"{where}: {rate} {found} → {defect.kind} {verdict}"


def describe_transient(t: Transient) -> str:
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
