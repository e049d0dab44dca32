"""Rank 0's judgment of what every rank sent: devices, line rates, suspects, localisation and targets.

The ranks measure (``bench.rails.rank``); rank 0 alone reads the gathered results, picks the cells to
re-measure before anything is named (``suspect_cells``), and builds the outcome (``outcome``) from the
pair matrix, the rail collectives and the counter windows.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypedDict

import numpy as np

from bench.codec import ABSENT
from bench.rails.diagnosis import alone, evidence, leaves, liveness, rail_target, rails_outcome, round_load
from bench.rails.diagnosis.corroborate import device_of
from bench.rails.diagnosis.evidence import DeviceEntries, NodeWindow
from bench.rails.diagnosis.expected import Expected
from bench.rails.diagnosis.last_answer import LastAnswer, fingerprint
from bench.rails.diagnosis.liveness import LinkReport, Membership, everyone_live
from bench.rails.diagnosis.localise import Diagnosis, PairMatrix, Thresholds, diagnose, suspect_samples
from bench.rails.diagnosis.matrix import PairColumns, PairTime, flatten, pair_matrix
from bench.rails.diagnosis.quiet_fill import quiet_fill
from bench.rails.diagnosis.rails_outcome import short_device
from bench.rails.plan import fabric_map
from bench.rails.plan.config import RailsSettings, matrix_units
from bench.rails.plan.fabric_map import FabricMap
from bench.rails.plan.layout import RailLayout
from bench.rails.plan.remeasure import QuietCell
from bench.rails.plan.schedule import Cell, Units, schedule, unit_rounds
from bench.rundir.findings import Shortfall
from bench.rundir.named_parts import NamedPart
from bench.rundir.railsdoc import Link, RailsDoc


def suspects(
    times: Sequence[PairTime] | PairColumns,
    nodes: Sequence[str],
    rails: int,
    line_rates: Mapping[int, float] | None,
    thresholds: Thresholds,
    load: Expected | None = None,
    fabric: FabricMap | None = None,
) -> list[Cell]:
    """Rank 0: every cell with a slow sample, as ``(repeat, round, rail, low, high)`` of its first slow one; each
    sample judged over what its round could carry where ``load`` says (``bench.rails.diagnosis.round_load``).

    The slowest first (by the cell's slowest sample), the rest in rail and node order: the quiet pass takes each
    leaf's first few (``bench.rails.plan.remeasure.quiet_rounds``). Under ECMP a degraded uplink carries one path
    in 32 of its leaf's, and its flows are the slowest between units; a draw of eight found about one of them a
    leaf, too few to tell it from noise, and the uplink was never named."""
    if not len(times):
        return []
    cols = times if isinstance(times, PairColumns) else PairColumns.from_times(times)
    matrix_rates = pair_matrix(cols, nodes, rails)
    slow = _slow_samples(matrix_rates, line_rates, thresholds, load, fabric)
    # The round each matrix sample ran in, -1 where none did.
    matrix = cols.confirm == 0
    low, high = np.minimum(cols.node, cols.peer)[matrix], np.maximum(cols.node, cols.peer)[matrix]
    round_of = np.full(slow.shape, -1, dtype=np.int32)
    round_of[cols.repeat[matrix], cols.rail[matrix], low, high] = cols.round[matrix]
    k, a, b = np.nonzero(np.triu(slow.any(axis=0), k=1))
    repeat = np.argmax(slow[:, k, a, b], axis=0)  # each cell's first slow sample
    index = round_of[repeat, k, a, b]
    ran = index >= 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a cell with no sample left: NaN, last
        slowest = np.nanmin(matrix_rates.busbw[:, k, a, b], axis=0)
    order = np.argsort(np.where(np.isnan(slowest), np.inf, slowest)[ran], kind="stable")
    columns = (repeat[ran][order], index[ran][order], k[ran][order], a[ran][order], b[ran][order])
    return list(zip(*(c.tolist() for c in columns), strict=True))


class RankReport(TypedDict):
    """What one rank sends rank 0 at the end of the rails test (``bench.rails.rank``); rank 0 judges them all."""

    host: str
    results: list[rails_outcome.RailResult]
    times: list[PairTime]
    windows: list[Any]
    """Each rail alone: this rank's bytes per device (``dict[str, int]``), or None on every rail where the rank
    reads no counters. Any, because the type cannot say "all or none": the judge reads every rail's window of a
    rank whose first one is not None."""
    whole: DeviceEntries | None
    error_windows: list[NodeWindow]
    ifname: str | None
    nic: rails_outcome.ExpectedNic
    rail: int
    rates: dict[str, float] | None


def suspect_cells(
    settings: RailsSettings, layout: RailLayout, gathered: list[RankReport], membership: Membership
) -> list[Cell]:
    """The cells whose matrix samples are slow: re-measured before anything is named."""
    return suspects_in(settings, layout, gathered, flatten([g["times"] for g in gathered]), membership)


def remeasured_cells(
    settings: RailsSettings,
    layout: RailLayout,
    gathered: list[RankReport],
    membership: Membership,
    units: Units | None,
) -> tuple[list[Cell], list[QuietCell]]:
    """Rank 0: the suspect cells (:func:`suspect_cells`), and the cells between units the quiet pass measures
    beside them at every leaf (``quiet_fill``): what goes to every rank before the re-measurements."""
    cols = PairColumns.from_times(flatten([g["times"] for g in gathered]))
    found = suspects_in(settings, layout, gathered, cols, membership)
    return found, quiet_fill(cols, units, found)


def suspects_in(
    settings: RailsSettings,
    layout: RailLayout,
    gathered: list[RankReport],
    times: Sequence[PairTime] | rails_outcome.PairColumns,
    membership: Membership | None = None,
) -> list[Cell]:
    """``suspect_cells`` of these pair times (the fabric model's columns stand in for the gathered times)."""
    membership = membership or everyone_live(len(layout.nodes), layout.rails)
    devices, _, rates, thresholds = _judging(settings, layout, gathered, membership)
    fabric = _placed(settings, layout, devices)
    load = None if fabric is None else _matrix_load(settings, fabric, len(layout.nodes), settings.test.repeats)
    return suspects(times, layout.nodes, layout.rails, rates, thresholds, load, fabric)


def quiet_lows(
    settings: RailsSettings, layout: RailLayout, gathered: list[RankReport], membership: Membership
) -> list[tuple[int, int, int]]:
    """Rank 0, after the quiet pass: its cells that read low alone, as ``(rail, a, b)``, to be measured alone again
    (``bench.rails.diagnosis.alone``); none without the cabling, which the pass needs."""
    return quiet_lows_in(settings, layout, gathered, flatten([g["times"] for g in gathered]), membership)


def quiet_lows_in(
    settings: RailsSettings,
    layout: RailLayout,
    gathered: list[RankReport],
    times: Sequence[PairTime] | PairColumns,
    membership: Membership | None = None,
) -> list[tuple[int, int, int]]:
    """``quiet_lows`` of these pair times (the fabric model's columns stand in for the gathered times)."""
    membership = membership or everyone_live(len(layout.nodes), layout.rails)
    devices, _, _, _ = _judging(settings, layout, gathered, membership)
    fabric = _placed(settings, layout, devices)
    if fabric is None or not len(times):
        return []
    cols = times if isinstance(times, PairColumns) else PairColumns.from_times(times)
    alone_from = settings.test.confirm + 1
    matrix = pair_matrix(cols, layout.nodes, layout.rails, alone_from).with_quiet_pass(settings.test.confirm)
    if matrix.alone is None:
        return []
    inside = ~np.isnan(matrix.busbw).all(axis=0) & ~leaves.between_units(fabric, matrix)
    return alone.low_quiet_cells(matrix, inside)


def _placed(settings: RailsSettings, layout: RailLayout, devices: list[rails_outcome.RailDevices]) -> FabricMap | None:
    """The run's nodes and rails on the cabling (``--topology``): rail k's HCA on each node is the one that
    carried it, else the one it should use (``bench.rails.diagnosis.corroborate``)."""
    if settings.topology is None:
        return None
    return fabric_map.place(settings.topology, layout.nodes, layout.rails, fabric_map.device_hca(device_of(devices)))


def _matrix_load(settings: RailsSettings, fabric: FabricMap, nodes: int, repeats: int) -> Expected:
    """Each sample's round and fraction, from the schedule the ranks ran (the unit schedule where it applied)."""
    units = matrix_units(settings, fabric.nodes)
    return round_load.matrix_expected(fabric, nodes, max(repeats, settings.test.repeats), settings.config.seed, units)


def _judging(
    settings: RailsSettings, layout: RailLayout, gathered: list[RankReport], membership: Membership
) -> tuple[list[rails_outcome.RailDevices], dict[int, float | None], dict[int, float] | None, Thresholds]:
    """The devices each rail used, its line rate, the rates localisation judges by, and the thresholds.

    A node whose link is out of its rail's group (dead) carried nothing of that rail: it is left out of the
    rail's devices, where it would read as a rail over no device (its dead link is named once, by itself)."""
    nodes = layout.nodes
    readers = [g for g in gathered if g["windows"] and g["windows"][0] is not None]
    expected_nic = {(g["host"], g["rail"]): g["nic"] for g in gathered}
    min_bytes = max(1, settings.test.rail_bytes // 2)
    in_group = {(layout.nodes[n], k) for k in range(layout.rails) for n in membership.live[k]}
    devices = [
        evidence.attribute(
            k,
            {g["host"]: g["windows"][k] for g in readers if (g["host"], k) in in_group},
            min_bytes,
            {h: expected_nic[(h, k)] for h in nodes if (h, k) in expected_nic and (h, k) in in_group},
        )
        for k in range(layout.rails)
    ]
    expected = _line_rates(settings, devices, {g["host"]: g["rates"] for g in readers})
    known = {k: rate for k, rate in expected.items() if rate is not None}
    # A partial set would mix two yardsticks. A rail with no group (fewer than two live nodes) has no device to
    # read a rate from, and no pair to judge by one: the other rails' line rates still judge theirs, and it
    # takes the slowest of them only to fill the table localisation reads (its cells are all unmeasured).
    grouped = {k for k in range(layout.rails) if membership.live[k]}
    filled = {k: known.get(k, min(known.values(), default=0.0)) for k in range(layout.rails)}
    rates = filled if known and grouped <= known.keys() else None
    return devices, expected, rates, Thresholds(settings.profile.pass_fraction, settings.test.relative_fraction)


def outcome(
    settings: RailsSettings,
    layout: RailLayout,
    gathered: list[RankReport],
    membership: Membership,
    reports: Sequence[LinkReport],
    process_groups: int | None = None,
) -> rails_outcome.RailsOutcome:
    """Rank 0: devices, line rates, localisation and targets from everything the ranks sent; the dead parts
    found before the rail groups formed come first among the defects, beside whatever the measurements
    named. ``process_groups``: the groups the test made (``bench.rails.rank``)."""
    times = sorted(
        flatten([g["times"] for g in gathered]), key=lambda t: (t.confirm, t.repeat, t.round, t.rail, t.node)
    )
    alone_from = settings.test.confirm + 1  # the quiet pass and its repeats: one plane (``pair_matrix``)
    matrix = rails_outcome.pair_matrix(times, layout.nodes, layout.rails, alone_from) if times else None
    return judged(settings, layout, gathered, times, matrix, membership, reports, process_groups)


def judged(
    settings: RailsSettings,
    layout: RailLayout,
    gathered: list[RankReport],
    times: list[PairTime],
    matrix: PairMatrix | None,
    membership: Membership | None = None,
    reports: Sequence[LinkReport] = (),
    process_groups: int | None = None,
) -> rails_outcome.RailsOutcome:
    """``outcome`` once the pair matrix is built: the fabric model (``tests/support/models/fabric_model.py``)
    builds it from its own columns of pair times and calls this, so what it judges is judged exactly as rank 0
    judges a run (every link live unless ``membership`` says otherwise)."""
    nodes = layout.nodes
    membership = membership or everyone_live(len(nodes), layout.rails)
    rail_results = _rail_results(gathered)
    readers = [g for g in gathered if g["windows"] and g["windows"][0] is not None]
    devices, expected, rates, thresholds = _judging(settings, layout, gathered, membership)
    min_bytes = max(1, settings.test.rail_bytes // 2)
    findings = evidence.findings(devices, settings.quiet_devices, settings.profile.counter_tolerance_bytes, min_bytes)
    device_names = rails_outcome.device_map(devices)
    found = Diagnosis(())
    fabric = _placed(settings, layout, devices)
    if matrix is not None:
        matrix = matrix.with_quiet_pass(settings.test.confirm)
        load = None if fabric is None else _loaded(settings, fabric, matrix, rates, thresholds)
        found = diagnose(matrix, rates, thresholds, device_names, fabric, load)
    below = rail_target.below_marks(rail_results, expected, settings.profile.pass_fraction)
    counters = {g["host"]: g["whole"] for g in readers if g["whole"]}
    named = {(r.node, r.rail): short_device(r.device) for r in reports}
    dead = liveness.dead_defects(membership, nodes, settings.rail_rate_gbps, named, _scheduled(settings, layout))
    # A rail whose own port is down is that link, dead: the bandwidth its bytes made elsewhere says no more. A
    # part found dead before the groups formed is named once, by liveness; what its links measured says no more.
    paths = tuple(d for d in evidence.path_defects(devices, settings.quiet_devices) if not _covered(d, dead))
    down = [*dead, *(d for d in paths if d.kind == "link")]
    measured = tuple(d for d in found.defects if not (d.kind == "link" and _covered(d, down)))
    written = RailsDoc(
        nodes=nodes,
        transients=found.transients,
        too_noisy=found.too_noisy,
        fabric_capacity=found.capacity or ABSENT,
        error_windows=evidence.join({g["host"]: g["error_windows"] for g in readers}),
        process_groups=process_groups,
        links=link_records(reports, membership, nodes),
    )
    return rails_outcome.RailsOutcome(
        written,
        layout.rails,
        rail_results,
        times,
        devices,
        named=(*dead, *paths, *measured),
        findings=findings,
        expected=expected,
        below_target=below,
        counters=counters,
    )


def _rail_results(gathered: list[RankReport]) -> list[rails_outcome.RailResult]:
    """Every rail group's results, one per collective and mode (the best of its measurements where one was
    measured again), the concurrent ones first."""
    results = rails_outcome.best_samples(flatten([g["results"] for g in gathered]))
    return sorted(results, key=lambda r: (r.mode != "concurrent", r.rail))


def short_rail_calls(
    settings: RailsSettings, layout: RailLayout, gathered: list[RankReport], membership: Membership
) -> list[str]:
    """Rank 0: the collectives that some rail group, measured with every rail at once, ran under its mark at, on its
    best measurement so far (``rail_target.below_marks``): every rank measures them again in every rail group at
    once (``bench.rails.measurement.steps.rails_again``) before a rail is failed on one sample. Wrong elements are
    never measured away: they are not in the list."""
    short = {s.collective for s in _short_calls(settings, layout, gathered, membership, "concurrent")}
    return [c for c in settings.test.collectives if c in short]


def short_alone_calls(
    settings: RailsSettings, layout: RailLayout, gathered: list[RankReport], membership: Membership
) -> list[tuple[int, str]]:
    """Rank 0: ``(rail, collective)`` of the rails that, each measured alone (``--isolation``), ran a collective under
    its mark at, on their best measurement so far: measured alone again as the rail groups at once are
    (``bench.rails.measurement.steps.rails_again``). Empty without ``--isolation``."""
    short = {(s.rail, s.collective) for s in _short_calls(settings, layout, gathered, membership, "isolated")}
    return [(k, c) for k in range(layout.rails) for c in settings.test.collectives if (k, c) in short]


def _short_calls(
    settings: RailsSettings, layout: RailLayout, gathered: list[RankReport], membership: Membership, mode: str
) -> list[Shortfall]:
    """The results of ``mode`` under their mark on their best measurement, wrong elements left out."""
    _, expected, _, _ = _judging(settings, layout, gathered, membership)
    results = [r for r in _rail_results(gathered) if r.mode == mode and not r.wrong]
    return rail_target.below_marks(results, expected, settings.profile.pass_fraction)


def _scheduled(settings: RailsSettings, layout: RailLayout) -> Callable[[int, int], bool] | None:
    """Whether the ranks' schedule pairs two nodes in any repeat (``bench.rails.measurement.steps.pair_runner``:
    the unit schedule where it applied); None: every pair (the full matrix)."""
    units = matrix_units(settings, layout.nodes)
    if units is None or unit_rounds(units, layout.rails) is None:
        return None
    met: set[tuple[int, int]] = set()
    for rnd in schedule(len(layout.nodes), settings.test.repeats, settings.config.seed, units, layout.rails):
        met.update(rnd.pairs)
    return lambda a, b: (min(a, b), max(a, b)) in met


def _loaded(
    settings: RailsSettings,
    fabric: FabricMap,
    matrix: PairMatrix,
    rates: dict[int, float] | None,
    thresholds: Thresholds,
) -> Expected:
    """Each sample's round and expected fraction, the re-measurements' as rank 0 scheduled them: each suspect it
    picked from the matrix samples (``suspects``, judged the same way) ran again in its first slow round."""
    load = _matrix_load(settings, fabric, len(matrix.nodes), matrix.busbw.shape[0])
    if not load.matrix:
        return load
    first = PairMatrix(matrix.nodes, matrix.rails, matrix.busbw, matrix.stopped_flags)
    slow = _slow_samples(first, rates, thresholds, load, fabric)
    return round_load.with_again(load, fabric, slow, matrix.again.passes)


_last_slow = LastAnswer[np.ndarray]()
"""The last matrix's slow samples: rank 0 judges the matrix samples to pick the suspects, and again, the same samples
with the same yardsticks, to place the re-measurements' expectations (``_loaded``); at 1024 nodes each judgement
is seconds (``last_answer``)."""


def _slow_samples(
    matrix: PairMatrix,
    rates: Mapping[int, float] | None,
    thresholds: Thresholds,
    load: Expected | None,
    fabric: FabricMap | None = None,
) -> np.ndarray:
    """``localise.suspect_samples`` of the matrix samples (read-only), computed once for the same samples."""
    again = matrix.again
    arrays = (matrix.busbw, matrix.stopped_flags, *again.cells, again.values, again.stopped)
    named = None if rates is None else tuple(sorted(rates.items()))
    # ``load`` by identity: the key holds it, and matrix_expected hands back the same object for the same plane.
    between = None if fabric is None else leaves.between_units(fabric, matrix)
    arrays = (*arrays, *(() if between is None else (between,)))
    key = (*map(fingerprint, arrays), matrix.nodes, matrix.rails, named, thresholds, load)

    def compute() -> np.ndarray:
        slow = suspect_samples(matrix, rates, thresholds, load, between)
        slow.setflags(write=False)
        return slow

    return _last_slow.answer(key, compute)


def _covered(defect: NamedPart, dead: Sequence[NamedPart]) -> bool:
    """Whether ``defect``'s link is part of one already named dead: the same link, its node or its rail."""
    for d in dead:
        if d.kind == "node" and d.node == defect.node:
            return True
        if d.kind == "rail" and d.rail == defect.rail:
            return True
        if d.kind == "link" and (d.node, d.rail) == (defect.node, defect.rail):
            return True
    return False


def link_records(reports: Sequence[LinkReport], membership: Membership, nodes: Sequence[str]) -> tuple[Link, ...]:
    """rails.json's ``links``: each (node, rail) link as it was found before its rail group formed."""
    return tuple(
        Link(
            node=nodes[r.node],
            rail=r.rail,
            device=r.device,
            port=r.port,
            port_up=r.port_up,
            reached=tuple(nodes[p] for p in r.reached),
            unreached={nodes[p]: why for p, why in r.failed},
            in_group=membership.in_group(r.node, r.rail),
        )
        for r in sorted(reports, key=lambda r: (r.rail, r.node))
    )


def _line_rates(
    settings: RailsSettings, devices: list[rails_outcome.RailDevices], rates: dict[str, dict[str, float] | None]
) -> dict[int, float | None]:
    """Rail k's line rate: the configured one, else the slowest rate sysfs gives for its HCA port."""
    out: dict[int, float | None] = {}
    for rd in devices:
        if settings.rail_rate_gbps:
            out[rd.rail] = settings.rail_rate_gbps
            continue
        found = [(rates.get(node) or {}).get(dev or "") for node, dev in rd.device.items()]
        known = [rate for rate in found if rate]
        out[rd.rail] = min(known) if found and len(known) == len(found) else None
    return out
