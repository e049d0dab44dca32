"""A communicator that failed in the middle of a measurement: the link its ranks' NCCL logs name.

On NCCL a link that dies while a phase measures does not end the phase at once. Every connection through it
retries until InfiniBand gives up (``NCCL_IB_TIMEOUT`` x ``NCCL_IB_RETRY_CNT``: about 34 s at NCCL 2.23's
default, 8.6 s before, ``src/transport/net_ib``); net_ib then logs ``NET/IB : Got completion from peer <address>
with status=12`` (IBV_WC_RETRY_EXC_ERR) on each rank that was talking through the dead link, the dead end
included, and torch aborts the communicator, raising in the waiting call (``TORCH_NCCL_ASYNC_ERROR_HANDLING`` 2,
``bench.runtime.before_init``). Only the ranks of the failed communicator see the error; the others wait in the
next agreement for ranks that will not come.

So each rank whose call failed posts to the rendezvous store, which rides the management network, what it
knows of itself and what its own NCCL log says: its host's out-of-band addresses (those of the interfaces
``NCCL_SOCKET_IFNAME`` selects, as railbench set it), its own NIC (the rails' ``ExpectedNic``), and the
completion errors of its log, WARN lines in any wording since NCCL 2.17 (``bench.nccllogs.ib_completion``).
None of that needs NCCL 2.22's ``hca`` word nor the ``OOB`` address NCCL prints at INFO: a site's
``NCCL_DEBUG=WARN`` or the NCCL 2.18-2.21 of torch 2.1-2.5 wheels name the link as well. Rank 0, from
its main thread when its own call failed and otherwise from its watchdog's thread, which sees the count of
posts rise, waits until the posts settle, names the link they converge on
(``bench.nccllogs.nccl_evidence.dead_link_ends``), records the run's end with the step it ended in (a FAIL
that names the part, exit 1), and tells the posting ranks. When the logs name nothing (a rank that died, a
backend error that is not a link), the run ends as before: a lost rank, exit 3.
See docs/design.md, "A link that dies mid-measurement".
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench.exits import EXIT_FAIL
from bench.fabric.hca_list import nccl_default_ifnames, select_ifnames
from bench.nccllogs import nccl_evidence, nccl_log
from bench.nccllogs.ib_completion import Completion
from bench.nccllogs.nccl_evidence import DeadLink
from bench.nccllogs.nccl_hostnet import HostNet
from bench.netaddr import interface_ipv4
from bench.rundir.finding_words import link_died
from bench.runtime.deadlines import POSTMORTEM_COLLECT_S

EndRecorder = Callable[[str, int, Mapping[str, object] | None], None]
Store = Any
"""torch's rendezvous store: typed Any, as in ``bench.runtime.coord``, because torch's stub lacks ``append``,
which the binding has."""

COUNT_KEY = "railbench/failed/count"
POSTS_KEY = "railbench/failed/posts"
DECIDED_KEY = "railbench/failed/decided"
HEARD_KEY = "railbench/failed/heard"
HEARD_S = 5.0
"""How long rank 0 waits, after deciding, for the other ranks to read the decision before it ends: the store
lives in rank 0's process, and each of them then leaves with the run's own exit status. A rank that did not post
(its communicator did not fail; it waits in the next agreement) reads it from its watchdog's thread
(:meth:`Postmortem.watch`); without it, rank 0's end would break that agreement, the rank would end as a lost
rank (exit 3), and under load the launcher could report its 3 before rank 0's 1."""
SETTLE_S = 3.0
"""The posts are taken as complete once none has come for this long. The ranks of one communicator fail
within the same retry window (each side's retries start at the last packet the link carried), seconds apart
at most, while the next failure would need another communicator's retries to run out."""
COLLECT_S = POSTMORTEM_COLLECT_S
"""The most rank 0 waits for the posts to settle, whatever keeps arriving (declared with railbench's other
deadlines: the ``nccl-ib-retry`` check counts it against ``--timeout``)."""
NOTHING_NAMED = "none"
WATCH_S = 2.0
"""How often a rank that did not post asks for rank 0's decision, from its watchdog's thread: well inside
:data:`HEARD_S`, and one request per rank every two seconds (the heartbeat is one every half second) keeps rank
0's store light at thousands of ranks."""


@dataclass(frozen=True)
class LinkErrors:
    """What one failed rank knows of the link that broke its call: its own NIC and addresses, and the completion
    errors its own NCCL log holds."""

    rank: int
    host: str
    step: str
    """The step the rank was in (the watchdog's label)."""
    cause: str
    """The first line of the error torch raised."""
    oob: tuple[str, ...] = ()
    """This host's out-of-band addresses: those of the interfaces ``NCCL_SOCKET_IFNAME`` selects here (what its
    peers' completion errors name it by), and the one its log's ``NET/IB : Using ... ; OOB`` line gave."""
    completions: tuple[Completion, ...] = ()
    nic: str | None = None
    """The NIC this rank's traffic leaves through, as railbench expected it (the rails' ``ExpectedNic``); None
    where the phase does not know it."""

    @property
    def peers(self) -> tuple[str, ...]:
        """The peers its completion errors point at (``bench.nccllogs.ib_completion``)."""
        return tuple(dict.fromkeys(c.peer for c in self.completions if c.points_at == "peer"))

    @property
    def hcas(self) -> tuple[str, ...]:
        """The HCA its errors happened on: what NCCL 2.22+ names in the line, else its own NIC."""
        named = tuple(dict.fromkeys(c.hca for c in self.completions if c.hca))
        return named or ((self.nic,) if self.completions and self.nic else ())

    def to_json(self) -> str:
        return json.dumps(
            {
                "rank": self.rank,
                "host": self.host,
                "step": self.step,
                "cause": self.cause,
                "oob": list(self.oob),
                "completions": [[c.peer, c.status, c.hca] for c in self.completions],
                "nic": self.nic,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> LinkErrors:
        doc = json.loads(text)
        return cls(
            int(doc["rank"]),
            str(doc["host"]),
            str(doc["step"]),
            str(doc["cause"]),
            tuple(map(str, doc["oob"])),
            tuple(Completion(str(p), int(s), None if h is None else str(h)) for p, s, h in doc["completions"]),
            None if doc["nic"] is None else str(doc["nic"]),
        )


def socket_addresses(value: str | None, interfaces: Sequence[str] | None = None) -> tuple[str, ...]:
    """The IPv4 addresses of this host's interfaces that ``NCCL_SOCKET_IFNAME=value`` selects (NCCL's own
    search where unset, ``bench.fabric.hca_list``): net_ib's handshakes leave from there, so its peers'
    completion errors name this host by one of them. Loopback is left out: it names no host."""
    names = interfaces if interfaces is not None else [name for _, name in socket.if_nameindex()]
    up = [name for name in names if interface_ipv4(name)]
    chosen = select_ifnames(value, up) if value else nccl_default_ifnames(up)
    found = (interface_ipv4(name) for name in chosen)
    return tuple(dict.fromkeys(a for a in found if a and not a.startswith("127.")))


def own_link_errors(
    out_dir: Path,
    host: str,
    rank: int,
    step: str,
    error: BaseException,
    nic: str | None = None,
    addresses: tuple[str, ...] = (),
) -> LinkErrors:
    """This rank's post: its own NIC and addresses (``nic``, ``addresses``: what railbench set and expected,
    whatever NCCL's version and log level), and the completion errors of its own NCCL log
    (``nccl/<host>-<rank>.log``, ``bench.runtime.before_init``: WARN lines, in any wording since NCCL 2.17),
    read after C stdio is flushed, since NCCL's log lines are written through a buffered ``FILE``."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).fflush(None)
    text = str(error).strip()
    cause = f"{type(error).__name__}: {text.splitlines()[0][:200] if text else 'no message'}"
    bare = LinkErrors(rank, host, step, cause, addresses, (), nic)
    path = out_dir / "nccl" / f"{host}-{rank}.log"
    if not path.is_file():
        return bare
    try:
        log = nccl_log.parse_file(path)
    except Exception:  # a log that cannot be read names nothing; the failure path goes on
        return bare
    mine = list(log.hosts.values())  # this rank's own file: every line is this host's, prefixed or not
    oob = tuple(dict.fromkeys((*addresses, *(a for h in mine for a in h.oob_addresses))))
    completions = tuple(dict.fromkeys(c for h in mine for c in h.completions))
    return LinkErrors(rank, host, step, cause, oob, completions, nic)


def named_links(posts: list[LinkErrors]) -> list[DeadLink]:
    """The links the posts' completion errors converge on, and the hosts whose own HCA failed (a local status);
    each end alive, with completion errors of its own (none when they name no peer, or the end they name did
    not post: its process may be what died)."""
    claims: dict[str, set[str]] = {}
    for post in posts:
        for address in post.oob:
            claims.setdefault(address, set()).add(post.host)
    by_host: dict[str, HostNet] = {}
    for post in posts:
        seen = by_host.get(post.host) or HostNet(host=post.host)
        # An address two hosts claim (pretend nodes on one machine, a shared NAT) tells neither apart.
        mine = (a for a in post.oob if claims[a] == {post.host})
        by_host[post.host] = HostNet(
            host=post.host,
            oob_addresses=tuple(dict.fromkeys((*seen.oob_addresses, *mine))),
            error_peers=tuple(dict.fromkeys((*seen.error_peers, *post.peers))),
            error_hcas=tuple(dict.fromkeys((*seen.error_hcas, *post.hcas))),
            completions=tuple(dict.fromkeys((*seen.completions, *post.completions))),
        )
    # A peer process that crashed leaves the same completion errors on its peers as a link that died; only an end
    # that is alive and saw its own link fail (it posted, with completion errors of its own) is a link.
    errored = {post.host for post in posts if post.completions}
    return [link for link in nccl_evidence.dead_link_ends(by_host) if all(end.host in errored for end in link.ends)]


def failure_of(links: list[DeadLink], posts: list[LinkErrors]) -> dict[str, object]:
    """run.json's ``failure`` for links named after a communicator failed: the step it failed in, each link's
    ends (both where the logs cannot tell which died), and the ranks whose logs said so."""
    step = posts[0].step
    said = link_died([link.finding() for link in links])
    ends = [end for link in links for end in link.ends]
    return {
        "kind": "link-died",
        "message": f"{said} (during {step})",
        "step": step,
        "hosts": list(dict.fromkeys(end.host or end.address for end in ends)),
        "links": [[{"host": e.host, "device": e.hca, "address": e.address} for e in link.ends] for link in links],
        "action": "; ".join(_action(link) for link in links),
        "reported_by": sorted(p.rank for p in posts),
        "causes": sorted({p.cause for p in posts})[:4],
    }


def _action(link: DeadLink) -> str:
    """What to do about a dead link: its end's port and cable, or both ends' where the logs cannot tell; about a
    local error, the host's HCA."""
    if link.local is not None:
        (end,) = link.ends
        return (
            f"check {end.host or end.address} {end.hca or 'its rail HCA'} itself (dmesg, its firmware, and "
            "GPUDirect RDMA: nvidia_peermem or dma-buf); its link is not what failed"
        )
    ports = " and ".join(f"{e.host or e.address} {e.hca or 'its rail HCA'}" for e in link.ends)
    if len(link.ends) == 1:
        return f"check {ports}'s port (ibstat, link_downed) and reseat or replace its cable"
    return f"check the ports of {ports} (ibstat, link_downed): reseat or replace the cable of the one that went down"


class Postmortem:
    """The failed-communicator exchange of one rank (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        rank: int,
        own: Callable[[str, BaseException], LinkErrors],
        record_end: EndRecorder,
        out_dir: Path,
        world_size: int,
        wait_s: float = COLLECT_S + 2 * SETTLE_S,
    ) -> None:
        self.store, self.rank, self.own, self.record_end, self.out_dir = store, rank, own, record_end, out_dir
        self.world_size = world_size
        self.wait_s = wait_s
        """How long a posting rank waits for rank 0's decision (rank 0 itself may be what was lost)."""
        self._lock = threading.Lock()
        self._decided: str | None = None
        self._posted_here = False
        self._said_heard = False
        self._watched = 0.0

    @property
    def named(self) -> str | None:
        """The run's message when rank 0 named a link (the run is a FAIL, exit 1), as this rank has read it."""
        decided = self._decided
        return None if decided is None or decided == NOTHING_NAMED else decided

    def failed_here(self, step: str, error: BaseException) -> str | None:
        """This rank's call failed in ``step``: post its log's evidence; returns the run's message when rank 0
        named a link (the run is a FAIL, already recorded), else None (the caller's lost-rank path goes on)."""
        if self.rank != 0 and self.named is not None:
            # Rank 0 named a link before this rank's call failed (its watchdog read the decision): rank 0's end,
            # which follows, is what failed this call.
            return self.named
        try:
            post = self.own(step, error)
            self.store.append(POSTS_KEY, post.to_json() + "\n")
            self.store.add(COUNT_KEY, 1)
            self._posted_here = True
            if self.rank == 0:
                decided = self.decide(self.store)
            else:
                self.store.wait([DECIDED_KEY], timedelta(seconds=self.wait_s))
                decided = self.store.get(DECIDED_KEY).decode()
                self._say_heard(self.store, decided)
        except RuntimeError:  # the store is gone (rank 0 died) or rank 0 never decided: nothing was named
            return self.named if self.rank != 0 else None
        return None if decided == NOTHING_NAMED else decided

    def watch(self, store: Store) -> None:
        """Any other rank's watchdog thread, every tick: read rank 0's decision once it is made, and say so, so
        that a rank whose own call did not fail leaves with the run's FAIL when rank 0's end breaks its wait."""
        now = time.monotonic()
        if self._decided is not None or now - self._watched < WATCH_S:
            return
        self._watched = now
        if store.check([DECIDED_KEY]):
            self._say_heard(store, store.get(DECIDED_KEY).decode())

    def _say_heard(self, store: Store, decided: str) -> None:
        """Keep the decision and count this rank as having read it, once, from whichever thread read it first.
        A rank that did not post counts only for a named link: for nothing named, the run ends as a lost rank
        whatever it does."""
        with self._lock:
            self._decided = decided
            if self._said_heard or (decided == NOTHING_NAMED and not self._posted_here):
                return
            self._said_heard = True
        store.add(HEARD_KEY, 1)

    def poll(self, store: Store) -> None:
        """Rank 0's watchdog thread, every tick: when another rank's call failed, conclude, and end this process
        with the FAIL where a link was named (its main thread waits in an agreement that will not complete)."""
        if self._decided is not None or int(store.add(COUNT_KEY, 0)) == 0:
            return
        decided = self.decide(store)
        if decided != NOTHING_NAMED:
            print(f"railbench: FAIL: {decided}; what was measured is in {self.out_dir}", file=sys.stderr, flush=True)
            os._exit(EXIT_FAIL)

    def decide(self, store: Store) -> str:
        """Rank 0: once the posts settle, name the link and record the run's end; then wait for the other ranks
        to read the decision. Returns it (:data:`NOTHING_NAMED` when the posts name no link)."""
        decided = self._conclude(store)
        self._heard(store)
        return decided

    def _heard(self, store: Store) -> None:
        """Rank 0: wait (:data:`HEARD_S` at most) until every other rank has read a named link, or every other
        posting rank has read that nothing was named."""
        posting = int(store.add(COUNT_KEY, 0)) - (1 if self._posted_here else 0)
        others = posting if self._decided == NOTHING_NAMED else self.world_size - 1
        until = time.monotonic() + HEARD_S
        while int(store.add(HEARD_KEY, 0)) < others and time.monotonic() < until:
            time.sleep(0.1)

    def _conclude(self, store: Store) -> str:
        """Rank 0: wait for the posts to settle, name the link, record the end; once per run."""
        with self._lock:
            if self._decided is not None:
                return self._decided
            began = time.monotonic()
            count, since = int(store.add(COUNT_KEY, 0)), time.monotonic()
            while time.monotonic() - since < SETTLE_S and time.monotonic() - began < COLLECT_S:
                time.sleep(0.25)
                now = int(store.add(COUNT_KEY, 0))
                if now != count:
                    count, since = now, time.monotonic()
            text = store.get(POSTS_KEY).decode()
            posts = [LinkErrors.from_json(line) for line in text.splitlines() if line.strip()]
            links = named_links(posts) if posts else []
            decided = NOTHING_NAMED
            if links:
                failure = failure_of(links, posts)
                decided = str(failure["message"])
                self.record_end("failed", EXIT_FAIL, failure)
            store.set(DECIDED_KEY, decided)
            self._decided = decided
            return decided
