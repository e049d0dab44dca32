"""How fast is ``railbench report`` on a big run, and how big are its specs?

Builds a run directory with about 100,000 result rows (a 160-node cluster: the world sweep, rail groups,
single-node collectives and every node pair on each of 8 rails), runs ``railbench report`` on it, and prints
the wall time and the size of every spec: each charts/*.vl.json, each ```vegalite fence in report.md and
each data-inlined spec in report.html. Targets (issue 5): under 10 s, every spec under 2 MB.

    python ci/bench_report.py [--keep DIR] [--tiny]
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.support import rank_env  # noqa: E402
from tests.support.report_data import ClusterModel, results_rows, write_run_dir  # noqa: E402

TIME_LIMIT_S = 10.0
SPEC_LIMIT_BYTES = 2 * 1024 * 1024


def big_model(nodes: int = 160) -> ClusterModel:
    hosts = tuple(f"gpu-node-{i:03d}" for i in range(1, nodes + 1))
    return ClusterModel(hosts=hosts, bad=(hosts[nodes // 3], 5), cluster="bench-160")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep", type=Path, help="build the run directory here and keep it")
    parser.add_argument(
        "--tiny",
        action="store_true",
        help="a 4-node run: the same code at the smallest size, in seconds (CI runs every ci/ script so)",
    )
    args = parser.parse_args()
    nodes = 4 if args.tiny else 160
    if args.keep:
        status = measure(args.keep, nodes)
    else:
        with tempfile.TemporaryDirectory(prefix="railbench-bench-report-") as scratch:
            status = measure(Path(scratch), nodes)
    return 0 if args.tiny else status  # a tiny run's time says nothing of the target


def measure(root: Path, nodes: int = 160) -> int:
    """Build the big run directory under ``root``, report on it, print time and sizes; 0 when within target."""
    model = big_model(nodes)
    t0 = time.perf_counter()
    rows = results_rows(model)
    run_dir = write_run_dir(root / "run", model, rows=rows, rails=False)
    print(f"run dir: {run_dir} ({len(rows):,} result rows, built in {time.perf_counter() - t0:.1f} s)")

    t0 = time.perf_counter()
    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "report", str(run_dir)],
        env=rank_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        print(proc.stdout + proc.stderr)
        return 1
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    verdict = "ok" if elapsed < TIME_LIMIT_S else "SLOW"
    print(f"railbench report: {elapsed:.2f} s wall (target < {TIME_LIMIT_S:.0f} s) -> {verdict}")
    # CPU seconds do not depend on what else the machine runs: compare these between commits
    print(f"                  {cpu:.2f} s CPU (user+sys, all threads), load average {os.getloadavg()[0]:.1f}")

    worst = print_spec_sizes(run_dir, 44)
    return 0 if elapsed < TIME_LIMIT_S and worst < SPEC_LIMIT_BYTES else 1


def print_spec_sizes(run_dir: Path, width: int) -> int:
    """Print the size of every spec a report wrote (each charts/*.vl.json, each ```vegalite fence in report.md,
    each data-inlined spec in report.html), then the page and the largest against the target; returns the largest
    (``ci/bench_report_scale.py`` prints the same)."""
    sizes = [(f"charts/{spec.name}", spec.stat().st_size) for spec in sorted((run_dir / "charts").glob("*.vl.json"))]
    markdown = (run_dir / "report.md").read_text(encoding="utf-8")
    for i, fence in enumerate(re.findall(r"```vegalite\n(.*?)\n```", markdown, re.S)):
        sizes.append((f"report.md fence {i}", len(fence.encode())))
    page = (run_dir / "report.html").read_text(encoding="utf-8")
    for name, body in re.findall(r'<script type="application/json" data-chart="([^"]+)">(.*?)</script>', page, re.S):
        sizes.append((f"report.html inline spec {name}", len(body.encode())))
    for label, size in sizes:
        print(f"  {label:<{width}} {size / 1024:9.1f} KiB")
    worst = max((size for _, size in sizes), default=0)
    print(f"report.html: {len(page.encode()) / 1024 / 1024:.2f} MiB (includes the ~0.9 MiB Vega bundle)")
    verdict = "ok" if worst < SPEC_LIMIT_BYTES else "TOO BIG"
    print(f"largest spec: {worst / 1024:.1f} KiB (target < {SPEC_LIMIT_BYTES // 1024} KiB) -> {verdict}")
    return worst


if __name__ == "__main__":
    raise SystemExit(main())
