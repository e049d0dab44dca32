"""How the ranks of a job agree with each other (gathers, broadcasts, barriers, a maximum) without riding the
links under test.

On gloo the world group is bound to the management interface (``--oob-ifname``), so it is the coordination
channel as it always was. On NCCL the world communicator rides the rails themselves: NCCL gives each GPU's
channels its nearest NIC, and a port that is up but black-holed (a dead cable behind an ACTIVE port, a switch
that drops the rail) hangs every communicator that spans nodes through it, the world's included, until IB
gives up and torch's watchdog aborts it (``bench.rails.measurement.groups``). So on NCCL every agreement of the rails
test goes through the rendezvous store, which rides the management network.

Every agreement costs O(n) in all, never n answers of O(n) each (docs/design.md, "Coordination in O(n)"): a
gather ends at rank 0, the one rank that reads it (the others wait for a done key); an agreement sends every
rank only its answer, which the caller keeps small (the fastest probe, the rails that failed, the first
problem). Only :meth:`Coord.all_gather` sends every post to every rank, for the few that need them all.

Through the store (:class:`StoreCoord`) every rank appends its post to the round's one key and counts itself
in; the rank that completes the count marks the round full; rank 0 waits for that mark and reads every post
in one request, so its cost is a few store operations and the posts' bytes, whatever the number of ranks.
"""

from __future__ import annotations

import itertools
import pickle
import struct
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

    def gather(self, obj: T) -> list[T] | None:
        """Every rank's ``obj``, in rank order, on rank 0; None on the other ranks, which return once rank 0 has
        them all."""
        ...

    def agree(self, obj: T, answer: Callable[[list[T]], R]) -> R:
        """``answer`` of every rank's ``obj`` (in rank order), on every rank. ``answer`` runs on rank 0 alone,
        which may also keep what it reads; what it returns travels to every rank, so it should be small."""
        ...

    def all_gather(self, obj: T) -> list[T]:
        """Every rank's ``obj``, in rank order, on every rank: n posts to each of n ranks, only for a caller whose
        every rank needs every post."""
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

    def gather(self, obj: T) -> list[T] | None:
        import torch.distributed as dist

        root = dist.get_rank(self.group) == 0
        # Slots to fill on the group's rank 0: gather_object puts one rank's ``obj`` in each.
        everyone: list[Any] | None = [None] * dist.get_world_size(self.group) if root else None
        dist.gather_object(obj, everyone, group=self.group, group_dst=0)
        return everyone

    def agree(self, obj: T, answer: Callable[[list[T]], R]) -> R:
        import torch.distributed as dist

        everyone = self.gather(obj)
        # broadcast_object_list puts the root's answer in the box on every rank.
        box: list[Any] = [answer(everyone) if everyone is not None else None]
        dist.broadcast_object_list(box, group=self.group, group_src=0)
        return box[0]

    def all_gather(self, obj: T) -> list[T]:
        import torch.distributed as dist

        # Slots to fill: all_gather_object puts one rank's ``obj`` in each.
        everyone: list[Any] = [None] * dist.get_world_size(self.group)
        dist.all_gather_object(everyone, obj, group=self.group)
        return everyone

    def broadcast(self, obj: T | None) -> T:
        import torch.distributed as dist

        # broadcast_object_list puts rank 0's ``obj`` in the box on every rank.
        box: list[Any] = [obj]
        dist.broadcast_object_list(box, group=self.group, group_src=0)
        return box[0]

    def barrier(self) -> None:
        import torch.distributed as dist

        dist.barrier(group=self.group)

    def max(self, value: float) -> float:
        return float(self.agree(value, max))


_FRAME = struct.Struct("<IQ")
"""A post in a round's key: the rank, the length of its pickle, then the pickle."""
_COORDINATORS = itertools.count(1)
"""Each StoreCoord of a process takes the next number, its keys' namespace. Every rank makes its coordinators in
the same order (the same program on every rank), so the n-th coordinator of every rank shares its keys, and two
coordinators over one store (the sweep's and the rails test's in one accept run) never read each other's."""


@dataclass
class StoreCoord:
    """Agreements through the rendezvous store (see the module docstring)."""

    store: Any
    """The rendezvous store (a torch.distributed.Store). Typed Any because torch's stub says ``set`` takes a
    ``str`` value, while the binding takes the pickled ``bytes`` posted here."""
    rank: int
    world_size: int
    timeout_s: float
    name: str = field(default_factory=lambda: str(next(_COORDINATORS)))
    """The keys' namespace, the same on every rank (default: the coordinator's number in this process)."""
    _seq: int = field(default=0, init=False)
    _spent: list[str] = field(default_factory=list, init=False)
    """Rank 0: keys of past rounds, deleted once every rank has posted to a later round (and so has read them)."""

    @property
    def _wait(self) -> timedelta:
        return timedelta(seconds=self.timeout_s)

    def _next(self) -> str:
        self._seq += 1
        return f"railbench/coord/{self.name}/{self._seq}"

    def _post(self, base: str, obj: object) -> None:
        """Append this rank's post to the round's key and count it; the last one in marks the round full (the
        append reaches the store before the count: one connection's requests are served in order)."""
        payload = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
        self.store.append(f"{base}/posts", _FRAME.pack(self.rank, len(payload)) + payload)
        if self.store.add(f"{base}/count", 1) == self.world_size:
            self.store.set(f"{base}/full", b"1")

    def _collect(self, base: str) -> list[Any]:
        """Rank 0: every post of the round, in rank order, read in one request."""
        self.store.wait([f"{base}/full"], self._wait)
        blob = self.store.get(f"{base}/posts")
        posts: list[Any] = [None] * self.world_size
        offset = 0
        while offset < len(blob):
            rank, size = _FRAME.unpack_from(blob, offset)
            offset += _FRAME.size
            posts[rank] = pickle.loads(blob[offset : offset + size])
            offset += size
        # Every rank posted to this round, so every rank is past every earlier round's answer.
        for key in self._spent:
            self.store.delete_key(key)
        self._spent = [f"{base}/posts", f"{base}/count", f"{base}/full"]
        return posts

    def _answer(self, base: str, value: object) -> None:
        self.store.set(f"{base}/done", pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))
        self._spent.append(f"{base}/done")

    def _answered(self, base: str) -> Any:
        self.store.wait([f"{base}/done"], self._wait)
        return pickle.loads(self.store.get(f"{base}/done"))

    def gather(self, obj: T) -> list[T] | None:
        base = self._next()
        self._post(base, obj)
        if self.rank != 0:
            self.store.wait([f"{base}/done"], self._wait)  # the answer is empty: only its key is read
            return None
        posts = self._collect(base)
        self._answer(base, None)
        return posts

    def agree(self, obj: T, answer: Callable[[list[T]], R]) -> R:
        base = self._next()
        self._post(base, obj)
        if self.rank != 0:
            answered: R = self._answered(base)
            return answered
        result = answer(self._collect(base))
        self._answer(base, result)
        return result

    def all_gather(self, obj: T) -> list[T]:
        return self.agree(obj, lambda posts: posts)

    def broadcast(self, obj: T | None) -> T:
        # Only rank 0 writes: nobody posts, and its key is deleted at rank 0's next gather or agreement.
        base = self._next()
        if self.rank != 0:
            answered: T = self._answered(base)
            return answered
        if obj is None:
            raise ValueError("broadcast needs rank 0 to send a value")
        self._answer(base, obj)
        return obj

    def barrier(self) -> None:
        self.gather(None)

    def max(self, value: float) -> float:
        return float(self.agree(value, max))


def coordinator(role: str, store: Store, rank: int, world_size: int, timeout_s: float) -> Coord:
    """The world's coordination channel for a job of ``role`` (``gloo`` or ``nccl``)."""
    if role == "gloo":
        return GroupCoord(None)
    return StoreCoord(store, rank, world_size, timeout_s)
