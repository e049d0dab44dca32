"""The judged matrix (which samples are slow, which suspects reproduced) and the records built from it.

``bench.rails.diagnosis.localise`` decides which parts are broken; this module holds the per-cell facts it decides
from and turns a set of cells into a :class:`NamedPart` (a defect before its conviction,
``bench.rails.diagnosis.corroborate``) or a ``Transient`` (rails.json's own record, ``bench.rundir.rails_records``) with
every sample listed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

import numpy as np

from bench.codec import ABSENT, Absent
from bench.rails.diagnosis.defects import EVIDENCE_LIMIT, Symptom
from bench.rails.diagnosis.expected import Expected
from bench.rails.diagnosis.matrix import PairMatrix
from bench.rails.diagnosis.noise import FALSE_ALARMS
from bench.rails.diagnosis.remeasured import CellIndex
from bench.rundir.named_parts import Conviction, NamedPart
from bench.rundir.rails_records import Transient


@dataclass(frozen=True)
class Place:
    """Where a part sits in the cabling, where it is known: its switches, the ports to check and its unit
    (``RailDefect.switches``, ``ports``, ``unit``); none without a topology."""

    switches: tuple[str, ...] = ()
    ports: tuple[str, ...] = ()
    unit: str | None = None


NOWHERE = Place()
"""A part placed in no cabling: a run without a topology, or a node, a pair, a link no cabling holds."""


@dataclass(frozen=True, eq=False)
class Cells:
    """Per-sample and per-cell judgements (cell arrays are indexed ``[rail, a, b]``)."""

    matrix: PairMatrix
    measured: np.ndarray
    slow_sample: np.ndarray
    """``[repeat, rail, a, b]``: the matrix sample is slow."""
    slow_again: np.ndarray
    """``[pass, rail, a, b]``: the re-measurement is slow."""
    beyond_noise: np.ndarray
    """``[repeat, rail, a, b]``: the matrix sample is significantly below the healthy level (target aside)."""
    cell_median: np.ndarray
    """Median log rate of each cell over repeats."""
    slow_rail: np.ndarray
    """Per rail: significantly slower than the other rails (relative test only)."""
    expected: np.ndarray
    """Per rail: the line rate, or the healthy level where the line rate is unknown."""
    basis: Literal["line rate", "peers"]
    too_noisy: str | None
    load: Expected | None = None
    """The pairs' expected fractions, where the run showed the uplinks' taper binding (``expected.judged_rates``):
    samples are then judged over them; None: every pair at its links' rate."""
    round_of: np.ndarray | None = None
    """``[repeat, a, b]``: the round each matrix sample ran in (-1: none), where the schedule is known."""
    quiet: np.ndarray | None = None
    """``[rail, a, b]``: the cells the quiet pass re-measured (``PairMatrix.quiet``); None where it did not run."""
    held_quiet: np.ndarray | None = None
    """``[rail, a, b]``: of those measured alone again and low in every sample, how many samples (0: not so;
    ``bench.rails.diagnosis.alone.held_low``)."""
    clear_quiet: np.ndarray | None = None
    """``[rail, a, b]``: of those, the ones whose best sample alone read at or above the rail's mark, as its flows
    within units do (``bench.rails.diagnosis.alone.held_low_and_clear``); None where the cabling is not known."""

    @property
    def remeasured(self) -> bool:
        """Confirmation ran (there is at least one pass of re-measurements)."""
        return self.slow_again.shape[0] > 0

    @cached_property
    def links(self) -> int:
        """How many links the run judges (those with a cell measured, at least 1): the family a test over links is
        family-wise over."""
        return max(1, int(self.measured.any(axis=2).sum()))

    @cached_property
    def suspect(self) -> np.ndarray:
        return self.slow_sample.any(axis=0) & self.measured

    @cached_property
    def reproduces(self) -> np.ndarray:
        """Suspects slow again in at least one re-measurement (every suspect, without confirmation)."""
        return self.suspect & (self.slow_again.any(axis=0) if self.remeasured else True)

    @cached_property
    def reproduces_always(self) -> np.ndarray:
        """Suspects slow in every sample and every re-measurement, each slower than the slowest sample this
        run's noise gave (its transients'): the stronger evidence, which noise gives at p^passes a suspect
        where "at least once" is 1 - (1 - p)^passes. The depth keeps out what congestion under static routing
        does: a collision re-measured beside the same partners slows the same cells again, to the depths this
        run's own noise reaches (every suspect, without confirmation)."""
        if not self.remeasured:
            return self.suspect
        # Read at the suspects alone (every cell it can hold, and every sample noise gave: a transient is a
        # suspect), not over the whole matrix: a 1024-node matrix has 8 million cells and 100,000 suspects.
        k, a, b = np.nonzero(self.suspect)
        per_rail = self.expected[k]
        raw = self.matrix.busbw[:, k, a, b]
        unmeasured = np.isnan(raw)
        busbw, confirm = raw / per_rail, self.matrix.again.at(k, a, b) / per_rail
        if self.load is not None:  # each sample over what its round could carry
            share, _ = self.load.fractions(self.matrix.busbw.shape[0], 0)
            busbw, confirm = busbw / share[:, k, a, b], confirm / self.load.again_at(confirm.shape[0], k, a, b)
        first = np.where(unmeasured, -np.inf, busbw)
        again = np.nan_to_num(confirm, nan=np.inf)  # a pass that missed it: no
        slow_sample = self.slow_sample[:, k, a, b]
        transient = ~self.reproduces[k, a, b]
        noise = np.where(slow_sample & transient, first, np.inf)
        floor = float(noise.min(initial=np.inf))  # the slowest sample noise gave; none: any depth counts
        shallowest = np.maximum(first.max(axis=0, initial=-np.inf), again.max(axis=0, initial=-np.inf))
        out = np.zeros(self.suspect.shape, dtype=bool)
        out[k, a, b] = self.slow_every_time(k, a, b) & (shallowest < floor)
        return out

    def slow_every_time(self, k: int | np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """The cells ``(k[i], a[i], b[i])`` (``k``: one rail for all, or each cell's): slow in every matrix sample
        that ran and in every re-measurement, at any depth. The sign of a flow that kept its path and its company for
        the run (ECMP's hash, static routing), where :attr:`reproduces_always` also asks each to be deeper than the
        run's transients: under ECMP's collisions those reach a quarter of line, so a leaf's collided flows, slow at a
        third of line in all three samples, were "always" slow in 8 of 95 (``tapered-ecmp`` at 256 x 8, clean run
        96002)."""
        unmeasured = np.isnan(self.matrix.busbw[:, k, a, b])
        every = (self.slow_sample[:, k, a, b] | unmeasured).all(axis=0)
        return every & self.slow_again[:, k, a, b].all(axis=0)

    @cached_property
    def pair_slow(self) -> np.ndarray:
        """Suspects that reproduced and are slow in most of their samples, re-measurements included.

        Without re-measurements a lone pair has nothing to corroborate it, so most of its samples must also
        stand out of the fabric's noise: a pair a hair under the target is noise around the target."""
        # Counted at the reproduced suspects alone, the only cells it can hold: matrix-sized counts were 67 MB each
        # at 1024 x 8.
        k, a, b = np.nonzero(self.reproduces)
        slow = self.slow_sample[:, k, a, b].sum(axis=0) + self.slow_again[:, k, a, b].sum(axis=0)
        samples = (~np.isnan(self.matrix.busbw[:, k, a, b])).sum(axis=0)
        samples += (~np.isnan(self.matrix.again.at(k, a, b))).sum(axis=0)
        keep = 2 * slow > samples
        if not self.remeasured:
            keep &= 2 * self.beyond_noise[:, k, a, b].sum(axis=0) > samples
        out = np.zeros(self.reproduces.shape, dtype=bool)
        out[k[keep], a[keep], b[keep]] = True
        return out

    def without(self, mask: np.ndarray) -> Cells:
        """The same judgement with the cells in ``mask`` (``[rail, a, b]``) set aside: a larger part explains
        them, so nothing smaller is judged on them. Itself where ``mask`` holds no cell: the same arrays, and the
        per-cell judgements already made of them (at 1024 x 8 each copy was 60 MB and a second of judging again)."""
        if not mask.any():
            return self
        keep = ~mask
        return dataclasses.replace(
            self,
            measured=self.measured & keep,
            slow_sample=self.slow_sample & keep,
            slow_again=self.slow_again & keep,
            beyond_noise=self.beyond_noise & keep,
            quiet=None if self.quiet is None else self.quiet & keep,
            held_quiet=None if self.held_quiet is None else np.where(keep, self.held_quiet, 0).astype(np.uint8),
            clear_quiet=None if self.clear_quiet is None else self.clear_quiet & keep,
        )

    @cached_property
    def noise_rate(self) -> float:
        """The chance that one matrix sample of a healthy cell is slow: the slow samples of the suspects that
        re-measured normal (noise, by their own re-measurement) over every matrix sample, plus the screen's
        family-wise share (``noise.FALSE_ALARMS``), so a matrix with no transient still has a rate."""
        return self.noise_rate_in(np.ones(self.measured.shape, dtype=bool))

    def noise_rate_in(self, region: np.ndarray) -> float:
        """:attr:`noise_rate` over the cells of ``region`` (``[rail, a, b]``) alone. Congestion slows cells
        between units (flows share uplinks there) and never cells within one leaf, so a part is judged against
        the noise of its own class of cells: the cross-unit rate would hide a flaky cable inside a unit, the
        fabric-wide rate would convict an uplink of congestion."""
        upper = np.triu(np.ones(self.measured.shape[1:], dtype=bool), k=1)[None] & region
        samples = int((~np.isnan(self.matrix.busbw) & upper).sum())
        transient = self.suspect & ~self.reproduces & upper if self.remeasured else np.zeros_like(self.suspect)
        slow = int(self.slow_sample[:, transient].sum())
        return min(1.0, (slow + FALSE_ALARMS) / max(1, samples))

    @property
    def reproduced_by_noise(self) -> float:
        """The chance that a healthy cell is a suspect *and* reproduces: what noise gives per cell."""
        return self._reproduced(self.noise_rate)

    def reproduced_by_noise_in(self, region: np.ndarray) -> float:
        """:attr:`reproduced_by_noise` from the noise of ``region``'s cells alone (:meth:`noise_rate_in`)."""
        return self._reproduced(self.noise_rate_in(region))

    @property
    def reproduced_always_by_noise(self) -> float | None:
        """The chance that a healthy cell is a suspect and slow in every re-measurement (None without
        re-measurements, where it is :attr:`reproduced_by_noise`)."""
        return self._reproduced(self.noise_rate, every_pass=True) if self.remeasured else None

    def reproduced_always_by_noise_in(self, region: np.ndarray) -> float | None:
        """:attr:`reproduced_always_by_noise` from the noise of ``region``'s cells alone."""
        return self._reproduced(self.noise_rate_in(region), every_pass=True) if self.remeasured else None

    def _reproduced(self, p: float, *, every_pass: bool = False) -> float:
        suspect = 1.0 - (1.0 - p) ** self.slow_sample.shape[0]
        passes = self.slow_again.shape[0]
        if not self.remeasured:
            return suspect
        return suspect * (p**passes if every_pass else 1.0 - (1.0 - p) ** passes)

    def confirmed(self, k: np.ndarray, a: np.ndarray, b: np.ndarray) -> bool:
        """At least half of these cells' suspects reproduced (and there is at least one suspect)."""
        suspects = self.suspect[k, a, b]
        count = int(suspects.sum())
        return count > 0 and 2 * int(self.reproduces[k, a, b][suspects].sum()) >= count


def _cell_name(matrix: PairMatrix, k: int, a: int, b: int) -> str:
    nodes = matrix.nodes
    return f"{nodes[min(a, b)]}-{nodes[max(a, b)]}/rail{matrix.rails[k]}"


def _finite(values: np.ndarray) -> tuple[float, ...]:
    return tuple(float(v) for v in values if not np.isnan(v))


def summary_defect(
    cells: Cells,
    kind: str,
    index: CellIndex,
    *,
    node: str | None,
    rail_pos: int | None,
    device: str | None,
    peer: str | None = None,
    place: Place = NOWHERE,
    only_pair: bool | Absent = ABSENT,
) -> NamedPart:
    """The part on the cells ``index`` (every pair that tests one part): its rate, symptom and samples. The
    part is whole when named: its ``kind``, and where the cabling is known its switches, ports and unit
    (``place``); ``only_pair`` for a pair that is its rail's only one (``RailDefect.only_pair``)."""
    k, a, b = index
    keep = cells.measured[k, a, b]
    k, a, b = k[keep], a[keep], b[keep]
    matrix = cells.matrix
    values = np.concatenate([matrix.busbw[:, k, a, b], matrix.again.at(k, a, b)])
    flags = np.concatenate([cells.slow_sample[:, k, a, b], cells.slow_again[:, k, a, b]])
    valid = ~np.isnan(values)
    v, f = values[valid], flags[valid]
    slow_values = v[f]
    share = len(slow_values) / max(1, len(v))
    symptom: Symptom = "slow" if share >= 0.5 else "flaky"
    if symptom == "slow" and len(v) and float(v.max()) <= 0.0:
        symptom = "dead"
    centre = float(np.median(v)) if len(v) else 0.0
    # The rate a slow part is convicted at is the one at least half of its samples reach no higher than: the
    # lower median. With exactly half its samples slow the plain median averages its fastest slow sample with
    # its slowest normal one and can print a part at its peers' level beside a "fault" (issue 43).
    convicted = float(np.sort(v)[(len(v) - 1) // 2]) if len(v) else 0.0
    suspect = cells.suspect[k, a, b]
    listed = list(zip(k[suspect], a[suspect], b[suspect], strict=True))[:EVIDENCE_LIMIT]
    conviction = Conviction(
        measured_Gbps=float(np.median(slow_values)) if symptom == "flaky" and len(slow_values) else convicted,
        expected_Gbps=float(np.median(cells.expected)) if rail_pos is None else float(cells.expected[rail_pos]),
        basis=cells.basis,
        symptom=symptom,
        slow_pairs=int(suspect.sum()),
        pairs=len(k),
        slow_samples=len(slow_values),
        samples=len(v),
        spread=float((v.max() - v.min()) / centre) if len(v) and centre > 0 else 0.0,
        evidence=tuple(_cell_name(matrix, int(z), int(x), int(y)) for z, x, y in listed),
    )
    return NamedPart(
        kind=kind,
        node=node,
        rail=None if rail_pos is None else matrix.rails[rail_pos],
        device=device,
        conviction=conviction,
        peer=peer,
        switches=place.switches,
        ports=place.ports,
        unit=place.unit,
        only_pair=only_pair,
        samples_Gbps={
            name: _finite(np.concatenate([matrix.busbw[:, z, x, y], matrix.again.at(z, x, y)]))
            for name, (z, x, y) in zip(conviction.evidence, listed, strict=True)
        },
    )


def transients(cells: Cells, mask: np.ndarray) -> tuple[Transient, ...]:
    """The suspects in ``mask`` that no named part explains, with their samples (after confirmation only)."""
    if not cells.remeasured:
        return ()
    matrix = cells.matrix
    k, a, b = np.nonzero(np.triu(mask, k=1))
    # Every transient's samples in one gather, as Python floats (a large matrix has a hundred thousand of them).
    samples = matrix.busbw[:, k, a, b].T.tolist()
    confirm = matrix.again.at(k, a, b).T.tolist()
    return tuple(
        Transient(
            node=matrix.nodes[x],
            peer=matrix.nodes[y],
            rail=matrix.rails[z],
            samples_Gbps=tuple(v for v in first if v == v),  # NaN (unmeasured) is the one value unequal to itself
            confirm_Gbps=tuple(v for v in again if v == v),
        )
        for z, x, y, first, again in zip(k.tolist(), a.tolist(), b.tolist(), samples, confirm, strict=True)
    )
