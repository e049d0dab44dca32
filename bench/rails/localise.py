"""Name the broken part from the node x node x rail matrix of pair bandwidths.

A sendrecv between node a and node b on rail k runs at the speed of the slower of a's link on rail k, b's
link on rail k and rail k's switch. So a slow measurement has a small set of possible explanations, and
the smallest one that every slow measurement agrees with is the answer:

* ``rail``: every pair on rail k is slow, and rail k is significantly slower than the other rails;
* ``node``: node a is slow with every partner on every rail (two or more rails) -> the node;
* ``link``: node a is slow with every partner on rail k only -> a's HCA, cable or port on rail k;
* ``pair``: one pair is slow and nothing larger explains it -> one cable between two leaves.

A sample is slow when it is below the absolute target (line rate x pass fraction, where the line rate is
known), when its time budget ran out, or when it is significantly below the fabric's healthy level given
the fabric's own spread and the number of samples tested (``bench.rails.noise``) *and* below
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

import dataclasses
import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from bench.exits import UserError
from bench.rails import lone_pairs, noise, switches
from bench.rails.defects import EVIDENCE_LIMIT, Defect, DefectKind, Symptom, Transient, describe
from bench.rails.fabric_map import FabricMap
from bench.rails.matrix import PairMatrix, PairSample
from bench.rails.parts import Cells, summary_defect, transients

__all__ = [
    "EVIDENCE_LIMIT",
    "Defect",
    "DefectKind",
    "Diagnosis",
    "PairMatrix",
    "PairSample",
    "Symptom",
    "Thresholds",
    "Transient",
    "describe",
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

    defects: tuple[Defect, ...]
    """Rail faults, then node, link and pair faults."""
    transients: tuple[Transient, ...] = ()
    """Suspects that did not reproduce when re-measured."""
    too_noisy: str | None = None
    """``fabric too noisy to localise: healthy pairs spread 5.3-19.5 Gb/s`` when the relative test gave up."""
    level_Gbps: dict[int, float] = field(default_factory=dict)
    """The healthy level each rail was judged against."""


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


def _judge(
    matrix: PairMatrix, rates: np.ndarray | None, thresholds: Thresholds, between: np.ndarray | None = None
) -> Cells:
    """Slow samples, suspects and re-measurements: everything the explanations below are built from.

    ``between`` (``[rail, a, b]``, where the cabling is known) marks the cells whose flows cross units."""
    scale = np.ones(len(matrix.rails)) if rates is None else rates
    per_rail = scale[None, :, None, None]
    values, again = matrix.busbw, matrix.confirm_values
    x, x_again = noise.log_rates(values, per_rail), noise.log_rates(again, per_rail)
    measured = (~np.isnan(values)).any(axis=0)
    if not measured.any():
        raise UserError("the pair matrix holds no measurements: run with at least two nodes")
    with warnings.catch_warnings():
        # The diagonal and unmeasured cells are NaN by design; their all-NaN slices are expected.
        warnings.simplefilter("ignore", RuntimeWarning)
        # One repeat is its own median (numpy's nanmedian over a length-1 axis takes seconds at 256 x 8).
        cell_median = x[0].copy() if x.shape[0] == 1 else np.nanmedian(x, axis=0)
    effect = math.log(thresholds.relative_fraction)
    slow_rail = _slow_rails(x, cell_median, measured, effect) if rates is None else np.zeros(len(scale), bool)
    ok = ~slow_rail
    healthy = x[:, ok][:, noise.healthy_cells(cell_median[ok], measured[ok])]
    level, sigma = noise.level_and_sigma(healthy)
    tests = int((~np.isnan(values)).sum()) // 2
    noisy = None
    if noise.too_noisy(sigma, tests):
        usable = np.exp(healthy[np.isfinite(healthy)]) * float(np.median(scale))
        low, high = (float(usable.min()), float(usable.max())) if usable.size else (0.0, 0.0)
        noisy = f"fabric too noisy to localise: healthy pairs spread {low:.3g}-{high:.3g} Gb/s"

    upper = np.triu(np.ones(measured.shape[1:], dtype=bool), k=1)

    def beyond_noise(xs: np.ndarray, alpha: float = noise.FALSE_ALARMS) -> np.ndarray:
        # Each pair once (the matrix holds it twice, as [a, b] and [b, a]), then mirrored.
        z = np.where(upper, (level - xs) / sigma, np.nan)  # +inf where nothing moved
        hits = noise.holm_significant(z, alpha)
        hits |= np.swapaxes(hits, -1, -2)
        return hits & (xs < level + effect) & (noisy is None)

    # The absolute line judges a part's level, not single samples: a healthy fabric's weakest links and its
    # congested samples dip under 90% of line now and then. A sample under the line counts as slow when a link
    # it crosses sits under the line by its level (slow with three quarters of its partners), or when it is
    # under the line by more than the spread the run measured across healthy cells can explain (Holm over all
    # samples, as the relative test).
    # The level is the upper quartile over partners, not the median: a slow leaf of one of two units spoils
    # exactly half of every other link's partners on its rail, and must not drag those links under the line.
    # Where the cabling is known, the level is taken within the unit and across units apart, and the link is
    # low only when both are: congestion and a static route's degraded uplink slow a link's partners across
    # units alone (a whole class of its partners, more than a quarter of them), while its own cable slows both.
    mark = math.log(thresholds.pass_fraction)
    classes = [measured] if between is None else [measured & between, measured & ~between]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # links with no measured partner: NaN, never low
        levels = [np.nanpercentile(np.where(c, cell_median, np.nan), 75, axis=-1) for c in classes]
        quartile = levels[0] if len(levels) == 1 else np.fmax(*levels)
    low_link = quartile < mark
    low_cell = low_link[:, :, None] | low_link[:, None, :]

    def under_line(xs: np.ndarray) -> np.ndarray:
        z = np.where(upper, (mark - xs) / sigma, np.nan)
        hits = noise.holm_significant(z)
        hits |= np.swapaxes(hits, -1, -2)
        return (xs < mark) & (hits | low_cell)

    def slow(relative: np.ndarray, xs: np.ndarray, raw: np.ndarray, stopped: np.ndarray) -> np.ndarray:
        below_target = np.zeros(raw.shape, bool) if rates is None else under_line(xs)
        return (relative | below_target | stopped | (raw <= 0)) & ~np.isnan(raw)

    relative = beyond_noise(x)
    slow_sample = slow(relative, x, values, matrix.stopped_flags)
    slow_again = slow(beyond_noise(x_again), x_again, again, matrix.confirm_stopped_flags)
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
    )


def diagnose(
    matrix: PairMatrix,
    line_rate_Gbps: float | Mapping[int, float] | None,
    thresholds: Thresholds = Thresholds(),
    devices: Mapping[tuple[str, int], str] | None = None,
    fabric: FabricMap | None = None,
) -> Diagnosis:
    """The smallest set of broken parts that explains every reproducible slow pair measurement.

    ``line_rate_Gbps`` is one rate for every rail, a rate per rail, or None where unknown (relative test
    only). ``devices`` maps ``(node, rail)`` to the HCA or interface name for the report. ``fabric`` places
    the nodes on the fabric's leaves and spines (``rails --topology``): then a link is a ``cable`` with its leaf
    port, and leaves, uplinks and spines are named too (``bench.rails.switches``); without it, nothing about
    the switches is guessed.
    """
    rates = _line_rates(matrix, line_rate_Gbps)
    between = switches.between_units(fabric, matrix) if fabric is not None else None
    cells = _judge(matrix, rates, thresholds, between)
    # What noise alone reproduces: the yardstick of every part convicted by reproduced suspects. Per class of
    # cells where the cabling is known: congestion reproduces between units, never within a leaf.
    per_cell = cells.reproduced_by_noise
    if between is None:
        null = np.full(cells.measured.shape, per_cell)
    else:
        null = np.where(between, cells.reproduced_by_noise_in(between), cells.reproduced_by_noise_in(~between))
    n = len(matrix.nodes)
    measured, suspect = cells.measured, cells.suspect
    others = ~np.eye(n, dtype=bool)
    all_nodes = np.arange(n)

    # Rail k: every measured pair on it is suspect (and, judged against peers, the rail as a whole is slow).
    rail_fault = (suspect | ~measured).all(axis=(1, 2)) & measured.any(axis=(1, 2))
    if rates is None:
        rail_fault &= cells.slow_rail
    upper_a, upper_b = np.nonzero(np.triu(others, k=1))
    rail_cells = [(np.full(len(upper_a), k), upper_a, upper_b) for k in range(len(matrix.rails))]
    rail_fault &= np.array([cells.confirmed(*index) for index in rail_cells], dtype=bool)
    for kpos in np.flatnonzero(rail_fault):
        rail_fault[kpos] = not _one_node_explains(cells.reproduces[kpos], measured[kpos])
    all_cells = cells
    found_switches: list[switches.SwitchFault] = []
    if fabric is not None:
        # A leaf explains every cell of its nodes on its rail; nothing smaller is judged on them.
        found_switches = switches.leaf_faults(cells, fabric, rail_fault)
        cells = cells.without(switches.explained(found_switches, suspect.shape))
        measured, suspect = cells.measured, cells.suspect
    # Link (a, k): every measured partner of a on rail k is suspect; a rail fault explains it already.
    link_candidate = (suspect | ~measured).all(axis=2) & measured.any(axis=2) & ~rail_fault[:, None]
    for kpos, apos in zip(*np.nonzero(link_candidate), strict=True):
        b = all_nodes[others[apos]]
        link_candidate[kpos, apos] = cells.confirmed(np.full(len(b), kpos), np.full(len(b), apos), b)
    _fewest_links(cells.reproduces, link_candidate)
    if fabric is not None:
        # Between units, what no slow cable explains: an uplink's or a spine's flows.
        whole = np.zeros_like(suspect)
        lk0, la0 = np.nonzero(link_candidate)
        whole[lk0, la0, :] = whole[lk0, :, la0] = True
        paths = switches.path_faults(cells.without(whole), fabric, rail_fault, per_cell)
        found_switches += paths
        cells = cells.without(switches.explained(paths, suspect.shape))
        measured, suspect = cells.measured, cells.suspect
    _intermittent_links(cells, link_candidate, rail_fault, null)
    # Node a: a link candidate on every rail that no rail fault explains (or where a larger part left it no
    # cell to judge), and at least two of them.
    open_rails = ~rail_fault
    judged = measured.any(axis=2) & open_rails[:, None]
    node_fault = (link_candidate | ~judged).all(axis=0) & ((link_candidate & judged).sum(axis=0) >= 2)
    node_fault &= open_rails.sum() >= 2
    link_fault = link_candidate & ~node_fault[None, :]

    explained = np.zeros_like(suspect)
    explained[rail_fault] = True
    explained[:, node_fault, :] = True
    explained[:, :, node_fault] = True
    lk, la = np.nonzero(link_fault)
    explained[lk, la, :] = True
    explained[lk, :, la] = True
    # What is left: suspect pairs that no larger part explains, named when they are slow in most samples and
    # more of their samples are slow than noise makes slow in any cell of the matrix; two or more of them at
    # one link are that link.
    lone = cells.pair_slow & ~explained & lone_pairs.beyond_noise(cells, between)
    shared = lone_pairs.shared_links(lone)
    shared |= lone_pairs.guilty_ends(cells, lone & ~_link_cells(shared), ~explained, between)
    if shared.any():
        link_fault |= shared
        lk, la = np.nonzero(link_fault)
        explained[lk, la, :] = True
        explained[lk, :, la] = True
        lone &= ~explained

    defects: list[Defect] = []
    for kpos in np.flatnonzero(rail_fault):
        rail = matrix.rails[kpos]
        names = {d for d in (_device(devices, node, rail) for node in matrix.nodes) if d}
        device = names.pop() if len(names) == 1 else None
        defect = summary_defect(all_cells, "rail", rail_cells[kpos], node=None, rail_pos=int(kpos), device=device)
        single = switches.rail_leaf(fabric, all_cells, int(kpos)) if fabric is not None else None
        if fabric is not None and single is not None:
            # One unit: the rail's one leaf carries every pair of it.
            leaf = fabric.leaves[single]
            unit = fabric.unit_names[leaf.unit] if 0 <= leaf.unit < len(fabric.unit_names) else None
            ports = tuple(str(c) for c in leaf.uplinks)
            defect = dataclasses.replace(defect, kind="leaf", switches=(leaf.name,), ports=ports, unit=unit)
        defects.append(defect)
    for fault in found_switches:
        defect = summary_defect(all_cells, fault.kind, fault.index, node=None, rail_pos=fault.rail_pos, device=None)
        defects.append(dataclasses.replace(defect, switches=fault.switches, ports=fault.ports, unit=fault.unit))
    for apos in np.flatnonzero(node_fault):
        k, b = np.nonzero(others[apos][None, :] & open_rails[:, None])
        node = matrix.nodes[apos]
        defects.append(
            summary_defect(cells, "node", (k, np.full(len(k), apos), b), node=node, rail_pos=None, device=None)
        )
    for kpos, apos in zip(lk, la, strict=True):
        b = all_nodes[others[apos]]
        node, rail = matrix.nodes[apos], matrix.rails[kpos]
        defect = summary_defect(
            cells,
            "link",
            (np.full(len(b), kpos), np.full(len(b), apos), b),
            node=node,
            rail_pos=int(kpos),
            device=_device(devices, node, rail),
        )
        defects.append(_as_cable(defect, fabric, int(rail)))
    pk, pa, pb = np.nonzero(np.triu(lone, k=1))
    for kpos, apos, bpos in zip(pk, pa, pb, strict=True):
        node, peer, rail = matrix.nodes[apos], matrix.nodes[bpos], matrix.rails[kpos]
        explained[kpos, apos, bpos] = explained[kpos, bpos, apos] = True
        defects.append(
            summary_defect(
                cells,
                "pair",
                (np.array([kpos]), np.array([apos]), np.array([bpos])),
                node=node,
                rail_pos=int(kpos),
                device=_device(devices, node, rail),
                peer=peer,
            )
        )
    level = {rail: float(cells.expected[i]) for i, rail in enumerate(matrix.rails)}
    return Diagnosis(tuple(defects), transients(cells, suspect & ~explained), cells.too_noisy, level)


def _link_cells(links: np.ndarray) -> np.ndarray:
    """``[rail, a, b]``: every cell of the links in ``links`` (``[rail, node]``)."""
    out = np.zeros((*links.shape, links.shape[1]), dtype=bool)
    k, a = np.nonzero(links)
    out[k, a, :] = out[k, :, a] = True
    return out


def _as_cable(defect: Defect, fabric: FabricMap | None, rail: int) -> Defect:
    """A link the cabling places is a ``cable``: the node's HCA port, its cable and its leaf port."""
    if fabric is None or defect.node is None or defect.node not in fabric.nodes or not 0 <= rail < fabric.rails:
        return defect
    node = fabric.nodes.index(defect.node)
    leaf_port = fabric.leaf_port.get((rail, node))
    if leaf_port is None:
        return defect  # the cabling does not hold this HCA: nothing is guessed
    index = int(fabric.leaf[rail, node])
    leaf = fabric.leaves[index]
    unit = fabric.unit_names[leaf.unit] if 0 <= leaf.unit < len(fabric.unit_names) else None
    return dataclasses.replace(defect, kind="cable", switches=(leaf.name,), ports=(leaf_port,), unit=unit)


def _one_node_explains(reproduces: np.ndarray, measured: np.ndarray) -> bool:
    """Whether the reproducing suspects of one rail (``[a, b]`` masks) all meet at one node, on a rail of
    three nodes or more: then that node's link explains them, and the rail's other suspects did not
    reproduce (on 3 nodes a link is slow with 2 of the rail's 3 pairs, and one noisy sample on the third
    made every pair a suspect)."""
    if int(measured.any(axis=1).sum()) < 3:
        return False  # two nodes: one pair, and a rail cannot be told from a link
    a, b = np.nonzero(np.triu(reproduces, k=1))
    # A node common to every pair must be one of the first pair's two.
    return len(a) > 0 and any(bool(np.all((a == x) | (b == x))) for x in (a[0], b[0]))


def _fewest_links(reproduces: np.ndarray, link_candidate: np.ndarray) -> None:
    """Keep, on each rail, only the link candidates needed to explain its reproducing suspects: the one
    with the most first, then each other only while it explains one that the kept links do not. A
    healthy node whose partners are a slow link and one noisy sample has every partner suspect and half of
    them reproducing, as a slow link has; the slow link already explains its reproducing one."""
    for k in range(link_candidate.shape[0]):
        candidates = np.flatnonzero(link_candidate[k])
        if len(candidates) < 2:
            continue
        explained = np.zeros_like(reproduces[k])
        for a in sorted(candidates, key=lambda x: -int(reproduces[k, x].sum())):
            if not (reproduces[k, a] & ~explained[a]).any():
                link_candidate[k, a] = False
                continue
            explained[a, :] = explained[:, a] = True


def _intermittent_links(cells: Cells, link_candidate: np.ndarray, rail_fault: np.ndarray, null: np.ndarray) -> None:
    """Add to ``link_candidate`` the links slow with some partners only: a link that fails intermittently
    (or a flapping one) is slow in the rounds that caught it bad and fine in the rest, so not every partner
    is a suspect. Greedily, as the smallest explanation: the link with the most suspect partners that no
    named part explains yet, while it has at least two of them and at least half of those reproduced. One
    link explains two slow pairs better than two pair faults that share it, and two reproducing suspects at
    one link are what noise does not do: each stands out of the fabric's spread at the matrix's family-wise
    false-alarm rate. Suspects another named part explains do not count, so two slow links on one rail
    do not make their common partners suspects. On a large matrix noise alone reproduces a few suspects, so
    the link's reproduced suspects must also be more than noise gives over its partners (``null[k, a, b]`` for
    each, the rate of its class of cells: within a unit or across units; family-wise over every link): on 256
    nodes x 8 rails that is three, on a testbed two. And the link must
    hold more reproduced suspects than any of its partners: without the fabric's cabling, a block of slow
    pairs between two groups of nodes (a switch path) is named as its pairs, not as one side's links."""
    measured = cells.measured
    left = cells.suspect & ~rail_fault[:, None, None]
    for k, a in zip(*np.nonzero(link_candidate), strict=True):
        left[k, a, :] = left[k, :, a] = False
    tried = link_candidate.copy()
    links = max(1, int(measured.any(axis=2).sum()))
    left_count = left.sum(axis=2)  # kept up to date below: a 256 x 8 matrix tries thousands of links
    while True:
        counts = np.where(tried, -1, left_count)
        k, a = np.unravel_index(int(np.argmax(counts)), counts.shape)
        if counts[k, a] < 2:
            return
        tried[k, a] = True
        if int(measured[k, a].sum()) < 3:
            continue  # with two partners, both suspect is the rule above
        b = np.flatnonzero(left[k, a])
        again = int(cells.reproduces[k, a, b].sum())
        beyond = noise.poisson_sf(again, float(null[k, a][measured[k, a]].sum())) * links <= noise.NAME_FALSE_ALARMS
        # The link must explain its reproduced suspects better than any of its partners' links does: where
        # they tie (every node of one group slow with every node of another, as a switch path between two
        # groups makes them), a link would be a guess, and the slow pairs stay pairs.
        partners = b[cells.reproduces[k, a, b]]
        rivals = (left[k, partners] & cells.reproduces[k, partners]).sum(axis=1) if len(partners) else np.zeros(0)
        beyond &= not bool((rivals >= again).any())
        if beyond and cells.confirmed(np.full(len(b), k), np.full(len(b), a), b):
            link_candidate[k, a] = True
            left[k, a, :] = left[k, :, a] = False
            left_count[k, a] = 0
            left_count[k, b] -= 1


def suspect_samples(
    matrix: PairMatrix, line_rate_Gbps: float | Mapping[int, float] | None, thresholds: Thresholds = Thresholds()
) -> np.ndarray:
    """``[repeat, rail, a, b]``: the matrix samples that are slow, so their cells must be re-measured."""
    return _judge(matrix, _line_rates(matrix, line_rate_Gbps), thresholds).slow_sample


def localise(
    matrix: PairMatrix,
    line_rate_Gbps: float | Mapping[int, float] | None,
    thresholds: Thresholds = Thresholds(),
    devices: Mapping[tuple[str, int], str] | None = None,
) -> tuple[Defect, ...]:
    """The defects of :func:`diagnose` alone."""
    return diagnose(matrix, line_rate_Gbps, thresholds, devices).defects


def _device(devices: Mapping[tuple[str, int], str] | None, node: str, rail: int) -> str | None:
    return None if devices is None else devices.get((node, rail))
