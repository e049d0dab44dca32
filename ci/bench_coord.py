"""Coordination through the rendezvous store at up to 8192 ranks, and a bootstrap ring's step, printed (not asserted).

Simulated ranks over one real TCPStore: the master lives in this process, as rank 0's does, and rank 0 runs
here; the other ranks are threads of a few worker processes, each rank with its own store client and its own
``StoreCoord`` (``bench.runtime.coord``), as a real rank has. Rank 0 times two agreements, each of which ends
only when every rank has taken part:

- **one pair round** (``bench.rails.measurement.pairs.PairRunner.run``): every rank posts its round's pair times (and
  one rank per rail the rail's rates); rank 0 keeps them and answers the upper median rate, one float to every rank;
- **the final gather** (``bench.rails.rank.rails_phase``): every rank's report of a 64-node x 8-rail run (its
  pair times over two repeats, its counter windows) to rank 0 alone.

Each is the median of several (``--rounds`` rounds, three final gathers). Beside each: the store requests and
bytes one rank sends and receives, and what rank 0's store server carries in all.

Linear means the time per rank stays about the same as the ranks grow (the ratio printed near 1; n^2 would read
the ranks' ratio). On a machine of a few cores the wall time holds every simulated rank's own work too (pickling
its post, its store requests, its thread's turn), so it is noisy under load and an upper bound of what one
real rank 0 pays; rank 0's process time (rank 0 and the store server it hosts) is what a real run concentrates
on one node. ``bench.rails.plan.model``'s ``sync_rank_s`` is read from these.

**The bootstrap ring's step.** NCCL's bootstrap all-gather (every communicator's creation, and every
``ncclCommSplit``'s colour exchange over the whole parent) passes ~100 bytes around a ring of TCP sockets, one
step after another. ``--ring K`` times a token around K processes over TCP loopback: the per-step cost where no
network is crossed (``bench.rails.plan.model``'s ``comm_rank_s`` low end).

**Connecting.** torch's TCPStore formats every peer's address with ``getnameinfo``, a reverse DNS lookup at both
ends of every connection; ``127.0.0.1`` arrives as ``::ffff:127.0.0.1``, which /etc/hosts does not name, so each
lookup goes to the resolver, and where the resolver drops a query it costs 5 s (a machine without a fast
resolver: stop 51's 2048 ranks took 210 s to connect, and 8192 did not connect in 9 minutes). As root with
``unshare``, the script re-runs itself in a mount namespace of its own whose /etc/hosts also names the mapped
loopback addresses (nothing outside the script sees it); clients connect one at a time per worker process, so no
more connections wait in the listen backlog than there are workers. Said on the first line.

**Watching.** During a failure, and in any step that runs past ``bench.runtime.watchdog.LEFT_BEHIND_S``, every
rank's watchdog thread asks the store two questions every 2 s: has rank 0 decided (``bench.frame.postmortem``,
``WATCH_S``), and has rank 0 left (``bench.runtime.watchdog``, ``ASK_EVERY_S``). ``--watch`` adds both, one store
request a second from each simulated rank, beside the agreements, from each worker process's own thread over its
ranks' clients (rank 0 polls its own count every tick as well): what those questions cost the agreements at 8192.

Run: ``python ci/bench_coord.py`` (``--ranks 512 2048 8192 --rounds 5 --workers 16 --ring 64``; ``--watch``).
"""

from __future__ import annotations

import argparse
import os
import pickle
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import timedelta
from multiprocessing.queues import Queue
from pathlib import Path
from typing import TYPE_CHECKING

# Runnable from a checkout without installing: ``python ci/bench_coord.py``.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.frame.postmortem import COUNT_KEY, DECIDED_KEY, WATCH_S
from bench.runtime.coord import _FRAME, StoreCoord
from bench.runtime.watchdog import ASK_EVERY_S, RANK0_LEAVING_KEY

if TYPE_CHECKING:
    from torch.distributed import Store

TIMEOUT_S = 900.0
FINALS = 3
"""The final gather is timed this many times (the median is printed): one run on a shared machine is noise."""
PRIVATE_HOSTS = "RAILBENCH_COORD_PRIVATE_HOSTS"
"""Set in the re-run inside the private mount namespace, so that it does not re-run itself again."""
MAPPED_LOOPBACK = "::ffff:127.0.0.1 localhost\n::1 localhost\n"
"""What the private /etc/hosts adds: the loopback addresses as a dual-stack store server sees its clients."""
ROUND_REQUESTS = (4, 6)
"""Store requests per rank in one agreement (``StoreCoord._post`` then ``_answered``): append, add, wait, get; the
last rank in also sets the round full; rank 0 instead waits for that, reads every post in one get, deletes the
earlier round's four keys and sets the answer."""
GATHER_REQUESTS = (3, 6)
"""The same for a gather: rank 0's answer is empty, so the other ranks wait for its key and read nothing."""


def _pair_time(rank: int, k: int) -> tuple[object, ...]:
    """A pair direction as ``bench.rails.diagnosis.matrix.PairTime`` holds it (node, peer, rail, repeat, round, bytes,
    time, stopped, confirm)."""
    return (rank // 8, (rank // 8 + k + 1) % 64, rank % 8, k % 2, k // 2, 256 << 20, 6712.5 + k, False, 0)


def _round_post(rank: int, index: int) -> tuple[list[float], list[tuple[object, ...]]]:
    rates = [390.0 + (rank + j) % 7 for j in range(64)] if rank < 8 else []  # one rank per rail: the rail's rates
    return rates, [_pair_time(rank, index)]


def _final_post(rank: int) -> dict[str, object]:
    """One rank's report (``bench.rails.diagnosis.judge.RankReport``) after a 64-node x 8-rail matrix, two repeats."""
    devices = {f"mlx5_{d}": {"tx_bytes": 123456789 + d, "rx_bytes": 987654321 + d} for d in range(10)}
    reader = rank % 8 == 0  # one rank per node reads the counters
    return {
        "host": f"node{rank // 8:03d}",
        "results": [],
        "times": [_pair_time(rank, k) for k in range(126)],
        "windows": [devices if reader else None for _ in range(8)],
        "whole": devices if reader else None,
        "error_windows": [{"phase": f"phase {p}", "counters": devices} for p in range(4)] if reader else [],
        "ifname": None,
        "nic": ("mlx5_1", "ACTIVE", "PIX", "0000:18:00.0", False),
        "rail": rank % 8,
        "rates": {f"mlx5_{d}": 400.0 for d in range(8)} if reader else None,
    }


def _posted(obj: object) -> int:
    """Bytes one post adds to the round's key: its frame and its pickle (``StoreCoord._post``)."""
    return _FRAME.size + len(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))


def _rank(store: object, rank: int, world: int, rounds: int, timings: dict[str, float] | None) -> None:
    """One simulated rank: a barrier, ``rounds`` pair rounds, the final gather (rank 0 times them)."""
    coord = StoreCoord(store, rank, world, TIMEOUT_S, name="bench")
    began = time.perf_counter()
    coord.barrier()
    if timings is not None:
        timings["start_s"] = time.perf_counter() - began
    seen: list[float] = []

    def upper_median(posts: list[tuple[list[float], list[tuple[object, ...]]]]) -> float:
        seen.extend(r for rates, _ in posts for r in rates)
        return sorted(seen)[len(seen) // 2]

    round_s, round_cpu = [], []
    for index in range(rounds):
        began, cpu = time.perf_counter(), time.process_time()
        coord.agree(_round_post(rank, index), upper_median)
        round_s.append(time.perf_counter() - began)
        round_cpu.append(time.process_time() - cpu)
    mine = _final_post(rank)
    final_s, final_cpu = [], []
    for _ in range(FINALS):
        began, cpu = time.perf_counter(), time.process_time()
        coord.gather(mine)
        final_s.append(time.perf_counter() - began)
        final_cpu.append(time.process_time() - cpu)
    if timings is not None:
        timings.update(
            round_s=statistics.median(round_s),
            round_cpu=statistics.median(round_cpu),
            final_s=statistics.median(final_s),
            final_cpu=statistics.median(final_cpu),
            report_bytes=_posted(mine),
        )


WATCHED_KEY = "bench/watched"
"""Where each process adds the watchdog questions it asked (``--watch``)..."""
WATCHED_MS_KEY = "bench/watched_ms"
"""... and the milliseconds it asked them for."""


def _watch(stores: list[Store], rank0: bool, done: threading.Event) -> None:
    """The watchdog threads' questions of ``stores``' ranks, spread evenly: each rank asks whether rank 0 has decided
    every ``WATCH_S`` and whether it has left every ``ASK_EVERY_S``; with ``rank0`` (rank 0's own process) also rank
    0's poll of the failure count every ``WATCH_S`` (rank 0 asks the two questions here as well: one rank of 8192)."""
    asks = [(DECIDED_KEY, WATCH_S), (RANK0_LEAVING_KEY, ASK_EVERY_S)]
    per_s = sum(len(stores) / every for _, every in asks)
    if rank0:
        per_s += 1 / WATCH_S
    gap, k, began = 1 / per_s, 0, time.monotonic()
    while not done.wait(max(0.0, began + k * gap - time.monotonic())):
        store = stores[k % len(stores)]
        if rank0 and k % (len(stores) * len(asks) + 1) == 0:
            store.add(COUNT_KEY, 0)
        else:
            store.check([asks[k % len(asks)][0]])
        k += 1
    # What was asked and for how long, for rank 0 to print beside the rate it meant.
    stores[0].add(WATCHED_KEY, k)
    stores[0].add(WATCHED_MS_KEY, int((time.monotonic() - began) * 1e3))


def _worker(host: str, port: int, world: int, first: int, last: int, rounds: int, watch: bool) -> None:
    import torch.distributed as dist

    # One connection at a time: the listen backlog never holds more than one client per worker.
    stores = [dist.TCPStore(host, port, world, False, timeout=timedelta(seconds=TIMEOUT_S)) for _ in range(first, last)]
    threads = [
        threading.Thread(target=_rank, args=(store, r, world, rounds, None))
        for store, r in zip(stores, range(first, last), strict=True)
    ]
    done = threading.Event()
    watcher = threading.Thread(target=_watch, args=(stores, False, done)) if watch else None
    for t in threads:
        t.start()
    if watcher is not None:
        watcher.start()
    for t in threads:
        t.join()
    done.set()
    if watcher is not None:
        watcher.join()


def measure(world: int, rounds: int, workers: int, watch: bool = False) -> dict[str, float]:
    import torch.distributed as dist

    store = dist.TCPStore("127.0.0.1", 0, world, True, timeout=timedelta(seconds=TIMEOUT_S), wait_for_workers=False)
    share = -(-(world - 1) // workers)
    procs = [
        subprocess.Popen(
            [
                *(sys.executable, __file__, "--worker", str(store.port), str(world)),
                *(str(first), str(last), str(rounds), str(int(watch))),
            ]
        )
        for first, last in ((1 + i * share, min(world, 1 + (i + 1) * share)) for i in range(workers))
        if first < last
    ]
    timings: dict[str, float] = {}
    done = threading.Event()
    watcher = threading.Thread(target=_watch, args=([store], True, done)) if watch else None
    if watcher is not None:
        watcher.start()
    try:
        _rank(store, 0, world, rounds, timings)
    finally:
        done.set()
        if watcher is not None:
            watcher.join()
        for p in procs:
            p.wait(timeout=TIMEOUT_S)
    if watch:
        asked, spent_s = int(store.add(WATCHED_KEY, 0)), int(store.add(WATCHED_MS_KEY, 0)) / 1e3
        timings["watched_per_s"] = asked / (spent_s / (len(procs) + 1)) if spent_s > 0 else 0.0
    return timings


def traffic(world: int) -> dict[str, float]:
    """Store requests and bytes of one pair round and one final gather: per rank, and at rank 0's server in all."""
    posts = sum(_posted(_round_post(r, 0)) for r in range(world))
    answer = len(pickle.dumps(400.0, protocol=pickle.HIGHEST_PROTOCOL))
    reports = sum(_posted(_final_post(r)) for r in range(world))
    return {
        "round_up": posts / world,
        "round_down": answer,
        "round_server_requests": ROUND_REQUESTS[0] * (world - 1) + ROUND_REQUESTS[1] + 1,
        "round_server_bytes": 2 * posts + answer * world,  # each post in, then every post out to rank 0
        "final_up": reports / world,
        "final_server_requests": GATHER_REQUESTS[0] * (world - 1) + GATHER_REQUESTS[1] + 1,
        "final_server_bytes": 2 * reports,
    }


def _ring_member(i: int, listeners: list[socket.socket], laps: int, out: Queue[float]) -> None:
    """One member of the token ring: member 0 sends and times, every other member passes on what it receives."""
    size = len(listeners)
    nxt = socket.create_connection(listeners[(i + 1) % size].getsockname())
    nxt.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    prev, _ = listeners[i].accept()
    token = b"x" * RING_BYTES
    began = time.perf_counter()
    for _ in range(laps):
        if i == 0:
            nxt.sendall(token)
            prev.recv(RING_BYTES, socket.MSG_WAITALL)
        else:
            prev.recv(RING_BYTES, socket.MSG_WAITALL)
            nxt.sendall(token)
    if i == 0:
        out.put((time.perf_counter() - began) / (laps * size))


RING_BYTES = 100
"""What one bootstrap all-gather step carries per rank (NVIDIA/nccl pull request 1791: "~100 bytes")."""


def ring_step_s(size: int, laps: int) -> float:
    """Seconds per step of a token passed around ``size`` processes over TCP loopback."""
    import multiprocessing

    fork = multiprocessing.get_context("fork")  # the listeners are inherited; nothing torch has run yet
    listeners = []
    for _ in range(size):
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listeners.append(listener)
    out: Queue[float] = fork.Queue()
    members = [fork.Process(target=_ring_member, args=(i, listeners, laps, out)) for i in range(size)]
    for m in members:
        m.start()
    step = float(out.get(timeout=TIMEOUT_S))
    for m in members:
        m.join(timeout=TIMEOUT_S)
    for listener in listeners:
        listener.close()
    return step


def in_private_hosts() -> bool:
    """Re-run this script in a mount namespace of its own whose /etc/hosts names the mapped loopback addresses
    (module docstring); True when this process is that re-run or no re-run is possible (not root, no unshare)."""
    if os.environ.get(PRIVATE_HOSTS) or os.geteuid() != 0 or shutil.which("unshare") is None:
        return True
    with tempfile.TemporaryDirectory(prefix="rbcoord") as tmp:
        hosts = Path(tmp) / "hosts"
        hosts.write_text(Path("/etc/hosts").read_text() + MAPPED_LOOPBACK)
        rerun = " ".join(f"'{a}'" for a in (sys.executable, *sys.argv))
        command = ["unshare", "--mount", "sh", "-c", f"mount --bind '{hosts}' /etc/hosts && exec {rerun}"]
        done = subprocess.run(command, env={**os.environ, PRIVATE_HOSTS: "1"}, check=False)
    if done.returncode != 0:
        raise SystemExit(done.returncode)
    return False


def print_agreements(ranks: list[int], rounds: int, workers: int, watch: bool = False) -> None:
    asked = ", every rank's watchdog asking 1 request a second beside them (--watch)" if watch else ""
    print(f"# StoreCoord over one TCPStore, ranks as threads of {workers} processes{asked}.")
    print("# wall: as rank 0 sees it, the simulated ranks' own work included (they share this machine's cores);")
    print("# cpu: rank 0's process, the store server included, the one place where every rank's cost meets")
    print(f"# {'ranks':>6} {'pair round: wall':>17} {'cpu':>9} {'final gather: wall':>19} {'cpu':>9}")
    per_rank: dict[int, tuple[float, ...]] = {}
    for world in ranks:
        t = measure(world, rounds, workers, watch)
        per_rank[world] = tuple(t[k] / world for k in ("round_s", "round_cpu", "final_s", "final_cpu"))
        moved = traffic(world)
        print(
            f"  {world:>6} {t['round_s'] * 1e3:>14.1f} ms {t['round_cpu'] * 1e3:>6.1f} ms"
            f" {t['final_s'] * 1e3:>16.1f} ms {t['final_cpu'] * 1e3:>6.1f} ms"
            f"   (every rank connected in {t['start_s']:.0f} s)"
        )
        if watch:
            print(f"  {'':>6} watchdog questions: {t['watched_per_s']:,.0f} a second asked of {world:,} meant")
        print(
            f"  {'':>6} per rank: a round {ROUND_REQUESTS[0]} store requests, {moved['round_up']:.0f} B up and "
            f"{moved['round_down']:.0f} B down; the final gather {GATHER_REQUESTS[0]} requests, "
            f"{moved['final_up'] / 1024:.1f} KiB up. Rank 0's server: a round {moved['round_server_requests']:,} "
            f"requests, {moved['round_server_bytes'] / 1e6:.2f} MB; the final gather "
            f"{moved['final_server_requests']:,} requests, {moved['final_server_bytes'] / 1e6:.1f} MB"
        )
        print(
            f"  {'':>6} per rank of the world: a round {per_rank[world][0] * 1e6:.1f} us wall, "
            f"{per_rank[world][1] * 1e6:.1f} us rank 0's cpu; the final gather {per_rank[world][2] * 1e6:.1f} us "
            f"wall, {per_rank[world][3] * 1e6:.1f} us cpu"
        )
    if len(per_rank) > 1:
        low, high = min(per_rank), max(per_rank)
        ratios = [h / lo if lo > 0 else float("nan") for h, lo in zip(per_rank[high], per_rank[low], strict=True)]
        print(
            f"# per rank, {high} / {low} ranks: pair round wall {ratios[0]:.2f} cpu {ratios[1]:.2f}, final gather"
            f" wall {ratios[2]:.2f} cpu {ratios[3]:.2f} (linear: about 1; n^2: about {high / low:.0f})"
        )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        port, world, first, last, rounds, watch = map(int, sys.argv[2:8])
        _worker("127.0.0.1", port, world, first, last, rounds, bool(watch))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ranks", type=int, nargs="+", default=[512, 2048, 8192])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--ring", type=int, default=64, help="processes in the bootstrap ring's token (0: none)")
    parser.add_argument("--watch", action="store_true", help="every rank's watchdog questions beside the agreements")
    parser.add_argument("--tiny", action="store_true", help="3 and 6 ranks, 2 rounds, 1 process: the code path (CI)")
    args = parser.parse_args()
    if args.tiny:
        args.ranks, args.rounds, args.workers, args.ring, args.watch = [3, 6], 2, 1, 2, True
    elif not in_private_hosts():
        return  # the re-run in its own mount namespace has printed everything
    if os.environ.get(PRIVATE_HOSTS):
        print("# in a mount namespace of its own: /etc/hosts also names ::ffff:127.0.0.1 (no reverse DNS lookups)")
    if args.ring:
        laps = max(20, 20_000 // args.ring)
        step = ring_step_s(args.ring, laps)
        print(
            f"# bootstrap ring: a {RING_BYTES}-byte token around {args.ring} processes over TCP loopback, {laps} laps: "
            f"{step * 1e6:.1f} us a step"
        )
    print_agreements(args.ranks, args.rounds, args.workers, args.watch)


if __name__ == "__main__":
    main()
