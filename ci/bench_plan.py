"""Whether ``accept --plan``'s range holds the run it plans, on the network-namespace testbed (root only).

Builds the testbed (``tests/support/testbeds/netns_testbed.py``) and, under its mpirun with one rank per rail on every
node:

1. ``railbench accept --plan``: the range from the model alone (a cluster nothing has run on);
2. ``accept`` for real, added to a history of its own;
3. ``accept --plan`` again: the range learned from that run (``bench.rails.plan.learn``);
4. ``accept`` again, and so on for ``--runs``.

Prints each range beside the measured wall time (mpirun's start to its end) and where the measurement falls in
it, and each phase's range beside what run.json recorded (``plan.phases[].measured_s``). Exit 0 when every
run fell inside the range planned for it. The testbed's profile gives the model only what a veth fabric cannot
say itself (``[plan]`` in ``tests/support/testbeds/netns_testbed.py``: its rail rate, idle to loaded); nothing is fitted
here.

    python ci/bench_plan.py --nodes 6 --rails 2 [--units 2] [--load 0] [--runs 2] [-- more accept flags]

With ``--units`` above 1 the testbed's cabling is passed (``--topology``), so the pair matrix is the unit schedule
where it saves rounds (32 nodes in 8 units: 24 rounds, not 31; the machine's ARP table must then hold the testbed,
``tests/support/testbeds/netns_testbed.py``).
    python ci/bench_plan.py --tiny   # 2 nodes x 1 rail, 64K sizes, plan, run, plan again: the code path (CI)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from ci.diagnosis_campaign import cpu_load  # noqa: E402
from tests.support.testbeds.netns_testbed import PROFILE, build_cluster  # noqa: E402

DEFAULT_FLAGS = ("-e", "4M", "-n", "5", "-w", "1", "--pair-bytes", "4M", "--rail-bytes", "4M")
"""A short sweep and the testbed profile's cells: minutes, not an hour, on 2 busy cores."""
TINY_FLAGS = ("-e", "64K", "-n", "1", "-w", "0", "--pair-bytes", "64K", "--rail-bytes", "64K")
"""``--tiny``: every step of the script (plan, run, plan learned from it) at the smallest size. The second run
would go through the code of the first again, after the one step it exists for (the learned plan) has run."""


def projected(stdout: str) -> tuple[float, float]:
    """(low, high) seconds from the plan's ``# projected wall time: LOW-HIGH s = ...`` line."""
    line = next(x for x in stdout.splitlines() if x.startswith("# projected wall time:"))
    low, _, high = line.split(":", 1)[1].split()[0].partition("-")
    return float(low), float(high or low)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=6)
    parser.add_argument("--rails", type=int, default=2)
    parser.add_argument("--units", type=int, default=1)
    parser.add_argument("--load", type=int, default=0, help="background busy-loop processes")
    parser.add_argument("--runs", type=int, default=2, help="accept runs, each planned from the ones before")
    parser.add_argument("--tiny", action="store_true", help="2 nodes x 1 rail, 64K sizes: the code path (CI)")
    parser.add_argument("extra", nargs="*", help="more accept flags, after --")
    args = parser.parse_args()
    if args.tiny:
        args.nodes, args.rails, args.units, args.runs = 2, 1, 1, 2
    try:
        status = measure(args)
    except pytest.skip.Exception as exc:  # the testbed's own refusal: not root, no ip/tc
        print(f"skipped: {exc.msg}")
        return 0 if args.tiny else 2
    return 0 if args.tiny else status  # tiny: the code ran; whether its range held is not the question


def measure(args: argparse.Namespace) -> int:
    """Plan, run, plan again from the history, run again; 0 when every run fell inside its planned range."""
    flags = [*(TINY_FLAGS if args.tiny else DEFAULT_FLAGS), *args.extra]
    held = []
    with tempfile.TemporaryDirectory(prefix="rbplan") as tmp, build_cluster(args.nodes, args.rails, args.units) as bed:
        profile = bed.workdir / "netns.toml"
        profile.write_text(PROFILE)
        history = Path(tmp) / "history.sqlite"
        base = [sys.executable, "-m", "bench", "accept", "--profile", str(profile), "--history", str(history), *flags]
        if args.units > 1:  # the cabling: the judge places the switches, and the unit schedule applies where it saves
            cabling = bed.workdir / "cabling.toml"
            cabling.write_text(bed.topology_toml())
            base += ["--topology", str(cabling)]
        with cpu_load(args.load):
            for run in range(args.runs):
                planned = bed.run(bed.rails, [*base, "--plan"], timeout=300)
                if planned.returncode != 0:
                    print(planned.stdout[-2000:], planned.stderr[-2000:], file=sys.stderr)
                    return 1
                low, high = projected(planned.stdout)
                lines = planned.stdout.splitlines()
                source = next(lines[i + 1] for i, x in enumerate(lines) if x.startswith("# projected wall time:"))
                if args.tiny and run == args.runs - 1:
                    print(f"\n# run {run + 1}: planned {low:.0f}-{high:.0f} s, not run (--tiny); plan: {source[2:]}")
                    break
                out = Path(tmp) / f"run{run}"
                began = time.monotonic()
                done = bed.run(bed.rails, [*base, "--out", str(out)], timeout=1800)
                wall = time.monotonic() - began
                doc = json.loads((out / "run.json").read_text()) if (out / "run.json").is_file() else {}
                plan = doc.get("plan") or {}
                print(f"\n# run {run + 1}: exit {done.returncode}, verdict {doc.get('verdict')}; plan: {source[2:]}")
                for reason in (doc.get("reasons") or [])[:8] if doc.get("verdict") != "pass" else []:
                    print(f"#   why: {reason}")  # a healthy testbed's run is to pass: what it named, if not
                print(f"  {'phase':<34} {'low s':>8} {'high s':>8} {'measured s':>11}")
                for phase in plan.get("phases", []):
                    measured = phase.get("measured_s")
                    shown = "-" if measured is None else f"{measured:.1f}"
                    print(f"  {phase['name']:<34} {phase['low_s']:>8.1f} {phase['high_s']:>8.1f} {shown:>11}")
                inside = low <= wall <= high
                held.append(inside)
                where = "inside" if inside else ("below" if wall < low else "above")
                at = (wall - low) / max(high - low, 1e-9)
                print(
                    f"# planned {low:.0f}-{high:.0f} s, measured {wall:.0f} s (mpirun to its end; run.json's phases "
                    f"{plan.get('measured_s', 0):.0f} s): {where} the range, at {at:.2f} of its width"
                )
    loads = os.getloadavg()
    print(
        f"\n# {args.nodes} nodes x {args.rails} rails, --load {args.load} (load average {loads[0]:.1f}): "
        f"{sum(held)} of {len(held)} runs inside the range planned for them"
    )
    return 0 if all(held) else 1


if __name__ == "__main__":
    raise SystemExit(main())
