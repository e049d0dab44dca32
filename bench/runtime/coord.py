"""How the ranks of a job agree with each other (gathers, broadcasts, barriers, a maximum) without riding the
links under test.

On gloo the world group is bound to the management interface (``--oob-ifname``), so it is the coordination
channel as it always was. On NCCL the world communicator rides the rails themselves: NCCL gives each GPU's
channels its nearest NIC, and a port that is up but black-holed (a dead cable behind an ACTIVE port, a switch
that drops the rail) hangs every communicator that spans nodes through it, the world's included, until IB
gives up and torch's watchdog aborts it (``bench.rails.groups``). So on NCCL every agreement of the rails
test goes through the rendezvous store, which rides the management network: rank 0 reads what every rank
posted and posts the answer once, 2n store operations per agreement. NCCL communicators then carry only the
traffic being measured, and a dead link costs its own rail group, never the run.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    from torch.distributed import ProcessGroup, Store

T = TypeVar("T")
R = TypeVar("R")


class Coord(Protocol):
    """The world's agreements, every rank calling each one at the same point."""

    def all_gather(self, obj: T) -> list[T]:
        """Every rank's ``obj``, in rank order, on every rank."""
        ...

    def gather(self, obj: T) -> list[T] | None:
        """Every rank's ``obj``, in rank order, on rank 0 alone (None elsewhere): what only rank 0 reads travels
        to rank 0 alone, never n times to everyone."""
        ...

    def broadcast(self, obj: T | None) -> T:
        """Rank 0's ``obj`` on every rank. Rank 0 passes a ``T``; the other ranks' ``obj`` is never read (None
        where they have none)."""
        ...

    def barrier(self) -> None: ...

    def max(self, value: float) -> float:
        """The largest ``value`` of any rank, on every rank."""
        ...


class GroupCoord:
    """Agreements over a torch process group (``None``: the world), on the CPU."""

    def __init__(self, group: ProcessGroup | None = None) -> None:
        self.group = group

    def all_gather(self, obj: T) -> list[T]:
        import torch.distributed as dist

        # Slots to fill: all_gather_object puts one rank's ``obj`` in each.
        everyone: list[Any] = [None] * dist.get_world_size(self.group)
        dist.all_gather_object(everyone, obj, group=self.group)
        return everyone

    def gather(self, obj: T) -> list[T] | None:
        import torch.distributed as dist

        rank0 = dist.get_rank(self.group) == 0
        slots: list[Any] | None = [None] * dist.get_world_size(self.group) if rank0 else None
        dist.gather_object(obj, slots, dst=0, group=self.group)
        return slots

    def broadcast(self, obj: T | None) -> T:
        import torch.distributed as dist

        # broadcast_object_list puts rank 0's ``obj`` in the box on every rank.
        box: list[Any] = [obj]
        dist.broadcast_object_list(box, src=0, group=self.group)
        return box[0]

    def barrier(self) -> None:
        import torch.distributed as dist

        dist.barrier(group=self.group)

    def max(self, value: float) -> float:
        return float(max(self.all_gather(value)))


@dataclass
class StoreCoord:
    """Agreements through the rendezvous store: each rank posts, rank 0 reads every post and answers once."""

    store: Any
    """The rendezvous store (a torch.distributed.Store). Typed Any because torch's stub says ``set`` takes a
    ``str`` value, while the binding takes the pickled ``bytes`` posted here."""
    rank: int
    world_size: int
    timeout_s: float
    _seq: int = field(default=0, init=False)

    def _round(self, obj: object, answer: Callable[[list[T]], R]) -> R:
        """Post ``obj``; rank 0 computes ``answer`` of every rank's post; every rank returns the answer.

        ``answer`` reads the posts as the ``T`` its caller posted (``broadcast`` reads rank 0's post only)."""
        self._seq += 1
        base = f"railbench/coord/{self._seq}"
        wait = timedelta(seconds=self.timeout_s)
        self.store.set(f"{base}/{self.rank}", pickle.dumps(obj))
        if self.rank == 0:
            keys = [f"{base}/{r}" for r in range(self.world_size)]
            self.store.wait(keys, wait)
            posted: list[T] = [pickle.loads(self.store.get(k)) for k in keys]
            result = answer(posted)
            self.store.set(f"{base}/answer", pickle.dumps(result))
            for k in keys:
                self.store.delete_key(k)
            return result
        self.store.wait([f"{base}/answer"], wait)
        answered: R = pickle.loads(self.store.get(f"{base}/answer"))
        return answered

    def all_gather(self, obj: T) -> list[T]:
        return list(self._round(obj, lambda posted: posted))

    def gather(self, obj: T) -> list[T] | None:
        """Each rank posts; rank 0 reads every post and answers nobody (the others go on at once)."""
        self._seq += 1
        base = f"railbench/coord/{self._seq}"
        self.store.set(f"{base}/{self.rank}", pickle.dumps(obj))
        if self.rank != 0:
            return None
        keys = [f"{base}/{r}" for r in range(self.world_size)]
        self.store.wait(keys, timedelta(seconds=self.timeout_s))
        posted: list[T] = [pickle.loads(self.store.get(k)) for k in keys]
        for k in keys:
            self.store.delete_key(k)
        return posted

    def broadcast(self, obj: T | None) -> T:
        def first(posted: list[T]) -> T:
            return posted[0]

        return self._round(obj if self.rank == 0 else None, first)

    def barrier(self) -> None:
        self._round(None, lambda posted: None)

    def max(self, value: float) -> float:
        return float(self._round(value, lambda posted: max(posted)))


def coordinator(role: str, store: Store, rank: int, world_size: int, timeout_s: float) -> Coord:
    """The world's coordination channel for a job of ``role`` (``gloo`` or ``nccl``)."""
    if role == "gloo":
        return GroupCoord(None)
    return StoreCoord(store, rank, world_size, timeout_s)
