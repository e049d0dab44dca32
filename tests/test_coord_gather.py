"""``Coord.gather``: what only rank 0 reads reaches rank 0 alone, through the store as the rails test agrees on
NCCL (``bench.runtime.coord.StoreCoord``), with every rank's post in rank order and none left behind."""

from __future__ import annotations

import threading

from torch.distributed import HashStore

from bench.runtime.coord import StoreCoord


def test_the_store_gathers_to_rank_0_alone_and_leaves_no_key() -> None:
    store = HashStore()
    world = 4
    answers: dict[int, list[object] | None] = {}

    def rank(r: int) -> None:
        coord = StoreCoord(store, r, world, timeout_s=30)
        answers[r] = coord.gather({"rank": r, "node": f"n{r // 2}"} if r % 2 == 0 else None)
        coord.barrier()  # the next agreement still lines up after a gather nobody else waited on

    threads = [threading.Thread(target=rank, args=(r,)) for r in range(world)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert answers[0] == [{"rank": 0, "node": "n0"}, None, {"rank": 2, "node": "n1"}, None]
    assert all(answers[r] is None for r in range(1, world))
    assert store.num_keys() <= 1  # at most the barrier's answer remains
