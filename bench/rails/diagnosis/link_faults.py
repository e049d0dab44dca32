"""The links and nodes the pair matrix names (``bench.rails.diagnosis.localise``): a link slow with every partner
that could show its level, a link slow with some partners only (intermittent, flapping), the fewest links that
explain a rail's reproducing suspects, and a node whose links are slow on two rails or more.

Arrays as ``localise`` holds them: ``[rail, node]`` for links and ``[rail, a, b]`` for cells.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from bench.rails.diagnosis import leaves, noise
from bench.rails.diagnosis.cells import Cells
from bench.rails.diagnosis.expected import showing


def link_candidates(cells: Cells, rail_fault: np.ndarray, leaf: np.ndarray | None = None) -> np.ndarray:
    """``[rail, node]``: link (a, k) where every partner of a on rail k that could show its level is suspect,
    confirmed, and no rail fault explains it already; only the fewest that explain the rail's reproducing suspects
    are kept. Where the cabling places the nodes (``leaf``: ``[rail, node]``, ``leaves.leaf_index``), not a link whose
    reproducing suspects all lie between units while partners on its own leaf were measured
    (``leaves.only_between_units``): a cable slows its pairs on its leaf as it slows those across. Where the taper
    binds, a pair held at its round's share runs as its healthy peers do whatever its ends' links carry
    (``expected.showing``): a slow node's link is not slow with those partners, and two slow nodes, each slow with
    the other, would otherwise be left to tie as intermittent links."""
    measured, suspect = cells.measured, cells.suspect
    shown = showing(measured, cells.matrix.busbw, cells.load)
    others = ~np.eye(measured.shape[1], dtype=bool)
    all_nodes = np.arange(measured.shape[1])
    link_candidate = (suspect | ~shown).all(axis=2) & shown.any(axis=2) & ~rail_fault[:, None]
    for kpos, apos in zip(*np.nonzero(link_candidate), strict=True):
        b = all_nodes[others[apos]]
        link_candidate[kpos, apos] = cells.confirmed(np.full(len(b), kpos), np.full(len(b), apos), b)
        if leaf is not None and link_candidate[kpos, apos]:
            row = leaf[kpos]
            mates = measured[kpos, apos] & (row == row[apos]) & (row[apos] >= 0)
            link_candidate[kpos, apos] = not leaves.only_between_units(cells.reproduces[kpos, apos], mates)
    fewest_links(cells.reproduces, link_candidate, cells.cell_median, cells.pair_slow)
    return link_candidate


def node_faults(
    cells: Cells, link_candidate: np.ndarray, rail_fault: np.ndarray, one_pair: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``[node]`` node faults and ``[rail, node]`` link faults. Node a: a link candidate on every rail that no
    rail fault explains (or where a larger part left it no cell to judge: a rail of one pair judges no link),
    and at least two of them; every other link candidate is a link."""
    open_rails = ~rail_fault
    judged = cells.measured.any(axis=2) & (open_rails & ~one_pair)[:, None]
    node_fault = (link_candidate | ~judged).all(axis=0) & ((link_candidate & judged).sum(axis=0) >= 2)
    node_fault &= open_rails.sum() >= 2
    return node_fault, link_candidate & ~node_fault[None, :]


def link_cells(links: np.ndarray) -> np.ndarray:
    """``[rail, a, b]``: every cell of the links in ``links`` (``[rail, node]``)."""
    out = np.zeros((*links.shape, links.shape[1]), dtype=bool)
    k, a = np.nonzero(links)
    out[k, a, :] = out[k, :, a] = True
    return out


def fewest_links(
    reproduces: np.ndarray, link_candidate: np.ndarray, level: np.ndarray | None = None, firm: np.ndarray | None = None
) -> None:
    """Keep, on each rail, only the link candidates needed to explain its reproducing suspects: the one
    with the most first (of as many, the deepest: ``level``, each cell's median log rate), then each other only
    while it explains one that the kept links do not. A healthy node whose partners are a slow link and one noisy
    sample has every partner suspect and half of them reproducing, as a slow link has; the slow link already
    explains its reproducing one. What is left for another link to explain must be more than a passing slowdown
    (slow in few of its samples: not ``firm``) far shallower than the kept links' (:func:`far_shallower`): on a
    rail of 3 nodes a slow link's 2 pairs leave the third, and once it read slow again under load the two healthy
    ends were named, as the fewest links that covered all three."""
    for k in range(link_candidate.shape[0]):
        candidates = np.flatnonzero(link_candidate[k])
        if len(candidates) < 2:
            continue
        explained = np.zeros_like(reproduces[k])
        kept: list[int] = []
        order = [(-int(reproduces[k, x].sum()), _depth(reproduces[k, x], level, k, int(x)), int(x)) for x in candidates]
        for _, _, a in sorted(order):
            new = reproduces[k, a] & ~explained[a]
            passing = (
                kept
                and level is not None
                and firm is not None
                and not firm[k, a, new].any()
                and far_shallower(level[k, a, new], np.concatenate([level[k, x, reproduces[k, x]] for x in kept]))
            )
            if not new.any() or passing:
                link_candidate[k, a] = False
                continue
            kept.append(a)
            explained[a, :] = explained[:, a] = True


def _depth(mine: np.ndarray, level: np.ndarray | None, k: int, a: int) -> float:
    """The median level (log rate) of link (k, a)'s reproducing suspects ``mine`` (``[b]``); 0 where unknown."""
    if level is None:
        return 0.0
    found = level[k, a, mine]
    found = found[np.isfinite(found)]
    return float(np.median(found)) if len(found) else 0.0


SHALLOWER = float(np.log(2.0))
"""How much shallower (log rate) every one of a set of slow cells must be than every one of another for the two to
be different causes: a rail's, a node's or a link's own fault slows its pairs alike, so half the rate is another."""


def far_shallower(these: np.ndarray, than: np.ndarray) -> bool:
    """Whether every cell of ``these`` (median log rates) is :data:`SHALLOWER` above every cell of ``than``; a level
    unknown (NaN) counts against it."""
    if not len(these) or not len(than):
        return False
    top = np.nan_to_num(np.asarray(these, dtype=float), nan=-np.inf).min()
    bottom = np.nan_to_num(np.asarray(than, dtype=float), nan=np.inf).max()
    return bool(top - bottom >= SHALLOWER)


BEYOND_ITS_LEAF = 1e-3
"""The chance, at most, that a link slow in some samples shows no suspect among its partners on its own leaf while
as many of its partners across units are suspects as are: below it, what is slow is beyond the leaf, not the link."""

CLEARED_BEYOND_ITS_LEAF = 0.05
"""The same chance, at most, where one of the link's slow partners across units also ran clear when measured alone
(and none read low there): two readings that each say "beyond the leaf", so each may be weaker. A link with no
partner on its own leaf has a chance of 1, and the quiet pass alone never clears it."""


def intermittent_links(
    cells: Cells,
    link_candidate: np.ndarray,
    rail_fault: np.ndarray,
    null: Callable[[int, int], np.ndarray],
    between: np.ndarray | None = None,
) -> None:
    """Add to ``link_candidate`` the links slow with some partners only: a link that fails intermittently
    (or a flapping one) is slow in the rounds that caught it bad and fine in the rest, so not every partner
    is a suspect. Greedily, as the smallest explanation: the link with the most suspect partners that no
    named part explains yet, while it has at least two of them and at least half of those reproduced. One
    link explains two slow pairs better than two pair faults that share it, and two reproducing suspects at
    one link are what noise does not do: each stands out of the fabric's spread at the matrix's family-wise
    false-alarm rate. Suspects another named part explains do not count, so two slow links on one rail
    do not make their common partners suspects. On a large matrix noise alone reproduces a few suspects, so
    the link's reproduced suspects must also be more than noise gives over its partners (``null(k, a)[b]`` for
    each, the rate of its class of cells: within a unit or across units; family-wise over every link): on 256
    nodes x 8 rails that is three, on a testbed two. And the link must
    hold more reproduced suspects than any of its partners: without the fabric's cabling, a block of slow
    pairs between two groups of nodes (a switch path) is named as its pairs, not as one side's links.
    With the cabling (``between``, ``[rail, a, b]``: the pair crosses the uplinks), a link's own fault slows its
    pairs on its own leaf as often as those across units: one whose suspects are all across units, with enough
    partners on its leaf that none being suspect is not chance (:func:`only_beyond_its_leaf`), is slowed by what
    lies beyond the leaf (an uplink, a spine, ECMP's collisions), which the switch verdicts judge."""
    measured = cells.measured
    left = cells.suspect & ~rail_fault[:, None, None]
    for k, a in zip(*np.nonzero(link_candidate), strict=True):
        left[k, a, :] = left[k, :, a] = False
    tried = link_candidate.copy()
    links = cells.links
    left_count = left.sum(axis=2)  # kept up to date below: a 256 x 8 matrix tries thousands of links
    while True:
        counts = np.where(tried, -1, left_count)
        k, a = np.unravel_index(int(np.argmax(counts)), counts.shape)
        if counts[k, a] < 2:
            return
        tried[k, a] = True
        if int(measured[k, a].sum()) < 3:
            continue  # with two partners, both suspect is the rule above
        if between is not None and only_beyond_its_leaf(
            measured[k, a],
            as_deep(cells, int(k), int(a), left[k, a], between[k, a]),
            left[k, a],
            between[k, a],
            alone_row(cells, int(k), int(a)),
            leaf_mates(left[k], measured[k], between[k], int(a), links),
        ):
            continue
        b = np.flatnonzero(left[k, a])
        again = int(cells.reproduces[k, a, b].sum())
        due = float(null(int(k), int(a))[measured[k, a]].sum())
        beyond = noise.poisson_sf(again, due) * links <= noise.NAME_FALSE_ALARMS
        # The link must explain its reproduced suspects better than any of its partners' links does: where
        # they tie (every node of one group slow with every node of another, as a switch path between two
        # groups makes them), a link would be a guess, and the slow pairs stay pairs.
        partners = b[cells.reproduces[k, a, b]]
        rivals = (left[k, partners] & cells.reproduces[k, partners]).sum(axis=1) if len(partners) else np.zeros(0)
        beyond &= not bool((rivals >= again).any())
        if beyond and cells.confirmed(np.full(len(b), k), np.full(len(b), a), b):
            link_candidate[k, a] = True
            left[k, a, :] = left[k, :, a] = False
            left_count[k, a] = 0
            left_count[k, b] -= 1


def only_beyond_its_leaf(
    measured: np.ndarray,
    suspect: np.ndarray,
    left: np.ndarray,
    between: np.ndarray,
    alone: tuple[np.ndarray, np.ndarray] | None = None,
    mates: Mates | None = None,
) -> bool:
    """One link's row (``[b]``): its suspects are all across units, and were it the link, slow with each partner as
    often as with those across units, its partners on its own leaf would show a suspect but for a chance of at
    most :data:`BEYOND_ITS_LEAF`; or of at most :data:`CLEARED_BEYOND_ITS_LEAF` where one of its slow partners
    across units, measured alone in the quiet pass, ran clear and none read low there (``alone``:
    :func:`alone_row`). Not where its slow flows ran clear alone and it is singled out among its leaf-mates
    (``mates``: :meth:`Mates.single_out`): then nothing beyond the leaf explains it (:class:`Mates`).

    A link's own fault slows each flow it carries alone as much as beside others. ECMP keeps each queue pair's
    path for its life, and each re-measurement runs the round's suspects together again, so healthy flows that
    collided on an uplink collide again there and reproduce, a few of one link's partners across units at a
    quarter of line in every sample: 4-6 such partners of 31, with none slow of 31 on its leaf, is a chance of
    0.001-0.014, and at 1024 x 8 such links were named as cables (the fabric model's ``ecmp`` seeds 1002024 and
    1002041). The quiet pass measured one or two of them alone, at 0.9-0.98 of line: their slowness needed
    company."""
    inside, across = measured & ~between, measured & between
    if not across.any() or (suspect & inside).any():
        return False
    slow_across = left & across
    share = float(slow_across.sum()) / float(across.sum())
    chance = (1.0 - share) ** int(inside.sum())
    cleared = alone is not None and bool((slow_across & alone[0]).any() and not (slow_across & alone[1]).any())
    if chance > BEYOND_ITS_LEAF and not (cleared and chance <= CLEARED_BEYOND_ITS_LEAF):
        return False
    return not (cleared and mates is not None and mates.single_out(int(slow_across.sum()), int(across.sum())))


@dataclass(frozen=True)
class Mates:
    """What a link's leaf-mates (the other nodes on its leaf, on its rail) show across units: how many of their
    partners there are left suspect (``slow``), of how many measured (``across``), and how many links the run judges
    (``links``: the test is family-wise over them).

    What lies beyond a leaf slows the flows across units of every link on it: ECMP's collisions and adaptive
    routing's hot spots fall on whichever of the leaf's flows share an uplink in a round, and a static route's
    degraded uplink slows its flows alone as beside others (so they read low in the quiet pass). A link slow with
    far more of its partners across units than its leaf-mates are with theirs, whose slow flows ran clear alone,
    is slowed by neither: it is its own, an intermittent link whose slow spell fell in the rounds across units
    (the unit schedule runs a node's partners on its leaf in other rounds). On the fabric model, ``kind`` at
    144 x 8 in leaves of 8 (seed 1530027): node001's flaky rail-3 link was slow with 20 of its 34 partners across
    units and none of its 7 on its leaf, its 7 leaf-mates with 1 of their 238, and its 16 slow flows measured alone
    ran clear; it was ruled beyond its leaf, and its slow flows were named as 10 pairs, each a healthy cable's too.
    The ECMP links the rule above was made for (``ecmp`` at 1024 x 8, seeds 1002024 and 1002041: 5,569 links ruled
    beyond their leaf) were slow with 3-14 of 31 beside leaf-mates slow with 3-21% of theirs, at best a chance of 4e-4,
    3.5 family-wise: no more than their leaf's collisions give them."""

    slow: int
    across: int
    links: int

    def single_out(self, slow: int, across: int) -> bool:
        """``slow`` of ``across`` partners is beyond what the leaf-mates' rate gives one link, family-wise over
        ``links`` at :data:`noise.NAME_FALSE_ALARMS`. The rate takes one slow and one clear flow more than seen, so
        that leaf-mates with none slow still leave a link a rate to be measured against."""
        if self.across == 0:
            return False
        rate = (self.slow + 1) / (self.across + 2)
        return noise.binom_sf(slow, across, rate) * self.links <= noise.NAME_FALSE_ALARMS


def leaf_mates(left: np.ndarray, measured: np.ndarray, between: np.ndarray, a: int, links: int) -> Mates:
    """:class:`Mates` of link ``a`` from its rail's planes (``[a, b]``): ``left``, its suspects still to explain;
    ``between``, the pairs across units (a node's partners on its leaf are its leaf-mates)."""
    mates = ~between[a]
    mates[a] = False
    across = measured[mates] & between[mates]
    return Mates(int((left[mates] & across).sum()), int(across.sum()), links)


def alone_row(cells: Cells, k: int, a: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Link (k, a)'s partners (``[b]``) the quiet pass measured alone: those that ran clear there
    (``Cells.clear_quiet``) and those that read low (under the mark); None where it did not run."""
    if cells.quiet is None or cells.clear_quiet is None:
        return None
    clear = cells.clear_quiet[k, a]
    return clear, cells.quiet[k, a] & ~clear


def as_deep(cells: Cells, k: int, a: int, left: np.ndarray, between: np.ndarray) -> np.ndarray:
    """Link (k, a)'s suspects (``[b]``) with those on its own leaf kept only where a slow sample is as slow as its
    suspects across units (at most their upper quartile): a link's own fault slows its pairs on its leaf as deep as
    those across, while a link at the line's edge (under 90% of line by its level, healthy by its peers') is slow
    on its leaf only by the line, and ECMP's collisions slow it across units to half. Its leaf's samples then say
    nothing of what slowed the rest (64 x 8 ECMP runs with leaves of 8 named such links as flaky cables in about
    one clean run in fifteen)."""
    suspect = cells.suspect[k, a].copy()
    across = left & between
    if not across.any():
        return suspect
    rates = cells.matrix.busbw[:, k, a]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a cell whose every sample is NaN: never as deep
        depth = float(np.nanpercentile(np.nanmin(rates[:, across], axis=0), 75))
    inside = suspect & ~between
    deep: np.ndarray = np.any(cells.slow_sample[:, k, a] & (rates <= depth), axis=0)
    suspect[inside] = deep[inside]
    return suspect
