"""Without the cabling: a slowdown between groups of nodes, the same on every rail, is an observation, not a defect.

A tapered fabric slows the pairs between its units whenever a round fills the uplinks, on every rail alike (each
rail's leaves are tapered the same way). Without the cabling railbench cannot tell which nodes share a leaf or how
many uplinks it has, so it cannot say what those pairs should carry: naming their links or pairs would convict
healthy cables by the thousand. So when the matrix splits into groups of nodes (two or more, each of two nodes or
more) such that most pairs between groups are slow on every rail, most pairs within a group are not, and most of
every node's slow partners are in other groups, those
cells are set aside and the run says what it saw, with the cabling file as the action (``rails --topology``,
which judges them against what the fabric can carry, ``bench.rails.diagnosis.expected``). A fault of one rail (a
leaf, an uplink) is not the same on every rail; one slow node is a group of one.
"""

from __future__ import annotations

import numpy as np

from bench.rails.diagnosis.cells import Cells


def _groups(slow: np.ndarray, live: np.ndarray) -> list[np.ndarray]:
    """Nodes that share their slow partners: nodes of one group are slow with the same others, so their rows of
    ``slow`` (``[a, b]``: slow on every rail) agree more than they differ, and they are not slow with each other."""
    sign = np.where(slow, 1.0, -1.0)[np.ix_(live, live)]
    agree = sign @ sign.T / max(1, len(live))
    left = np.ones(len(live), dtype=bool)
    out = []
    for i in range(len(live)):
        if not left[i]:
            continue
        members = left & (agree[i] > 0) & ~slow[live[i], live]
        members[i] = True
        left &= ~members
        out.append(live[members])
    return out


def between_groups(cells: Cells, rail_fault: np.ndarray) -> tuple[np.ndarray, str | None]:
    """``[rail, a, b]``: the cells between groups of nodes slow on every rail alike (set aside), and what the run
    says of them; no cells and None where the matrix shows no such groups."""
    none = np.zeros(cells.measured.shape, dtype=bool)
    rails = np.flatnonzero(~rail_fault & cells.measured.any(axis=(1, 2)))
    if len(rails) < 2:
        return none, None
    measured = cells.measured[rails]
    every = np.asarray(measured.all(axis=0))
    slow = every & cells.suspect[rails].all(axis=0)
    live = np.flatnonzero(every.any(axis=1))
    groups = _groups(slow, live) if len(live) >= 4 else []
    if len(groups) < 2 or min(len(g) for g in groups) < 2:
        return none, None
    label = np.full(cells.measured.shape[1], -1)
    for i, g in enumerate(groups):
        label[g] = i
    placed = label >= 0
    across = every & placed[:, None] & placed[None, :] & (label[:, None] != label[None, :])
    within = every & placed[:, None] & placed[None, :] & (label[:, None] == label[None, :])
    np.fill_diagonal(within, False)
    if not within.any() or 2 * int((slow & across).sum()) <= int(across.sum()):
        return none, None
    if 2 * int((slow & within).sum()) >= int(within.sum()):
        return none, None
    # Every node in the shape: most of its slow partners are in other groups (a spine under static routing, or a
    # few slow nodes, leave groups whose nodes are slow with their own group's).
    if not (2 * (slow & across)[live].sum(axis=1) > slow[live].sum(axis=1)).all():
        return none, None
    block = np.zeros(cells.measured.shape, dtype=bool)
    block[rails] = across
    block &= cells.measured
    level = np.exp(cells.cell_median[rails])  # each cell's median over repeats, per rail
    share = float(np.median(level[:, across]) / np.median(level[:, within]))
    spans = " and ".join(_span(cells.matrix.nodes, g) for g in groups[:4]) + (" and more" if len(groups) > 4 else "")
    said = (
        f"pairs between {spans} ran at {100 * share:.0f}% of the pairs within them on every rail alike, the shape of "
        "a fabric tapered between units: not judged as a defect; give the fabric's cabling (--topology) to judge "
        "them against what it can carry"
    )
    return block, said


def _span(nodes: tuple[str, ...], members: np.ndarray) -> str:
    names = [nodes[i] for i in sorted(members.tolist())]
    return names[0] if len(names) == 1 else f"{names[0]}-{names[-1]} ({len(names)} nodes)"
