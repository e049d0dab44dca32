"""The two matrices a rail-optimised cluster is judged by, as heat-map tables: the node x node pair matrix of
each rail, and the GPU x GPU matrix of each node (its NVLink/NVSwitch, or loopback between CPU ranks).

Both tables have the same columns, so one chart draws either (``bench.report.heatmap.heatmap_chart``):

* ``panel`` / ``panel_order``: the small multiple (``rail 3``, or a node's name) and its place;
* ``row`` / ``row_index`` and ``col`` / ``col_index``: the cell's labels and their order;
* ``busbw_Gbps`` (4 significant digits) and ``efficiency`` (of the line rate or target, NaN without one);
* ``mark``: ``dead`` for a pair with a dead end, never attempted (drawn at 0), ``slow`` when a named defect
  convicts the cell or it is below the pass line, ``transient`` when it was slow once and normal when
  re-measured, else empty: the chart outlines marked cells;
* ``detail`` (the HCA, the worst pair of a block, or the PCI bus ids), and ``pairs`` (pairs in the cell)
  when nodes are grouped into blocks.

The pair matrix is symmetric, so its table holds the upper triangle only (``row_index <= col_index``) and
the chart mirrors it: at 64 nodes x 8 rails that is 16,000 rows, not 32,000, and the spec with its data
inlined stays well under 2 MB.

A pair cell's value is each direction's median over its samples (matrix repeats and re-measurements), the
slower direction kept: a transient then reads at its normal level, marked, and a broken link reads slow in
every sample. A GPU cell is one direction (row sends, column receives), the median over repeats.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from bench.bounded import ascii_digits
from bench.codec import ABSENT
from bench.report.data import ChartData, dead_parts, node_order, rail_count, status
from bench.rundir.defect_kinds import covered_cells
from bench.rundir.railsdoc import GpuDefect, IntraNode, RailsDoc

MARKS = ("dead", "slow", "transient")
_MARK_RANK = {"": 0, "transient": 1, "slow": 2, "dead": 3}
"""A block shows its gravest mark: a dead pair outranks a convicted one, which outranks a transient one."""
_COLUMNS = [
    "panel",
    "panel_order",
    "row",
    "row_index",
    "col",
    "col_index",
    "busbw_Gbps",
    "efficiency",
    "mark",
    "detail",
]


def _significant(values: np.ndarray, digits: int) -> np.ndarray:
    """Each value to ``digits`` significant digits: a heat map's colour needs no more, and the CSV shrinks."""
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(values > 0, 10.0 ** (digits - 1 - np.floor(np.log10(np.abs(values)))), 1.0)
    return np.round(values * scale) / scale


def _unordered(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a <= b else (b, a)


def _key(rail: object, a: str, b: str) -> str:
    """One string per rail and unordered pair (``3\tnode01\tnode17``), to look pairs up in bulk."""
    first, second = _unordered(a, b)
    return f"{rail}\t{first}\t{second}"


def _convicted_pairs(rails: RailsDoc | None) -> tuple[set[str], set[str]]:
    """Keys (``_key``) of the pairs a named defect convicts (its evidence), and of the transients."""
    slow: set[str] = set()
    flickered: set[str] = set()
    for defect in rails.defects if rails is not None else ():
        if defect.severity == "warn":
            continue
        for cell in defect.conviction.evidence:
            pair, _, rail = cell.rpartition("/rail")
            if ascii_digits(rail) and pair:
                slow |= {_key(int(rail), a, b) for a, b in _splits(pair)}
    for t in rails.transients if rails is not None else ():
        if t.rail is not None:
            flickered.add(_key(t.rail, str(t.node), str(t.peer)))
    return slow, flickered


def _keys(rail: pd.Series, node: pd.Series, peer: pd.Series) -> pd.Series:
    """``_key`` of every row at once (node and peer already in order)."""
    return rail.astype(int).astype(str) + "\t" + node.astype(str) + "\t" + peer.astype(str)


def _splits(pair: str) -> Iterable[tuple[str, str]]:
    """Every way ``a-b`` splits at a '-' (hostnames may hold '-'; only real pairs will ever match)."""
    return ((pair[:i], pair[i + 1 :]) for i, c in enumerate(pair) if c == "-")


def pair_levels(pairs: pd.DataFrame) -> pd.DataFrame:
    """One row per rail and unordered node pair: each direction's median over its samples, the slower kept."""
    if pairs.empty:
        return pairs
    frame = pairs.copy()
    node, peer = frame["node"].astype(str).to_numpy(), frame["peer"].astype(str).to_numpy()
    first = node <= peer
    frame["a"], frame["b"] = np.where(first, node, peer), np.where(first, peer, node)
    per_direction = frame.groupby(["rail", "a", "b", "node"], sort=False).agg(
        busbw_Gbps=("busbw_Gbps", "median"), expected_Gbps=("expected_Gbps", "max"), device=("device", "first")
    )
    slower = per_direction.reset_index().sort_values("busbw_Gbps", kind="stable")
    levels = slower.drop(columns=["node"]).groupby(["rail", "a", "b"], sort=False).first().reset_index()
    levels = levels.rename(columns={"a": "node", "b": "peer"})
    return levels[["rail", "node", "peer", "device", "busbw_Gbps", "expected_Gbps"]]


def _dead_pairs(levels: pd.DataFrame, rails: RailsDoc | None, hosts: Sequence[str]) -> pd.DataFrame:
    """``levels`` with every pair a dead link, node, rail or pair takes part in at 0 Gb/s where no sample measured
    it (its pairs are never attempted, ``bench.rails.diagnosis.liveness``): the matrix draws the dead part, not a
    gap."""
    if rails is None or not (dead := dead_parts(rails)):
        return levels
    nodes = list(dict.fromkeys([*hosts, *rails.nodes]))
    measured = set(_keys(levels["rail"], levels["node"], levels["peer"]))
    expected = levels.groupby("rail")["expected_Gbps"].max().to_dict()
    added: dict[str, tuple[int, str, str, str, float, float]] = {}
    for d in dead:
        for node, rail in covered_cells(d.kind, d.node, d.peer, d.rail, nodes, rail_count(levels, rails)):
            if node is None or rail is None:
                continue  # a switch part: no node's pairs are its own
            # a pair's cells are its two ends, each with the other; anything else's is its node with every node
            peers = [d.node if node == d.peer else d.peer] if d.peer is not None else [n for n in nodes if n != node]
            for other in peers:
                first, second = _unordered(node, str(other))
                key = _key(rail, first, second)
                if key not in measured and key not in added:
                    device = d.device if d.device and d.node == node else ""
                    added[key] = (rail, first, second, device or "", 0.0, expected.get(rail, float("nan")))
    if not added:
        return levels
    rows = pd.DataFrame.from_records(list(added.values()), columns=list(levels.columns))
    return pd.concat([levels, rows], ignore_index=True)


@dataclass(frozen=True)
class Groups:
    """How the pair matrix groups its nodes (``matrix_groups``): ``node`` (each node its own row), ``block``
    (consecutive nodes in host order) or ``unit`` (the units of the cabling, rails.json's ``units``)."""

    kind: Literal["node", "block", "unit"]
    members: tuple[tuple[str, ...], ...]
    labels: tuple[str, ...]

    @property
    def index(self) -> dict[str, int]:
        return {name: i for i, names in enumerate(self.members) for name in names}

    @property
    def grouped(self) -> bool:
        return any(len(names) > 1 for names in self.members)

    def note(self) -> str:
        if self.kind == "unit":
            return f"{len(self.members)} units of the cabling, worst pair per pair of units"
        if self.kind == "block":
            return f"blocks of {len(self.members[0])} nodes, worst pair per block"
        return ""


def matrix_groups(order: Sequence[str], max_nodes: int, units: Sequence[Sequence[str]] = ()) -> Groups:
    """Each node its own row up to ``max_nodes`` nodes; above, the cabling's units where they hold every node and
    are at most ``max_nodes`` (a unit x unit matrix: a leaf's uplinks and a unit's cross-unit pairs read as a
    row), else blocks of consecutive nodes, the fewest that fit."""
    if len(order) <= max_nodes:
        return Groups("node", tuple((name,) for name in order), tuple(order))
    ran = set(order)
    placed = [tuple(name for name in unit if name in ran) for unit in units]
    numbered = [(i, names) for i, names in enumerate(placed) if names]
    covered = {name for _, names in numbered for name in names}
    if numbered and covered == ran and len(numbered) <= max_nodes and len(covered) == sum(len(n) for _, n in numbered):
        # the axis says the unit's number: each cell's detail names its worst pair, the drill-down's title the span
        labels = tuple(f"unit {i + 1}" for i, _ in numbered)
        return Groups("unit", tuple(names for _, names in numbered), labels)
    block = math.ceil(len(order) / max_nodes)
    members = tuple(tuple(order[i : i + block]) for i in range(0, len(order), block))
    labels = tuple(names[0] if len(names) == 1 else f"{names[0]} +{len(names) - 1}" for names in members)
    return Groups("block", members, labels)


def pair_matrix_table(
    pairs: pd.DataFrame,
    hosts: Sequence[str],
    min_efficiency: float,
    max_nodes: int = 64,
    rails: RailsDoc | None = None,
) -> ChartData:
    """The node x node matrix of every rail; above ``max_nodes`` nodes, groups of nodes (the cabling's units, else
    blocks: :func:`matrix_groups`) show their worst pair.

    ``rails`` (rails.json) marks the cells its defects convict and its transients. A pair never measured (a
    schedule that leaves it out) has no cell: it is absent, never a failure.
    """
    levels = pair_levels(pairs)
    if levels.empty:
        return ChartData(pd.DataFrame(columns=_COLUMNS))
    measured = len(levels)
    levels = _dead_pairs(levels, rails, hosts)
    slow, flickered = _convicted_pairs(rails)
    levels["status"] = status(levels["busbw_Gbps"], levels["expected_Gbps"], min_efficiency)
    keys = _keys(levels["rail"], levels["node"], levels["peer"])  # pair_levels put each pair in order
    convicted = keys.isin(slow) | (levels["status"] == "fail")
    marks = np.where(convicted, "slow", np.where(keys.isin(flickered), "transient", ""))
    levels["mark"] = np.where(levels.index >= measured, "dead", marks)
    both = pd.concat([levels, levels.rename(columns={"node": "peer", "peer": "node"})], ignore_index=True)
    order = node_order(set(both["node"]) | set(both["peer"]), hosts)
    groups = matrix_groups(order, max_nodes, _units(rails))
    index, labels = groups.index, dict(enumerate(groups.labels))
    both["row_index"] = both["node"].map(index)
    both["col_index"] = both["peer"].map(index)
    both = both[both["row_index"] <= both["col_index"]]  # the upper triangle: the chart mirrors it
    both["rank"] = both["mark"].map(_MARK_RANK)
    cell = ["rail", "row_index", "col_index"]
    # The worst pair in a cell is the one worth showing: a bad HCA shows as its node's row and column.
    worst = both.loc[both.groupby(cell)["busbw_Gbps"].idxmin()].set_index(cell)
    grouped = both.groupby(cell)
    mark = grouped["rank"].max().map({rank: name for name, rank in _MARK_RANK.items()})
    if groups.grouped:
        # a diagonal block holds both orientations of each of its pairs: count pairs, not rows
        node, peer = both["node"].astype(str).to_numpy(), both["peer"].astype(str).to_numpy()
        first = node <= peer
        ends = (
            pd.Series(np.where(first, node, peer), index=both.index),
            pd.Series(np.where(first, peer, node), index=both.index),
        )
        both["pair"] = _keys(both["rail"], *ends)
        count = both.groupby(cell)["pair"].nunique()
    else:
        count = grouped.size()
    # the cell's labels name its pair; a block says which of its pairs is the worst (and the HCA, always)
    devices = worst["device"].fillna("").astype(str)
    if groups.grouped:
        detail = [f"{n} ↔ {p} {d}".rstrip() for n, p, d in zip(worst["node"], worst["peer"], devices, strict=True)]
    else:
        detail = list(devices)
    rail_values = worst.index.get_level_values("rail").astype(int)
    frame = pd.DataFrame(
        {
            "panel": [f"rail {r}" for r in rail_values],
            "panel_order": rail_values,
            "row": worst.index.get_level_values("row_index").map(labels),
            "row_index": worst.index.get_level_values("row_index"),
            "col": worst.index.get_level_values("col_index").map(labels),
            "col_index": worst.index.get_level_values("col_index"),
            "busbw_Gbps": _significant(worst["busbw_Gbps"].to_numpy(dtype=float), 4),
            "efficiency": _significant(_efficiency(worst["busbw_Gbps"], worst["expected_Gbps"]), 3),
            "mark": mark.reindex(worst.index).to_numpy(),
            "detail": detail,
        }
    )
    if groups.grouped:
        frame["pairs"] = count.reindex(worst.index).to_numpy()
    frame = frame.sort_values(["panel_order", "row_index", "col_index"]).reset_index(drop=True)
    return ChartData(frame, groups.note(), ("unit", "unit") if groups.kind == "unit" else ("node", "peer"))


def _units(rails: RailsDoc | None) -> tuple[tuple[str, ...], ...]:
    units = rails.units if rails is not None else ()
    return units if isinstance(units, tuple) else ()


def unit_drilldowns(
    pairs: pd.DataFrame, hosts: Sequence[str], min_efficiency: float, max_nodes: int, rails: RailsDoc | None
) -> list[tuple[str, ChartData]]:
    """Where the matrix is drawn by groups of nodes, each group holding a named part (a defect's node or peer)
    drawn node by node: its label and its own matrix (its pairs inside it, every rail), in group order."""
    if pairs.empty or rails is None or not rails.defects:
        return []
    order = node_order(set(pairs["node"].astype(str)) | set(pairs["peer"].astype(str)), hosts)
    groups = matrix_groups(order, max_nodes, _units(rails))
    if not groups.grouped:
        return []
    named = {str(n) for d in rails.defects for n in (d.node, d.peer) if n is not None}
    out = []
    for label, members in zip(groups.labels, groups.members, strict=True):
        if named.isdisjoint(members):
            continue
        label = f"{label} ({members[0]}-{members[-1]})" if groups.kind == "unit" else label
        inside = pairs[pairs["node"].isin(members) & pairs["peer"].isin(members)]
        # the group's own nodes only: a dead part's never-attempted pairs are drawn with them, not the cluster's
        scoped = dataclasses.replace(rails, nodes=members, units=ABSENT, pair_cells=ABSENT, link_levels=ABSENT)
        table = pair_matrix_table(inside, members, min_efficiency, max_nodes, scoped)
        if len(table.frame):
            out.append((label, table))
    return out


def _efficiency(busbw: pd.Series, target: pd.Series) -> np.ndarray:
    busbw_values = busbw.to_numpy(dtype=float)
    target_values = pd.to_numeric(target, errors="coerce").to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(target_values > 0, busbw_values / target_values, np.nan)


def _gpu_marks(defects: Iterable[GpuDefect], gpus: int) -> dict[tuple[str, int, int], str]:
    """(node, sender, receiver) cells a GPU defect convicts: a GPU's row and column, a pair's two cells, or
    every cell of a node."""
    marked: dict[tuple[str, int, int], str] = {}
    for d in defects:
        node, gpu, peer = str(d.node), d.gpu, d.peer
        if gpu is not None and peer is not None:
            cells = [(gpu, peer), (peer, gpu)]
        elif gpu is not None:
            cells = [(gpu, j) for j in range(gpus)] + [(j, gpu) for j in range(gpus)]
        else:
            cells = [(i, j) for i in range(gpus) for j in range(gpus)]
        marked.update({(node, i, j): "slow" for i, j in cells if i != j})
    return marked


def gpu_matrix_table(intra: IntraNode | None, min_efficiency: float, max_panels: int = 16) -> ChartData:
    """Each node's GPU x GPU matrix (row sends, column receives), from rails.json's ``intra_node``.

    The nodes with a marked cell are drawn first; above ``max_panels`` nodes the weakest follow and the note
    says how many were left out.
    """
    if intra is None or not intra.measurements:
        return ChartData(pd.DataFrame(columns=_COLUMNS))
    rows = [(m.node, m.gpu, m.peer, m.busbw_Gbps, m.bus_id, m.peer_bus_id) for m in intra.measurements]
    frame = pd.DataFrame.from_records(rows, columns=["node", "gpu", "peer", "busbw_Gbps", "bus_id", "peer_bus_id"])
    frame["busbw_Gbps"] = pd.to_numeric(frame["busbw_Gbps"], errors="coerce").astype(float)
    cells = frame.groupby(["node", "gpu", "peer"], sort=False).agg(
        busbw_Gbps=("busbw_Gbps", "median"), bus_id=("bus_id", "first"), peer_bus_id=("peer_bus_id", "first")
    )
    cells = cells.reset_index()
    gpus = int(max(cells["gpu"].max(), cells["peer"].max())) + 1
    target = intra.target_Gbps
    target_Gbps = float(target) if target is not None and target > 0 else math.nan
    cells["status"] = status(cells["busbw_Gbps"], pd.Series(target_Gbps, index=cells.index), min_efficiency)
    marked = _gpu_marks(intra.localisation.defects, gpus)
    cells["mark"] = [
        marked.get((n, int(g), int(p)), "slow" if st == "fail" else "")
        for n, g, p, st in zip(cells["node"], cells["gpu"], cells["peer"], cells["status"], strict=True)
    ]
    nodes = node_order(set(cells["node"]), list(intra.nodes))
    weakest = cells.groupby("node")["busbw_Gbps"].min()
    flagged = set(cells.loc[cells["mark"] != "", "node"])
    # Panels in the order the note says: the nodes with a marked cell first, then the weakest when not every
    # node fits (else the rest in node order), so a 64-node run draws its bad GPU's node first, not last.
    marked_first = [n for n in nodes if n in flagged]
    rest = [n for n in nodes if n not in flagged]
    if len(nodes) > max_panels:
        rest.sort(key=lambda n: (weakest.get(n, math.inf), nodes.index(n)))
    shown = (marked_first + rest)[:max_panels]
    kept = cells[cells["node"].isin(shown)]
    table = pd.DataFrame(
        {
            "panel": kept["node"].to_numpy(),
            "panel_order": [shown.index(n) for n in kept["node"]],
            "row": [f"GPU {g}" for g in kept["gpu"]],
            "row_index": kept["gpu"].astype(int).to_numpy(),
            "col": [f"GPU {p}" for p in kept["peer"]],
            "col_index": kept["peer"].astype(int).to_numpy(),
            "busbw_Gbps": _significant(kept["busbw_Gbps"].to_numpy(dtype=float), 4),
            "efficiency": _significant(kept["busbw_Gbps"].to_numpy(dtype=float) / target_Gbps, 3),
            "mark": kept["mark"].to_numpy(),
            "detail": [
                f"{b or '?'} → {p or '?'}" if (b or p) else ""
                for b, p in zip(kept["bus_id"].fillna(""), kept["peer_bus_id"].fillna(""), strict=True)
            ],
        }
    )
    note = ""
    if len(shown) < len(nodes):
        note = f"{len(shown)} of {len(nodes)} nodes: those with a marked cell first, then the weakest"
    return ChartData(table.sort_values(["panel_order", "row_index", "col_index"]).reset_index(drop=True), note)
