"""The rounds the pair matrix's suspects are measured again in: their own rounds, then a quiet pass.

Each confirmation pass re-runs every matrix round that holds a suspect cell, with only its suspects
(``schedule.confirmation_rounds``): the same partner, beside the same round's other suspects. Where switches hash
each flow onto one path for its life (RoCE's ECMP: a queue pair keeps its UDP source port, so its path), two
healthy flows that collided on an uplink in that round collide again there, so a slowdown between units that
reproduces may be the fabric's load and not a part.

So where the cabling gives two units or more, a quiet pass follows (:func:`quiet_rounds`): a few suspects between
units at each leaf, each in a round where its leaves carry no other flow between units, so no flow shares an
uplink however the switches route or hash. A spine is named only where its flows stay slow there
(``bench.rails.diagnosis.switches``; docs/design.md, "Localisation"). The quiet cells that read low are then
measured alone again (:func:`quiet_repeat_rounds`): noise slows a flow afresh each time, a degraded path every time
(``bench.rails.diagnosis.alone``).

Packing each pass afresh, so that no suspect runs again beside the pairs it ran with, was tried and left out
(docs/design.md, "Localisation"): a hot spot of one packed round then reproduced suspects of many matrix rounds at
once, which the switch verdicts count as independent evidence (``persistence``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bench.rails.plan.schedule import Cell, Round, Units, confirmation_rounds

QuietCell = tuple[int, int, int]
"""A cell of the quiet pass: ``(rail, a, b)``, a < b in the run's node order."""


def remeasurement_rounds(
    rounds: Sequence[Round],
    suspects: Sequence[Cell],
    passes: int,
    units: Units | None = None,
    fill: Sequence[QuietCell] = (),
) -> tuple[Round, ...]:
    """``passes`` re-runs of the matrix ``rounds`` that hold suspects, each with its own suspects
    (``schedule.confirmation_rounds``); then, where ``units`` gives two or more, the quiet pass
    (:func:`quiet_rounds`, pass ``passes + 1``): the suspects between units, then ``fill``. Every rank computes the
    same. Nothing without passes (``--confirm 0``)."""
    if not passes:
        return ()
    again = confirmation_rounds(tuple(rounds), suspects, passes) if suspects else ()
    return again + quiet_rounds(suspects, passes + 1, units, fill)


QUIET_PER_LEAF = 16
"""The most suspects between units the quiet pass measures at each leaf (one a round). A spine is judged on them all,
on every rail it joins: at 64 nodes (two leaves a rail) 128 samples, at 1024 nodes 2048. A spine that carries one
path in 32 of a leaf's (1024 x 8, ECMP's hash picking among 32) slows about one in sixteen of them, and a degraded
uplink under ECMP about one in eight of its leaf's flows, so the more a leaf's quiet cells, the likelier the pass
reaches them: eight a leaf left ``ecmp`` at 64 x 8 at 975 of 1000 exact, sixteen give 991 (``tapered-ecmp`` 988 and
995). It costs rounds, each one pair per unit pair: ``accept --plan`` at 64 nodes 4.6 -> 4.8 min at the high end.
Sixteen were tried before and named healthy spines (3 of 200 clean ``tapered-ecmp`` runs at 256 x 8) while the
spine's rule judged one quiet sample a cell against the noise within leaves; it now needs the flows low again when
measured alone again (``bench.rails.diagnosis.switch_paths.Paths.quiet_holds``;
docs/rails.md, "The fabric's cabling")."""

QUIET_REPEATS = 2
"""How many more times a quiet cell that read low is measured alone (:func:`quiet_repeat_rounds`). A healthy flow
alone reads low by chance, a few in a hundred (``bench.rails.diagnosis.alone``), each time afresh; a flow whose
queue pairs a degraded uplink carries reads low every time, as ECMP keeps a queue pair's path for its life. Two
more make a healthy cell held low a chance of a few in a million, so two such cells at one leaf are beyond noise
on a fabric of a thousand leaves."""


def quiet_units(units: Units | None) -> int:
    """How many units the quiet pass runs between: every node placed in one, two units or more; else 0."""
    if units is None or min(units.of, default=-1) < 0:
        return 0
    count = len(set(units.of))
    return count if count >= 2 else 0


def quiet_rounds(
    suspects: Sequence[Cell], confirm: int, units: Units | None, fill: Sequence[QuietCell] = ()
) -> tuple[Round, ...]:
    """The quiet pass: up to :data:`QUIET_PER_LEAF` suspects between units at each leaf (unit, rail), re-measured in
    rounds where each leaf carries one flow to another unit and no more, so that no two of a round's flows share an
    uplink, however the switches route or hash them. A flow a collision slowed runs at its links' rate there; one
    that a degraded uplink or spine carries stays slow. Numbered ``confirm``; empty without units or between
    fewer than two.

    The suspects are taken in the order rank 0 sent them (the slowest first: ``bench.rails.diagnosis.judge.suspects``;
    every rank the same), then ``fill`` (rank 0's ``bench.rails.diagnosis.quiet_fill``: every leaf's other cells
    between units, so that the pass measures each leaf whatever the suspects), each while both its leaves have
    room; a pair's rails run together. Packed first fit: no node twice, no leaf twice in a round."""
    if units is None or not (suspects or fill) or not quiet_units(units):
        return ()
    of = np.asarray(units.of, dtype=np.int64)
    rounds = _quiet_packing(_quiet_picks(suspects, of, fill), of)
    return tuple(
        Round(0, slot, tuple(sorted({(a, b) for _, a, b in cells})), None, confirm=confirm, cells=frozenset(cells))
        for slot, cells in sorted(rounds.items())
    )


def _quiet_picks(
    suspects: Sequence[Cell], of: np.ndarray, fill: Sequence[QuietCell] = ()
) -> dict[tuple[int, int], list[int]]:
    """The quiet pass's cells, as each pair's rails: suspects between units in their order (each cell once, where
    it first comes), then ``fill`` (``(rail, a, b)``, rank 0's ``bench.rails.diagnosis.quiet_fill``), each taken
    while both its leaves (unit, rail) hold fewer than :data:`QUIET_PER_LEAF` (:func:`leaf_capped`)."""
    out: dict[tuple[int, int], list[int]] = {}
    for k, low, high in leaf_capped([*suspect_cells(suspects), *fill], of):
        out.setdefault((low, high), []).append(k)
    return out


def suspect_cells(suspects: Sequence[Cell]) -> list[QuietCell]:
    """The suspects as ``(rail, a, b)`` with a < b, each cell once, in their order (where it first comes)."""
    cells = np.asarray(suspects, dtype=np.int64).reshape(-1, 5)[:, 2:]
    _, first = np.unique(cells, axis=0, return_index=True)
    cells = cells[np.sort(first)]
    k, low, high = cells[:, 0], np.minimum(cells[:, 1], cells[:, 2]), np.maximum(cells[:, 1], cells[:, 2])
    return list(zip(k.tolist(), low.tolist(), high.tolist(), strict=True))


def leaf_capped(cells: Sequence[QuietCell], of: np.ndarray) -> list[QuietCell]:
    """Of ``cells`` (``(rail, a, b)``, in order), those between units, each once, taken while both its leaves
    (unit, rail) hold fewer than :data:`QUIET_PER_LEAF`; stops once every leaf is full."""
    held: dict[tuple[int, int], int] = {}
    seen: set[QuietCell] = set()
    full, leaves = 0, len(set(of.tolist())) * (1 + max((k for k, _, _ in cells), default=0))
    out = []
    for k, a, b in cells:
        low, high = min(a, b), max(a, b)
        if of[low] == of[high] or (k, low, high) in seen:
            continue
        ends = ((int(of[low]), k), (int(of[high]), k))
        if all(held.get(leaf, 0) < QUIET_PER_LEAF for leaf in ends):
            seen.add((k, low, high))
            out.append((k, low, high))
            for leaf in ends:
                held[leaf] = held.get(leaf, 0) + 1
                full += held[leaf] == QUIET_PER_LEAF
            if full >= leaves:
                break
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


REPEAT_STAGES = 2
"""Rounds of repeats: the quiet cells that read low, then those of them held low (``bench.rails.diagnosis.alone
.low_quiet_cells``); each stage's passes are numbered after the last one's (:func:`repeat_confirm`)."""


def repeat_confirm(passes: int, stage: int) -> int:
    """The first pass number of repeat stage ``stage`` (0, 1): after the ``passes`` confirmation passes and the
    quiet pass, :data:`QUIET_REPEATS` a stage."""
    return passes + 2 + stage * QUIET_REPEATS


def quiet_repeat_rounds(low: Sequence[QuietCell], confirm: int, units: Units | None) -> tuple[Round, ...]:
    """:data:`QUIET_REPEATS` more passes over the quiet cells that read low (``low``: ``(rail, a, b)``, rank 0's
    ``bench.rails.diagnosis.alone.low_quiet_cells``), each packed as the quiet pass is (one flow between units per
    leaf and round) and numbered from ``confirm``; empty where none read low or there are no units."""
    if units is None or not low or not quiet_units(units):
        return ()
    of = np.asarray(units.of, dtype=np.int64)
    picks: dict[tuple[int, int], list[int]] = {}
    for k, a, b in sorted({(k, min(a, b), max(a, b)) for k, a, b in low}):
        picks.setdefault((a, b), []).append(k)
    packed = _quiet_packing(picks, of)
    return tuple(
        Round(0, slot, tuple(sorted({(a, b) for _, a, b in cells})), None, confirm=confirm + r, cells=frozenset(cells))
        for r in range(QUIET_REPEATS)
        for slot, cells in sorted(packed.items())
    )
