"""The run's nodes and rails placed on the fabric: which leaf carries each (node, rail), the units, the uplinks.

Localisation works on node and rail indices; the cabling (``bench.fabric.cabling``) names hosts, HCAs and
switch ports. Rail k of a node is the HCA that carried rail k's bytes in the run (its counters say so, see
``bench.rails.diagnosis.evidence``), else the HCA the plan gives rail k (``rails`` of the cabling file, the profile's
rail names, or name order); where the cabling never uses the counters' names (NodeDescriptions ``<host>
HCA-<n>``, rails read by position) also the plan's. A (node, rail) whose HCA the cabling does not hold is left
unplaced (-1): nothing is guessed about it, and it is judged as it would be without a topology.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from bench.fabric.cabling import Cabling, SwitchPort
from bench.fabric.cabling_plan import FabricShape, Leaf, shape
from bench.rails.plan.capacity import Plane, leaf_capacity


@dataclass(frozen=True)
class Topology:
    """A checked cabling and the HCA of each rail, as ``rails --topology`` reads it."""

    cabling: Cabling
    rail_hcas: tuple[str, ...]
    fabric: FabricShape = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "fabric", shape(self.cabling, self.rail_hcas))


@dataclass(frozen=True, eq=False)
class FabricMap:
    """Where each (rail, node) of the run sits on the fabric; arrays indexed ``[rail, node]``."""

    nodes: tuple[str, ...]
    leaves: tuple[Leaf, ...]
    leaf: np.ndarray = field(repr=False)
    """``[rail, node]``: index into ``leaves``, -1 where the cabling does not place it."""
    unit: np.ndarray = field(repr=False)
    """``[node]``: the node's unit, -1 where unknown."""
    unit_names: tuple[str, ...]
    node_port: Mapping[tuple[int, int], str]
    """``(rail, node)`` -> ``node07 mlx5_4 port 1``."""
    leaf_port: Mapping[tuple[int, int], str]
    """``(rail, node)`` -> ``leaf-su1-r3 port 7``."""
    spines: tuple[str, ...]
    capacity: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)
    """``[leaf]``: its uplink bandwidth in node links (``bench.rails.plan.capacity.leaf_capacity``)."""
    rank: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.int64), repr=False)
    """``[rail, node]``: the node's port among its leaf's node ports in port order (0 the lowest; 0 unplaced)."""

    def plane(self) -> Plane:
        """What each round's fair shares read (``bench.rails.plan.capacity``)."""
        count = np.array([max(1, len(leaf.uplinks)) for leaf in self.leaves], dtype=np.int64)
        return Plane(self.leaf, self.capacity, self.rank, count)

    @property
    def rails(self) -> int:
        return int(self.leaf.shape[0])

    def cross(self) -> np.ndarray:
        """``[rail, a, b]``: the pair's two nodes sit on different leaves of the rail (its traffic crosses the
        spines); False where either is unplaced."""
        placed = self.leaf >= 0
        differ = self.leaf[:, :, None] != self.leaf[:, None, :]
        return differ & placed[:, :, None] & placed[:, None, :]

    def on_leaf(self, index: int) -> np.ndarray:
        """``[rail, node]``: the (rail, node)s that leaf ``index`` carries."""
        return self.leaf == index

    def spines_of(self, leaves: Sequence[int]) -> tuple[str, ...]:
        """The spines the given leaves' uplinks reach."""
        found = {c.b.switch for i in leaves for c in self.leaves[i].uplinks}
        return tuple(s for s in self.spines if s in found)


def place(topology: Topology, nodes: Sequence[str], rails: int, hca_of: Callable[[str, int], str | None]) -> FabricMap:
    """The map for a run over ``nodes`` x ``rails``; ``hca_of(node, rail)`` is the HCA the run saw carry rail k
    on that node (None: the plan's HCA of rail k)."""
    fabric, cabling = topology.fabric, topology.cabling
    leaves = tuple(fabric.leaves.values())
    index = {leaf.name: i for i, leaf in enumerate(leaves)}
    leaf = np.full((rails, len(nodes)), -1, dtype=np.int32)
    node_port: dict[tuple[int, int], str] = {}
    leaf_port: dict[tuple[int, int], str] = {}
    rank = np.zeros((rails, len(nodes)), dtype=np.int64)
    ranks = _port_ranks(cabling)
    named = {port.hca for port in cabling.host_ports}
    for k in range(rails):
        planned = topology.rail_hcas[k] if k < len(topology.rail_hcas) else None
        for a, node in enumerate(nodes):
            seen = hca_of(node, k)
            cable = cabling.cable_of(node, seen) if seen else None
            if cable is None and planned is not None and (seen is None or seen not in named):
                # No counter saw the rail, or the HCA they saw is a name the cabling never uses (its
                # NodeDescriptions say "<host> HCA-<n>": rails read by position): the plan's HCA of rail k. An
                # HCA the cabling names elsewhere but not on this node is uncabled here: nothing is guessed.
                cable = cabling.cable_of(node, planned)
            if cable is None or cable.b.switch not in index:
                continue
            leaf[k, a] = index[cable.b.switch]
            rank[k, a] = ranks[cable.b]
            node_port[(k, a)] = str(cable.a)
            leaf_port[(k, a)] = str(cable.b)
    unit = np.array([fabric.unit_of.get(node, -1) for node in nodes], dtype=np.int32)
    names = tuple(fabric.unit_name(u) for u in range(len(fabric.units)))
    capacity = leaf_capacity(cabling, leaves)
    return FabricMap(tuple(nodes), leaves, leaf, unit, names, node_port, leaf_port, fabric.spines, capacity, rank)


def _port_ranks(cabling: Cabling) -> dict[SwitchPort, int]:
    """Each node port's place among its switch's node ports, in port order: destination routing picks a
    destination's uplink by it (``bench.rails.plan.capacity.Routes``)."""
    by_switch: dict[str, list[SwitchPort]] = {}
    for cable in cabling.host_ports.values():
        by_switch.setdefault(cable.b.switch, []).append(cable.b)
    return {port: i for ports in by_switch.values() for i, port in enumerate(sorted(set(ports)))}


def device_hca(devices: Mapping[tuple[str, int], str]) -> Callable[[str, int], str | None]:
    """``hca_of`` from the run's ``(node, rail) -> device`` map (``mlx5_4`` or ``mlx5_4:1``)."""
    return lambda node, rail: (devices.get((node, rail)) or "").partition(":")[0] or None
