"""Where the test suite's CPU goes: every test charged the CPU of everything it started, printed by file and by test.

    python ci/suite_cpu.py [--top 25] [--tiny] [-- PYTEST ARGS]

The CI target is the whole of ``.ci/run`` in under 15 minutes on 2 cores, and on that machine the suite is CPU-bound
(the share of the machine busy over the run is printed): its wall time falls only with the CPU its tests spend,
wherever it is spent. Each pytest process runs in a cgroup of its own (``tests/support/cpu_profile.py``), so a test
is charged its ranks under mpirun, in the testbed's namespaces, and the daemons its fixtures start. Needs root and
cgroup v1's cpuacct or cgroup v2; elsewhere it says ``skipped:``. Without PYTEST ARGS it runs the README's test
command (the whole suite, 20 minutes here); ``--tiny`` profiles one small test file.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.support.cpu_profile import CGROUP_VAR, OUT_VAR  # noqa: E402

CI_TARGET_S = 15 * 60
TINY = ["-n", "0", "-q", "-p", "no:cacheprovider", "tests/test_cli.py"]


def _cgroup_root() -> Path | None:
    """Where a cgroup that counts CPU can be made: cgroup v1's cpuacct hierarchy, or the v2 root."""
    for root, marker in (("/sys/fs/cgroup/cpuacct", "cpuacct.usage"), ("/sys/fs/cgroup", "cgroup.controllers")):
        if (Path(root) / marker).is_file() and os.access(root, os.W_OK):
            return Path(root)
    return None


def _busy_jiffies() -> tuple[int, int]:
    """(busy, total) CPU jiffies of the whole machine since boot, from /proc/stat's first line."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle and iowait
    return sum(fields) - idle, sum(fields)


def _release(parent: Path, root: Path) -> None:
    """Every process still in the profile's cgroups back to the root, then the cgroups removed."""
    for group in sorted(parent.glob("pytest-*")):
        for pid in (group / "cgroup.procs").read_text().split():
            with contextlib.suppress(OSError):  # it exited in between
                (root / "cgroup.procs").write_text(pid)
        group.rmdir()
    parent.rmdir()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--top", type=int, default=25, help="how many files and tests to print")
    parser.add_argument("--tiny", action="store_true", help=f"profile {TINY[-1]} alone, in seconds")
    parser.add_argument("pytest_args", nargs="*", help="pytest's arguments (after --); the README's command without")
    args = parser.parse_args()
    root = _cgroup_root()
    if os.geteuid() != 0 or root is None:
        print("skipped: needs root and a writable cgroup hierarchy that counts CPU (v1 cpuacct or v2)")
        return 0
    pytest_args = TINY if args.tiny else args.pytest_args
    parent = root / f"railbench-suite-{os.getpid()}"
    parent.mkdir()
    with tempfile.TemporaryDirectory(prefix="railbench-suite-cpu-") as out:
        env = {**os.environ, OUT_VAR: out, CGROUP_VAR: str(parent), "PYTHONPATH": str(REPO)}
        busy0, total0 = _busy_jiffies()
        started = time.monotonic()
        try:
            done = subprocess.run(
                [sys.executable, "-m", "pytest", "-p", "tests.support.cpu_profile", *pytest_args], cwd=REPO, env=env
            )
        finally:
            wall = time.monotonic() - started
            busy1, total1 = _busy_jiffies()
            _release(parent, root)
        rows = [json.loads(line) for f in Path(out).glob("*.jsonl") for line in f.read_text().splitlines()]
    _print(rows, wall, (busy1 - busy0) / max(1, total1 - total0), args.top, done.returncode)
    return 0


def _print(rows: list[dict], wall: float, busy: float, top: int, rc: int) -> None:
    cpu = sum(r["cpu_s"] for r in rows)
    cores = os.cpu_count() or 1
    print(f"pytest exited {rc} after {wall:.0f} s wall: {len(rows)} tests charged {cpu:.0f} CPU s")
    print(f"machine busy {100 * busy:.1f}% of {cores} cores over the run (/proc/stat, this profile's and all else)")
    print(f"ratio of this run's wall time to the CI target ({CI_TARGET_S} s, all of .ci/run): {wall / CI_TARGET_S:.2f}")
    files: dict[str, list[float]] = collections.defaultdict(lambda: [0.0, 0.0, 0.0])
    for r in rows:
        per = files[r["test"].split("::")[0]]
        per[0] += r["cpu_s"]
        per[1] += r["wall_s"]
        per[2] += 1
    print(f"\nfiles by CPU (top {top}): CPU s, share of all, wall s summed over their tests, tests")
    for name, (c, w, n) in sorted(files.items(), key=lambda kv: -kv[1][0])[:top]:
        print(f"  {c:8.1f} {100 * c / max(cpu, 1e-9):5.1f}% {w:8.1f} {int(n):5d}  {name}")
    print(f"\ntests by CPU (top {top}): CPU s, wall s")
    for r in sorted(rows, key=lambda r: -r["cpu_s"])[:top]:
        print(f"  {r['cpu_s']:8.1f} {r['wall_s']:8.1f}  {r['test']}")


if __name__ == "__main__":
    raise SystemExit(main())
