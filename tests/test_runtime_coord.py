"""The world's agreements through the rendezvous store (``bench.runtime.coord.StoreCoord``), with ranks as threads
over one real torch store: what each agreement gives each rank, that gathers end at rank 0, that the store does
not grow with the rounds, and that two coordinators over one store stay apart. ``ci/bench_coord.py`` prints what
the agreements cost at 512 and 2048 ranks."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from bench.runtime.coord import StoreCoord

dist = pytest.importorskip("torch.distributed")

RANKS = 6


def _run(world: int, body: Callable[[StoreCoord], Any], store: Any | None = None, name: str = "t") -> list[Any]:
    """``body`` on ``world`` ranks (threads, one coordinator each over one store); each rank's return value."""
    shared = store if store is not None else dist.HashStore()
    out: list[Any] = [None] * world
    errors: list[BaseException] = []

    def rank(r: int) -> None:
        try:
            out[r] = body(StoreCoord(shared, r, world, 30.0, name=name))
        except BaseException as exc:  # reported by the test below
            errors.append(exc)

    threads = [threading.Thread(target=rank, args=(r,)) for r in range(world)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    return out


def test_a_gather_ends_at_rank_0() -> None:
    got = _run(RANKS, lambda c: c.gather({"rank": c.rank, "times": [c.rank] * 3}))
    assert got[0] == [{"rank": r, "times": [r] * 3} for r in range(RANKS)]
    assert got[1:] == [None] * (RANKS - 1)


def test_an_agreement_runs_its_answer_on_rank_0_and_sends_only_the_answer() -> None:
    answered_on: list[int] = []

    def body(c: StoreCoord) -> Any:
        def slowest(posted: list[float]) -> float:
            answered_on.append(c.rank)
            return max(posted)

        return c.agree(float(c.rank * 10), slowest)

    assert _run(RANKS, body) == [50.0] * RANKS
    assert answered_on == [0]


def test_broadcast_barrier_max_and_all_gather() -> None:
    def body(c: StoreCoord) -> Any:
        told = c.broadcast(["suspect", 3] if c.rank == 0 else None)
        c.barrier()
        return told, c.max(-float(c.rank)), c.all_gather(c.rank * c.rank)

    for told, largest, everyone in _run(RANKS, body):
        assert told == ["suspect", 3] and largest == 0.0 and everyone == [r * r for r in range(RANKS)]


def test_the_store_does_not_grow_with_the_rounds() -> None:
    store = dist.HashStore()

    def body(c: StoreCoord) -> int:
        for index in range(60):
            c.agree((c.rank, index), lambda posted: len(posted))
            c.gather(b"x" * 1000)
            c.broadcast(index if c.rank == 0 else None)
        c.barrier()
        return 0

    _run(RANKS, body, store)
    # What the last rounds left (their keys go at the next gather): a few keys, whatever the number of rounds.
    assert store.num_keys() < 12


def test_two_coordinators_over_one_store_never_read_each_other() -> None:
    store = dist.HashStore()
    first = _run(3, lambda c: c.all_gather(f"sweep {c.rank}"), store, name="sweep")
    second = _run(3, lambda c: c.all_gather(f"rails {c.rank}"), store, name="rails")
    assert first[1] == ["sweep 0", "sweep 1", "sweep 2"]
    assert second[2] == ["rails 0", "rails 1", "rails 2"]
    default = [StoreCoord(store, 0, 1, 1.0), StoreCoord(store, 0, 1, 1.0)]
    assert default[0].name != default[1].name, "each coordinator of a process has keys of its own"


def test_a_rank_that_never_posts_ends_rank_0s_wait_with_an_error() -> None:
    store = dist.HashStore()
    coord = StoreCoord(store, 0, 2, 0.5, name="lost")
    with pytest.raises(RuntimeError):  # torch's DistStoreError: rank 1 never came
        coord.gather("alone")


@pytest.mark.slow
def test_over_a_real_tcp_store() -> None:
    # The rendezvous store of a real run: every rank its own client, the posts appended to one key, the last
    # one in marking the round full.
    master = dist.TCPStore("127.0.0.1", 0, RANKS, True, timeout=timedelta(seconds=30), wait_for_workers=False)
    clients = [master] + [
        dist.TCPStore("127.0.0.1", master.port, RANKS, False, timeout=timedelta(seconds=30)) for _ in range(RANKS - 1)
    ]
    out: list[Any] = [None] * RANKS

    def rank(r: int) -> None:
        coord = StoreCoord(clients[r], r, RANKS, 30.0, name="tcp")
        big = coord.gather(bytes([r]) * (64 << 10))
        out[r] = (big, coord.agree(r, sum))

    threads = [threading.Thread(target=rank, args=(r,)) for r in range(RANKS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert out[0][0] == [bytes([r]) * (64 << 10) for r in range(RANKS)]
    assert [o[1] for o in out] == [sum(range(RANKS))] * RANKS
    assert all(o[0] is None for o in out[1:])
