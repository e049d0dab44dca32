"""What the rails test leaves behind: rails.json (its record, ``bench.rundir.railsdoc.RailsDoc``: the part
rank 0's outcome already holds written, completed once from its working forms; the measurement sections and
the rows are ``bench.rails.documents``'s), its rows in results.csv, and the tables on stdout (the verdict line
is the frame's)."""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from bench.codec import ABSENT
from bench.rails import documents
from bench.rails.diagnosis import rail_target, rails_outcome
from bench.rails.diagnosis.gpu_outcome import IntraNodeOutcome
from bench.rails.diagnosis.gpu_pairs import LocalMatrix
from bench.rails.diagnosis.localise import PairSample
from bench.rails.diagnosis.rails_outcome import RailDevices, RailResult, RailsOutcome, short_device
from bench.rails.plan.config import RailsSettings
from bench.rundir.files import atomic_write_json
from bench.rundir.finding_words import counter_line, describe, describe_gpu, gbps, shortfall_line
from bench.rundir.findings import CounterFinding
from bench.rundir.pair_cells import COLUMNS
from bench.rundir.rails_records import RailDefect, Transient
from bench.rundir.railsdoc import RailEntry, RailsDoc, counters_from_json
from bench.rundir.results_csv import Row
from bench.units import format_size


class Rows(Protocol):
    """Where results.csv rows go (the frame's ``Run``)."""

    def append(self, *rows: Row) -> None: ...


def rails_doc(
    outcome: RailsOutcome, pass_fraction: float | None = None, units: Sequence[Sequence[str]] = ()
) -> RailsDoc:
    """The rails.json record of ``outcome``: its written part, with the sections said from the working forms
    (``pass_fraction``: the profile's, which each link's aggregate counts its directions under the pass line by,
    none counted without it; ``units``: the hosts of each unit of the cabling, kept for the run's nodes)."""
    ran = set(outcome.nodes)
    kept = tuple(unit for unit in (tuple(h for h in hosts if h in ran) for hosts in units) if unit)
    devices = rails_outcome.device_map(outcome.devices)
    cells = documents.pair_cells(outcome.pair_times, outcome.nodes, outcome.expected, devices)
    return dataclasses.replace(
        outcome.written,
        rails=tuple(
            RailEntry(
                rail=rd.rail,
                line_rate_Gbps=outcome.expected.get(rd.rail),
                devices=rd.device,
                expected_devices=rd.expected,
                path=rd.path_json(),
                bytes_alone=rd.moved,
            )
            for rd in outcome.devices
        ),
        measurements=tuple(documents.measurements(outcome.rail_results, outcome.expected)),
        pair_cells=cells if cells.rows else ABSENT,  # a run that measured no pair (one node) says none
        link_levels=documents.link_levels(cells, pass_fraction) if cells.rows else ABSENT,
        units=kept if kept else ABSENT,
        defects=tuple(described(d) for d in outcome.defects),
        counter_findings=tuple(counter_line(f) for f in outcome.findings),
        below_target=tuple(shortfall_line(s) for s in outcome.below_target),
        counters=counters_from_json(outcome.counters),
        intra_node=documents.intra_node_section(outcome.intra_node) if outcome.intra_node is not None else None,
        node_causes=outcome.node_causes,
    )


def write_outputs(
    outcome: RailsOutcome,
    out_dir: Path,
    writer: Rows | None,
    iters: int,
    pass_fraction: float | None = None,
    units: Sequence[Sequence[str]] = (),
) -> RailsDoc:
    """rails.json and the results.csv rows; returns the rails.json record."""
    doc = rails_doc(outcome, pass_fraction, units)
    atomic_write_json(out_dir / "rails.json", doc.to_json(), COLUMNS)
    if writer is not None:
        writer.append(
            *documents.rail_rows(outcome.rail_results, outcome.expected, "float"),
            *documents.pair_rows(outcome.pair_times, outcome.nodes, outcome.expected, iters),
            *(documents.local_pair_rows(outcome.intra_node, iters) if outcome.intra_node is not None else []),
        )
    return doc


def lenient_lines(outcome: RailsOutcome, pass_fraction: float) -> list[str]:
    """One line per rail-group call (collective, nodes, size, line rate) whose mark may be lenient at this node
    count (``bench.rails.diagnosis.rail_target.lenient_line``): every rail of one call gives the same."""
    calls = {(r.collective, r.nnodes, r.nbytes, outcome.expected.get(r.rail)) for r in outcome.rail_results}
    lines = (
        rail_target.lenient_line(collective, nnodes, nbytes, line, pass_fraction)
        for collective, nnodes, nbytes, line in sorted(calls, key=str)
        if line
    )
    return list(dict.fromkeys(line for line in lines if line))


def print_outcome(outcome: RailsOutcome, settings: RailsSettings) -> None:
    if outcome.written.skipped:
        print(f"# rails: skipped: {outcome.written.skipped}", flush=True)
        if outcome.intra_node is not None:
            print(intra_node_table(outcome.intra_node), flush=True)
        return
    samples = [s for s in rails_outcome.pair_samples(outcome.pair_times, outcome.nodes) if not s.confirm]
    print(
        f"# rails: {len(outcome.nodes)} nodes x {outcome.rails} rails; pairs "
        f"{'off' if not settings.config.pairs else f'{settings.test.repeats} repeat(s)'}",
        flush=True,
    )
    print(
        rails_table(
            outcome.rail_results,
            samples,
            outcome.devices,
            outcome.defects,
            outcome.expected,
            outcome.findings,
            outcome.written.transients,
            outcome.written.too_noisy,
        ),
        flush=True,
    )
    for line in lenient_lines(outcome, settings.profile.pass_fraction):
        print(line, flush=True)
    if outcome.intra_node is not None:
        print(intra_node_table(outcome.intra_node), flush=True)
    # The verdict (each failure a "# FAIL" line, then the word) is the frame's to say (bench.frame.job).


def described(defect: RailDefect) -> RailDefect:
    """``defect`` with its line, as rails.json carries it: said last, once its counters, causes and action are
    known."""
    return dataclasses.replace(defect, line=describe(defect))


def _rate(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.0f}" if value >= 100 else f"{value:.3g}"


def rails_table(
    rail_results: Sequence[RailResult],
    samples: Sequence[PairSample],
    devices: Sequence[RailDevices],
    defects: Sequence[RailDefect],
    expected: Mapping[int, float | None],
    findings: Sequence[CounterFinding],
    transients: Sequence[Transient] = (),
    too_noisy: str | None = None,
) -> str:
    """The human summary: rail groups, the pair matrix per rail, the devices, and the defects."""
    lines = ["#"]
    if rail_results:
        lines.append("# rail groups (local rank k of every node)")
        lines.append(
            f"# {'rail':>4}  {'collective':<11} {'mode':<10} {'size':>6}  {'busbw Gb/s':>10}  {'line Gb/s':>9}"
        )
    else:
        lines.append("# rail groups: none measured (no rail had two live nodes)")
    for r in rail_results:
        # Measured again after a rail fell short of its mark: the best is judged, and said with its count.
        again = f"  best of {r.measured}" if r.measured > 1 else ""
        lines.append(
            f"  {r.rail:>4}  {r.collective:<11} {r.mode:<10} {format_size(r.nbytes):>6}  {_rate(r.busbw_Gbps):>10}"
            f"  {_rate(expected.get(r.rail)):>9}{again}"
        )
    by_rail: dict[int, list[float]] = {}
    for s in samples:
        by_rail.setdefault(s.rail, []).append(s.busbw_Gbps)
    if by_rail:
        lines.append("# pairs (sendrecv per direction, slower direction kept)")
        for rail, values in sorted(by_rail.items()):
            lines.append(
                f"  rail {rail}: {len(values)} samples, min {_rate(min(values))}, median "
                f"{_rate(statistics.median(values))}, max {_rate(max(values))} Gb/s"
            )
    for rd in devices:
        names = sorted({short_device(d) or "?" for d in rd.device.values()})
        # A rail with fewer than two live nodes formed no group: nothing of it was measured to carry.
        carried = ", ".join(names) or "nothing measured (no rail group)"
        lines.append(f"# rail {rd.rail} carried by {carried}")
    lines.extend(f"# COUNTERS {counter_line(f)}" for f in findings)
    failing = [d for d in defects if d.severity == "fail"]
    if failing:
        lines.append("# defects")
        lines.extend(describe(d) for d in failing)
    else:
        lines.append("# defects: none")
    warned = [d for d in defects if d.severity == "warn"]
    if warned:
        lines.append("# warnings (error counters rose while the bandwidth held)")
        lines.extend(describe(d) for d in warned)
    if transients:
        lines.append("# transients (slow once, not when re-measured; not a fault)")
        lines.extend(describe_transient(t) for t in transients)
    if too_noisy:
        lines.append(f"# {too_noisy}")
    return "\n".join(lines)


def describe_transient(t: Transient) -> str:
    """``node02-node05 rail 1: slow at 1.2 Gb/s, normal when re-measured (9.8, 10.1 Gb/s) → transient``."""
    return transient_line(f"{t.node}-{t.peer} rail {t.rail}", t)


def describe_local_transient(transient: Transient) -> str:
    """``node03/gpu1-gpu5: slow at 120 Gb/s, normal when re-measured (470, 475 Gb/s) → transient``."""
    return transient_line(f"{transient.node}-{(transient.peer or '').rpartition('/')[2]}", transient)


def transient_line(where: str, t: Transient) -> str:
    """A transient said at ``where`` (a pair on a rail, or two GPUs of a node): its slowest sample and its
    re-measurements."""
    low = min(t.samples_Gbps) if t.samples_Gbps else 0.0
    again = ", ".join(gbps(v) for v in t.confirm_Gbps)
    return f"{where}: slow at {gbps(low)} Gb/s, normal when re-measured ({again} Gb/s) → transient"


def intra_node_table(outcome: IntraNodeOutcome) -> str:
    """The intra-node matrix's human summary: per node the spread of its local pairs, then the defects."""
    lines = ["# intra-node pairs (local rank i <-> j on each node, sendrecv per direction, slower kept)"]
    if outcome.skipped:
        return "\n".join([*lines, f"# intra-node: skipped: {outcome.skipped}"])
    matrix = LocalMatrix.from_times(outcome.times, outcome.nodes, outcome.local_ranks)
    upper_a, upper_b = np.triu_indices(outcome.local_ranks, k=1)
    for k, node in enumerate(outcome.nodes):
        cells = matrix.busbw[:, k, upper_a, upper_b].ravel()
        values = [float(v) for v in cells[~np.isnan(cells)]]
        if values:
            lines.append(
                f"  {node}: {len(values)} samples, min {gbps(min(values))}, median "
                f"{gbps(statistics.median(values))}, max {gbps(max(values))} Gb/s"
                + (f" (target {gbps(outcome.target_Gbps)})" if outcome.target_Gbps else "")
            )
    loc = outcome.localisation
    if loc.too_noisy:
        lines.append(f"# intra-node: {loc.too_noisy}")
    if loc.transients:
        lines.append("# intra-node transients (slow once, not when re-measured; not a fault)")
        lines.extend(describe_local_transient(t) for t in loc.transients)
    if loc.defects:
        lines.append("# intra-node defects")
        lines.extend(describe_gpu(d) for d in loc.defects)
    else:
        lines.append("# intra-node defects: none")
    return "\n".join(lines)
