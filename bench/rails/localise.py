"""Name the broken part from the node x node x rail matrix of pair bandwidths.

A sendrecv between node a and node b on rail k runs at the speed of the slower of a's link on rail k, b's
link on rail k and rail k's switch. So a slow measurement has a small set of possible explanations, and
the smallest one that every slow measurement agrees with is the answer:

* ``rail``: every pair on rail k is slow -> rail k's switch (or all its cables);
* ``node``: node a is slow with every partner on every rail (two or more rails) -> the node;
* ``link``: node a is slow with every partner on rail k only -> a's HCA, cable or port on rail k;
* ``pair``: one pair is slow and nothing larger explains it -> one cable between two leaves, or noise.

A measurement is slow when it is below the absolute target (line rate x pass fraction) OR below
``relative_fraction`` x the healthy level of its peers. The healthy level comes from each (node, rail)'s
best partner, in units of the line rate: a broken link has no fast partner, a healthy one has at least one.
The upper quartile of those best values picks the healthy ones while up to three quarters of the links are
broken (a whole rail of two is half of them); the level is then the median of the cells near it. The
absolute target still catches the rest. Where the line rate is unknown (a testbed on veth), only the
relative test applies and every rail is assumed to have the same rate.

With repeats, a cell (pair, rail) is *slow* when its median over repeats is slow and *suspect* when any
repeat is slow. A link or rail needs every one of its cells suspect, so a flaky link (slow with several
partners in some repeats) is found, while one unlucky sample never is. A pair fault has nothing to
corroborate it, so its median must also stand out of the fabric's noise (a robust z-score of log rates, since
bandwidth noise is multiplicative, scaled with the number of pairs so that a healthy 512-node matrix raises no
false alarm).

Pure functions over numpy arrays: a 512-node x 8-rail matrix localises in well under the 5 s target
(``ci/bench_rails.py``).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Literal

import numpy as np

from bench.errors import UserError

DefectKind = Literal["link", "rail", "node", "pair"]
Symptom = Literal["slow", "flaky", "dead"]

EVIDENCE_LIMIT = 64
"""Pairs listed in one defect's evidence; a rail fault on 512 nodes has 130,816 slow pairs."""

NOISE_FALSE_ALARMS = 0.01
"""Expected pair faults raised by noise alone over a whole healthy matrix."""


@dataclass(frozen=True)
class PairSample:
    """One sendrecv measurement between two nodes on one rail."""

    node_a: str
    node_b: str
    rail: int
    busbw_Gbps: float
    repeat: int = 0


@dataclass(frozen=True)
class Thresholds:
    """When a pair measurement counts as slow."""

    pass_fraction: float = 0.9
    """A pair passes at this fraction of the rail's line rate (RDMA certification uses 90%)."""
    relative_fraction: float = 0.8
    """A pair is also slow below this fraction of its peers' healthy level, even when above the target."""

    def __post_init__(self) -> None:
        for name in ("pass_fraction", "relative_fraction"):
            value = getattr(self, name)
            if not 0.0 < value <= 1.0:
                raise UserError(f"{name} {value!r} must be in (0, 1]: e.g. 0.9 for 90% of the line rate")


@dataclass(frozen=True, eq=False)
class PairMatrix:
    """Every pair measurement as an array ``busbw[repeat, rail, a, b]`` (symmetric, NaN where unmeasured)."""

    nodes: tuple[str, ...]
    rails: tuple[int, ...]
    busbw: np.ndarray = field(repr=False)

    def __post_init__(self) -> None:
        shape = (len(self.rails), len(self.nodes), len(self.nodes))
        if self.busbw.ndim != 4 or self.busbw.shape[1:] != shape:
            raise ValueError(f"busbw has shape {self.busbw.shape}, expected (repeats, *{shape})")

    @classmethod
    def from_samples(
        cls, samples: Iterable[PairSample], nodes: Sequence[str] | None = None, rails: Sequence[int] | None = None
    ) -> PairMatrix:
        """Build the matrix; ``nodes``/``rails`` fix the order (default: sorted as seen)."""
        samples = list(samples)
        node_list = (
            list(nodes) if nodes is not None else sorted({s.node_a for s in samples} | {s.node_b for s in samples})
        )
        rail_list = list(rails) if rails is not None else sorted({s.rail for s in samples})
        node_index = {name: i for i, name in enumerate(node_list)}
        rail_index = {rail: i for i, rail in enumerate(rail_list)}
        repeats = 1 + max((s.repeat for s in samples), default=0)
        busbw = np.full((repeats, len(rail_list), len(node_list), len(node_list)), np.nan)
        for s in samples:
            if s.node_a not in node_index or s.node_b not in node_index or s.rail not in rail_index:
                raise UserError(f"pair {s.node_a}-{s.node_b} on rail {s.rail} is outside the run's nodes and rails")
            if s.node_a == s.node_b:
                raise UserError(f"pair {s.node_a}-{s.node_b} pairs a node with itself: pairs join two nodes")
            a, b, k = node_index[s.node_a], node_index[s.node_b], rail_index[s.rail]
            busbw[s.repeat, k, a, b] = busbw[s.repeat, k, b, a] = s.busbw_Gbps
        return cls(tuple(node_list), tuple(rail_list), busbw)


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
        }


@dataclass(frozen=True, eq=False)
class _Cells:
    """Per-cell statistics shared by every explanation (arrays indexed [rail, a, b])."""

    matrix: PairMatrix
    measured: np.ndarray
    slow_sample: np.ndarray  # [repeat, rail, a, b]
    slow: np.ndarray
    suspect: np.ndarray
    significant: np.ndarray
    """Cells whose median is further below the healthy level than the fabric's noise explains."""
    expected: np.ndarray  # per rail
    basis: Literal["line rate", "peers"]


def _line_rates(matrix: PairMatrix, line_rate_Gbps: float | Mapping[int, float] | None) -> np.ndarray | None:
    if line_rate_Gbps is None:
        return None
    if isinstance(line_rate_Gbps, Mapping):
        missing = [k for k in matrix.rails if k not in line_rate_Gbps]
        if missing:
            raise UserError(f"no line rate for rails {missing}: give every rail a rate, or none for a relative test")
        rates = np.array([float(line_rate_Gbps[k]) for k in matrix.rails])
    else:
        rates = np.full(len(matrix.rails), float(line_rate_Gbps))
    if (rates <= 0).any() or not np.isfinite(rates).all():
        raise UserError(f"line rates {rates.tolist()} must be positive Gb/s: fix the profile's rail_rate_gbps")
    return rates


def _cells(matrix: PairMatrix, line_rate_Gbps: float | Mapping[int, float] | None, thresholds: Thresholds) -> _Cells:
    rates = _line_rates(matrix, line_rate_Gbps)
    scale = np.ones(len(matrix.rails)) if rates is None else rates
    x = matrix.busbw
    measured = (~np.isnan(x)).any(axis=0)
    with warnings.catch_warnings():
        # The diagonal and unmeasured cells are NaN by design; their all-NaN slices are expected.
        warnings.simplefilter("ignore", RuntimeWarning)
        median = np.nanmedian(x, axis=0)
        normalised = median / scale[:, None, None]
        best = np.nanmax(normalised, axis=2)
    if not np.isfinite(best).any():
        raise UserError("the pair matrix holds no measurements: run with at least two nodes")
    # First guess of the healthy level: every healthy link has a fast partner, so the upper quartile of the
    # best-partner values is a healthy value even when a whole rail of two (half the links) is broken. The
    # best of many noisy partners overshoots by a few standard deviations, so the level and the noise are
    # then taken from the cells that are not far below that guess.
    guess = float(np.nanpercentile(best, 75))
    healthy = measured & (normalised >= thresholds.relative_fraction * guess)
    values = normalised[healthy]
    level = float(np.median(values))
    relative_cut = thresholds.relative_fraction * level * scale
    absolute_cut = np.zeros_like(scale) if rates is None else thresholds.pass_fraction * rates
    cut = np.maximum(relative_cut, absolute_cut)[:, None, None]
    slow_sample = x < cut  # NaN compares False
    slow = measured & (median < cut)
    suspect = slow_sample.any(axis=0)
    # A lone pair has no other measurement to corroborate it, so it must also stand out of the noise: below
    # the healthy level by more than z robust standard deviations, z chosen so that pure noise over this
    # many cells raises a false alarm with probability NOISE_FALSE_ALARMS.
    # Bandwidth noise is multiplicative (a busy CPU or a congested link halves a rate, it does not subtract a
    # constant), so the noise is measured on log rates: a pair 3x below the level is as unusual at 400 Gb/s
    # as at 4 Gb/s, and a wide healthy spread (0.9-15 Gb/s on busy veth) widens the band instead of turning
    # its low end into faults.
    # Over every measured cell, not only the ones above the relative cut: truncating the low tail would
    # shrink the spread and turn the healthy low end into faults. Median and MAD shrug off the broken cells
    # (up to half of them), and where they do not, the band only widens: fewer pair faults, never more.
    everything = normalised[measured]
    positive = everything[everything > 0]
    log_level = float(np.median(np.log(positive))) if positive.size else 0.0
    log_sigma = 1.4826 * float(np.median(np.abs(np.log(positive) - log_level))) if positive.size else 0.0
    cells = max(1, int(np.triu(measured, k=1).sum()))
    z = NormalDist().inv_cdf(1.0 - NOISE_FALSE_ALARMS / cells)
    noise_cut = (np.exp(log_level - z * log_sigma) * scale)[:, None, None]
    significant = slow & (median < noise_cut)
    expected = level * scale if rates is None else rates
    basis: Literal["line rate", "peers"] = "peers" if rates is None else "line rate"
    return _Cells(matrix, measured, slow_sample, slow, suspect, significant, expected, basis)


@dataclass(frozen=True)
class _Summary:
    measured: float
    symptom: Symptom
    slow_pairs: int
    pairs: int
    slow_samples: int
    samples: int
    spread: float
    evidence: tuple[str, ...]


def _summarise(cells: _Cells, k: np.ndarray, a: np.ndarray, b: np.ndarray) -> _Summary:
    """Statistics over the cells ``(k[i], a[i], b[i])``: every pair that tests one part."""
    keep = cells.measured[k, a, b]
    k, a, b = k[keep], a[keep], b[keep]
    values = cells.matrix.busbw[:, k, a, b]
    flags = cells.slow_sample[:, k, a, b]
    valid = ~np.isnan(values)
    v, f = values[valid], flags[valid]
    slow_values = v[f]
    share = len(slow_values) / max(1, len(v))
    symptom: Symptom = "slow" if share >= 0.5 else "flaky"
    if symptom == "slow" and len(v) and float(v.max()) <= 0.0:
        symptom = "dead"
    centre = float(np.median(v)) if len(v) else 0.0
    measured = float(np.median(slow_values)) if symptom == "flaky" and len(slow_values) else centre
    spread = float((v.max() - v.min()) / centre) if len(v) and centre > 0 else 0.0
    suspect = cells.suspect[k, a, b]
    nodes, rails = cells.matrix.nodes, cells.matrix.rails
    evidence = tuple(
        f"{nodes[min(x, y)]}-{nodes[max(x, y)]}/rail{rails[z]}"
        for z, x, y in zip(
            k[suspect][:EVIDENCE_LIMIT], a[suspect][:EVIDENCE_LIMIT], b[suspect][:EVIDENCE_LIMIT], strict=True
        )
    )
    return _Summary(measured, symptom, int(suspect.sum()), len(k), len(slow_values), len(v), spread, evidence)


def _device(devices: Mapping[tuple[str, int], str] | None, node: str, rail: int) -> str | None:
    return None if devices is None else devices.get((node, rail))


def _defect(
    cells: _Cells,
    kind: DefectKind,
    cell_index: tuple[np.ndarray, np.ndarray, np.ndarray],
    *,
    node: str | None,
    rail_pos: int | None,
    device: str | None,
    peer: str | None = None,
) -> Defect:
    s = _summarise(cells, *cell_index)
    expected = float(np.median(cells.expected)) if rail_pos is None else float(cells.expected[rail_pos])
    return Defect(
        kind=kind,
        node=node,
        rail=None if rail_pos is None else cells.matrix.rails[rail_pos],
        device=device,
        measured_Gbps=s.measured,
        expected_Gbps=expected,
        basis=cells.basis,
        symptom=s.symptom,
        slow_pairs=s.slow_pairs,
        pairs=s.pairs,
        slow_samples=s.slow_samples,
        samples=s.samples,
        spread=s.spread,
        evidence=s.evidence,
        peer=peer,
    )


def localise(
    matrix: PairMatrix,
    line_rate_Gbps: float | Mapping[int, float] | None,
    thresholds: Thresholds = Thresholds(),
    devices: Mapping[tuple[str, int], str] | None = None,
) -> tuple[Defect, ...]:
    """The smallest set of broken parts that explains every slow pair measurement.

    ``line_rate_Gbps`` is one rate for every rail, a rate per rail, or None where unknown (relative test
    only). ``devices`` maps ``(node, rail)`` to the HCA or interface name for the report.
    Returns rail faults, then node faults, then link faults, then pair faults.
    """
    cells = _cells(matrix, line_rate_Gbps, thresholds)
    n = len(matrix.nodes)
    measured, suspect = cells.measured, cells.suspect
    others = ~np.eye(n, dtype=bool)

    # Rail k: every measured pair on it is suspect.
    rail_fault = (suspect | ~measured).all(axis=(1, 2)) & measured.any(axis=(1, 2))
    # Link (a, k): every measured partner of a on rail k is suspect; a rail fault explains it already.
    link_candidate = (suspect | ~measured).all(axis=2) & measured.any(axis=2) & ~rail_fault[:, None]
    # Node a: a link candidate on every rail that no rail fault explains, and at least two of them.
    open_rails = ~rail_fault
    node_fault = (link_candidate | ~open_rails[:, None]).all(axis=0) & (open_rails.sum() >= 2)
    link_fault = link_candidate & ~node_fault[None, :]

    explained = np.zeros_like(suspect)
    explained[rail_fault] = True
    explained[:, node_fault, :] = True
    explained[:, :, node_fault] = True
    lk, la = np.nonzero(link_fault)
    explained[lk, la, :] = True
    explained[lk, :, la] = True

    defects: list[Defect] = []
    all_nodes = np.arange(n)
    for kpos in np.flatnonzero(rail_fault):
        a, b = np.nonzero(np.triu(others, k=1))
        rail = matrix.rails[kpos]
        names = {d for d in (_device(devices, node, rail) for node in matrix.nodes) if d}
        device = names.pop() if len(names) == 1 else None
        defects.append(_defect(cells, "rail", (np.full(len(a), kpos), a, b), node=None, rail_pos=kpos, device=device))
    for apos in np.flatnonzero(node_fault):
        k, b = np.nonzero(others[apos][None, :] & open_rails[:, None])
        node = matrix.nodes[apos]
        defects.append(_defect(cells, "node", (k, np.full(len(k), apos), b), node=node, rail_pos=None, device=None))
    for kpos, apos in zip(lk, la, strict=True):
        b = all_nodes[others[apos]]
        node, rail = matrix.nodes[apos], matrix.rails[kpos]
        defects.append(
            _defect(
                cells, "link", (np.full(len(b), kpos), np.full(len(b), apos), b),
                node=node, rail_pos=int(kpos), device=_device(devices, node, rail),
            )
        )  # fmt: skip
    # What is left: slow pairs (by their median, beyond the noise) that no larger part explains.
    pk, pa, pb = np.nonzero(np.triu(cells.significant & ~explained, k=1))
    for kpos, apos, bpos in zip(pk, pa, pb, strict=True):
        node, peer, rail = matrix.nodes[apos], matrix.nodes[bpos], matrix.rails[kpos]
        defects.append(
            _defect(
                cells, "pair", (np.array([kpos]), np.array([apos]), np.array([bpos])),
                node=node, rail_pos=int(kpos), device=_device(devices, node, rail), peer=peer,
            )
        )  # fmt: skip
    return tuple(defects)


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
    rate = f"{_gbps(defect.measured_Gbps)} Gb/s = {percent:.0f}% {of} {_gbps(defect.expected_Gbps)} Gb/s"
    if defect.symptom == "flaky":
        found = f"slow in {defect.slow_samples}/{defect.samples} samples, spread {100 * defect.spread:.0f}%"
    elif defect.symptom == "dead":
        # Nothing moved, so there is no rate to compare.
        return f"{where}: no traffic in {defect.slow_pairs}/{defect.pairs} pairs → {defect.kind} dead"
    else:
        found = f"in {defect.slow_pairs}/{defect.pairs} pairs"
    verdict = {"slow": "fault", "dead": "dead", "flaky": "flaky"}[defect.symptom]
    return f"{where}: {rate} {found} → {defect.kind} {verdict}"


def _gbps(value: float) -> str:
    """Three significant figures: 212, 21.2, 0.291."""
    if value >= 100:
        return f"{value:.0f}"
    return f"{value:.3g}"
