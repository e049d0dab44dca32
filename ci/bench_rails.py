"""Speed of the rails planning and localisation code, printed (not asserted).

Targets (issue 4): the round-robin schedule for 4096 nodes in under 1 s, and localisation over a
512-node x 8-rail pair matrix in under 5 s. Run: ``python ci/bench_rails.py`` (``--tiny``: 64 and 24 nodes, the
same code in a second, as CI runs every ci/ script).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

# Runnable from a checkout without installing: ``python ci/bench_rails.py``.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.rails.diagnosis.localise import PairMatrix, localise
from bench.rails.plan.schedule import Units, circle_rounds, schedule


def _best_of(repeats: int, fn) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def _synthetic_matrix(nodes: int, rails: int, seed: int = 0) -> PairMatrix:
    """A healthy 390 Gb/s fabric with 2% noise, one slow link, one slow node and one slow pair (at 512 nodes x
    8 rails: node101 rail 3, node201, node008-node010 rail 5)."""
    rng = np.random.default_rng(seed)
    busbw = 390.0 * (1.0 + 0.02 * rng.standard_normal((1, rails, nodes, nodes)))
    busbw = np.triu(busbw, k=1)
    busbw = busbw + np.swapaxes(busbw, -1, -2)
    link, node, rail = nodes * 100 // 512, nodes * 200 // 512, min(3, rails - 1)
    busbw[0, rail, link, :] *= 0.5  # link
    busbw[0, rail, :, link] *= 0.5
    busbw[0, :, node, :] *= 0.4  # node
    busbw[0, :, :, node] *= 0.4
    pair_rail = (rail + 2) % rails
    busbw[0, pair_rail, 7, 9] = busbw[0, pair_rail, 9, 7] = 150.0  # pair
    busbw[0, :, np.arange(nodes), np.arange(nodes)] = np.nan
    return PairMatrix(tuple(f"node{i + 1:03d}" for i in range(nodes)), tuple(range(rails)), busbw)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="64 and 24 nodes: the same code, in a second")
    tiny = parser.parse_args().tiny
    nodes, matrix_nodes, rails = (64, 24, 4) if tiny else (4096, 512, 8)
    seconds, (pairs, _) = _best_of(3, lambda: circle_rounds(nodes))
    print(f"schedule  {nodes} nodes: {len(pairs)} rounds x {pairs.shape[1]} pairs in {seconds:.3f} s (target < 1 s)")
    seconds, rounds = _best_of(1, lambda: schedule(64, repeats=3, seed=1))
    print(f"schedule    64 nodes x 3 repeats as Round records: {len(rounds)} rounds in {seconds:.3f} s")
    units = Units(tuple(a // 32 for a in range(nodes)))
    seconds, rounds = _best_of(3, lambda: schedule(nodes, 1, 0, units, rails))
    print(
        f"schedule  {nodes} nodes in units of 32 x {rails} rails as Round records (every rank computes it): "
        f"{len(rounds)} rounds, {sum(len(r.pairs) for r in rounds)} pairs in {seconds:.3f} s (target < 1 s)"
    )

    matrix = _synthetic_matrix(matrix_nodes, rails)
    seconds, defects = _best_of(3, lambda: localise(matrix, 400.0))
    found = sorted((d.kind, d.node or "", d.rail if d.rail is not None else -1) for d in defects)
    pair_count = matrix_nodes * (matrix_nodes - 1) // 2 * rails
    print(f"localise   {matrix_nodes} nodes x {rails} rails ({pair_count} pairs): {seconds:.3f} s (target < 5 s)")
    print(f"           found {found}")


if __name__ == "__main__":
    main()
