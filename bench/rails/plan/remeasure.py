"""The rounds the pair matrix's suspects are measured again in: each beside companions it has not run with.

A suspect cell ``(repeat, round, rail, low, high)`` is re-measured with the same partner (the cell is the pair),
but not beside the same flows. Where switches hash each flow onto one path for its life (RoCE's ECMP: a queue
pair keeps its UDP source port, so its path), two flows that collided on an uplink in a matrix round collide
again whenever they run together: re-measured beside that round's other suspects, a collision of two healthy
flows reproduces as a fault would. Re-measured beside other companions it does not, while a degraded uplink or
spine slows the flows hashed through it whoever runs beside them (docs/design.md, "Localisation").

So each confirmation pass packs the suspect pairs afresh into rounds:

* no node twice in a round (a rank runs one exchange at a time);
* a pair's suspect rails together (a node limited by its host slows when all its rails run, as in the matrix);
* no two pairs that ran in one round before, in the matrix or in an earlier pass, and touched a unit in common
  there (without units: any two of that round): each pass gives every pair companions it has not shared a leaf's
  uplinks with;
* where the cabling gives units (``schedule.Units``), the cross-unit flows of a round spread over their leaves'
  uplinks as the matrix's own rounds spread them: a unit's crossing nodes, and the partners they cross to, each of
  a different class (position in the unit modulo ``Units.crossing``, what its thinnest leaf's uplinks carry at full
  rate; the unit's size where they carry it all). Under destination routing (D-mod-k) the class is the uplink a
  flow to that node takes, so no two of a round's flows share one, and no round fills a tapered tree's uplinks: a
  round that did would hold its flows at a fair share the matrix never saw and hide what the pass is for.

First fit, the busiest pairs first, each pass in its own seeded order; every rank computes the same rounds from the
suspects rank 0 broadcast, and rank 0 computes them again to know what ran together
(``bench.rails.diagnosis.round_load.with_again``). A round's occupied nodes and earlier rounds are kept as bit sets
(Python integers): 47,000 suspect pairs at 1024 nodes (two fifths of every cell of two repeats) pack in about two
seconds, into about as many rounds a pass as the matrix has; 13,000 (3% of the cells) in 0.4 s, into a third.

Then, where the cabling gives two units or more, the quiet pass (:func:`quiet_rounds`): a few suspects between
units at each leaf with no other flow between units on that leaf, what a switch verdict stands on
(``bench.rails.diagnosis.switches``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bench.rails.plan.schedule import Cell, Round, Units


def slots(cells: np.ndarray, passes: int, units: Units | None = None) -> np.ndarray:
    """``[pass, cell]``: the round (within its pass) each suspect cell runs in, for ``cells`` as rows of
    ``(repeat, round, rail, low, high)``; the same for every cell of one pair in a pass. ``units``: the unit
    schedule's units, whose classes each round spreads (None: no unit, no class)."""
    cells = np.asarray(cells, dtype=np.int64).reshape(-1, 5)
    out = np.zeros((passes, len(cells)), dtype=np.int64)
    if not len(cells) or not passes:
        return out
    low, high = np.minimum(cells[:, 3], cells[:, 4]), np.maximum(cells[:, 3], cells[:, 4])
    pairs, of_cell = np.unique(np.column_stack([low, high]), axis=0, return_inverse=True)
    of_cell = of_cell.reshape(-1)
    unit_of, cls = _classes(units, int(pairs.max()) + 1)
    # Each pair's rounds so far, as labels, one per unit it touches: the matrix rounds its cells ran in (repeat,
    # round), then one per pass. Two pairs that shared a round and a unit could have shared that unit's uplinks;
    # two that shared only a round never met on a link (without units, every pair touches the one unit).
    _, matrix_label = np.unique(cells[:, :2], axis=0, return_inverse=True)
    width = max(unit_of) + 1
    ends = [(unit_of[a], unit_of[b]) for a, b in pairs.tolist()]
    labels: list[set[int]] = [set() for _ in range(len(pairs))]
    for p, label in zip(of_cell.tolist(), matrix_label.reshape(-1).tolist(), strict=True):
        labels[p].update(label * width + u for u in ends[p])
    next_label = int(matrix_label.max()) + 1
    degree = np.bincount(pairs.ravel(), minlength=int(pairs.max()) + 1)
    busy = degree[pairs[:, 0]] + degree[pairs[:, 1]]
    placed = np.zeros((passes, len(pairs)), dtype=np.int64)
    for p in range(passes):
        # Seeded per pass, so that every rank packs alike and each pass meets other companions than the last.
        tiebreak = np.random.default_rng(p + 1).random(len(pairs))
        placed[p] = _first_fit(pairs, labels, np.lexsort((tiebreak, -busy)), unit_of, cls)
        for i, slot in enumerate(placed[p].tolist()):
            labels[i].update((next_label + slot) * width + u for u in ends[i])
        next_label += int(placed[p].max()) + 1
    out[:] = placed[:, of_cell]
    return out


def _first_fit(
    pairs: np.ndarray, labels: list[set[int]], order: np.ndarray, unit_of: list[int], cls: list[int]
) -> np.ndarray:
    """One pass: each pair, in ``order``, in the lowest round where neither node runs, no pair it ran with before
    (a shared label) runs, and, between units, no flow of its classes crosses the same leaves."""
    node_taken: dict[int, int] = {}
    label_taken: dict[int, int] = {}
    class_taken: dict[tuple[int, int, int], int] = {}
    out = np.zeros(len(pairs), dtype=np.int64)
    for i in order.tolist():
        a, b = int(pairs[i, 0]), int(pairs[i, 1])
        # Into a's unit toward a's class and out of it toward b's; the same at b's end.
        uses: tuple[tuple[int, int, int], ...] = ()
        if unit_of[a] != unit_of[b]:
            ua, ub, ca, cb = unit_of[a], unit_of[b], cls[a], cls[b]
            uses = ((ua, 0, ca), (ua, 1, cb), (ub, 0, cb), (ub, 1, ca))
        taken = node_taken.get(a, 0) | node_taken.get(b, 0)
        for label in labels[i]:
            taken |= label_taken.get(label, 0)
        for use in uses:
            taken |= class_taken.get(use, 0)
        slot = (~taken & (taken + 1)).bit_length() - 1  # the lowest round free of them all
        bit = 1 << slot
        node_taken[a] = node_taken.get(a, 0) | bit
        node_taken[b] = node_taken.get(b, 0) | bit
        for label in labels[i]:
            label_taken[label] = label_taken.get(label, 0) | bit
        for use in uses:
            class_taken[use] = class_taken.get(use, 0) | bit
        out[i] = slot
    return out


def _classes(units: Units | None, nodes: int) -> tuple[list[int], list[int]]:
    """Each node's unit (all one where the schedule has none) and class: its position among its unit's nodes (in
    the run's node order, as the unit schedule places them) modulo how many of them may cross at once."""
    if units is None or len(units.of) < nodes or min(units.of) < 0:
        return [0] * nodes, list(range(nodes))
    of = np.asarray(units.of, dtype=np.int64)
    order = np.argsort(of, kind="stable")
    sizes = np.bincount(of)
    position = np.empty(len(of), dtype=np.int64)
    position[order] = np.arange(len(of)) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    width = max(1, units.crossing) if units.crossing is not None else int(sizes.max())
    return of.tolist(), (position % width).tolist()


def remeasurement_rounds(suspects: Sequence[Cell], passes: int, units: Units | None = None) -> tuple[Round, ...]:
    """``passes`` passes over the suspects, each packed as :func:`slots` packs it: rounds numbered from 0 within
    their pass (``Round.repeat`` 0: a re-measurement round belongs to no repeat), holding their pairs and only the
    suspect cells ``(rail, low, high)``; then, where the unit schedule ran, the quiet pass (:func:`quiet_rounds`,
    pass ``passes + 1``). Pass after pass, in round order; every rank computes the same."""
    if not suspects or not passes:
        return ()
    return _packed(suspects, passes, units) + quiet_rounds(suspects, passes + 1, units)


QUIET_PER_LEAF = 8
"""The most suspects between units the quiet pass measures at each leaf (one a round). A spine is judged on them all,
on every rail it joins: at 64 nodes (two leaves a rail) 64 samples, at 1024 nodes 1024. A spine that carries one
path in 32 of a leaf's (1024 x 8, ECMP's hash picking among 32) slows about one in sixteen of them, some sixty
samples against the ten or twenty the fabric's noise gives; it costs about as many rounds, each one pair per unit
pair."""


def quiet_rounds(suspects: Sequence[Cell], confirm: int, units: Units | None) -> tuple[Round, ...]:
    """The quiet pass: up to :data:`QUIET_PER_LEAF` suspects between units at each leaf (unit, rail), re-measured in
    rounds where each leaf carries one flow to another unit and no more, so that no two of a round's flows share an
    uplink, however the switches route or hash them. A flow a collision slowed runs at its links' rate there; one
    that a degraded uplink or spine carries stays slow. Numbered ``confirm``; empty without units or between
    fewer than two.

    The suspects are taken in a seeded order (every rank the same), each while both its leaves have room; a pair's
    rails run together. Packed first fit: no node twice, no leaf twice in a round."""
    if units is None or not suspects or min(units.of, default=-1) < 0 or len(set(units.of)) < 2:
        return ()
    of = np.asarray(units.of, dtype=np.int64)
    rounds = _quiet_packing(_quiet_picks(suspects, of, confirm), of)
    return tuple(
        Round(0, slot, tuple(sorted({(a, b) for _, a, b in cells})), None, confirm=confirm, cells=frozenset(cells))
        for slot, cells in sorted(rounds.items())
    )


def _quiet_picks(suspects: Sequence[Cell], of: np.ndarray, seed: int) -> dict[tuple[int, int], list[int]]:
    """The quiet pass's cells, as each pair's rails: suspects between units in a seeded order, each taken while
    both its leaves (unit, rail) hold fewer than :data:`QUIET_PER_LEAF`."""
    cells = np.unique(np.asarray(suspects, dtype=np.int64).reshape(-1, 5)[:, 2:], axis=0)
    k, low, high = cells[:, 0], np.minimum(cells[:, 1], cells[:, 2]), np.maximum(cells[:, 1], cells[:, 2])
    cross = of[low] != of[high]
    k, low, high = k[cross].tolist(), low[cross].tolist(), high[cross].tolist()
    held: dict[tuple[int, int], int] = {}
    out: dict[tuple[int, int], list[int]] = {}
    for i in np.random.default_rng(seed).permutation(len(k)).tolist():
        leaves = ((int(of[low[i]]), k[i]), (int(of[high[i]]), k[i]))
        if all(held.get(leaf, 0) < QUIET_PER_LEAF for leaf in leaves):
            for leaf in leaves:
                held[leaf] = held.get(leaf, 0) + 1
            out.setdefault((low[i], high[i]), []).append(k[i])
    return out


def _quiet_packing(picks: dict[tuple[int, int], list[int]], of: np.ndarray) -> dict[int, set[tuple[int, int, int]]]:
    """Rounds of the quiet pass, first fit: no node twice, no leaf (unit, rail) twice, a pair's rails together."""
    node_taken: dict[int, int] = {}
    leaf_taken: dict[tuple[int, int], int] = {}
    rounds: dict[int, set[tuple[int, int, int]]] = {}
    for (a, b), rails in sorted(picks.items()):
        ends = [(int(of[x]), r) for r in rails for x in (a, b)]
        taken = node_taken.get(a, 0) | node_taken.get(b, 0)
        for leaf in ends:
            taken |= leaf_taken.get(leaf, 0)
        slot = (~taken & (taken + 1)).bit_length() - 1
        bit = 1 << slot
        node_taken[a] = node_taken.get(a, 0) | bit
        node_taken[b] = node_taken.get(b, 0) | bit
        for leaf in ends:
            leaf_taken[leaf] = leaf_taken.get(leaf, 0) | bit
        rounds.setdefault(slot, set()).update((r, a, b) for r in rails)
    return rounds


def _packed(suspects: Sequence[Cell], passes: int, units: Units | None) -> tuple[Round, ...]:
    """The ``passes`` packed passes of :func:`remeasurement_rounds`."""
    cells = np.asarray(suspects, dtype=np.int64).reshape(-1, 5)
    slot = slots(cells, passes, units)
    low, high = np.minimum(cells[:, 3], cells[:, 4]), np.maximum(cells[:, 3], cells[:, 4])
    out: list[Round] = []
    for p in range(passes):
        rounds: dict[int, set[tuple[int, int, int]]] = {}
        for s, k, a, b in zip(slot[p].tolist(), cells[:, 2].tolist(), low.tolist(), high.tolist(), strict=True):
            rounds.setdefault(s, set()).add((k, a, b))
        for s in sorted(rounds):
            chosen = rounds[s]
            pairs = tuple(sorted({(a, b) for _, a, b in chosen}))
            out.append(Round(0, s, pairs, None, confirm=p + 1, cells=frozenset(chosen)))
    return tuple(out)
