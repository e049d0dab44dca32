"""rails.json's measurement sections and results.csv's rows, said from rank 0's working forms.

Output code at the top of ``rails/``, beside its two callers: the final outputs (``bench.rails.output``) and
the provisional ones written while the test runs (``bench.rails.live_output``). The working forms they read
(``RailResult``, ``PairTime``, ``IntraNodeOutcome``) are the diagnosis's; nothing below says them as a document.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np

from bench.codec import ABSENT
from bench.measure.collectives import get_collective
from bench.measure.results import RowPlace, pair_row, result_row
from bench.rails.diagnosis.gpu_outcome import IntraNodeOutcome
from bench.rails.diagnosis.gpu_pairs import SCOPE, LocalPairTime, pair_name
from bench.rails.diagnosis.matrix import PairTime
from bench.rails.diagnosis.rails_outcome import RailResult, busbw_Gbps
from bench.rundir import railsdoc
from bench.rundir.finding_words import describe_gpu
from bench.rundir.pair_cells import LinkLevels, PairCells
from bench.rundir.railsdoc import Measurement
from bench.rundir.results_csv import Row


def measurements(rail_results: Sequence[RailResult], expected: Mapping[int, float | None]) -> list[Measurement]:
    """rails.json's ``measurements``: every rail-group result (the pairs are in :func:`pair_cells`)."""
    return [
        Measurement(
            kind="rail",
            rail=r.rail,
            collective=r.collective,
            mode=r.mode,
            busbw_Gbps=round(r.busbw_Gbps, 6),
            expected_Gbps=expected.get(r.rail),
            bytes=r.nbytes,
            time_us=round(r.time_us, 3),
            time_us_min=round(r.time_us_min, 3),
            time_us_max=round(r.time_us_max, 3),
            wrong=r.wrong,
            samples_us=tuple(round(t, 3) for t in r.samples_us) if r.samples_us else ABSENT,
        )
        for r in rail_results
    ]


def pair_cells(
    times: Sequence[PairTime],
    nodes: Sequence[str],
    expected: Mapping[int, float | None],
    devices: Mapping[tuple[str, int], str],
) -> PairCells:
    """rails.json's ``pair_cells``: every pair direction, in the order measured, one column per field."""
    rails = max([-1, *expected, *(t.rail for t in times)]) + 1
    return PairCells(
        rail=tuple(t.rail for t in times),
        node=tuple(t.node for t in times),
        peer=tuple(t.peer for t in times),
        busbw_Gbps=tuple(round(busbw_Gbps(t.nbytes, t.time_us), 6) for t in times),
        bytes=tuple(t.nbytes for t in times),
        time_us=tuple(round(t.time_us, 3) for t in times),
        repeat=tuple(t.repeat for t in times),
        round=tuple(t.round for t in times),
        confirm=tuple(t.confirm for t in times),
        stopped=tuple(i for i, t in enumerate(times) if t.stopped),
        expected_Gbps=tuple(expected.get(rail) for rail in range(rails)),
        devices=tuple(tuple(devices.get((node, rail)) for node in nodes) for rail in range(rails)),
    )


def link_levels(cells: PairCells, pass_fraction: float | None) -> LinkLevels:
    """rails.json's ``link_levels``: each (node, rail) link over the matrix directions it took part in, at either
    end, in rail then node order."""
    matrix = np.asarray(cells.confirm, dtype=np.int64) == 0
    rail = np.asarray(cells.rail, dtype=np.int64)[matrix]
    node, peer = np.asarray(cells.node, dtype=np.int64)[matrix], np.asarray(cells.peer, dtype=np.int64)[matrix]
    value = np.asarray(cells.busbw_Gbps, dtype=float)[matrix]
    if not len(rail):
        return LinkLevels(pass_fraction=pass_fraction)
    width = int(max(node.max(), peer.max())) + 1
    link = np.concatenate([rail * width + node, rail * width + peer])
    partner = np.concatenate([peer, node])
    values = np.concatenate([value, value])
    line = np.array([cells.expected(r) or np.nan for r in range(len(cells.expected_Gbps))] or [np.nan])
    low = values < line[np.concatenate([rail, rail])] * (pass_fraction if pass_fraction else np.nan)
    order = np.lexsort((values, link))
    link, partner, values, low = link[order], partner[order], values[order], low[order]
    keys, starts, counts = np.unique(link, return_index=True, return_counts=True)
    medians = (values[starts + (counts - 1) // 2] + values[starts + counts // 2]) / 2  # each link's run is sorted
    partners = np.unique(link * width + partner) // width
    return LinkLevels(
        pass_fraction=pass_fraction,
        rail=tuple(int(k) for k in keys // width),
        node=tuple(int(k) for k in keys % width),
        partners=tuple(int(n) for n in np.unique(partners, return_counts=True)[1]),
        cells=tuple(int(n) for n in counts),
        median_Gbps=tuple(round(float(m), 6) for m in medians),
        min_Gbps=tuple(round(float(v), 6) for v in values[starts]),
        below=tuple(int(n) for n in np.add.reduceat(low.astype(np.int64), starts)),
    )


def rail_rows(rail_results: Sequence[RailResult], expected: Mapping[int, float | None], dtype: str) -> list[Row]:
    """results.csv rows for the rail groups (scope ``rail``, group ``railK``; isolated ones ``railK-alone``)."""
    rows: list[Row] = []
    for r in rail_results:
        group = f"rail{r.rail}" if r.mode == "concurrent" else f"rail{r.rail}-alone"
        place = RowPlace(dtype, r.nnodes, r.nnodes, "rail", group)
        rows.append(result_row(get_collective(r.collective), r, place, expected.get(r.rail)))
    return rows


def pair_rows(
    times: Sequence[PairTime], nodes: Sequence[str], expected: Mapping[int, float | None], iters: int
) -> list[Row]:
    """results.csv rows for the pairs (scope ``pair``, group ``node02-node05/rail3``), one per pair, rail and
    repeat: time is the slower direction's, time_us_min/max the two directions'."""
    both: dict[tuple[int, int, int, int], list[PairTime]] = {}
    for t in (t for t in times if not t.confirm):  # re-measurements are in rails.json
        both.setdefault((min(t.node, t.peer), max(t.node, t.peer), t.rail, t.repeat), []).append(t)
    rows: list[Row] = []
    for (a, b, rail, _repeat), pair in sorted(both.items()):
        place = RowPlace("float", 2, 2, "pair", f"{nodes[a]}-{nodes[b]}/rail{rail}")
        rows.append(pair_row(pair[0].nbytes, [p.time_us for p in pair], iters, place, expected.get(rail)))
    return rows


def local_pair_rows(outcome: IntraNodeOutcome, iters: int) -> list[Row]:
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
