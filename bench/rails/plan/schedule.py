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
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
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
    """The node that sits this round out (odd node counts), else None."""
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


def schedule(n: int, repeats: int = 1, seed: int = 0) -> tuple[Round, ...]:
    """All rounds for ``n`` nodes: the canonical circle order, then ``repeats - 1`` reshuffled copies.

    The reshuffles are seeded, so every rank computes the same schedule without talking to the others.
    """
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise UserError(f"repeats {repeats!r} must be a whole number >= 1: pass --repeats 1 or more")
    pairs, byes = circle_rounds(n)
    rng = np.random.default_rng(seed)
    out: list[Round] = []
    for repeat in range(repeats):
        p, b = (pairs, byes) if repeat == 0 else reshuffled(pairs, byes, n, rng)
        for index in range(len(p)):
            bye = int(b[index])
            out.append(Round(repeat, index, tuple((int(x), int(y)) for x, y in p[index]), None if bye < 0 else bye))
    return tuple(out)


def partner_table(pairs: np.ndarray, n: int) -> np.ndarray:
    """``table[r, node]`` = the partner of ``node`` in round ``r``, ``NO_PARTNER`` on a bye."""
    table = np.full((len(pairs), n), NO_PARTNER, dtype=np.int32)
    if pairs.size:
        rows = np.arange(len(pairs))[:, None]
        table[rows, pairs[:, :, 0]] = pairs[:, :, 1]
        table[rows, pairs[:, :, 1]] = pairs[:, :, 0]
    return table
