"""How fast ``railbench hca`` answers (target: under 0.5 s), printed, not asserted.

Builds a 1CC-style sysfs tree (mlx5_0 Ethernet + 8 NDR rails + a RoCE bond) in a temporary directory and
times whole ``python -m bench hca`` processes, interpreter start included, for a few NCCL_IB_HCA values.

    python ci/bench_hca.py [--repeat 10] [--tiny]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.support.trees import fabric_trees  # noqa: E402  (the fixture builder lives with the tests)

VALUES = ["^=mlx5_0", "^mlx5_1", "^=mlx5_8,^=mlx5_14", "=^mlx5_0", "x" * 10_000]
TARGET_S = 0.5


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument(
        "--tiny",
        action="store_true",
        help="one run per value: the same code at the smallest size, in seconds (CI runs every ci/ script so)",
    )
    args = parser.parse_args()
    if args.tiny:
        args.repeat = 1
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with tempfile.TemporaryDirectory() as tmp:
        root = fabric_trees.build(Path(tmp) / "node", fabric_trees.bond_node())
        print(f"railbench hca, {args.repeat} runs per value, whole process (target < {TARGET_S} s)")
        worst = 0.0
        for value in VALUES:
            times = []
            for _ in range(args.repeat):
                start = time.perf_counter()
                subprocess.run(
                    [sys.executable, "-m", "bench", "hca", f"--nccl-ib-hca={value}", "--sysfs-root", str(root)],
                    env=env,
                    capture_output=True,
                    check=False,
                )
                times.append(time.perf_counter() - start)
            worst = max(worst, max(times))
            shown = value if len(value) < 24 else f"{value[:12]}... ({len(value)} chars)"
            print(
                f"  {shown:<28} median {statistics.median(times) * 1000:6.1f} ms  max {max(times) * 1000:6.1f} ms"
                f"  ratio to target {statistics.median(times) / TARGET_S:.2f}"
            )
        print(f"worst {worst * 1000:.1f} ms: {'within' if worst < TARGET_S else 'OVER'} the {TARGET_S} s target")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
