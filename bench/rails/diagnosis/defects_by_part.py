"""The defects ``bench.rails.diagnosis.localise.diagnose`` names, part by part, once it has decided which parts are
broken.

Each builder turns one kind of verdict (``[rail]``, ``[node]`` or ``[rail, node]`` masks, the lone pairs, the
switch faults) into ``NamedPart`` records with their samples (``bench.rails.diagnosis.cells.summary_defect``), the
device each link leaves through where the caller knows it, and the switches and ports where the cabling is known. Each
part is decided before its record is made (a link the cabling places is a ``cable``, a rail of one unit its
``leaf``), so the record is built once, whole.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from bench.codec import ABSENT
from bench.rails.diagnosis import leaves
from bench.rails.diagnosis.cells import NOWHERE, Cells, Place, summary_defect
from bench.rails.diagnosis.matrix import PairMatrix
from bench.rails.diagnosis.remeasured import CellIndex
from bench.rails.plan.fabric_map import FabricMap
from bench.rundir.named_parts import NamedPart

Devices = Mapping[tuple[str, int], str]


def device(devices: Devices | None, node: str, rail: int) -> str | None:
    """The HCA or interface name of ``node``'s link on ``rail``, where the caller knows it."""
    return None if devices is None else devices.get((node, rail))


def cable_place(fabric: FabricMap | None, node: str, rail: int) -> Place | None:
    """Where the cabling places ``node``'s link on ``rail``, which makes that link a ``cable``: the node's HCA port,
    its cable and its leaf port. None where the cabling does not hold it: nothing is guessed."""
    if fabric is None or node not in fabric.nodes or not 0 <= rail < fabric.rails:
        return None
    index = fabric.nodes.index(node)
    leaf_port = fabric.leaf_port.get((rail, index))
    if leaf_port is None:
        return None
    leaf = fabric.leaves[int(fabric.leaf[rail, index])]
    unit = fabric.unit_names[leaf.unit] if 0 <= leaf.unit < len(fabric.unit_names) else None
    return Place((leaf.name,), (leaf_port,), unit)


def rail_defects(
    matrix: PairMatrix,
    cells: Cells,
    rail_fault: np.ndarray,
    rail_cells: Sequence[CellIndex],
    devices: Devices | None,
    fabric: FabricMap | None,
) -> list[NamedPart]:
    """Each faulty rail, with its one device name where every node names it alike; on one unit of a known
    cabling, the rail's one leaf."""
    defects = []
    for kpos in np.flatnonzero(rail_fault):
        rail = matrix.rails[kpos]
        names = {d for d in (device(devices, node, rail) for node in matrix.nodes) if d}
        one = names.pop() if len(names) == 1 else None
        kind, place = "rail", NOWHERE
        single = leaves.rail_leaf(fabric, cells, int(kpos)) if fabric is not None else None
        if fabric is not None and single is not None:
            # One unit: the rail's one leaf carries every pair of it.
            leaf = fabric.leaves[single]
            unit = fabric.unit_names[leaf.unit] if 0 <= leaf.unit < len(fabric.unit_names) else None
            kind, place = "leaf", Place((leaf.name,), tuple(str(c) for c in leaf.uplinks), unit)
        index = rail_cells[int(kpos)]
        defects.append(summary_defect(cells, kind, index, node=None, rail_pos=int(kpos), device=one, place=place))
    return defects


def switch_defects(cells: Cells, found: Sequence[leaves.SwitchFault]) -> list[NamedPart]:
    """Each faulty leaf, uplink or spine, with its switches, ports and unit."""
    defects = []
    for fault in found:
        place = Place(fault.switches, fault.ports, fault.unit)
        defects.append(
            summary_defect(cells, fault.kind, fault.index, node=None, rail_pos=fault.rail_pos, device=None, place=place)
        )
    return defects


def node_defects(matrix: PairMatrix, cells: Cells, node_fault: np.ndarray, open_rails: np.ndarray) -> list[NamedPart]:
    """Each faulty node, from its cells with every partner on the rails no rail fault explains."""
    others = ~np.eye(len(matrix.nodes), dtype=bool)
    defects = []
    for apos in np.flatnonzero(node_fault):
        k, b = np.nonzero(others[apos][None, :] & open_rails[:, None])
        node = matrix.nodes[apos]
        defects.append(
            summary_defect(cells, "node", (k, np.full(len(k), apos), b), node=node, rail_pos=None, device=None)
        )
    return defects


def link_defects(
    matrix: PairMatrix, cells: Cells, link_fault: np.ndarray, devices: Devices | None, fabric: FabricMap | None
) -> list[NamedPart]:
    """Each faulty link (a cable where the cabling places it), from its cells with every partner on its rail."""
    all_nodes = np.arange(len(matrix.nodes))
    defects = []
    for kpos, apos in zip(*np.nonzero(link_fault), strict=True):
        b = all_nodes[all_nodes != apos]
        node, rail = matrix.nodes[apos], matrix.rails[kpos]
        cable = cable_place(fabric, node, int(rail))
        defect = summary_defect(
            cells,
            "link" if cable is None else "cable",
            (np.full(len(b), kpos), np.full(len(b), apos), b),
            node=node,
            rail_pos=int(kpos),
            device=device(devices, node, rail),
            place=cable or NOWHERE,
        )
        defects.append(defect)
    return defects


def pair_defects(
    matrix: PairMatrix, cells: Cells, lone: np.ndarray, devices: Devices | None, one_pair: np.ndarray
) -> list[NamedPart]:
    """Each lone slow pair (``lone``: ``[rail, a, b]``, each pair once in its upper triangle is read); on a rail
    of one pair (``one_pair``: ``[rail]``) it says that its end cannot be told (``RailDefect.only_pair``)."""
    defects = []
    pk, pa, pb = np.nonzero(np.triu(lone, k=1))
    for kpos, apos, bpos in zip(pk, pa, pb, strict=True):
        node, peer, rail = matrix.nodes[apos], matrix.nodes[bpos], matrix.rails[kpos]
        defect = summary_defect(
            cells,
            "pair",
            (np.array([kpos]), np.array([apos]), np.array([bpos])),
            node=node,
            rail_pos=int(kpos),
            device=device(devices, node, rail),
            peer=peer,
            only_pair=True if one_pair[kpos] else ABSENT,
        )
        defects.append(defect)
    return defects
