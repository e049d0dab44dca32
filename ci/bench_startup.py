"""How fast the torch-free commands start (target: under 0.5 s from a warm cache), printed, not asserted.

    python ci/bench_startup.py [--repeat 10] [--tiny]

Times whole ``python -m bench ...`` processes, interpreter start included, and says whether torch was
imported (it must not be for these commands).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
COMMANDS = [
    ["--help"],
    ["run", "--help"],
    ["hca", "--devices", "mlx5_0:1,mlx5_1:1", "--nccl-ib-hca", "^=mlx5_0"],
    ["history", "--help"],
    ["compare", "--help"],
    ["report", "--help"],
]
TARGET_S = 0.5
PROBE = "import sys, runpy; sys.argv = ['railbench', *sys.argv[1:]]\ntry:\n    runpy.run_module('bench', run_name='__main__')\nexcept SystemExit:\n    pass\nprint('TORCH' if 'torch' in sys.modules else 'NO-TORCH', file=sys.stderr)\n"  # noqa: E501


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument(
        "--tiny",
        action="store_true",
        help="one run per command: the same code at the smallest size, in seconds (CI runs every ci/ script so)",
    )
    args = parser.parse_args()
    if args.tiny:
        args.repeat = 1
    env = dict(os.environ, PYTHONPATH=str(REPO))
    print(f"railbench start-up, {args.repeat} runs each, whole process (target < {TARGET_S} s)")
    worst = 0.0
    for argv in COMMANDS:
        times, torch_seen = [], False
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            proc = subprocess.run([sys.executable, "-c", PROBE, *argv], env=env, capture_output=True, text=True)
            times.append(time.perf_counter() - t0)
            torch_seen |= "NO-TORCH" not in proc.stderr
        worst = max(worst, max(times))
        label = " ".join(argv)[:40]
        median = statistics.median(times)
        print(
            f"  {label:<42} median {1e3 * median:6.1f} ms  max {1e3 * max(times):6.1f} ms  "
            f"ratio {median / TARGET_S:.2f}  torch imported: {'YES' if torch_seen else 'no'}"
        )
    print(f"worst {1e3 * worst:.1f} ms: {'within' if worst < TARGET_S else 'OVER'} the {TARGET_S} s target")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
