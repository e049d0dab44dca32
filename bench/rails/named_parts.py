"""The defects ``bench.rails.localise.diagnose`` names, part by part, once it has decided which parts are broken.

Each builder turns one kind of verdict (``[rail]``, ``[node]`` or ``[rail, node]`` masks, the lone pairs, the
switch faults) into ``RailDefect`` records with their samples (``bench.rails.parts.summary_defect``), the device
each link leaves through where the caller knows it, and the switches and ports where the cabling is known.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np

from bench.rails import switches
from bench.rails.fabric_map import FabricMap
from bench.rails.matrix import PairMatrix
from bench.rails.parts import CellIndex, Cells, summary_defect
from bench.rundir.rails_records import RailDefect

Devices = Mapping[tuple[str, int], str]


def device(devices: Devices | None, node: str, rail: int) -> str | None:
    """The HCA or interface name of ``node``'s link on ``rail``, where the caller knows it."""
    return None if devices is None else devices.get((node, rail))


def as_cable(defect: RailDefect, fabric: FabricMap | None, rail: int) -> RailDefect:
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


def rail_defects(
    matrix: PairMatrix,
    cells: Cells,
    rail_fault: np.ndarray,
    rail_cells: Sequence[CellIndex],
    devices: Devices | None,
    fabric: FabricMap | None,
) -> list[RailDefect]:
    """Each faulty rail, with its one device name where every node names it alike; on one unit of a known
    cabling, the rail's one leaf."""
    defects = []
    for kpos in np.flatnonzero(rail_fault):
        rail = matrix.rails[kpos]
        names = {d for d in (device(devices, node, rail) for node in matrix.nodes) if d}
        one = names.pop() if len(names) == 1 else None
        defect = summary_defect(cells, "rail", rail_cells[int(kpos)], node=None, rail_pos=int(kpos), device=one)
        single = switches.rail_leaf(fabric, cells, int(kpos)) if fabric is not None else None
        if fabric is not None and single is not None:
            # One unit: the rail's one leaf carries every pair of it.
            leaf = fabric.leaves[single]
            unit = fabric.unit_names[leaf.unit] if 0 <= leaf.unit < len(fabric.unit_names) else None
            ports = tuple(str(c) for c in leaf.uplinks)
            defect = dataclasses.replace(defect, kind="leaf", switches=(leaf.name,), ports=ports, unit=unit)
        defects.append(defect)
    return defects


def switch_defects(cells: Cells, found: Sequence[switches.SwitchFault]) -> list[RailDefect]:
    """Each faulty leaf, uplink or spine, with its switches, ports and unit."""
    defects = []
    for fault in found:
        defect = summary_defect(cells, fault.kind, fault.index, node=None, rail_pos=fault.rail_pos, device=None)
        defects.append(dataclasses.replace(defect, switches=fault.switches, ports=fault.ports, unit=fault.unit))
    return defects


def node_defects(matrix: PairMatrix, cells: Cells, node_fault: np.ndarray, open_rails: np.ndarray) -> list[RailDefect]:
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
) -> list[RailDefect]:
    """Each faulty link (a cable where the cabling places it), from its cells with every partner on its rail."""
    all_nodes = np.arange(len(matrix.nodes))
    defects = []
    for kpos, apos in zip(*np.nonzero(link_fault), strict=True):
        b = all_nodes[all_nodes != apos]
        node, rail = matrix.nodes[apos], matrix.rails[kpos]
        defect = summary_defect(
            cells,
            "link",
            (np.full(len(b), kpos), np.full(len(b), apos), b),
            node=node,
            rail_pos=int(kpos),
            device=device(devices, node, rail),
        )
        defects.append(as_cable(defect, fabric, int(rail)))
    return defects


def pair_defects(
    matrix: PairMatrix, cells: Cells, lone: np.ndarray, devices: Devices | None, one_pair: np.ndarray
) -> list[RailDefect]:
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
        )
        defects.append(dataclasses.replace(defect, only_pair=True) if one_pair[kpos] else defect)
    return defects
