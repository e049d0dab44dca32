"""rails.json's measurement sections and results.csv's rows, said from rank 0's working forms.

Output code at the top of ``rails/``, beside its two callers: the final outputs (``bench.rails.output``) and
the provisional ones written while the test runs (``bench.rails.live_output``). The working forms they read
(``RailResult``, ``PairTime``, ``IntraNodeOutcome``) are the diagnosis's; nothing below says them as a document.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from bench.measure.collectives import get_collective
from bench.measure.results import RowPlace, pair_row, result_row
from bench.rails.diagnosis.gpu_outcome import IntraNodeOutcome
from bench.rails.diagnosis.gpu_pairs import SCOPE, LocalPairTime, pair_name
from bench.rails.diagnosis.matrix import PairTime
from bench.rails.diagnosis.rails_outcome import RailResult, busbw_Gbps
from bench.rundir import railsdoc
from bench.rundir.finding_words import describe_gpu
from bench.rundir.railsdoc import Measurement
from bench.rundir.results_csv import Row


def measurements(
    rail_results: Sequence[RailResult],
    times: Sequence[PairTime],
    nodes: Sequence[str],
    expected: Mapping[int, float | None],
    devices: Mapping[tuple[str, int], str],
) -> list[Measurement]:
    """rails.json's ``measurements``: every rail-group result and every pair direction."""
    out = [
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
        )
        for r in rail_results
    ]
    for t in times:
        node = nodes[t.node]
        out.append(
            Measurement(
                kind="pair",
                rail=t.rail,
                node=node,
                peer=nodes[t.peer],
                device=devices.get((node, t.rail)),
                collective="sendrecv",
                busbw_Gbps=round(busbw_Gbps(t.nbytes, t.time_us), 6),
                expected_Gbps=expected.get(t.rail),
                bytes=t.nbytes,
                time_us=round(t.time_us, 3),
                repeat=t.repeat,
                round=t.round,
                confirm=t.confirm,
                stopped=t.stopped,
            )
        )
    return out


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
