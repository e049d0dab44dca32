"""Name the broken part from the node x node x rail matrix of pair bandwidths.

A sendrecv between node a and node b on rail k runs at the speed of the slower of a's link on rail k, b's
link on rail k and rail k's switch. So a slow measurement has a small set of possible explanations, and
the smallest one that every slow measurement agrees with is the answer:

* ``rail``: every pair on rail k is slow, and rail k is significantly slower than the other rails;
* ``node``: node a is slow with every partner on every rail (two or more rails) -> the node;
* ``link``: node a is slow with every partner on rail k only -> a's HCA, cable or port on rail k;
* ``pair``: one pair is slow and nothing larger explains it -> one cable between two leaves.

A rail on which only two nodes were measured (a 2-node cluster, or a rail left with two live nodes) has one
pair, and a slow pair there is slow with every partner of both ends and is every pair of the rail: its
rail, either end's link and the cable between explain it alike. It is named as the ``pair``, never a rail or
one end's link, which one pair cannot tell (``defects_by_part.pair_defects`` says so).

A sample is slow when it is below the absolute target (line rate x pass fraction, where the line rate is
known), when its time budget ran out, or when it is significantly below the fabric's healthy level given
the fabric's own spread and the number of samples tested (``bench.rails.diagnosis.noise``) *and* below
``relative_fraction`` x that level (a real, not merely detectable, difference). When the healthy spread is
too wide for any part to stand out, the relative test names nothing and says so.

A cell (pair, rail) is *suspect* when any of its matrix samples is slow. Every suspect is re-measured
(``confirm`` passes of the matrix, ``PairMatrix.confirm``); it *reproduces* when at least one
re-measurement is slow again. A part is named only when at least half of its suspect cells reproduce, a
pair only when it also is slow in most of its samples; a suspect that no named part explains is a
``transient``: recorded with its samples, not a fault. Without re-measurements (confirmation off) a lone
pair must be slow by its median over repeats instead.

Pure functions over numpy arrays: a 512-node x 8-rail matrix localises in well under the 5 s target
(``ci/bench_rails.py``).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from bench.exits import UserError
from bench.rails.diagnosis import (
    alone,
    blocks,
    defects_by_part,
    leaves,
    line,
    link_faults,
    lone_pairs,
    noise,
    persistence,
    switches,
)
from bench.rails.diagnosis.cells import Cells, transients
from bench.rails.diagnosis.defects import EVIDENCE_LIMIT, Symptom
from bench.rails.diagnosis.expected import Expected, judged_rates, showing
from bench.rails.diagnosis.matrix import PairMatrix, PairSample
from bench.rails.diagnosis.remeasured import CellIndex
from bench.rails.plan.fabric_map import FabricMap
from bench.rundir.named_parts import NamedPart
from bench.rundir.rails_records import Transient

__all__ = [
    "EVIDENCE_LIMIT",
    "Diagnosis",
    "PairMatrix",
    "PairSample",
    "Symptom",
    "Thresholds",
    "diagnose",
    "localise",
    "suspect_samples",
]


@dataclass(frozen=True)
class Thresholds:
    """When a pair measurement counts as slow."""

    pass_fraction: float = 0.9
    """A pair passes at this fraction of the rail's line rate (RDMA certification uses 90%)."""
    relative_fraction: float = 0.8
    """A pair is also slow below this fraction of its peers' healthy level, when significantly so."""

    def __post_init__(self) -> None:
        for name in ("pass_fraction", "relative_fraction"):
            value = getattr(self, name)
            if not 0.0 < value <= 1.0:
                raise UserError(f"{name} {value!r} must be in (0, 1]: e.g. 0.9 for 90% of the line rate")


@dataclass(frozen=True)
class Diagnosis:
    """What localisation concluded."""

    defects: tuple[NamedPart, ...]
    """Rail faults, then node, link and pair faults."""
    transients: tuple[Transient, ...] = ()
    """Suspects that did not reproduce when re-measured."""
    too_noisy: str | None = None
    """``fabric too noisy to localise: healthy pairs spread 5.3-19.5 Gb/s`` when the relative test gave up."""
    level_Gbps: dict[int, float] = field(default_factory=dict)
    """The healthy level each rail was judged against."""
    capacity: str | None = None
    """The fabric's taper where the run showed it binding, as the certificate says it
    (``bench.rails.diagnosis.expected.Expected.said``)."""


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


def _slow_rails(x: np.ndarray, cell_median: np.ndarray, measured: np.ndarray, effect: float) -> np.ndarray:
    """Rails whose median is significantly (and by more than ``effect`` in log) below the other rails'."""
    rails = len(cell_median)
    out = np.zeros(rails, dtype=bool)
    if rails < 2:
        return out
    levels = noise.rail_levels(cell_median, measured)
    counts = measured.sum(axis=(1, 2))
    sigma = float(np.median([noise.upper_sigma(x[:, k][:, measured[k]], levels[k]) for k in range(rails)]))
    z = noise.bonferroni_z(rails)
    for k in range(rails):
        others = np.delete(np.arange(rails), k)
        reference = float(np.median(levels[others]))
        # The standard error of a median is about 1.2533 sigma / sqrt(n).
        se = 1.2533 * sigma * math.sqrt(1 / max(1, counts[k]) + 1 / max(1, counts[others].sum()))
        out[k] = levels[k] < reference - z * se and levels[k] < reference + effect
    return out


def _too_noisy(healthy: np.ndarray, sigma: float, tests: int, scale: np.ndarray) -> str | None:
    """What the relative test says when the healthy cells spread too wide for any part to stand out."""
    if not noise.too_noisy(sigma, tests):
        return None
    usable = np.exp(healthy[np.isfinite(healthy)]) * float(np.median(scale))
    low, high = (float(usable.min()), float(usable.max())) if usable.size else (0.0, 0.0)
    return f"fabric too noisy to localise: healthy pairs spread {low:.3g}-{high:.3g} Gb/s"


def _alone(matrix: PairMatrix) -> str:
    """Why the relative test judges nothing when one pair was measured in all (2 nodes on one rail, or on two
    with the other rail dead): its only yardstick would be that pair itself."""
    k, a, b = (int(i[0]) for i in np.nonzero(~np.isnan(matrix.busbw).all(axis=0)))
    return (
        f"one pair measured ({matrix.nodes[a]}-{matrix.nodes[b]} rail {matrix.rails[k]}): the relative test has no "
        "other pair to compare it with"
    )


def _judge(
    matrix: PairMatrix,
    rates: np.ndarray | None,
    thresholds: Thresholds,
    between: np.ndarray | None = None,
    load: Expected | None = None,
) -> Cells:
    """Slow samples, suspects and re-measurements: everything the explanations below are built from.

    ``between`` (``[rail, a, b]``, where the cabling is known) marks the cells whose flows cross units; ``load``
    (where the schedule and cabling are known) each sample's round and expected fraction: where the run shows
    the uplinks' taper binding, every sample is judged over its fraction (``expected.judged_rates``)."""
    scale = np.ones(len(matrix.rails)) if rates is None else rates
    per_rail = scale[None, :, None, None]
    values, again = matrix.busbw, matrix.again
    # The re-measurements at their cells (``[pass, i]``): at 1024 x 8 a dense plane of them is 67 MB a pass.
    at = again.cells
    x, x_again = noise.log_rates(values, per_rail), noise.log_rates(again.values, scale[again.rail][None])
    x, x_again, routed = judged_rates(load, x, x_again, at, between)
    measured = (~np.isnan(values)).any(axis=0)
    if not measured.any():
        raise UserError("the pair matrix holds no measurements: run with at least two nodes")
    with warnings.catch_warnings():
        # The diagonal and unmeasured cells are NaN by design; their all-NaN slices are expected.
        warnings.simplefilter("ignore", RuntimeWarning)
        # One repeat is its own median (numpy's nanmedian over a length-1 axis takes seconds at 256 x 8), read in
        # place: nothing below writes to x, and a copy is one more matrix-sized array (67 MB at 1024 x 8).
        cell_median = x[0] if x.shape[0] == 1 else np.nanmedian(x, axis=0)
    cell_median.setflags(write=False)
    effect = math.log(thresholds.relative_fraction)
    slow_rail = _slow_rails(x, cell_median, measured, effect) if rates is None else np.zeros(len(scale), bool)
    # Every rail but the slow ones; a view where none is slow (a mask would copy the matrix, to no end).
    ok = ~slow_rail if slow_rail.any() else slice(None)
    good = noise.healthy_cells(cell_median[ok], measured[ok])
    healthy = x[:, ok][:, good]
    level, sigma = noise.level_and_sigma(healthy)
    tests = int((~np.isnan(values)).sum()) // 2
    noisy = _too_noisy(healthy, sigma, tests, scale) if rates is not None or measured.sum() > 2 else _alone(matrix)
    judged_level: noise.Level = level
    judged_sigma: noise.Level = sigma
    if between is not None:
        # Each cell against its own class's noise: the flows between units spread wider (noise.within_units).
        inside = ~between
        judged_level, judged_sigma = noise.within_units(x[:, ok][:, good & inside[ok]], inside, level, sigma)

    def holm(reference: noise.Level, xs: np.ndarray, alpha: float, cells: CellIndex | None) -> np.ndarray:
        # Each pair once (the matrix holds it twice, as [a, b] and [b, a]), then mirrored; the re-measurements are
        # held once, at their cells.
        if cells is None:
            return noise.holm_below(reference, xs, judged_sigma, alpha)
        return noise.holm_below_cells(reference, xs, cells, judged_sigma, alpha)

    def beyond_noise(xs: np.ndarray, alpha: float = noise.FALSE_ALARMS, cells: CellIndex | None = None) -> np.ndarray:
        # +inf where nothing moved.
        hits = holm(judged_level, xs, alpha, cells)
        return hits & noise.below(xs, judged_level, effect, cells) & (noisy is None)

    mark = math.log(thresholds.pass_fraction)
    low_cell = line.low_cells(cell_median, showing(measured, values, routed), between, mark, (at, x_again))

    def under_line(xs: np.ndarray, cells: CellIndex | None) -> np.ndarray:
        low = low_cell if cells is None else low_cell[cells]
        return (xs < mark) & (holm(mark, xs, noise.FALSE_ALARMS, cells) | low)

    def slow(raw: np.ndarray, xs: np.ndarray, stopped: np.ndarray, cells: CellIndex | None = None) -> np.ndarray:
        relative = beyond_noise(xs, cells=cells)
        below_target = np.zeros(raw.shape, bool) if rates is None else under_line(xs, cells)
        # A cell that ran out of its budget is slow by its rate over what fitted, under its peers' level as the
        # relative test marks it: on a loaded host every cell may run long, and one at its peers' level is
        # no fault whatever its clock said (a link at 1% of its rate, the budget's reason, is far below).
        stalled = stopped & noise.below(xs, judged_level, effect, cells)
        return (relative | below_target | stalled | (raw <= 0)) & ~np.isnan(raw)

    slow_sample = slow(values, x, matrix.stopped_flags)
    slow_again = again.spread(slow(again.values, x_again, again.stopped, at))
    quiet = held_quiet = clear_quiet = None
    if matrix.alone is not None:
        # One flow per leaf between units: nothing shares its uplinks, so its samples are read against the rail's
        # own flows within units (bench.rails.diagnosis.alone), not the spread of the matrix's flows between them.
        quiet = matrix.alone.spread(~np.isnan(matrix.alone.first))
        if between is not None:
            held_quiet, clear_quiet = alone.held_low_and_clear(matrix, measured & ~between)
    expected = np.exp(level) * scale if rates is None else rates
    basis: Literal["line rate", "peers"] = "peers" if rates is None else "line rate"
    return Cells(
        matrix,
        measured,
        slow_sample,
        slow_again,
        beyond_noise(x, noise.LONE_FALSE_ALARMS) | (values <= 0),
        cell_median,
        slow_rail,
        expected,
        basis,
        noisy,
        routed,
        None if load is None else load.round_of,
        quiet,
        held_quiet,
        clear_quiet,
    )


def diagnose(
    matrix: PairMatrix,
    line_rate_Gbps: float | Mapping[int, float] | None,
    thresholds: Thresholds = Thresholds(),
    devices: Mapping[tuple[str, int], str] | None = None,
    fabric: FabricMap | None = None,
    load: Expected | None = None,
) -> Diagnosis:
    """The smallest set of broken parts that explains every reproducible slow pair measurement.

    ``line_rate_Gbps`` is one rate for every rail, a rate per rail, or None where unknown (relative test
    only). ``devices`` maps ``(node, rail)`` to the HCA or interface name for the report. ``fabric`` places
    the nodes on the fabric's leaves and spines (``rails --topology``): then a link is a ``cable`` with its leaf
    port, and leaves, uplinks and spines are named too (``bench.rails.diagnosis.switches``); without it, nothing about
    the switches is guessed. ``load``: each sample's round and what the fabric could carry in it
    (``bench.rails.diagnosis.expected``), where the schedule is known.
    """
    rates = _line_rates(matrix, line_rate_Gbps)
    between = leaves.between_units(fabric, matrix) if fabric is not None else None
    all_cells = cells = _judge(matrix, rates, thresholds, between, load)
    crossing = None if between is None else _between_noise(cells, between)
    null = _noise_null(cells, between, crossing)
    one_pair = _one_pair_rails(cells.measured)
    leaf = leaves.leaf_index(fabric, matrix) if fabric is not None else None
    rail_fault, rail_cells = _rail_faults(cells, rates, one_pair, leaf)
    found_switches: list[leaves.SwitchFault] = []
    said = None if cells.load is None else cells.load.said()
    if fabric is None:
        # Without the cabling, a slowdown between groups of nodes on every rail alike is observed, not judged.
        block, said = blocks.between_groups(cells, rail_fault)
        cells = cells.without(block)
    if fabric is not None:
        # A leaf explains every cell of its nodes on its rail; nothing smaller is judged on them.
        found_switches = leaves.leaf_faults(cells, fabric, rail_fault)
        cells = cells.without(leaves.explained(found_switches, cells.suspect.shape))
    link_candidate = link_faults.link_candidates(cells, rail_fault | one_pair, leaf)
    if fabric is not None:
        # Between units, what no slow cable explains: an uplink's or a spine's flows.
        paths = switches.path_faults(
            cells.without(link_faults.link_cells(link_candidate)),
            fabric,
            rail_fault,
            all_cells.reproduced_by_noise,
            all_cells.reproduced_always_by_noise,
            crossing,
        )
        found_switches += paths.faults
        cells = cells.without(leaves.explained(paths.faults, cells.suspect.shape))
        if paths.crowded is not None:
            # Slow only beside other flows between units: the fabric's load, said once, judged as no part.
            cells = cells.without(paths.crowded)
            said = paths.said if said is None else f"{said}; {paths.said}"
    link_faults.intermittent_links(cells, link_candidate, rail_fault, null, between)
    node_fault, link_fault = link_faults.node_faults(cells, link_candidate, rail_fault, one_pair)
    explained = rail_fault[:, None, None] | node_fault[None, :, None] | node_fault[None, None, :]
    explained = explained | link_faults.link_cells(link_fault)
    lone, shared = _lone_pairs(cells, explained, between)
    if shared.any():
        link_fault |= shared
        explained |= link_faults.link_cells(link_fault)
        lone &= ~explained
    # Each lone pair is named, so it is no transient.
    upper = np.triu(lone, k=1)
    explained |= upper | np.swapaxes(upper, -1, -2)

    defects = [
        *defects_by_part.rail_defects(matrix, all_cells, rail_fault, rail_cells, devices, fabric),
        *defects_by_part.switch_defects(all_cells, found_switches),
        *defects_by_part.node_defects(matrix, cells, node_fault, ~rail_fault),
        *defects_by_part.link_defects(matrix, cells, link_fault, devices, fabric),
        *defects_by_part.pair_defects(matrix, cells, lone, devices, one_pair),
    ]
    level = {rail: float(cells.expected[i]) for i, rail in enumerate(matrix.rails)}
    return Diagnosis(tuple(defects), transients(cells, cells.suspect & ~explained), cells.too_noisy, level, said)


def _noise_null(
    cells: Cells, between: np.ndarray | None, crossing: tuple[float, float | None] | None
) -> Callable[[int, int], np.ndarray]:
    """Row ``[a, :]`` of rail k's ``[rail, a, b]``: what noise alone reproduces, the yardstick of every part
    convicted by reproduced suspects. Per class of cells where the cabling is known: congestion reproduces between
    units, never within a leaf (``crossing``: :func:`_between_noise`, computed once for this and the uplinks). A
    row at a time: the whole array is two numbers spread over the matrix's size."""
    if between is None or crossing is None:
        rate = cells.reproduced_by_noise
        return lambda k, a: np.full(cells.measured.shape[2], rate)
    # Between units, no less than the matrix shows: congestion that stays with the same flows (ECMP's collisions,
    # a fixed hash for the run) reproduces far more often than independent noise would, and where no verdict set
    # it aside as load (a leaf broken beside it), links with a few collided partners each stood out of the model's
    # rate (the fabric model's ecmp seed 1000038 at 1024 x 8: 337 healthy cables).
    # The link's own cells are left out, so the link under test cannot raise its own yardstick (on a testbed of
    # four nodes a flaky link holds half the cells between units).
    region = cells.measured & between
    reproduced = (cells.reproduces & region).sum(axis=2)
    crossed = region.sum(axis=2)
    inside = cells.reproduced_by_noise_in(~between)
    all_reproduced, all_crossed = int(reproduced.sum()), int(crossed.sum())

    def null(k: int, a: int) -> np.ndarray:
        others = all_crossed - int(crossed[k, a])
        seen = float(all_reproduced - int(reproduced[k, a])) / others if others else 0.0
        return np.where(between[k, a], max(crossing[0], seen), inside)

    return null


def _between_noise(cells: Cells, between: np.ndarray) -> tuple[float, float | None]:
    """What noise gives a cell between units, by the run's own transients there: an uplink's yardstick
    (``switches.path_faults``), as the noise of its own class is a link's (:func:`_noise_null`)."""
    return cells.reproduced_by_noise_in(between), cells.reproduced_always_by_noise_in(between)


def _one_pair_rails(measured: np.ndarray) -> np.ndarray:
    """``[rail]``: the rails on which exactly two nodes were measured, one pair (see the module's docstring)."""
    return np.asarray(measured.any(axis=2).sum(axis=1) == 2)


def _rail_faults(
    cells: Cells, rates: np.ndarray | None, one_pair: np.ndarray, leaf: np.ndarray | None
) -> tuple[np.ndarray, list[CellIndex]]:
    """``[rail]``: the faulty rails, and each rail's cells (every pair once). Rail k is faulty when every
    measured pair on it is suspect (and, judged against peers, the rail as a whole is slow), confirmed, and
    its reproducing suspects do not all meet at one node, nor, where the cabling places the nodes (``leaf``:
    ``[rail, node]``, ``leaves.leaf_index``), all lie between units or all touch one leaf; never a rail of one pair
    (``one_pair``)."""
    measured, suspect = cells.measured, cells.suspect
    rail_fault = (suspect | ~measured).all(axis=(1, 2)) & measured.any(axis=(1, 2)) & ~one_pair
    if rates is None:
        rail_fault &= cells.slow_rail
    upper_a, upper_b = np.nonzero(np.triu(~np.eye(measured.shape[1], dtype=bool), k=1))
    # Each rail's index a read-only view of one number: eight copies were 34 MB at 1024 x 8.
    rail_cells = [(np.broadcast_to(k, upper_a.shape), upper_a, upper_b) for k in range(measured.shape[0])]
    rail_fault &= np.array([cells.confirmed(*index) for index in rail_cells], dtype=bool)
    for kpos in np.flatnonzero(rail_fault):
        rail_fault[kpos] = not _one_node_explains(
            cells.reproduces[kpos], measured[kpos], cells.cell_median[kpos], cells.pair_slow[kpos]
        )
        if leaf is not None and rail_fault[kpos]:
            inside = measured[kpos] & leaves.on_one_leaf(leaf[kpos])
            rail_fault[kpos] = not (
                leaves.only_between_units(cells.reproduces[kpos], inside)
                or leaves.one_leaf_explains(cells.reproduces[kpos], measured[kpos], leaf[kpos])
            )
    return rail_fault, rail_cells


def _lone_pairs(cells: Cells, explained: np.ndarray, between: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """What is left: suspect pairs that no larger part explains (``[rail, a, b]``), named when they are slow in
    most samples and more of their samples are slow than noise makes slow in any cell of the matrix; and the
    links (``[rail, node]``) where two or more of them meet, or whose end is the guilty one."""
    unexplained = cells.pair_slow & ~explained
    lone = unexplained & lone_pairs.beyond_noise(cells, between)
    if between is not None and cells.round_of is not None:
        # One round's evidence (a hot spot re-measured hot) is no pair's, and no evidence against either end's
        # link: taken out before the links are read from the lone pairs. Left in, clean run 69018 of
        # ``hotspots`` at 64 x 8 named a healthy cable: one round's 32 cross pairs on rail 6 were slow in all
        # three samples, and one end of one of them had two more outliers elsewhere (``guilty_ends``).
        lone &= ~persistence.one_rounds(cells.slow_sample, cells.round_of, lone, between, unexplained)
    shared = lone_pairs.shared_links(lone)
    shared |= lone_pairs.guilty_ends(cells, lone & ~link_faults.link_cells(shared), ~explained, between)
    if between is not None:
        # As for an intermittent link: slow only with partners across units is slow beyond the leaf. Not a link whose
        # lone pairs lie on its own leaf, where nothing beyond the leaf runs: they are named whatever is ruled, as the
        # link or as pairs. Ruled beyond its leaf by its deeper partners across units (a hot spot's), node064's rail-6
        # cable at 64 x 8 was named as the 3 pairs it had on its leaf (``hotspots`` seed 1540038).
        for k, a in zip(*np.nonzero(shared), strict=True):
            if (lone[k, a] & ~between[k, a]).any():
                continue
            left = cells.suspect[k] & ~explained[k]
            deep = link_faults.as_deep(cells, int(k), int(a), left[a], between[k, a])
            mates = link_faults.leaf_mates(left, cells.measured[k], between[k], int(a), cells.links)
            shared[k, a] = not link_faults.only_beyond_its_leaf(
                cells.measured[k, a], deep, left[a], between[k, a], link_faults.alone_row(cells, int(k), int(a)), mates
            )
    return lone, shared


def _one_node_explains(reproduces: np.ndarray, measured: np.ndarray, level: np.ndarray, firm: np.ndarray) -> bool:
    """Whether the reproducing suspects of one rail (``[a, b]`` masks) are one node's, on a rail of three nodes or
    more: they all meet at it, or the others are passing (slow in few of their samples: not ``firm``, the pairs
    slow in most) and far shallower (:func:`link_faults.far_shallower`; ``level``: each cell's median log rate). Then
    that node's link explains them: on 3 nodes a link is slow with 2 of the rail's 3 pairs, and one noisy sample on
    the third made every pair a suspect; under a loaded suite the third also read slow again (0.46 of the rail's
    median once, beside the link's pairs at 0.02 in every sample), and the rail was named."""
    if int(measured.any(axis=1).sum()) < 3:
        return False  # two nodes: one pair, and a rail cannot be told from a link
    a, b = np.nonzero(np.triu(reproduces, k=1))
    if len(a) == 0:
        return False
    levels = np.nan_to_num(level[a, b], nan=np.inf)
    deepest = int(np.argmin(levels))
    # The node, if any, is one of the deepest pair's two.
    for x in (a[deepest], b[deepest]):
        mine = (a == x) | (b == x)
        if mine.all():
            return True
        rest = ~mine
        if not firm[a[rest], b[rest]].any() and link_faults.far_shallower(
            level[a[rest], b[rest]], level[a[mine], b[mine]]
        ):
            return True
    return False


def suspect_samples(
    matrix: PairMatrix,
    line_rate_Gbps: float | Mapping[int, float] | None,
    thresholds: Thresholds = Thresholds(),
    load: Expected | None = None,
    between: np.ndarray | None = None,
) -> np.ndarray:
    """``[repeat, rail, a, b]``: the matrix samples that are slow, so their cells must be re-measured (each over
    what its round could carry, where ``load`` says), judged as :func:`diagnose` judges them: with the cabling's
    classes of cells where it places the nodes (``between``, ``leaves.between_units``: a link's level under the
    line within its unit and across units apart), so that the cells re-measured are the ones the verdict reads as
    slow."""
    return _judge(matrix, _line_rates(matrix, line_rate_Gbps), thresholds, between, load).slow_sample


def localise(
    matrix: PairMatrix,
    line_rate_Gbps: float | Mapping[int, float] | None,
    thresholds: Thresholds = Thresholds(),
    devices: Mapping[tuple[str, int], str] | None = None,
) -> tuple[NamedPart, ...]:
    """The defects of :func:`diagnose` alone."""
    return diagnose(matrix, line_rate_Gbps, thresholds, devices).defects
