"""Coordination through the rendezvous store at 512 and 2048 ranks, printed (not asserted).

Simulated ranks over one real TCPStore: the master lives in this process, as rank 0's does, and rank 0 runs
here; the other ranks are threads of a few worker processes, each rank with its own store client and its own
``StoreCoord`` (``bench.runtime.coord``), as a real rank has. Rank 0 times two agreements, each of which ends
only when every rank has taken part:

- **one pair round** (``bench.rails.measurement.pairs.PairRunner.run``): every rank posts its round's pair times (and
one
  rank per rail the rail's rates); rank 0 keeps them and answers the upper median rate, one float to every rank;
- **the final gather** (``bench.rails.rank.rails_phase``): every rank's report of a 64-node x 8-rail run (its
  pair times over two repeats, its counter windows) to rank 0 alone.

Each is the median of several (five rounds, three final gathers).

Linear means the time per rank stays about the same from 512 to 2048 ranks (the ratio printed near 1; n^2
would read 4). On a machine of a few cores the wall time holds every simulated rank's own work too (pickling its
post, its store requests, its thread's turn), so it is noisy under load; rank 0's process time (rank 0 and the
store server it hosts) is what a real run concentrates on one node. Connecting thousands of store clients takes
minutes where the resolver stalls (printed). Run: ``python ci/bench_coord.py`` (``--ranks 512 2048 --rounds 5
--workers 16``).
"""

from __future__ import annotations

import argparse
import pickle
import statistics
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

# Runnable from a checkout without installing: ``python ci/bench_coord.py``.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.runtime.coord import StoreCoord

TIMEOUT_S = 600.0
FINALS = 3
"""The final gather is timed this many times (the median is printed): one run on a shared machine is noise."""


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
            report_bytes=len(pickle.dumps(mine)),
        )


def _worker(host: str, port: int, world: int, first: int, last: int, rounds: int) -> None:
    import torch.distributed as dist

    def run(rank: int) -> None:
        store = dist.TCPStore(host, port, world, False, timeout=timedelta(seconds=TIMEOUT_S))
        _rank(store, rank, world, rounds, None)

    threads = [threading.Thread(target=run, args=(r,)) for r in range(first, last)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def measure(world: int, rounds: int, workers: int) -> dict[str, float]:
    import torch.distributed as dist

    store = dist.TCPStore("127.0.0.1", 0, world, True, timeout=timedelta(seconds=TIMEOUT_S), wait_for_workers=False)
    share = -(-(world - 1) // workers)
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, "--worker", str(store.port), str(world), str(first), str(last), str(rounds)]
        )
        for first, last in ((1 + i * share, min(world, 1 + (i + 1) * share)) for i in range(workers))
        if first < last
    ]
    timings: dict[str, float] = {}
    try:
        _rank(store, 0, world, rounds, timings)
    finally:
        for p in procs:
            p.wait(timeout=TIMEOUT_S)
    return timings


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        port, world, first, last, rounds = map(int, sys.argv[2:7])
        _worker("127.0.0.1", port, world, first, last, rounds)
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ranks", type=int, nargs="+", default=[512, 2048])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--tiny", action="store_true", help="3 and 6 ranks, 2 rounds, 1 process: the code path (CI)")
    args = parser.parse_args()
    if args.tiny:
        args.ranks, args.rounds, args.workers = [3, 6], 2, 1
    print(f"# StoreCoord over one TCPStore, ranks as threads of {args.workers} processes.")
    print("# wall: as rank 0 sees it, the simulated ranks' own work included (they share this machine's cores);")
    print("# cpu: rank 0's process, the store server included, the one place where every rank's cost meets")
    print(f"# {'ranks':>6} {'pair round: wall':>17} {'cpu':>9} {'final gather: wall':>19} {'cpu':>9}")
    per_rank: dict[int, tuple[float, ...]] = {}
    for world in args.ranks:
        t = measure(world, args.rounds, args.workers)
        per_rank[world] = tuple(t[k] / world for k in ("round_s", "round_cpu", "final_s", "final_cpu"))
        print(
            f"  {world:>6} {t['round_s'] * 1e3:>14.1f} ms {t['round_cpu'] * 1e3:>6.1f} ms"
            f" {t['final_s'] * 1e3:>16.1f} ms {t['final_cpu'] * 1e3:>6.1f} ms"
            f"   (a report: {t['report_bytes'] / 1024:.1f} KiB; every rank connected in {t['start_s']:.0f} s)"
        )
    if len(per_rank) > 1:
        low, high = min(per_rank), max(per_rank)
        ratios = [h / lo if lo > 0 else float("nan") for h, lo in zip(per_rank[high], per_rank[low], strict=True)]
        print(
            f"# per rank, {high} / {low} ranks: pair round wall {ratios[0]:.2f} cpu {ratios[1]:.2f}, final gather"
            f" wall {ratios[2]:.2f} cpu {ratios[3]:.2f} (linear: about 1; n^2: about {high / low:.0f})"
        )


if __name__ == "__main__":
    main()
