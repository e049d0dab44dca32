"""A switch is named from evidence that persists over independent rounds, not from one round's cells.

A spine or an uplink slows the flows between units that cross it. So does a passing hot spot: adaptive routing
or ECMP hashes two large flows onto one link for a round, then not (Al-Fares et al., "Hedera", NSDI 2010). One
hot round slows every cross cell of a leaf in that round at once, and when the re-measurement of that round
happens to be hot too, all of them reproduce together: counted cell by cell, one round's chance looks like
dozens of independent reproductions, and a healthy uplink is convicted. A persistent fault slows the leaf in
every round it carries flows, beside different partners each time.

So the cells of a round are one piece of evidence: a switch's reproduced suspects are counted by the independent
rounds they were slow in (``(repeat, round)`` of each slow matrix sample: each round runs other pairs beside them),
against the run's own rate of rounds in which a leaf's cross cells held a reproduced suspect (the median over the
rails, each of which a hot spot visits alike and a broken switch only one of; the fabric-wide rate on fewer than
three rails), or the rate of the part's own rail, its other leaves' cells taken alone, where that is higher (hot
spots visit one rail more than another by chance, and the part's own cells, left out, cannot raise it), at the
family-wise ``NAME_FALSE_ALARMS`` over the parts tried, as the cell counts were. Suspects slow in *every* sample and
re-measurement, deeper than any transient of the run (``Cells.reproduces_always``), keep their per-cell test: a cell
slow in every repeat was slow in every repeat's round, beside other partners each time, which a hot spot of one
round never is; they must still span two rounds or more.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bench.rails.diagnosis import noise, sparse

RATE_OVER = 3
"""The fewest rails a rate of slow rounds is taken as the median over (the fabric-wide rate below it), and the
fewest other leaves a rail's own rate is read over: one or two are a rate that one hot round moves."""
ROUND_KEY = 1 << 20
"""``repeat * ROUND_KEY + round``: one integer per independent round (rounds per repeat are under n)."""
ROUND_SPAN = 1 << 40
"""``leaf * ROUND_SPAN + round key``: one integer per (leaf, independent round) (round keys are under 2^40)."""


def leaf_ends(leaf: np.ndarray, a: np.ndarray, b: np.ndarray, key: np.ndarray | None = None) -> np.ndarray:
    """The placed leaves (``leaf``: ``[node]``) at the ends of cells ``(a, b)``, each once per cell (both where they
    differ), as leaf indices, or with ``key`` (one per cell) as ``leaf * ROUND_SPAN + key``."""
    near, far = leaf[a], leaf[b]
    other = far != near
    ends = np.concatenate([near, far[other]]).astype(np.int64)
    tags = ends if key is None else ends * ROUND_SPAN + np.concatenate([key, key[other]])
    return tags[ends >= 0]


@dataclass(frozen=True, eq=False)
class Rounds:
    """Which round each slow matrix sample ran in, and the run's rate of rounds with reproduced suspects."""

    slow: np.ndarray
    """``[repeat, rail, a, b]``: the matrix sample is slow."""
    ran: np.ndarray
    """``[repeat, rail, a, b]``: the matrix sample was measured."""
    round_of: np.ndarray
    """``[repeat, a, b]``: its round within the repeat."""
    per_round: float
    """The chance that a healthy leaf's cross cells hold a reproduced suspect in one round."""
    tries: int

    @classmethod
    def of(
        cls,
        slow: np.ndarray,
        ran: np.ndarray,
        round_of: np.ndarray,
        reproduces: np.ndarray,
        cross: np.ndarray,
        leaf: np.ndarray,
        per_cell: float,
        tries: int,
    ) -> Rounds:
        """``cross``: ``[rail, a, b]``, the cells between two placed nodes on different leaves; ``leaf``: ``[rail,
        node]``, each node's leaf (-1: not placed). A rail's leaves are judged where it has two or more, each by the
        cross cells with an end on it. ``per_cell``: what noise reproduces in a cell, the floor of the rate (a run
        with no reproduced suspect between units still has one).

        Each rail's cross cells are read once and counted at both their ends (:meth:`leaf_rounds`): a mask per leaf
        was a pass over the matrix per leaf, 1,155 of them at 2048 x 8 (two seconds of fifteen)."""
        unfloored = cls(slow, ran, round_of, 0.0, tries)
        found: dict[int, list[tuple[int, int]]] = {}
        cells_per_round: list[float] = []
        upper = np.triu(np.ones(cross.shape[1:], dtype=bool), k=1)
        for k in range(cross.shape[0]):
            on = np.unique(leaf[k][leaf[k] >= 0])
            if len(on) < 2:
                continue
            a, b = sparse.nonzero(cross[k] & upper)
            span = int(on[-1]) + 1
            pairs = np.bincount(leaf_ends(leaf[k], a, b), minlength=span)
            hit, total = unfloored.leaf_counts(k, reproduces[k], a, b, leaf[k], span)
            for index in on.tolist():
                found.setdefault(k, []).append((int(hit[index]), int(total[index])))
                if total[index]:
                    cells_per_round.append(int(pairs[index]) * ran.shape[0] / int(total[index]))
        shares = [sum(h for h, _ in v) / max(1, sum(t for _, t in v)) for v in found.values()]
        pooled = sum(h for v in found.values() for h, _ in v) / max(1, sum(t for v in found.values() for _, t in v))
        rate = float(np.median(shares)) if len(shares) >= RATE_OVER else pooled
        mean_cells = float(np.mean(cells_per_round)) if cells_per_round else 1.0
        floor = 1.0 - (1.0 - per_cell) ** mean_cells
        return cls(slow, ran, round_of, min(1.0, max(rate, floor)), tries)

    def _keys(self, samples: np.ndarray, k: int, cells: np.ndarray) -> np.ndarray:
        """The distinct rounds of rail k's ``samples`` (``[repeat, rail, a, b]``) in ``cells`` (``[a, b]``, each
        pair once): read at the cells alone, not through a mask of the whole matrix (a leaf's cells are a
        thirty-second of a 1024-node rail's)."""
        a, b = sparse.nonzero(cells)
        upper = a < b
        return np.unique(self._sample_keys(samples, k, a[upper], b[upper])[1])

    def _sample_keys(self, samples: np.ndarray, k: int, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each of rail k's ``samples`` (``[repeat, rail, a, b]``) at cells ``(a, b)``: which cell (an index into
        them) and its round (``repeat * ROUND_KEY + round``)."""
        r, i = np.nonzero(samples[:, k, a, b])
        return i, r.astype(np.int64) * ROUND_KEY + self.round_of[r, a[i], b[i]]

    def leaf_rounds(
        self, samples: np.ndarray, k: int, a: np.ndarray, b: np.ndarray, leaf: np.ndarray, span: int
    ) -> np.ndarray:
        """``[leaf index]``: the distinct rounds in which rail k's ``samples`` (``[repeat, rail, a, b]``) at cells
        ``(a, b)`` (each pair once) touched each placed leaf of ``leaf`` (``[node]``), counted at both ends."""
        cell, key = self._sample_keys(samples, k, a, b)
        tags = np.unique(leaf_ends(leaf, a[cell], b[cell], key))
        return np.bincount(tags // ROUND_SPAN, minlength=span)

    def slow_rounds(self, k: int, cells: np.ndarray) -> int:
        """The rounds in which rail k's ``cells`` (``[a, b]``) had a slow matrix sample."""
        return len(self._keys(self.slow, k, cells))

    def ran_rounds(self, k: int, cells: np.ndarray) -> int:
        """The rounds in which rail k's ``cells`` (``[a, b]``) ran."""
        return len(self._keys(self.ran, k, cells))

    def persists(
        self,
        k: int,
        reproduced: np.ndarray,
        always: np.ndarray,
        cells: np.ndarray,
        by_cells: bool,
        leaf: np.ndarray | None = None,
        beside: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> bool:
        """Rail k's part on ``cells`` (``[a, b]``) holds its slowdown over independent rounds: its reproduced
        suspects were slow in more rounds than the run's rate gives over the rounds its cells ran in, or
        ``by_cells`` (its suspects slow in every pass stood out cell by cell) and those span two rounds.

        ``beside``: rail k's other cells between units, those of no leaf of the part (``[a, b]``), and each node's
        leaf. The run's rate is the median over the rails, and one rail's hot spots come and go by chance as much
        as a leaf's: where the rail's other leaves, the part's own cells left out, were slow in more of their
        rounds than that, the part is judged against their rate (:meth:`rail_rate`).

        A spine (``leaf``: ``[node]``, the leaf of each node) is judged without the rate: it slows every rail, so the
        median over the rails would be its own rate. It carries a share of every round's flows between units, so on
        most of the rail's leaves it holds in most of the rounds their cross cells ran in; a hot spot visits a leaf
        in a few rounds (on a rail of many leaves, some leaf is hot in most rounds: hence leaf by leaf)."""
        if by_cells and self.slow_rounds(k, always & cells) >= 2:
            return True
        hit = self.slow_rounds(k, reproduced & cells)
        if leaf is not None:
            # Each leaf by the cells with an end on it, read once (a mask per leaf was a pass over the matrix each).
            a, b = sparse.nonzero(cells)
            span = int(leaf.max()) + 1
            mine = np.bincount(leaf_ends(leaf, a, b), minlength=span) > 0
            hits, ran = self.leaf_counts(k, reproduced, a, b, leaf, span)
            held = 2 * hits > ran
            return hit >= 2 and 2 * int((held & mine).sum()) > int(mine.sum())
        rate = self.per_round if beside is None else max(self.per_round, self.rail_rate(k, reproduced, *beside))
        tail = noise.binom_sf(hit, self.ran_rounds(k, cells), rate)
        return hit >= 2 and tail * max(1, self.tries) <= noise.NAME_FALSE_ALARMS

    def rail_rate(self, k: int, reproduced: np.ndarray, cells: np.ndarray, leaf: np.ndarray) -> float:
        """The share of rail k's (leaf, round)s in which ``cells`` (``[a, b]``, each pair once) held a reproduced
        suspect (``reproduced``), as :meth:`of` counts the run's rate on each rail; 0 where none ran.

        A rail of ``tapered-ar`` at 200 x 8 (scenario 1031053, an HCA elsewhere) had its leaves' cells slow in 15%
        of their rounds against a median over the rails of 8%, and one healthy leaf slow in 12 of its 24 rounds
        (a tail of 7e-6 over the 64 parts tried) was named as its uplinks."""
        a, b = sparse.nonzero(cells)
        if not len(a):
            return 0.0
        hits, total = self.leaf_counts(k, reproduced, a, b, leaf, int(leaf.max()) + 1)
        return float(hits.sum()) / max(1, int(total.sum()))

    def leaf_counts(
        self, k: int, reproduced: np.ndarray, a: np.ndarray, b: np.ndarray, leaf: np.ndarray, span: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """``([leaf index], [leaf index])``: the rounds in which rail k's cells ``(a, b)`` (each pair once) with an
        end on each leaf held a reproduced suspect (``reproduced``, ``[a, b]``) slow, and the rounds they ran."""
        slow = reproduced[a, b]
        return (
            self.leaf_rounds(self.slow, k, a[slow], b[slow], leaf, span),
            self.leaf_rounds(self.ran, k, a, b, leaf, span),
        )


def one_rounds(
    slow: np.ndarray, round_of: np.ndarray, pairs: np.ndarray, between: np.ndarray, beside: np.ndarray | None = None
) -> np.ndarray:
    """``[rail, a, b]``: the lone pairs between units (``pairs`` and ``between``) whose every slow matrix sample
    (``slow[repeat, rail, a, b]``) ran in a round that slowed another cell between units on the same rail, one
    slow in most of its samples too (``beside``, ``Cells.pair_slow`` less what a larger part explains; default:
    the lone pairs alone). A hot spot of one round slows every cross-unit pair of its leaf in that round, and when
    its re-measurements happen to be hot too they all look like pairs slow in most of their samples. They are one
    round's evidence, as a switch's would be, and stay transients; a bad cable between two leaves slows its pair
    alone.

    The round's other cells count whether or not they stand out of noise by rank themselves: a pair is a lone
    pair by its rank among the fabric's samples, and the hot round's slowest cell can rank beyond noise while the
    fifteen beside it, as slow in every pass, do not (clean run 409 of ``tapered-ar`` at 64 x 8 named the pair
    node005-node058 on rail 7, alone among its round's sixteen cross cells, each at about half of line in the
    matrix and in both re-measurements). Counting only the pairs that ranked beyond noise took that one round's
    evidence as the pair's own."""
    out = np.zeros(pairs.shape, dtype=bool)
    if round_of.shape[0] < slow.shape[0]:
        return out
    lone = np.triu(pairs & between, k=1)
    evidence = lone | np.triu((pairs if beside is None else beside) & between, k=1)
    k, a, b = np.nonzero(evidence)
    if len(k) < 2:
        return out
    r, i = np.nonzero(slow[:, k, a, b])  # each slow sample: its repeat, and which cell
    key = (k[i].astype(np.int64) * slow.shape[0] + r) * ROUND_KEY + round_of[r, a[i], b[i]]
    _, inverse, counts = np.unique(key, return_inverse=True, return_counts=True)
    shared = counts[inverse] >= 2
    alone = np.bincount(i[~shared], minlength=len(k)) == 0
    alone &= np.bincount(i, minlength=len(k)) > 0
    alone &= lone[k, a, b]
    out[k[alone], a[alone], b[alone]] = True
    out[k[alone], b[alone], a[alone]] = True
    return out
