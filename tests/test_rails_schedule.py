"""The round-robin schedule: every pair exactly once, no node twice in a round, for every n up to 1024."""

from __future__ import annotations

import numpy as np
import pytest

from bench.exits import UserError
from bench.rails.plan.schedule import (
    NO_PARTNER,
    circle_rounds,
    partner_table,
    reshuffled,
    round_count,
    schedule,
)


def _check_schedule(pairs: np.ndarray, byes: np.ndarray, n: int) -> None:
    rounds = round_count(n)
    assert pairs.shape == (rounds, n // 2, 2)
    assert byes.shape == (rounds,)
    if rounds == 0:
        return
    a, b = pairs[..., 0], pairs[..., 1]
    assert (a < b).all() and a.min() >= 0 and b.max() < n
    # Each unordered pair exactly once: n(n-1)/2 pairs with a < b, as many distinct ones, so all of them.
    # (Boolean tables rather than counts: the same facts at a third of the cost, for every n up to 1024.)
    met = np.zeros((n, n), dtype=bool)
    met[a, b] = True
    assert a.size == n * (n - 1) // 2 and np.count_nonzero(met) == a.size
    # No node twice in a round: as many distinct nodes seated in each round as it has seats.
    seated = np.zeros((rounds, n), dtype=bool)
    seated[np.arange(rounds)[:, None], pairs.reshape(rounds, -1)] = True
    assert (np.count_nonzero(seated, axis=1) == 2 * (n // 2)).all()
    if n % 2 == 0:  # every node in every round
        assert (byes == NO_PARTNER).all()
    else:  # n - 1 nodes seated; the bye is the one missing from its round
        assert not seated[np.arange(rounds), byes].any()
        # Every node sits out exactly once over the n rounds.
        assert sorted(byes.tolist()) == list(range(n))


@pytest.mark.slow
def test_every_n_up_to_1024() -> None:
    for n in range(0, 1025):
        pairs, byes = circle_rounds(n)
        _check_schedule(pairs, byes, n)


@pytest.mark.parametrize("n", [2, 3, 7, 8, 64, 65, 255])
def test_reshuffled_repeats_keep_the_properties_and_change_the_order(n: int) -> None:
    pairs, byes = circle_rounds(n)
    rng = np.random.default_rng(7)
    again_p, again_b = reshuffled(pairs, byes, n, rng)
    _check_schedule(again_p, again_b, n)
    if n >= 7:
        assert not np.array_equal(again_p, pairs)


def test_round_count() -> None:
    assert [round_count(n) for n in range(6)] == [0, 0, 1, 3, 3, 5]
    assert round_count(64) == 63


def test_schedule_rounds_and_repeats_are_deterministic() -> None:
    first = schedule(5, repeats=3, seed=11)
    assert len(first) == 15
    assert first == schedule(5, repeats=3, seed=11)
    assert schedule(5, repeats=3, seed=12) != first
    by_repeat: dict[int, set[tuple[int, int]]] = {}
    for rnd in first:
        by_repeat.setdefault(rnd.repeat, set()).update(rnd.pairs)
        assert rnd.bye is not None
        assert rnd.partner(rnd.bye) is None
        for a, b in rnd.pairs:
            assert rnd.partner(a) == b and rnd.partner(b) == a
    assert all(len(s) == 10 for s in by_repeat.values())
    assert [r.index for r in first[:5]] == [0, 1, 2, 3, 4]


def test_even_schedule_has_no_byes() -> None:
    rounds = schedule(4)
    assert [r.bye for r in rounds] == [None, None, None]
    assert {p for r in rounds for p in r.pairs} == {(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)}


def test_partner_table_is_symmetric() -> None:
    pairs, _ = circle_rounds(9)
    table = partner_table(pairs, 9)
    for r in range(len(pairs)):
        for node in range(9):
            other = table[r, node]
            if other != NO_PARTNER:
                assert table[r, other] == node
        assert (table[r] == NO_PARTNER).sum() == 1


@pytest.mark.parametrize("bad", [-1, 2.5, True, "4"])
def test_bad_node_count_is_a_user_error(bad: object) -> None:
    with pytest.raises(UserError, match="node count"):
        circle_rounds(bad)  # type: ignore[arg-type]


def test_bad_repeats_is_a_user_error() -> None:
    with pytest.raises(UserError, match="--repeats"):
        schedule(4, repeats=0)
