"""Speed of the rails planning and localisation code, printed (not asserted).

Targets (issue 4): the round-robin schedule for 4096 nodes in under 1 s, and localisation over a
512-node x 8-rail pair matrix in under 5 s. Run: ``python ci/bench_rails.py``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

# Runnable from a checkout without installing: ``python ci/bench_rails.py``.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.rails.localise import PairMatrix, localise
from bench.rails.schedule import circle_rounds, schedule


def _best_of(repeats: int, fn) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def _synthetic_matrix(nodes: int, rails: int, seed: int = 0) -> PairMatrix:
    """A healthy 390 Gb/s fabric with 2% noise, one slow link, one slow node and one slow pair."""
    rng = np.random.default_rng(seed)
    busbw = 390.0 * (1.0 + 0.02 * rng.standard_normal((1, rails, nodes, nodes)))
    busbw = np.triu(busbw, k=1)
    busbw = busbw + np.swapaxes(busbw, -1, -2)
    busbw[0, 3, 100, :] *= 0.5  # node101 rail 3: link
    busbw[0, 3, :, 100] *= 0.5
    busbw[0, :, 200, :] *= 0.4  # node201: node
    busbw[0, :, :, 200] *= 0.4
    busbw[0, 5, 7, 9] = busbw[0, 5, 9, 7] = 150.0  # node008-node010 rail 5: pair
    busbw[0, :, np.arange(nodes), np.arange(nodes)] = np.nan
    return PairMatrix(tuple(f"node{i + 1:03d}" for i in range(nodes)), tuple(range(rails)), busbw)


def main() -> None:
    seconds, (pairs, _) = _best_of(3, lambda: circle_rounds(4096))
    print(f"schedule  4096 nodes: {len(pairs)} rounds x {pairs.shape[1]} pairs in {seconds:.3f} s (target < 1 s)")
    seconds, rounds = _best_of(1, lambda: schedule(64, repeats=3, seed=1))
    print(f"schedule    64 nodes x 3 repeats as Round records: {len(rounds)} rounds in {seconds:.3f} s")

    matrix = _synthetic_matrix(512, 8)
    seconds, defects = _best_of(3, lambda: localise(matrix, 400.0))
    found = sorted((d.kind, d.node or "", d.rail if d.rail is not None else -1) for d in defects)
    print(f"localise   512 nodes x 8 rails ({512 * 511 // 2 * 8} pairs): {seconds:.3f} s (target < 5 s)")
    print(f"           found {found}")


if __name__ == "__main__":
    main()
