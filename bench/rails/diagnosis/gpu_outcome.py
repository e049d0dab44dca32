"""What rank 0 says of the intra-node pair matrix once ``bench.rails.diagnosis.gpu_pairs`` has judged it: the outcome,
its results.csv rows, rails.json's ``intra_node`` section, and the lines the terminal and the report print for a
GPU defect or a transient."""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from bench.measure.results import RowPlace, pair_row
from bench.rails.diagnosis.defects import gbps, transient_line
from bench.rails.diagnosis.gpu_pairs import SCOPE, LocalMatrix, LocalPairTime, NamedGpus, pair_name
from bench.rundir import railsdoc
from bench.rundir.finding_words import describe_gpu as describe_gpu
from bench.rundir.findings import Finding, gpu_finding
from bench.rundir.rails_records import GpuDefect, Localisation, Transient
from bench.rundir.results_csv import Row


def describe_local_transient(transient: Transient) -> str:
    """``node03/gpu1-gpu5: slow at 120 Gb/s, normal when re-measured (470, 475 Gb/s) → transient``."""
    return transient_line(f"{transient.node}-{(transient.peer or '').rpartition('/')[2]}", transient)


@dataclass(frozen=True)
class IntraNodeOutcome:
    """What rank 0 knows after the intra-node pair matrix."""

    nodes: tuple[str, ...]
    local_ranks: int
    times: tuple[LocalPairTime, ...] = ()
    bus_ids: Mapping[str, tuple[str | None, ...]] = field(default_factory=dict)
    """node -> PCI bus id of each local rank's GPU (None on CPU)."""
    target_Gbps: float | None = None
    """The profile's NVLink sendrecv target (GPUs only), else None: only the relative test applies."""
    named: NamedGpus = field(default_factory=NamedGpus)
    """What the matrix named (``bench.rails.diagnosis.gpu_pairs.localise_gpus``), before its conviction."""
    localisation: Localisation = field(default_factory=Localisation)
    """rails.json's record of it, each part named made a ``GpuDefect`` once by the conviction step
    (``bench.rails.diagnosis.corroborate``: its causes and its action). Empty until then."""
    skipped: str | None = None
    process_groups: int = 0
    """Node groups made: one per node, pairs inside it, never one per pair."""
    remeasured: tuple[LocalPairTime, ...] = ()
    """The re-measurements of the suspect pairs (``LocalPairTime.confirm`` 1..); ``times`` is the matrix."""

    @property
    def defects(self) -> tuple[GpuDefect, ...]:
        return self.localisation.defects

    @property
    def failed(self) -> bool:
        return bool(self.localisation.defects)

    def node_reasons(self, node: str) -> list[Finding]:
        return [f for f in map(gpu_finding, self.defects) if f.part.covers(node=node)]


def rows(outcome: IntraNodeOutcome, iters: int) -> list[Row]:
    """results.csv rows, one per local pair and repeat (scope ``local-pair``, group ``node03/gpu1-gpu5``):
    time is the slower direction's, time_us_min/max the two directions'."""
    both: dict[tuple[int, int, int, int], list[LocalPairTime]] = {}
    for t in outcome.times:
        both.setdefault((t.node, min(t.gpu, t.peer), max(t.gpu, t.peer), t.repeat), []).append(t)
    out: list[Row] = []
    for (node, a, b, _repeat), pair in sorted(both.items()):
        place = RowPlace("float", 2, 1, SCOPE, pair_name(outcome.nodes[node], a, b))
        out.append(pair_row(pair[0].nbytes, [p.time_us for p in pair], iters, place, outcome.target_Gbps))
    return out


def intra_node_section(outcome: IntraNodeOutcome) -> railsdoc.IntraNode:
    """rails.json's ``intra_node`` section, each defect with its line."""
    loc = outcome.localisation

    def bus(node: str, gpu: int) -> str | None:
        ids = outcome.bus_ids.get(node) or ()
        return ids[gpu] if gpu < len(ids) else None

    return railsdoc.IntraNode(
        skipped=outcome.skipped,
        nodes=tuple(outcome.nodes),
        local_ranks=outcome.local_ranks,
        bus_ids={n: tuple(ids) for n, ids in outcome.bus_ids.items()},
        target_Gbps=outcome.target_Gbps,
        process_groups=outcome.process_groups,
        measurements=tuple(
            railsdoc.LocalMeasurement(
                node=outcome.nodes[t.node],
                gpu=t.gpu,
                peer=t.peer,
                bus_id=bus(outcome.nodes[t.node], t.gpu),
                peer_bus_id=bus(outcome.nodes[t.node], t.peer),
                collective="sendrecv",
                busbw_Gbps=round(t.busbw_Gbps, 6),
                bytes=t.nbytes,
                time_us=round(t.time_us, 3),
                repeat=t.repeat,
                round=t.round,
            )
            for t in outcome.times
        ),
        localisation=dataclasses.replace(
            loc,
            defects=tuple(dataclasses.replace(d, line=describe_gpu(d)) for d in loc.defects),
            level_Gbps=None if loc.level_Gbps is None else round(loc.level_Gbps, 6),
        ),
    )


def table(outcome: IntraNodeOutcome) -> str:
    """The human summary: per node the spread of its local pairs, then the defects."""
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
