"""What a results.csv row costs as the file grows, printed (not asserted).

``ResultsWriter`` (``bench.rundir.results_csv``) appends each measurement's rows and makes them durable before the next
one: the cost of a row must stay flat however many came before (a 64-node acceptance writes about 32,000 pair
rows while the other ranks wait on rank 0). This writes 32,768 pair rows one append at a time, as a world sweep
writes its rows, into a run directory on this machine's disk (under $TMPDIR, or ``--dir``), and prints the
median time per row of the first and of the last 1,024 rows and their ratio (flat: about 1; a rewrite per row:
hundreds). Each row is one fdatasync, so the absolute figure is the disk's. Run: ``python ci/bench_results.py``.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

# Runnable from a checkout without installing: ``python ci/bench_results.py``.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.rundir.results_csv import ResultsWriter, Row, read_results_rows


def _row(index: int) -> Row:
    """A pair row as the rails test writes it (``bench.rails.documents.pair_rows``)."""
    a, b, rail = index // 512 % 64, index // 8 % 64, index % 8
    return {
        "collective": "sendrecv",
        "scope": "pair",
        "group": f"node{a:03d}-node{b:03d}/rail{rail}",
        "nranks": 2,
        "nnodes": 2,
        "bytes": 256 << 20,
        "count": 64 << 20,
        "dtype": "float",
        "placement": "pair",
        "iters": 10,
        "time_us": 5400.0 + index % 97,
        "time_us_min": 5390.0,
        "time_us_max": 5400.0 + index % 97,
        "algbw_GBps": 49.7,
        "busbw_GBps": 49.7,
        "busbw_Gbps": 397.6,
        "target_Gbps": 400.0,
        "efficiency": 0.994,
        "wrong": "",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=32768)
    parser.add_argument("--window", type=int, default=1024, help="rows timed at the start and at the end")
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument("--tiny", action="store_true", help="64 rows, 16 timed at each end: the code path (CI)")
    args = parser.parse_args()
    if args.tiny:
        args.rows, args.window = 64, 16
    run_dir = Path(tempfile.mkdtemp(prefix=".bench-results-", dir=args.dir))
    try:
        (run_dir / "run.json").write_text("{}\n" + " " * 8192)  # the frame's writer keeps room for run.json
        writer = ResultsWriter(run_dir / "results.csv", keep_room_for=run_dir / "run.json")
        seconds = []
        for index in range(args.rows):
            began = time.perf_counter()
            writer.append(_row(index))
            seconds.append(time.perf_counter() - began)
        writer.close()
        size = (run_dir / "results.csv").stat().st_size
        assert len(read_results_rows(run_dir)) == args.rows
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
    # Medians: a shared disk stalls an fsync now and then, wherever the row is.
    first = statistics.median(seconds[: args.window])
    last = statistics.median(seconds[-args.window :])
    print(f"# results.csv on {args.dir}: {args.rows} rows, one durable append each ({size / 2**20:.1f} MiB)")
    print(f"  rows 1-{args.window}: {first * 1e3:.2f} ms a row (median)")
    print(f"  rows {args.rows - args.window + 1}-{args.rows}: {last * 1e3:.2f} ms a row (median)")
    print(f"  last / first: {last / first:.2f} (1 or below: no growth; a rewrite per row: hundreds)")
    print(f"  all rows: {sum(seconds):.1f} s")


if __name__ == "__main__":
    main()
