"""Memory and disk of a soak's windows and judges, by the number of windows: printed, not asserted.

    python ci/bench_soak.py [--windows 10,1000] [--nodes 64] [--rails 8] [--tiny]

Each count runs in a fresh process (so its peak RSS is its own): synthetic windows of every (node, rail) link,
every GPU and four world collective sizes, with the faults a soak names planted among clean noise (a link that
flaps every 7th window, a port whose symbol errors rise once, a link that slows steadily), are appended one by
one to a run directory's ``windows.jsonl`` (``bench.rundir.soak_windows.append_window``, each made durable),
then read back a window at a time (``iter_windows``) and judged (``bench.soak.judge.soak_items``), timed, and
again under tracemalloc. It prints the run directory's size, the judging's tracemalloc peak and the process's
peak RSS, each per window too, the seconds to write and to read and judge, and what the judges named: issue 46
asks that memory and disk grow no more than O(windows) with small constants.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PROBE = """
import json, resource, sys, tempfile, time, tracemalloc
from pathlib import Path
import numpy as np
from bench.profile.cluster import load_profile
from bench.rundir.soak_windows import (
    WINDOWS_FILE, CollectiveWindow, GpuWindow, LinkWindow, SoakWindow, append_window, iter_windows)
from bench.soak.judge import soak_items

count, nodes, rails = (int(a) for a in sys.argv[1:4])
profile = load_profile("generic")
rng = np.random.default_rng(0)
names = [f"node{i:03d}" for i in range(nodes)]
window_s = 600.0

def link(node, rail, i):
    rate = 400.0 * (1 + 0.02 * rng.normal())
    kw = {}
    if (node, rail) == (names[0], 1) and i % 7 == 3:
        kw["flaps"] = 1
    if (node, rail) == (names[-1], rails - 1) and i == count // 2:
        kw["errors"] = {"symbol_error": 12}
    if (node, rail) == (names[1], 0):
        rate -= 10.0 * (i + 0.5) * window_s / 3600
    return LinkWindow(node, rail, device=f"mlx5_{rail}:1", busbw_Gbps=rate, cells=2, **kw)

def window(i):
    links = tuple(link(n, r, i) for n in names for r in range(rails))
    gpus = tuple(GpuWindow(n, g, sm_clock_MHz=1980.0, temperature_C=60.0) for n in names for g in range(rails))
    colls = tuple(CollectiveWindow("all_reduce", 1 << s, 3000.0 + rng.normal(), target_Gbps=3200.0)
                  for s in (24, 26, 28, 30))
    return SoakWindow(i, i * window_s, (i + 1) * window_s, rounds=(i % 4,), links=links, collectives=colls, gpus=gpus)

scratch = tempfile.TemporaryDirectory(prefix="bench_soak.")
run_dir = Path(scratch.name)
start = time.perf_counter()
for i in range(count):
    append_window(run_dir, window(i))
wrote = time.perf_counter() - start
size = (run_dir / WINDOWS_FILE).stat().st_size
start = time.perf_counter()
items = soak_items(iter_windows(run_dir), profile)
judged = time.perf_counter() - start
tracemalloc.start()  # a second pass, traced: tracing slows Python several times over
traced = soak_items(iter_windows(run_dir), profile)
_, peak = tracemalloc.get_traced_memory()
tracemalloc.stop()
assert traced == items
named = [f"{i.name}: {len(i.findings)} {i.state}" for i in items]
scratch.cleanup()
print(json.dumps({"size": size, "peak": peak, "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                  "wrote_s": wrote, "judged_s": judged, "named": named}))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--windows", default="10,1000", help="window counts, comma-separated")
    parser.add_argument("--nodes", type=int, default=64)
    parser.add_argument("--rails", type=int, default=8)
    parser.add_argument(
        "--tiny",
        action="store_true",
        help="3 windows of 2 nodes x 2 rails in one process: the same code, smallest (CI runs every ci/ script so)",
    )
    args = parser.parse_args()
    if args.tiny:
        args.windows, args.nodes, args.rails = "3", 2, 2
    env = dict(os.environ, PYTHONPATH=str(REPO))
    print(f"{args.nodes} nodes x {args.rails} rails")
    print(
        f"{'windows':>8} {'windows.jsonl MiB':>18} {'KiB/window':>11} {'judge peak MiB':>15} {'KiB/window':>11} "
        f"{'peak RSS MiB':>13} {'write s':>8} {'read+judge s':>13}  named"
    )
    for text in args.windows.split(","):
        count = int(text)
        proc = subprocess.run(
            [sys.executable, "-c", PROBE, str(count), str(args.nodes), str(args.rails)],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            print(f"{count:>8} failed: {proc.stderr.strip()[-2000:]}")
            return 1
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        mib = 1 << 20
        print(
            f"{count:>8} {r['size'] / mib:>18.2f} {r['size'] / 1024 / count:>11.1f} {r['peak'] / mib:>15.2f} "
            f"{r['peak'] / 1024 / count:>11.1f} {r['rss'] / mib:>13.0f} {r['wrote_s']:>8.2f} {r['judged_s']:>13.2f}  "
            f"{'; '.join(r['named'])}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
