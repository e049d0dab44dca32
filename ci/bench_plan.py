"""How close ``accept --plan`` comes to the run it plans, on the network-namespace testbed (root only).

Builds the testbed (``tests/netns_testbed.py``), then, under its mpirun with one rank per rail on every node:
``railbench accept --plan`` (the plan from the launch's shape: nothing runs), then the same ``accept`` for real.
Prints the projected wall time beside the measured one (mpirun's start to its end) and their ratio, and each
phase projected beside what the run recorded in run.json (``plan.phases[].measured_s``).

The testbed's profile gives the plan its rates and fixed costs in ``[plan]`` (``bench.rails.plan``): a veth rail
is whatever the machine's CPUs make it, so those are this machine's, measured as the comment there says.

    python ci/bench_plan.py --nodes 6 --rails 2 [--units 2] [--load 0] [-- more accept flags]
    python ci/bench_plan.py --tiny   # 2 nodes x 1 rail, 64K sizes: the code path in seconds (CI)
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import pytest  # noqa: E402  (the testbed refuses through pytest.skip where it cannot build)

from ci.diagnosis_campaign import cpu_load  # noqa: E402
from tests.netns_testbed import PROFILE, build_cluster  # noqa: E402

DEFAULT_FLAGS = ("-e", "4M", "-n", "5", "-w", "1", "--pair-bytes", "4M", "--rail-bytes", "4M")
"""A short sweep and the testbed profile's cells: minutes, not an hour, on 2 busy cores."""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=6)
    parser.add_argument("--rails", type=int, default=2)
    parser.add_argument("--units", type=int, default=1)
    parser.add_argument("--load", type=int, default=0, help="background busy-loop processes")
    parser.add_argument("--runs", type=int, default=1, help="accept runs to measure")
    parser.add_argument("--tiny", action="store_true", help="2 nodes x 1 rail, 64K sizes, one iteration")
    parser.add_argument("extra", nargs="*", help="more accept flags, after --")
    args = parser.parse_args()
    if args.tiny:
        args.nodes, args.rails, args.units, args.runs = 2, 1, 1, 1
    try:
        status = measure(args)
    except pytest.skip.Exception as exc:  # the testbed's own refusal: not root, no ip/tc
        print(f"skipped: {exc.msg}")
        return 0 if args.tiny else 2
    return 0 if args.tiny else status  # tiny: the code ran; its projection is not the target's


TINY_FLAGS = (
    "-e",
    "64K",
    "-n",
    "1",
    "-w",
    "0",
    "--pair-bytes",
    "64K",
    "--rail-bytes",
    "64K",
    "--collectives",
    "all_reduce",
)


def measure(args: argparse.Namespace) -> int:
    flags = [*(TINY_FLAGS if args.tiny else DEFAULT_FLAGS), *args.extra]
    with tempfile.TemporaryDirectory(prefix="rbplan") as tmp, build_cluster(args.nodes, args.rails, args.units) as bed:
        profile = bed.workdir / "netns.toml"
        profile.write_text(PROFILE)
        base = [sys.executable, "-m", "bench", "accept", "--profile", str(profile), "--no-history", *flags]
        planned = bed.run(bed.rails, [*base, "--plan"], timeout=300)
        print(planned.stdout.strip())
        if planned.returncode != 0:
            print(planned.stderr[-2000:], file=sys.stderr)
            return 1
        projected = float(next(x for x in planned.stdout.splitlines() if "projected wall time" in x).split()[4])
        ratios = []
        with cpu_load(args.load):
            for run in range(args.runs):
                out = Path(tmp) / f"run{run}"
                began = time.monotonic()
                done = bed.run(bed.rails, [*base, "--out", str(out)], timeout=1800)
                wall = time.monotonic() - began
                doc = json.loads((out / "run.json").read_text()) if (out / "run.json").is_file() else {}
                plan = doc.get("plan") or {}
                print(f"\n# run {run + 1}: exit {done.returncode}, verdict {doc.get('verdict')}")
                print(f"  {'phase':<34} {'projected s':>12} {'measured s':>11}")
                for phase in plan.get("phases", []):
                    measured = phase.get("measured_s")
                    shown = "-" if measured is None else f"{measured:.1f}"
                    print(f"  {phase['name']:<34} {phase['seconds']:>12.1f} {shown:>11}")
                ratios.append(projected / wall)
                print(
                    f"# projected {projected:.0f} s, measured {wall:.0f} s (mpirun to its end; run.json's phases "
                    f"{plan.get('measured_s', 0):.0f} s): projection / measured = {projected / wall:.2f}"
                )
    print(
        f"\n# {args.nodes} nodes x {args.rails} rails, load {args.load}: projection / measured "
        + ", ".join(f"{r:.2f}" for r in ratios)
    )
    return 0 if all(0.75 <= r <= 1.25 for r in ratios) else 1


if __name__ == "__main__":
    raise SystemExit(main())
