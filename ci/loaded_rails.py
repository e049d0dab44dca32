"""False alarms of a clean `rails` run on a loaded host: the namespace testbed at the defaults, busy loops beside it.

Issue 43's fault campaign ran a clean 6-node `rails` at the defaults with two busy loops beside it (host load 5-20
on 2 cores), and three runs of three named parts: links and pairs printed at 100% and 126% of their peers'
level, and pairs slow in two of their three samples no deeper than the run's own transients. This script runs
the same case as many times as asked and prints, per run, the host's load, the exit status, the parts named and
the transients, then how many runs named nothing. Its target: every run names nothing (a part at or above its
peers' level is never a fault). An accuracy target under load, so a script and not a timed test: the machine's
own load moves it (tests/test_rails_evidence_holds.py holds the judge's side without ranks).

    python ci/loaded_rails.py                      # 5 runs, 6 nodes x 2 rails, 2 busy loops
    python ci/loaded_rails.py --runs 10 --busy 4
    python ci/loaded_rails.py --tiny               # 1 run, 2 nodes, no busy loop: the code path (CI)

Needs root (the namespace testbed); prints ``skipped: ...`` and exits 0 without it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def _busy_loops(count: int) -> list[subprocess.Popen[bytes]]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="clean runs to make (default 5)")
    parser.add_argument("--nodes", type=int, default=6, help="testbed nodes (default 6)")
    parser.add_argument("--busy", type=int, default=2, help="busy loops beside the ranks (default 2)")
    parser.add_argument("--tiny", action="store_true", help="1 run, 2 nodes, no busy loop")
    args = parser.parse_args()
    if args.tiny:
        args.runs, args.nodes, args.busy = 1, 2, 0
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        print("skipped: the namespace testbed needs root")
        return 0
    from tests.support.testbeds.netns_testbed import PROFILE, build_cluster

    clean = 0
    with (
        tempfile.TemporaryDirectory(prefix="loaded-rails-") as scratch,
        build_cluster(nodes=args.nodes, rails=2) as bed,
    ):
        (bed.workdir / "netns.toml").write_text(PROFILE)
        for k in range(1, args.runs + 1):
            out = Path(scratch) / f"run{k}"
            argv = [sys.executable, "-m", "bench", "rails", "--profile", str(bed.workdir / "netns.toml")]
            loops = _busy_loops(args.busy)
            try:
                done = bed.run(2, [*argv, "--out", str(out), "--no-history", "--timeout", "120"], timeout=300)
                load = os.getloadavg()[0]
            finally:
                for loop in loops:
                    loop.kill()
                    loop.wait()
            doc = json.loads((out / "rails.json").read_text()) if (out / "rails.json").is_file() else {}
            named = [d.get("line", "") for d in doc.get("defects", [])]
            transients = len(doc.get("transients", []))
            clean += done.returncode == 0 and not named
            print(f"run {k}: load {load:.1f}, exit {done.returncode}, {len(named)} named, {transients} transients")
            for line in named:
                print(f"  named: {line}")
    print(
        f"# clean runs that named nothing: {clean}/{args.runs} ({args.nodes} nodes x 2 rails, {args.busy} busy loops)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
