"""The leaves of a rail-optimised fat tree named from the pair matrix, and what every switch verdict is made of.

A leaf (all its ports) slows every cell with an end on it, within its unit and across units, in every sample:
each of its nodes is slow with most of its partners that could show its rate, inside the unit as well, the
reproducing suspects do not all meet at one node (that is one node's cable), and they do not all lie between units
(:func:`only_between_units`: that is what lies beyond the leaf). Uplinks and spines, which slow only
the cells between units, are ``bench.rails.diagnosis.switches``; both name a :class:`SwitchFault`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from bench.rails.diagnosis.cells import Cells
from bench.rails.diagnosis.expected import showing
from bench.rails.diagnosis.matrix import PairMatrix
from bench.rails.diagnosis.remeasured import CellIndex
from bench.rails.plan.fabric_map import FabricMap

SwitchKind = Literal["leaf", "uplink", "spine"]


@dataclass(frozen=True, eq=False)
class SwitchFault:
    """A leaf, uplink set or spine set convicted by the cells in ``mask`` (``[rail, a, b]``, symmetric)."""

    kind: SwitchKind
    mask: np.ndarray
    rail_pos: int | None
    """None for a spine that carries every rail."""
    switches: tuple[str, ...]
    ports: tuple[str, ...]
    """The cables to check: a leaf's uplinks, or ``leaf port -> spine port`` of each candidate uplink."""
    unit: str | None = None

    @property
    def index(self) -> CellIndex:
        k, a, b = np.nonzero(np.triu(self.mask, k=1))
        return k, a, b


def by_position(fabric: FabricMap, cells: Cells) -> np.ndarray:
    """``[rail position, node]`` leaf index in the matrix's own order (-1 where unplaced)."""
    return leaf_index(fabric, cells.matrix)


def leaf_index(fabric: FabricMap, matrix: PairMatrix) -> np.ndarray:
    node_index = {name: i for i, name in enumerate(fabric.nodes)}
    out = np.full((len(matrix.rails), len(matrix.nodes)), -1, dtype=np.int32)
    for kpos, rail in enumerate(matrix.rails):
        if not 0 <= rail < fabric.rails:
            continue
        for a, node in enumerate(matrix.nodes):
            if node in node_index:
                out[kpos, a] = fabric.leaf[rail, node_index[node]]
    return out


def between_units(fabric: FabricMap, matrix: PairMatrix) -> np.ndarray:
    """``[rail, a, b]`` in the matrix's order: the pair's nodes sit on different leaves of the rail, so its
    flows cross an uplink of each and a spine (where congestion lives); False where either is unplaced."""
    leaf = leaf_index(fabric, matrix)
    placed = leaf >= 0
    return (leaf[:, :, None] != leaf[:, None, :]) & placed[:, :, None] & placed[:, None, :]


def on_one_leaf(leaf: np.ndarray) -> np.ndarray:
    """``[a, b]`` for one rail's leaf indices (``[node]``, a row of :func:`leaf_index`): both nodes placed on the
    same leaf, so the pair's flows never leave it."""
    return (leaf[:, None] == leaf[None, :]) & (leaf >= 0)[:, None]


def only_between_units(reproduces: np.ndarray, inside: np.ndarray) -> bool:
    """Whether every reproducing suspect (``reproduces``, ``[a, b]``) lies between units while cells inside a unit
    (``inside``, measured) were measured too: then what slows them is beyond the leaves (an uplink or a spine,
    ``bench.rails.diagnosis.switches``), not a leaf or the whole rail. A leaf or a rail slows the pairs inside its
    units in every sample as it slows those across; a suspect inside a unit that did not reproduce was noise. On a
    busy testbed a pair inside each unit read slow once beside a shaped uplink, and both were healthy when
    re-measured: the rail was named where the uplink was broken (and the leaf, where one of the two did)."""
    return bool(inside.any()) and not bool((reproduces & inside).any())


def one_leaf_explains(reproduces: np.ndarray, measured: np.ndarray, leaf: np.ndarray) -> bool:
    """Whether every reproducing suspect (``reproduces``, ``[a, b]``) has an end on one leaf (``leaf``, a row of
    :func:`leaf_index`) while pairs with neither end on it were measured too: that leaf explains them (its ports,
    or its nodes' cables, :func:`leaf_faults` tells which), not the whole rail, whose every pair a rail fault slows
    in every pass. On 4 nodes in 2 units a shaped leaf slows 5 of its rail's 6 pairs; the sixth read slow once under
    the suite's load, healthy when re-measured, and every pair a suspect had named the rail."""
    a, b = np.nonzero(np.triu(reproduces, k=1))
    if len(a) == 0:
        return False
    # The leaf common to every suspect must hold an end of the first one.
    for index in {int(leaf[a[0]]), int(leaf[b[0]])} - {-1}:
        on = leaf == index
        beyond = measured & ~on[:, None] & ~on[None, :]
        if bool(np.all(on[a] | on[b])) and bool(beyond.any()):
            return True
    return False


def rail_leaf(fabric: FabricMap, cells: Cells, kpos: int) -> int | None:
    """The one leaf that carries every measured node of the rail (a single unit), else None."""
    leaf = by_position(fabric, cells)[kpos]
    measured = cells.measured[kpos].any(axis=1)
    on = set(leaf[measured].tolist())
    return on.pop() if len(on) == 1 and -1 not in on else None


def leaf_faults(cells: Cells, fabric: FabricMap, rail_fault: np.ndarray) -> list[SwitchFault]:
    """Leaves of two or more nodes each member of which is a suspect with most of its partners that could show its
    rate (within the unit and across), and at least half of those suspects reproduced; a leaf that holds the whole
    rail is the rail's business."""
    leaf = by_position(fabric, cells)
    shown = showing(cells.measured, cells.matrix.busbw, cells.load)
    out = []
    for kpos in np.flatnonzero(~rail_fault):
        row = leaf[kpos]
        measured_nodes = cells.measured[kpos].any(axis=1)
        for index in sorted(set(row[measured_nodes].tolist()) - {-1}):
            members = np.flatnonzero((row == index) & measured_nodes)
            if len(members) < 2 or len(members) == int(measured_nodes.sum()):
                continue
            # By level, not by every sample: each member's link is slow with most of its partners (its upper
            # median among them is slow), as a leaf at 85% leaves it, though noise lifts a few cells over the
            # line. One or two bad cables on the leaf leave the other members slow with one or two partners.
            # Within the unit too: a spine or an uplink slows only the cells between units. Among the partners
            # that could show the leaf's rate (``expected.showing``): where the taper binds, a pair its round
            # holds at the uplinks' share runs as its healthy peers do.
            measured = shown[kpos, members]
            suspect = cells.suspect[kpos, members] & measured
            inside = measured & (row == index)[None, :]
            if not (_most(suspect, measured) & _most(suspect & inside, inside)).all():
                continue  # a member's link measured healthy with most partners: not this leaf
            mask = np.zeros(cells.measured.shape, dtype=bool)
            mask[kpos, members, :] = True
            mask[kpos, :, members] = True
            mask &= cells.measured
            k, a, b = np.nonzero(np.triu(mask, k=1))
            if not cells.confirmed(k, a, b):
                continue
            if one_node(cells.reproduces[kpos] & mask[kpos]):
                continue  # one node's cable, with noise on the rest
            inside = cells.measured[kpos] & (row == index)[:, None] & (row == index)[None, :]
            if only_between_units(cells.reproduces[kpos] & mask[kpos], inside):
                continue  # slow beyond the leaf only: its uplinks' or a spine's
            named = fabric.leaves[index]
            unit = fabric.unit_names[named.unit] if named.unit < len(fabric.unit_names) else None
            ports = tuple(str(c) for c in named.uplinks)
            out.append(SwitchFault("leaf", mask, int(kpos), (named.name,), ports, unit))
    return out


def _most(slow: np.ndarray, measured: np.ndarray) -> np.ndarray:
    """Per row, whether more than half of the measured cells are slow."""
    return 2 * slow.sum(axis=1) > measured.sum(axis=1)


def one_node(reproduces: np.ndarray) -> bool:
    """The reproducing suspects (``[a, b]``) all meet at one node."""
    a, b = np.nonzero(np.triu(reproduces, k=1))
    return len(a) > 0 and any(bool(np.all((a == x) | (b == x))) for x in (a[0], b[0]))


def explained(faults: Sequence[SwitchFault], shape: tuple[int, ...]) -> np.ndarray:
    """Every cell the faults explain."""
    out = np.zeros(shape, dtype=bool)
    for fault in faults:
        out |= fault.mask
    return out
