"""The kinds of defect the rails test names, as one table: which cells of the (node, rail) grid a kind covers,
whether it fails its rail, what it names in one line, and which of the profile's ``[actions]`` a technician is
given for it. The rails layer decides with it (whose error counters testify, which rails fail, which action);
the report and the docs say the kinds with it. A kind an older release wrote is not in the table: readers
show it as written (``kind_of`` says None).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

Cells = Literal["link", "rail", "node", "pair", "switch"]
"""``link``: one node's port on one rail; ``rail``: the rail on every node; ``node``: every rail of one node;
``pair``: both nodes' ports on one rail; ``switch``: none, a part above the nodes (no node's counters see it)."""


@dataclass(frozen=True)
class DefectKind:
    """One kind of rails defect."""

    name: str
    cells: Cells
    fails_rail: bool
    """A failing defect of this kind fails the rail it names (every rail when it names none: a spine layer)."""
    words: str
    """What it names, one line (``docs/rails.md`` and the report's legend say the same)."""
    action: str
    """The ``[actions]`` key when it is slow or flaky."""
    dead_action: str
    """The key when nothing moved through it."""
    errors_action: str
    """The key when its physical error counters (``[errors] fail_on_rise``) rose too."""


DEFECT_KINDS: Mapping[str, DefectKind] = {
    kind.name: kind
    for kind in (
        DefectKind("link", "link", True, "one node's NIC, port or cable on one rail", "link", "dead", "link_errors"),
        DefectKind("rail", "rail", True, "one rail on every node: its switch or its settings", "rail", "rail", "rail"),
        DefectKind(
            "node", "node", False, "one node on every rail: its PCIe, its CPU, its GPUs", "node", "dead", "node"
        ),
        DefectKind("pair", "pair", False, "one pair of nodes on one rail, and no other pair", "pair", "pair", "pair"),
        DefectKind(
            "errors",
            "link",
            True,
            "a link whose error counters rose while its bandwidth held",
            "errors",
            "errors",
            "errors",
        ),
        DefectKind(
            "path", "link", True, "a rail's bytes on a NIC other than the one next to its GPU", "path", "dead", "path"
        ),
        DefectKind(
            "cable", "link", True, "a link as cabled: node port <-> leaf port", "cable", "cable_dead", "cable_errors"
        ),
        DefectKind("leaf", "switch", True, "a leaf switch: every node of its unit on its rail", "leaf", "dead", "leaf"),
        DefectKind("uplink", "switch", True, "a leaf's uplinks to the spines, on one rail", "uplink", "dead", "uplink"),
        DefectKind("spine", "switch", True, "the spine layer between the units", "spine", "dead", "spine"),
    )
}
"""The kinds this release writes, by name (``bench.rails.diagnosis.localise``, ``corroborate``, ``switches``...)."""


@dataclass(frozen=True)
class GpuDefectKind:
    """One kind of intra-node defect (``bench.rails.diagnosis.gpu_pairs``)."""

    name: str
    words: str
    action: str


GPU_DEFECT_KINDS: Mapping[str, GpuDefectKind] = {
    kind.name: kind
    for kind in (
        GpuDefectKind("gpu", "one GPU, slow with every local partner: its NVLink ports, its PCIe, its clocks", "gpu"),
        GpuDefectKind("gpu-pair", "one local pair, neither end slow with everyone: that path, or noise", "gpu_pair"),
        GpuDefectKind("node", "every local pair of the node: the NVSwitch, or every GPU", "node"),
    )
}


def kind_of(name: str) -> DefectKind | None:
    """The kind ``name`` as this release writes it; None for one an older release wrote."""
    return DEFECT_KINDS.get(name)


def action_key(kind: str, symptom: str | None, physical: bool) -> str:
    """The ``[actions]`` key of a defect: an ``errors`` one is always said as errors; otherwise a dead part is
    said as dead, and a link whose physical counters rose as a cable."""
    known = kind_of(kind)
    if known is None:
        return "dead" if symptom == "dead" else kind
    if known.name == "errors":
        return known.errors_action
    if symptom == "dead":
        return known.dead_action
    return known.errors_action if physical else known.action


def covered_cells(
    kind: str, node: str | None, peer: str | None, rail: int | None, nodes: Sequence[str], rails: int
) -> Iterator[tuple[str | None, int | None]]:
    """The (node, rail) cells a defect of ``kind`` covers on a grid of ``nodes`` x ``rails``: a rail's are its
    own on every node, a node's its own on every rail, a pair's both ends', a switch part's none."""
    cells = known.cells if (known := kind_of(kind)) is not None else "link"
    if cells == "rail":
        yield from ((n, rail) for n in nodes)
    elif cells == "node":
        yield from ((node, k) for k in range(rails))
    elif cells == "pair":
        yield from ((node, rail), (peer, rail))
    elif cells == "link":
        yield node, rail


def fails_rail(kind: str, named: int | None, rail: int) -> bool:
    """Whether a failing defect of ``kind`` that names rail ``named`` fails rail ``rail``."""
    known = kind_of(kind)
    return known is not None and known.fails_rail and named in (rail, None)
