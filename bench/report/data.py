"""Aggregate a run's inputs into the small tables the charts draw.

Vega-Lite slows down above a few thousand rows and a 512-node run has hundreds of thousands of results, so
every table here is aggregated in pandas first: one row per (collective, size) for the sweep, one bar per
rail or node (the slowest ``max_bars`` when there are more), and the last ``max_points`` nights per trend
metric (``bench.report.trend``); the pair and GPU matrices are ``bench.report.matrices``.

The run directory is read by ``bench.report.inputs``; this module only aggregates.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bench.report.inputs import RunInputs
from bench.rundir.defect_kinds import DEFECT_KINDS, covered_cells, kind_of
from bench.rundir.pair_cells import PairCells
from bench.rundir.railsdoc import RailDefect, RailsDoc
from bench.rundir.results_csv import SCOPES
from bench.units import format_size

STATUSES = ("pass", "fail", "no target")


@dataclass(frozen=True, eq=False)
class ChartData:
    """One chart's data: the aggregated frame and a note for the title when rows were left out."""

    frame: pd.DataFrame
    note: str = ""
    axes: tuple[str, str] = ("node", "peer")
    """A matrix's row and column titles (``unit`` for the pair matrix drawn unit by unit)."""


def status(busbw_Gbps: pd.Series, target_Gbps: pd.Series, min_efficiency: float) -> pd.Series:
    """pass / fail / no target for each value against ``min_efficiency`` x target."""
    below = busbw_Gbps < target_Gbps * min_efficiency
    out = np.where(target_Gbps.isna() | (target_Gbps <= 0), "no target", np.where(below, "fail", "pass"))
    return pd.Series(out, index=busbw_Gbps.index, dtype=object)


def _with_units(frame: pd.DataFrame) -> pd.DataFrame:
    """Both units side by side so a chart can show either: GB/s = Gb/s / 8."""
    frame["busbw_GBps"] = frame["busbw_Gbps"] / 8.0
    frame["target_GBps"] = frame["target_Gbps"] / 8.0
    frame["efficiency"] = np.where(frame["target_Gbps"] > 0, frame["busbw_Gbps"] / frame["target_Gbps"], np.nan)
    return frame


def _preferred_placement(rows: pd.DataFrame) -> pd.DataFrame:
    # nccl-tests measures out-of-place and in-place; averaging them would blur both, so chart one: the
    # out-of-place half where a collective has one, else what it has (railbench's all_reduce is in-place).
    if rows.empty:
        return rows
    oop = rows["placement"] == "out-of-place"
    has_oop = oop.groupby(rows["collective"]).transform("any")
    return rows[oop | ~has_oop]


def sweep_table(results: pd.DataFrame) -> ChartData:
    """World collectives: one row per (collective, message size), the mean of repeated measurements.

    Zero-byte rows (all_gather of 8 B on 4 ranks sends 0 B per rank) stay in the tables but not here: the
    chart's x axis is logarithmic, where 0 has no place.
    """
    world = results[(results["scope"] == "world") & (results["bytes"] > 0)]
    rows = _preferred_placement(world)
    if rows.empty:
        return ChartData(pd.DataFrame())
    numeric = ["time_us", "algbw_GBps", "busbw_GBps", "busbw_Gbps", "target_Gbps"]
    frame = rows.groupby(["collective", "bytes"], as_index=False, sort=True)[numeric].mean()
    # The other half nccl-tests measured (in-place, beside the out-of-place line): in the tooltip, not a line
    # of its own, since the two nearly always coincide.
    other = world.drop(rows.index)
    if not other.empty:
        in_place = other.groupby(["collective", "bytes"], as_index=False)["busbw_GBps"].mean()
        frame = frame.merge(in_place.rename(columns={"busbw_GBps": "in_place_busbw_GBps"}), how="left")
    frame["busbw_Gbps"] = frame["busbw_GBps"] * 8.0  # recomputed so both units agree after averaging
    frame = _with_units(frame)
    frame["size"] = [format_size(b) for b in frame["bytes"]]
    frame["bytes"] = frame["bytes"].astype("int64")
    return ChartData(frame)


def _limit_bars(frame: pd.DataFrame, max_bars: int, what: str) -> ChartData:
    if len(frame) <= max_bars:
        return ChartData(frame.reset_index(drop=True))
    # The chart exists to find the slow ones: keep the slowest, say how many were left out.
    kept = frame.nsmallest(max_bars, "busbw_Gbps").reset_index(drop=True)
    return ChartData(kept, f"the {max_bars} slowest of {len(frame)} {what}")


def group_bars_table(
    results: pd.DataFrame, scope: str, collective: str, min_efficiency: float, max_bars: int = 64
) -> ChartData:
    """One bar per communicator group of ``scope`` (rail groups, single nodes) at its largest message size."""
    rows = _preferred_placement(results[(results["scope"] == scope) & (results["collective"] == collective)])
    if rows.empty:
        return ChartData(pd.DataFrame())
    largest = rows.groupby("group")["bytes"].transform("max")
    rows = rows[rows["bytes"] == largest]
    frame = rows.groupby("group", as_index=False, sort=False).agg(
        busbw_GBps=("busbw_GBps", "mean"), target_Gbps=("target_Gbps", "max"), bytes=("bytes", "max")
    )
    frame["busbw_Gbps"] = frame["busbw_GBps"] * 8.0
    frame = _with_units(frame)
    frame["label"] = frame["group"].astype(str)
    frame["detail"] = [f"{collective} at {format_size(b)}" for b in frame["bytes"]]
    frame["status"] = status(frame["busbw_Gbps"], frame["target_Gbps"], min_efficiency)
    columns = ["label", "busbw_GBps", "busbw_Gbps", "target_GBps", "target_Gbps", "efficiency", "status", "detail"]
    return _limit_bars(frame[columns], max_bars, f"{scope} groups")


def _defect_keys(rails: RailsDoc) -> tuple[set[tuple[str, int]], set[int], set[str]]:
    """(node, rail) pairs, rails and nodes that the rails command named as defective (a warning, such as a
    link whose error counters rose while its bandwidth held, fails no bar)."""
    keys, rails_hit, nodes_hit = set(), set(), set()
    for defect in rails.defects:
        if defect.severity == "warn":
            continue
        node, rail = defect.node, defect.rail
        if node is not None and rail is not None:
            keys.add((node, rail))
        if rail is not None:
            rails_hit.add(rail)
        if node is not None:
            nodes_hit.add(node)
    return keys, rails_hit, nodes_hit


def _rail_measurements(rails: RailsDoc, kind: str) -> pd.DataFrame:
    rows = [
        (m.rail, m.node, m.peer, m.device, m.busbw_Gbps, m.expected_Gbps) for m in rails.measurements if m.kind == kind
    ]
    columns = ["rail", "node", "peer", "device", "busbw_Gbps", "expected_Gbps"]
    frame = pd.DataFrame.from_records(rows, columns=columns) if rows else pd.DataFrame(columns=columns)
    if kind == "pair" and isinstance(rails.pair_cells, PairCells) and rails.pair_cells.rows:
        # format 3 writes the pair directions in columns; a document has them one way or the other
        cells = _cells_frame(rails.pair_cells, rails.nodes)
        frame = pd.concat([frame, cells], ignore_index=True) if rows else cells
    frame["busbw_Gbps"] = pd.to_numeric(frame["busbw_Gbps"], errors="coerce").astype(float)
    frame["expected_Gbps"] = pd.to_numeric(frame["expected_Gbps"], errors="coerce").astype(float)
    frame["device"] = frame["device"].fillna("")
    return frame


def _cells_frame(cells: PairCells, nodes: Sequence[str]) -> pd.DataFrame:
    """The pair directions of rails.json's columns as ``_rail_measurements`` gives them, in the order measured."""
    names = np.asarray(nodes, dtype=object)
    rail = np.asarray(cells.rail, dtype=np.int64)
    node, peer = np.asarray(cells.node, dtype=np.int64), np.asarray(cells.peer, dtype=np.int64)
    width = len(nodes)
    rails = int(rail.max()) + 1
    devices = np.array([cells.device(r, n) for r in range(rails) for n in range(width)], dtype=object)
    expected = np.array([cells.expected(r) for r in range(rails)], dtype=object)
    return pd.DataFrame(
        {
            "rail": rail,
            "node": names[node],
            "peer": names[peer],
            "device": devices[rail * width + node],
            "busbw_Gbps": np.asarray(cells.busbw_Gbps, dtype=float),
            "expected_Gbps": expected[rail],
        }
    )


def node_rail_levels(rails: RailsDoc) -> pd.DataFrame:
    """busbw per (node, rail): per-node rail records where rails.json has them, else the median of every pair
    the node took part in on that rail (either direction). A bad link is slow with every partner, so its
    median is slow; a healthy node with one bad partner keeps a healthy median."""
    per_node = _rail_measurements(rails, "rail")
    per_node = per_node[per_node["node"].notna()]
    if not per_node.empty:
        return per_node.reset_index(drop=True)
    pairs = _rail_measurements(rails, "pair")
    if pairs.empty:
        return pairs
    # each (node, rail)'s device: the last direction that named one, where it sent
    named = pairs.loc[pairs["device"].astype(bool), ["node", "rail", "device"]]
    devices = named.drop_duplicates(["node", "rail"], keep="last").set_index(["node", "rail"])["device"]
    ends = pd.concat(
        [
            pairs[["rail", "node", "busbw_Gbps", "expected_Gbps"]],
            pairs[["rail", "peer", "busbw_Gbps", "expected_Gbps"]].rename(columns={"peer": "node"}),
        ],
        ignore_index=True,
    )
    levels = ends.groupby(["rail", "node"], sort=False).agg(
        busbw_Gbps=("busbw_Gbps", "median"), expected_Gbps=("expected_Gbps", "first")
    )
    levels = levels.reset_index()
    levels["peer"] = None
    keys = pd.MultiIndex.from_arrays([levels["node"], levels["rail"]])
    levels["device"] = devices.reindex(keys).fillna("").to_numpy() if len(devices) else ""
    return levels[["rail", "node", "peer", "device", "busbw_Gbps", "expected_Gbps"]]


def dead_parts(rails: RailsDoc) -> list[RailDefect]:
    """The failing defects told dead (nothing moved through them; their pairs were never attempted)."""
    return [d for d in rails.defects if d.severity != "warn" and d.conviction.symptom == "dead"]


def rail_count(levels: pd.DataFrame, rails: RailsDoc) -> int:
    """How many rails: every rail measured or recorded in rails.json."""
    return max([-1, *(int(r) for r in levels["rail"]), *(e.rail for e in rails.rails)]) + 1


def _with_dead(levels: pd.DataFrame, rails: RailsDoc) -> pd.DataFrame:
    """``levels`` with every (node, rail) a dead link, node or rail covers at 0 Gb/s (``covered_cells``): its
    pairs were never attempted, so the median of its node's pairs is absent (no bar) or the healthy pairs' (too
    long a bar). A dead pair leaves both ends' other pairs, their level, as measured."""
    dead = [d for d in dead_parts(rails) if (kind_of(d.kind) or DEFECT_KINDS["link"]).cells != "pair"]
    if not dead:
        return levels
    nodes = list(dict.fromkeys([*map(str, rails.nodes), *levels["node"].astype(str)]))
    placed = zip(levels["node"], levels["rail"], levels["device"], strict=True)
    devices = {(str(n), int(r)): str(d) for n, r, d in placed}
    zero: dict[tuple[str, int], str] = {}
    for d in dead:
        for node, rail in covered_cells(d.kind, d.node, d.peer, d.rail, nodes, rail_count(levels, rails)):
            if node is not None and rail is not None:
                zero[(node, rail)] = d.device if d.device and d.node == node else devices.get((node, rail), "")
    keep = [(str(n), int(r)) not in zero for n, r in zip(levels["node"], levels["rail"], strict=True)]
    expected = levels.groupby("rail")["expected_Gbps"].first().to_dict() if len(levels) else {}
    added = pd.DataFrame.from_records(
        [(r, n, None, dev, 0.0, expected.get(r, float("nan")), True) for (n, r), dev in zero.items()],
        columns=["rail", "node", "peer", "device", "busbw_Gbps", "expected_Gbps", "dead"],
    )
    alive = levels[keep].assign(dead=False)
    return pd.concat([f for f in (alive, added) if len(f)], ignore_index=True)


def _dead(weakest: pd.DataFrame) -> np.ndarray:
    """Whether each bar's weakest part is a dead one (its 0 Gb/s is no measurement): such a bar fails."""
    if "dead" not in weakest:
        return np.zeros(len(weakest), dtype=bool)
    return weakest["dead"].fillna(False).to_numpy(dtype=bool)


def _dead_mark(weakest: pd.DataFrame) -> list[str]:
    """``: dead`` after a bar's detail where its weakest part is a dead one."""
    return [": dead" if dead else "" for dead in _dead(weakest)]


def _mark_defects(frame: pd.DataFrame, named: pd.Series, min_efficiency: float) -> pd.DataFrame:
    frame["status"] = status(frame["busbw_Gbps"], frame["target_Gbps"], min_efficiency)
    # A defect the rails command proved (pair evidence) fails the bar even if this aggregate looks fine.
    frame.loc[named.to_numpy(), "status"] = "fail"
    return frame


def rail_bars_table(rails: RailsDoc, min_efficiency: float) -> ChartData:
    """One bar per rail: its weakest node's busbw, from rails.json (a dead link's node at 0)."""
    measured = _with_dead(node_rail_levels(rails), rails)
    if measured.empty:
        return ChartData(pd.DataFrame())
    _, rails_hit, _ = _defect_keys(rails)
    weakest = measured.loc[measured.groupby("rail")["busbw_Gbps"].idxmin()].sort_values("rail")
    frame = pd.DataFrame(
        {
            "label": [
                f"rail {r}" + (f" ({d})" if d else "") for r, d in zip(weakest["rail"], weakest["device"], strict=True)
            ],
            "busbw_Gbps": weakest["busbw_Gbps"].to_numpy(),
            "target_Gbps": weakest["expected_Gbps"].to_numpy(),
            "detail": [f"weakest node {n}{m}" for n, m in zip(weakest["node"], _dead_mark(weakest), strict=True)],
        }
    )
    frame = _mark_defects(_with_units(frame), weakest["rail"].isin(rails_hit) | _dead(weakest), min_efficiency)
    return ChartData(frame[_BAR_COLUMNS])


def node_bars_table(rails: RailsDoc, min_efficiency: float, max_bars: int = 64) -> ChartData:
    """One bar per node: its weakest rail's busbw, from rails.json (a dead link's rail at 0)."""
    measured = _with_dead(node_rail_levels(rails), rails)
    if measured.empty:
        return ChartData(pd.DataFrame())
    keys, _, _ = _defect_keys(rails)
    weakest = measured.loc[measured.groupby("node", sort=False)["busbw_Gbps"].idxmin()]
    frame = pd.DataFrame(
        {
            "label": weakest["node"].to_numpy(),
            "busbw_Gbps": weakest["busbw_Gbps"].to_numpy(),
            "target_Gbps": weakest["expected_Gbps"].to_numpy(),
            "detail": [
                f"weakest rail {r}" + (f" ({d})" if d else "") + m
                for r, d, m in zip(weakest["rail"], weakest["device"], _dead_mark(weakest), strict=True)
            ],
        }
    )
    named = pd.Series([(n, r) in keys for n, r in zip(weakest["node"], weakest["rail"], strict=True)]) | _dead(weakest)
    frame = _mark_defects(_with_units(frame), named, min_efficiency)
    return _limit_bars(frame[_BAR_COLUMNS], max_bars, "nodes")


_BAR_COLUMNS = ["label", "busbw_GBps", "busbw_Gbps", "target_GBps", "target_Gbps", "efficiency", "status", "detail"]
_RAIL_GROUP = re.compile(r"^(?P<pair>.+)/rail(?P<rail>\d+)$")


def split_pair_group(group: str, hosts: Iterable[str]) -> tuple[str, str, int] | None:
    """``"node02-node05/rail3"`` -> ("node02", "node05", 3); hostnames may hold '-', so use the host list."""
    match = _RAIL_GROUP.match(group)
    if not match:
        return None
    pair, rail = match.group("pair"), int(match.group("rail"))
    known = set(hosts)
    splits = [(pair[:i], pair[i + 1 :]) for i, c in enumerate(pair) if c == "-"]
    resolved = [(a, b) for a, b in splits if a in known and b in known]
    if len(resolved) == 1:
        return resolved[0][0], resolved[0][1], rail
    if not known and len(splits) == 1:
        return splits[0][0], splits[0][1], rail
    return None


def pair_measurements(inputs: RunInputs) -> tuple[pd.DataFrame, int]:
    """Node-pair busbw per rail (rails.json when present, else results.csv pair rows) and unparsed groups."""
    if inputs.rails is not None:
        frame = _rail_measurements(inputs.rails, "pair")
        if not frame.empty:
            return frame, 0
    rows = _preferred_placement(inputs.results[inputs.results["scope"] == "pair"])
    if rows.empty:
        return pd.DataFrame(), 0
    rows = rows[rows["bytes"] == rows.groupby("group")["bytes"].transform("max")]
    per_group = rows.groupby("group", as_index=False).agg(
        busbw_GBps=("busbw_GBps", "mean"), expected_Gbps=("target_Gbps", "max")
    )
    hosts = list(inputs.run.hosts)
    # 8 rails share each node pair: resolve every distinct "a-b" once, not once per rail
    parts = per_group["group"].astype(str).str.extract(_RAIL_GROUP.pattern)
    resolved = {pair: split_pair_group(f"{pair}/rail0", hosts) for pair in parts["pair"].dropna().unique()}
    nodes = parts["pair"].map(lambda p: resolved.get(p) if isinstance(p, str) else None)
    ok = nodes.notna().to_numpy()
    frame = pd.DataFrame(
        {
            "rail": parts.loc[ok, "rail"].astype(int).to_numpy(),
            "node": [n[0] for n in nodes[ok]],
            "peer": [n[1] for n in nodes[ok]],
            "device": "",
            "busbw_Gbps": per_group.loc[ok, "busbw_GBps"].to_numpy() * 8.0,
            "expected_Gbps": per_group.loc[ok, "expected_Gbps"].to_numpy(),
        }
    )
    return frame, int((~ok).sum())


def node_order(names: Iterable[str], hosts: Sequence[str]) -> list[str]:
    """Nodes in run.json's host order (launch order), unknown ones after it, sorted."""
    seen = set(names)
    ordered = [h for h in hosts if h in seen]
    return ordered + sorted(seen - set(ordered))


def results_summary(
    results: pd.DataFrame, min_efficiency: float, judged: Mapping[str, str] | None = None
) -> pd.DataFrame:
    """One line per (scope, collective): the largest size, worst and median busbw, target, verdict.

    ``judged`` is the state the run's own verdict gave each world collective (run.json ``items``): shown as
    it is, so a collective measured below the judged sizes reads "measured", never "fail" against a target
    that did not apply there."""
    columns = [
        "scope",
        "collective",
        "groups",
        "size",
        "worst_group",
        "worst_GBps",
        "median_GBps",
        "target_Gbps",
        "worst_efficiency",
        "wrong",
        "verdict",
    ]
    lines = []
    for (scope, collective), every in results.groupby(["scope", "collective"], sort=False):
        # wrong results at any size or placement fail the line; bandwidth is judged at the largest size
        wrong = int(every["wrong"].fillna(0).sum())
        rows = _preferred_placement(every)
        rows = rows[rows["bytes"] == rows.groupby("group")["bytes"].transform("max")]
        per_group = rows.groupby("group").agg(
            busbw_GBps=("busbw_GBps", "mean"), target_Gbps=("target_Gbps", "max"), bytes=("bytes", "max")
        )
        worst = per_group["busbw_GBps"].idxmin()
        target = per_group["target_Gbps"].max()
        efficiency = (per_group["busbw_GBps"] * 8.0 / per_group["target_Gbps"]).min()
        if scope == "world" and judged and collective in judged:
            verdict = judged[collective]
        elif wrong:
            verdict = "fail (wrong results)"
        elif not (target > 0):
            verdict = "measured"
        elif efficiency < min_efficiency:
            verdict = "fail"
        else:
            # tree, NVLS and SHARP may beat the wire rate legitimately: say so rather than hide it
            verdict = "pass (above wire)" if efficiency > 1.0 else "pass"
        lines.append(
            [
                scope,
                collective,
                len(per_group),
                format_size(per_group["bytes"].max()),
                worst,
                per_group.loc[worst, "busbw_GBps"],
                per_group["busbw_GBps"].median(),
                target,
                efficiency,
                wrong,
                verdict,
            ]
        )
    order = {s: i for i, s in enumerate(SCOPES)}
    frame = pd.DataFrame(lines, columns=columns)
    return frame.sort_values("scope", key=lambda s: s.map(order), kind="stable").reset_index(drop=True)
