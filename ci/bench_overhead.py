"""Where a short run's time goes besides its measurement, and what issue 33's cuts saved (printed, not asserted).

    python ci/bench_overhead.py [--repeat 3] [--tiny]

1. A rank's exit: a process that imported torch, leaving through the interpreter's teardown (before) and
   through ``bench.runtime.rank_exit.end_rank`` (after), from its last line to its end.
2. ``railbench report`` of a small run: with an empty cache (before: the Vega bundle built and the page's
   templates compiled, as every report did) and with the cache that the first report filled (after).
3. ``railbench run --np 4 -b 1K -e 16M -f 4 -n 5 -w 2 -c`` (the README's first run): wall and CPU seconds,
   split at the lines it prints: the launch to the first row, the sweep, the finish step (history and
   report), and the run directory's last line to the exit.

Wall seconds depend on what else the machine runs: the CPU seconds beside them (this process's children,
user + sys) do not, and are the numbers to compare between commits. The load average is printed with them.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.support import rank_env  # noqa: E402
from tests.support.history_fixtures import text_log  # noqa: E402

_EXIT = """
import os, sys, time, torch
sys.stdout.write(f"{time.time():.6f}\\n"); sys.stdout.flush()
if sys.argv[1] == "after":
    from bench.runtime.rank_exit import end_rank
    end_rank(0)
"""


def _cpu() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def rank_exit(repeat: int) -> None:
    print("1. a rank's exit after importing torch (last line to process end)")
    for mode in ("before", "after"):
        seconds = []
        for _ in range(repeat):
            done = subprocess.run(
                [sys.executable, "-c", _EXIT, mode], env=rank_env(), capture_output=True, text=True, check=True
            )
            seconds.append(time.time() - float(done.stdout.split()[0]))
        label = "interpreter teardown" if mode == "before" else "end_rank (os._exit)"
        print(f"   {mode:<6} {label:<22} median {statistics.median(seconds):6.2f} s  max {max(seconds):6.2f} s")


def report(repeat: int, root: Path) -> None:
    print("2. railbench report of one imported 16-rank all_reduce log")
    log = root / "all_reduce.log"
    log.write_text(text_log("all_reduce", ("node01", "node02"), 8, [1 << k for k in range(20, 31, 2)]))
    runs = root / "runs"
    env = rank_env()
    subprocess.run(
        [sys.executable, "-m", "bench", "import", "nccl-tests", str(log), "--out-root", str(runs), "--no-history"],
        env=env,
        capture_output=True,
        check=True,
    )
    (run_dir,) = runs.iterdir()
    for mode in ("before", "after"):
        walls, cpus = [], []
        for _ in range(repeat):
            # before: an empty cache each time; after: the one the first "before" report filled, as the first
            # report a user draws fills theirs
            cache = root / f"cache-{len(walls) if mode == 'before' else 0}"
            cpu, start = _cpu(), time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "bench", "report", str(run_dir)],
                env={**env, "XDG_CACHE_HOME": str(cache)},
                capture_output=True,
                check=True,
            )
            walls.append(time.perf_counter() - start)
            cpus.append(_cpu() - cpu)
        label = "empty cache (bundle built)" if mode == "before" else "cache filled"
        print(
            f"   {mode:<6} {label:<27} wall median {statistics.median(walls):6.2f} s  "
            f"CPU median {statistics.median(cpus):6.2f} s"
        )


def run(root: Path, tiny: bool) -> None:
    args = ["--np", "2", "-b", "1K", "-e", "64K", "-n", "1", "-w", "0"] if tiny else ["--np", "4", "-b", "1K"]
    args += [] if tiny else ["-e", "16M", "-f", "4", "-n", "5", "-w", "2", "-c"]
    print(f"3. railbench run {' '.join(args)}")
    cmd = [sys.executable, "-m", "bench", "run", *args, "--out", str(root / "run"), "--no-history"]
    marks: dict[str, float] = {}
    cpu, start = _cpu(), time.perf_counter()
    with subprocess.Popen(cmd, env=rank_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            now = time.perf_counter() - start
            words = line.split()
            if "first row" not in marks and words and words[0].isdigit():
                marks["first row"] = now
            if line.startswith("# Out of bounds values"):
                marks["sweep done"] = now
            if line.startswith("# run directory:"):
                marks["run directory"] = now
    wall, used = time.perf_counter() - start, _cpu() - cpu
    first, swept = marks.get("first row", wall), marks.get("sweep done", wall)
    said = marks.get("run directory", wall)
    print(f"   wall {wall:.1f} s, CPU {used:.1f} s (all ranks), exit status {proc.returncode}")
    print(
        f"   launch to first row {first:.1f} s | sweep {swept - first:.1f} s | finish (history, report) "
        f"{said - swept:.1f} s | last line to exit {wall - said:.1f} s"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--tiny", action="store_true", help="one repeat, a 2-rank 64K run: the code path (CI)")
    args = parser.parse_args()
    repeat = 1 if args.tiny else args.repeat
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory(prefix="railbench-overhead-") as tmp:
        rank_exit(repeat)
        report(repeat, Path(tmp))
        run(Path(tmp), args.tiny)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
