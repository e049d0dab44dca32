"""Time and peak memory of `railbench import nccl-tests` on a large generated log (a year of nightly runs).

The importer streams its input: peak memory should grow far slower than the log. This prints the log's size,
the wall time and the importer's peak RSS for two log sizes, and the ratio of the two peaks, so a change
that starts holding the whole log (or a row object per line) shows as a ratio near the size ratio.

    python ci/bench_import.py            # 1,000 and 4,000 tables of an 80-rank all_reduce sweep (above the chart limit)
    python ci/bench_import.py --tables 2000 8000
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.support.history_fixtures import text_log  # noqa: E402  (the repository's own fixture writer)

HOSTS = tuple(f"gpu-{i:02d}" for i in range(10))
SIZES = [1 << k for k in range(10, 31)]


def write_log(path: Path, tables: int) -> int:
    one = text_log("all_reduce", HOSTS, 8, SIZES)
    with path.open("w", encoding="utf-8") as fh:
        for _ in range(tables):
            fh.write(one)
    return path.stat().st_size


def import_once(log: Path, work: Path) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one import in a fresh process."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [
        sys.executable,
        "-c",
        "import resource, sys; from bench.cli import main; rc = main(sys.argv[1:]); "
        "print('peak_kib', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr); sys.exit(rc)",
        "import",
        "nccl-tests",
        str(log),
        "--cluster",
        "bench",
        "--out-root",
        str(work / "runs"),
        "--history",
        str(work / "h.sqlite"),
    ]
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"import failed ({done.returncode}): {done.stderr[-2000:]}")
    peak = next(int(line.split()[1]) for line in done.stderr.splitlines() if line.startswith("peak_kib"))
    return wall, peak / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tables", type=int, nargs=2, default=[1000, 4000], metavar=("SMALL", "LARGE"))
    parser.add_argument(
        "--tiny",
        action="store_true",
        help="3 and 6 tables: the same code at the smallest size, in seconds (CI runs every ci/ script so)",
    )
    args = parser.parse_args()
    if args.tiny:
        args.tables = [3, 6]
    peaks = []
    with tempfile.TemporaryDirectory(prefix="railbench-import-") as tmp:
        for tables in args.tables:
            work = Path(tmp) / str(tables)
            work.mkdir()
            size = write_log(work / "nightly.log", tables)
            wall, peak = import_once(work / "nightly.log", work)
            peaks.append((size, peak))
            print(f"{tables:>6} tables  log {size / 2**20:8.1f} MiB  import {wall:6.1f} s  peak RSS {peak:7.1f} MiB")
    (small_size, small_peak), (large_size, large_peak) = peaks
    print(f"log grew x{large_size / small_size:.1f}; peak RSS grew x{large_peak / small_peak:.2f}")


if __name__ == "__main__":
    main()
