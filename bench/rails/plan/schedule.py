"""Round-robin pairing of nodes for the pairwise rail matrix (the circle method).

Every node pair must exchange once per repeat. Run sequentially, 64 nodes need 2016 pair tests; scheduled
round-robin they need 63 rounds of 32 disjoint pairs, and the pairs of one round run at the same time
because no node appears twice in a round.

The circle method: with ``m`` nodes (``n`` rounded up to even), node ``m-1`` stays fixed and the others sit
on a circle. In round ``r`` the fixed node meets node ``r`` and node ``(r+i) mod (m-1)`` meets node
``(r-i) mod (m-1)`` for ``i = 1 .. m/2-1``. Rotating the circle by one gives the next round; after ``m-1``
rounds every pair has met exactly once. When ``n`` is odd the fixed node is a dummy and its partner sits the
round out (a bye), so an odd ``n`` takes ``n`` rounds of ``(n-1)/2`` pairs.

Everything here is a pure function over numpy arrays, because the generation for 4096 nodes (8.4 million
pairs) must take well under a second (``ci/bench_rails.py`` shows it).

Where the cabling gives every node's unit (``--topology``; ``bench.fabric.cabling_plan``: the nodes under one set of
leaves), the unit schedule (:func:`unit_rounds`) replaces the full matrix: the circle method inside every unit, all
units at once, then rounds between units, each unit meeting every other unit with a rotating offset, as many
times as the switch verdicts need (:func:`cross_count`); past that many units (of 16 nodes or more), each meets
only as many others as the verdicts need and as a unit has rounds inside, so the cells grow as n. Without units, or
where it would not save a round, the schedule is the full circle matrix, bit for bit
(docs/rails.md, "The pair schedule")."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from bench.exits import UserError

Cell = tuple[int, int, int, int, int]
"""``(repeat, round, rail, low node, high node)``: one pair's exchange on one rail in one round."""

NO_PARTNER = -1
"""The partner of a node that has a bye in a round."""


def _check_nodes(n: int) -> None:
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 0:
        raise UserError(f"node count {n!r} is not a whole number >= 0: pass the number of nodes in the run")


def round_count(n: int) -> int:
    """Rounds the circle method needs for ``n`` nodes: ``n-1`` when even, ``n`` when odd, 0 below 2."""
    _check_nodes(n)
    if n < 2:
        return 0
    return n - 1 if n % 2 == 0 else n


def circle_rounds(n: int) -> tuple[np.ndarray, np.ndarray]:
    """The canonical schedule for ``n`` nodes.

    Returns ``(pairs, byes)``: ``pairs`` has shape ``(rounds, n // 2, 2)`` with each pair as ``(low, high)``
    node indices; ``byes[r]`` is the node that sits out round ``r`` (``NO_PARTNER`` when ``n`` is even).
    """
    _check_nodes(n)
    rounds = round_count(n)
    if rounds == 0:
        return np.zeros((0, 0, 2), dtype=np.int32), np.zeros(0, dtype=np.int32)
    m = n + (n % 2)  # even number of seats; seat m-1 is the fixed one (a dummy when n is odd)
    circle = m - 1
    r = np.arange(rounds, dtype=np.int32)[:, None]
    i = np.arange(1, m // 2, dtype=np.int32)[None, :]
    # (r + i) mod circle and (r - i) mod circle without a division: both operands are below circle.
    a = r + i
    a -= circle * (a >= circle)
    b = r - i
    b += circle * (b < 0)
    pairs = np.empty((rounds, n // 2, 2), dtype=np.int32)
    if n % 2:
        # The fixed seat is the dummy: its partner in round r (node r) has the bye.
        body = pairs
        byes = r[:, 0].copy()
    else:
        pairs[:, 0, 0] = r[:, 0]
        pairs[:, 0, 1] = m - 1
        body = pairs[:, 1:]
        byes = np.full(rounds, NO_PARTNER, dtype=np.int32)
    np.minimum(a, b, out=body[..., 0])
    np.maximum(a, b, out=body[..., 1])
    return pairs, byes.astype(np.int32, copy=False)


def reshuffled(pairs: np.ndarray, byes: np.ndarray, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The same schedule with the node labels permuted and the rounds reordered.

    Relabelling keeps "each pair once, no node twice in a round", but a given pair now meets in another
    round next to other pairs, so a repeat sees different concurrent traffic: a flaky link shows up as a
    high spread over repeats rather than as one unlucky sample.
    """
    perm = rng.permutation(n).astype(np.int32)
    order = rng.permutation(len(pairs))
    new_pairs = np.sort(perm[pairs[order]], axis=-1) if pairs.size else pairs[order]
    new_byes = np.where(byes[order] == NO_PARTNER, NO_PARTNER, perm[np.maximum(byes[order], 0)]).astype(np.int32)
    return new_pairs.astype(np.int32, copy=False), new_byes


@dataclass(frozen=True)
class Round:
    """One round of the pairwise matrix: disjoint node pairs that exchange at the same time."""

    repeat: int
    """0 for the canonical order, 1.. for reshuffled repeats."""
    index: int
    """Position of this round within its repeat."""
    pairs: tuple[tuple[int, int], ...]
    """Node indices ``(low, high)``; no node appears twice."""
    bye: int | None
    """The node that sits this round out (the circle method on an odd node count), else None. In the unit
    schedule every node in no pair sits the round out; ``bye`` is None there."""
    confirm: int = 0
    """0 for the matrix; 1.. for the confirmation passes that re-measure this round's suspect pairs."""
    cells: frozenset[tuple[int, int, int]] | None = None
    """Only these ``(rail, low, high)`` exchange (a confirmation pass); None: every pair on every rail."""

    def partner(self, node: int, rail: int | None = None) -> int | None:
        """The node that ``node`` exchanges with in this round (on ``rail``), or None when it sits out."""
        for a, b in self.pairs:
            if node not in (a, b):
                continue
            if self.cells is not None and (rail, a, b) not in self.cells:
                return None
            return b if a == node else a
        return None


def confirmation_rounds(rounds: tuple[Round, ...], suspects: Iterable[Cell], passes: int) -> tuple[Round, ...]:
    """``passes`` re-runs of every round that holds a suspect cell, restricted to that round's suspects.

    A suspect ``(repeat, round, rail, low, high)`` is re-measured in the round it was measured in, so with the
    same partner and beside the same round's other suspects on the other rails, all ranks in step. The
    rounds come out in the matrix's order, pass after pass; every rank computes the same ones.
    """
    by_round: dict[tuple[int, int], set[tuple[int, int, int]]] = {}
    for repeat, index, rail, low, high in suspects:
        by_round.setdefault((repeat, index), set()).add((rail, min(low, high), max(low, high)))
    out: list[Round] = []
    for confirm in range(1, passes + 1):
        for rnd in rounds:
            chosen = by_round.get((rnd.repeat, rnd.index))
            if chosen:
                out.append(dataclasses.replace(rnd, confirm=confirm, cells=frozenset(chosen)))
    return tuple(out)


@dataclass(frozen=True)
class Units:
    """What the unit schedule reads from the cabling (``bench.rails.plan.config.matrix_units``)."""

    of: tuple[int, ...]
    """Each node's unit, in the run's node order; -1 where the cabling does not hold the node."""
    crossing: int | None = None
    """The most nodes of one unit that may cross to another unit in one round: what the thinnest leaf's uplinks
    carry at full rate, in node links (``bench.rails.plan.capacity.leaf_capacity``); None: every node. A round
    that crosses more than its uplinks carry gives each flow its fair share of them, and a flow a bad uplink or
    cable slows to no less than that share runs as fast as a healthy one: the fault is hidden in that round."""


def schedule(n: int, repeats: int = 1, seed: int = 0, units: Units | None = None, rails: int = 1) -> tuple[Round, ...]:
    """All rounds for ``n`` nodes: the canonical order, then ``repeats - 1`` reshuffled copies.

    ``units``: each node's unit (``bench.rails.plan.config.matrix_units``), on ``rails`` rails: the unit schedule
    (:func:`unit_rounds`) where it applies; None, or where it does not, the full circle matrix exactly as without
    units. The reshuffles are seeded, so every rank computes the same schedule without talking to the others.
    """
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise UserError(f"repeats {repeats!r} must be a whole number >= 1: pass --repeats 1 or more")
    by_unit = unit_rounds(units, rails) if units is not None and len(units.of) == n else None
    if by_unit is not None and units is not None:
        return _unit_schedule(by_unit, units.of, repeats, seed)
    pairs, byes = circle_rounds(n)
    rng = np.random.default_rng(seed)
    out: list[Round] = []
    for repeat in range(repeats):
        p, b = (pairs, byes) if repeat == 0 else reshuffled(pairs, byes, n, rng)
        for index in range(len(p)):
            bye = int(b[index])
            out.append(Round(repeat, index, tuple((int(x), int(y)) for x, y in p[index]), None if bye < 0 else bye))
    return tuple(out)


def _unit_schedule(rounds: list[np.ndarray], units: Sequence[int], repeats: int, seed: int) -> tuple[Round, ...]:
    """The unit schedule's rounds, then ``repeats - 1`` copies with the nodes relabelled *within* their units and
    the rounds reordered: a repeat keeps every pair inside a unit and meets other partners between units."""
    unit = np.asarray(units, dtype=np.int64)
    by_unit = np.argsort(unit, kind="stable")
    rng = np.random.default_rng(seed)
    out: list[Round] = []
    for repeat in range(repeats):
        perm, order = np.arange(len(unit)), np.arange(len(rounds))
        if repeat:
            perm = np.empty(len(unit), dtype=np.int64)
            perm[by_unit] = np.lexsort((rng.random(len(unit)), unit))  # a permutation inside each unit
            order = rng.permutation(len(rounds))
        for index, r in enumerate(order):
            pairs = np.sort(perm[rounds[r]], axis=-1).tolist()  # Python ints: 4096 nodes' records in well under 1 s
            out.append(Round(repeat, index, tuple(map(tuple, pairs)), None))
    return tuple(out)


HOT_SHARE = 0.5
"""The share of a healthy leaf's rounds a moving hot spot may slow: past a half, no count of rounds tells it from a
persistent fault (the spine verdict's own line, ``bench.rails.diagnosis.persistence.Rounds.persists``)."""
NAMED_AT = 1e-5
"""``bench.rails.diagnosis.noise.NAME_FALSE_ALARMS`` (a test holds the two equal; the plan sits below the
diagnosis and cannot import it): the family-wise chance at which a switch is named."""


CAPPED_FROM = 8
"""The smallest unit whose rounds between units stop at :func:`cross_count` (and a unit's own rounds) rather than
meeting every other unit: units of 8 nodes or more (a rail-optimised scalable unit is 8-32). With units of 8 the
fabric models lost spines at first (under adaptive routing, 256 x 8: 6 of 20 named where every unit pair met named
20), where a spine slowed most cells and the judge's whole-matrix level sat with them; a spine that sinks the cells
between units is named from its flows alone (``bench.rails.diagnosis.switch_paths.Paths.sunk_held``, since stop 75
where nothing between units stood out, and since stop 76 also where the sunk level left few rails elevated), and
capped the ten regimes name as many as with every pair met, at 64, 256 and 1024 x 8
(docs/rails.md, "The pair schedule")."""


def cross_count(units: int, rails: int) -> int:
    """The rounds between units every leaf must carry so that a switch fault is nameable.

    A leaf's uplinks (and a spine) are seen only in rounds between units, and a switch is named from the
    independent rounds its slowdown held in (``bench.rails.diagnosis.persistence``): with ``R`` such rounds, all
    slow, the binomial tail is ``p ** R``, tried on ``rails * (units + 1)`` parts (every rail and every leaf,
    ``bench.rails.diagnosis.switches``), and must stay under ``NAMED_AT``. ``R`` is the least that does at the
    highest hot-spot share ``p`` the judge can tell apart (:data:`HOT_SHARE`): 22 rounds for 2 units of 8 rails,
    25 for 32."""
    tries = max(1, rails) * (units + 1)
    return math.ceil(math.log(tries / NAMED_AT) / math.log(1 / HOT_SHARE) - 1e-9)


def unit_rounds(units: Units, rails: int) -> list[np.ndarray] | None:
    """The unit schedule's rounds, each an array of ``(low, high)`` node pairs; None where it does not apply: a
    node without a unit, fewer than two units, or no fewer rounds than the full matrix.

    First the circle method inside every unit, all units at once (``largest unit - 1`` rounds; a node of a smaller
    unit sits out the rounds its unit does not need). Then rounds between units: the circle method over the
    units, each unit pair matched node to node with an offset that moves every time it meets again (offsets that
    tile the larger of two unequal units first), repeated until every leaf has carried :func:`cross_count`
    rounds. In a round between units at most ``units.crossing`` nodes of a unit cross (a window that moves every
    round, the others sit out), so that no round fills the uplinks and hides a slow flow in its fair share. No
    node meets a partner twice (tests/test_rails_unit_schedule.py). Under
    destination routing (D-mod-k) a window of a leaf's consecutive ports sends to as many destination classes as
    its uplinks have, so every uplink is crossed both ways."""
    unit = np.asarray(units.of, dtype=np.int64)
    n = len(unit)
    if n < 2 or bool((unit < 0).any()):
        return None
    ids, inverse = np.unique(unit, return_inverse=True)
    if len(ids) < 2:
        return None
    sizes = np.bincount(inverse)
    members = np.full((len(ids), int(sizes.max())), -1, dtype=np.int64)
    order = np.argsort(inverse, kind="stable")
    members[inverse[order], np.arange(n) - np.repeat(np.cumsum(sizes) - sizes, sizes)] = order
    needed = cross_count(len(ids), rails)
    meetings = math.ceil(needed / (len(ids) - 1))
    tiles = math.ceil(int(sizes.max()) / int(sizes.min()))
    crossing = max(1, units.crossing) if units.crossing is not None else int(sizes.max())
    # Never fewer rounds between units than inside one: the judge reads a cell between units against yardsticks
    # taken over the whole matrix, and a matrix mostly inside units makes every collided cell between them a
    # suspect. Units under CAPPED_FROM keep every unit pair (docs/rails.md, "The pair schedule").
    keep = max(needed, int(sizes.max()) - 1) if int(sizes.min()) >= CAPPED_FROM else None
    between = _between_units(members, sizes, min(int(sizes.max()), max(meetings, tiles)), crossing, keep)
    out = _inside_units(members, sizes) + between
    return out if len(out) < round_count(n) else None


def _inside_units(members: np.ndarray, sizes: np.ndarray) -> list[np.ndarray]:
    """The circle rounds of every unit at once: round r holds round r of every unit that has one."""
    by_size = []
    for size in sorted(set(sizes.tolist())):
        if size < 2:
            continue
        pairs, _ = circle_rounds(size)  # local (low, high): members ascend, so the nodes do too
        nodes = members[sizes == size][:, :size][:, pairs]  # [unit, round, pair, 2]
        by_size.append(nodes.transpose(1, 0, 2, 3).reshape(len(pairs), -1, 2))
    rounds = max((len(x) for x in by_size), default=0)
    return [np.concatenate([x[r] for x in by_size if r < len(x)]) for r in range(rounds)]


def _between_units(
    members: np.ndarray, sizes: np.ndarray, meetings: int, crossing: int, keep: int | None
) -> list[np.ndarray]:
    """``meetings`` passes of the circle method over the units; in pass t a unit pair (larger A, smaller B)
    matches B's i-th node with A's ``(i + offset_t) mod |A|``-th, for the ``crossing`` nodes of B in the window
    :func:`_window_starts` gives it (all of B where it is no larger): the window moves every round, so every node
    crosses in its turn.

    Where one pass holds more than ``keep`` rounds (more units than a switch verdict needs rounds, and than a unit
    has rounds inside; None: the whole pass), only its first ``keep`` run: each unit crosses ``keep`` times, every
    time to another unit, so the rounds between units stop growing with the units and the cells grow as n, not
    n^2. With an odd count of units each sits out one round of the circle, so one round more runs."""
    unit_pairs, _ = circle_rounds(len(sizes))
    if meetings == 1 and keep is not None:
        unit_pairs = unit_pairs[: keep + len(sizes) % 2]
    starts = _window_starts(unit_pairs, sizes, meetings, crossing)
    i = np.arange(members.shape[1])[None, :]
    out = []
    for t in range(meetings):
        for k, (ua, ub) in enumerate(zip(unit_pairs[..., 0], unit_pairs[..., 1], strict=True)):
            big = np.where(sizes[ua] >= sizes[ub], ua, ub)
            small = np.where(sizes[ua] >= sizes[ub], ub, ua)
            sa, sb = sizes[big][:, None], sizes[small][:, None]
            a = members[big[:, None], (i + _offset(t, sa, sb)) % sa]
            b = members[small[:, None], i]
            valid = (i < sb) & (t < sa) & ((i - starts[t, k][:, None]) % sb < crossing)
            out.append(np.stack([np.minimum(a, b)[valid], np.maximum(a, b)[valid]], axis=-1))
    return out


def _window_starts(unit_pairs: np.ndarray, sizes: np.ndarray, meetings: int, crossing: int) -> np.ndarray:
    """``[pass, round, unit pair]``: where the smaller unit's window of crossing nodes starts.

    In the g-th round between units it starts at ``g * crossing``: B's window moves by its own length, and A's
    crossing nodes, B's window moved by the pass's offset, move with it. Where those strides leave a node of either
    unit never crossing its partner unit (two units of 38 crossing 18 a round: A's window moves by 19 and stops
    at two places, so two of A's nodes never cross), the window is driven from each side in turn: in even passes
    B's window moves by its length, in odd passes it is placed so that A's moves by its length (each pass's offset
    taken off), and each unit is crossed by windows that abut."""
    rounds = len(unit_pairs)
    g = np.arange(meetings)[:, None] * rounds + np.arange(rounds)[None, :]
    starts = np.repeat((g * crossing)[..., None], unit_pairs.shape[1], axis=2)
    for k in range(rounds):
        for q, (ua, ub) in enumerate(unit_pairs[k]):
            sa, sb = max(int(sizes[ua]), int(sizes[ub])), min(int(sizes[ua]), int(sizes[ub]))
            if crossing >= sb or _crosses_all(starts[:, k, q], sa, sb, crossing):
                continue
            offsets = [int(_offset(t, np.array(sa), np.array(sb))) for t in range(meetings)]
            turns = [(t // 2) * crossing if t % 2 == 0 else (t // 2) * crossing - offsets[t] for t in range(meetings)]
            if _crosses_all(np.array(turns), sa, sb, crossing):
                starts[:, k, q] = np.mod(turns, sb)
    return starts


def _crosses_all(starts: np.ndarray, sa: int, sb: int, crossing: int) -> bool:
    """Whether windows of ``crossing`` nodes of B from ``starts[t]`` (pass t, mod |B|), each node matched to A's
    ``(i + offset_t) mod |A|``-th, cross every node of both units over the passes the pair meets in."""
    seen_a, seen_b = np.zeros(sa, dtype=bool), np.zeros(sb, dtype=bool)
    for t, start in enumerate(starts[: min(len(starts), sa)]):
        b = (int(start) + np.arange(crossing)) % sb
        seen_b[b] = True
        seen_a[(b + int(_offset(t, np.array(sa), np.array(sb)))) % sa] = True
    return bool(seen_a.all() and seen_b.all())


def _offset(t: int, sa: np.ndarray, sb: np.ndarray) -> np.ndarray:
    """The t-th offset of a unit pair: the multiples of ``sb`` below ``sa`` first (they tile the larger unit), then
    the other residues in order; distinct for t < sa, so no node meets a partner twice."""
    tiles = -(-sa // sb)
    j = t - tiles
    rest = j + j // np.maximum(sb - 1, 1) + 1  # the j-th residue that is no multiple of sb
    return np.where(t < tiles, t * sb, rest)


def partner_table(pairs: np.ndarray, n: int) -> np.ndarray:
    """``table[r, node]`` = the partner of ``node`` in round ``r``, ``NO_PARTNER`` on a bye."""
    table = np.full((len(pairs), n), NO_PARTNER, dtype=np.int32)
    if pairs.size:
        rows = np.arange(len(pairs))[:, None]
        table[rows, pairs[:, :, 0]] = pairs[:, :, 1]
        table[rows, pairs[:, :, 1]] = pairs[:, :, 0]
    return table
