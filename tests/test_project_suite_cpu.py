"""``ci/suite_cpu.py`` charges a test the CPU of a process it started that no one in its tree reaps.

A rank under mpirun in the testbed's namespaces, or a daemon a fixture starts, is the test's CPU but never reaches
its ``getrusage(RUSAGE_CHILDREN)``; the profile's cgroups see it wherever it ran. Here a test starts a process that
leaves its session and is re-parented away (a double fork), burns 0.6 s of CPU and says so in a file.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import REPO, rank_env

pytestmark = [pytest.mark.slow]

BURN_S = 0.6
BURNER = f"""
import sys, time
t = time.process_time()
while time.process_time() - t < {BURN_S}:
    pass
open(sys.argv[1], "w").close()
"""
ORPHAN_TEST = """
import subprocess, sys, time
from pathlib import Path


def test_an_orphan_burns(tmp_path):
    done = tmp_path / "done"
    burner = Path(__file__).with_name("burner.py")
    # sh starts the burner in the background and exits: the burner is re-parented, reaped by no one in this test.
    subprocess.run(["sh", "-c", 'setsid "$0" "$1" "$2" &', sys.executable, str(burner), str(done)], check=True)
    until = time.monotonic() + 60
    while not done.exists() and time.monotonic() < until:
        time.sleep(0.05)
    assert done.exists()
"""


def test_a_test_is_charged_the_cpu_of_a_process_it_started_that_left_its_tree(tmp_path: Path) -> None:
    (tmp_path / "test_orphan.py").write_text(ORPHAN_TEST)
    (tmp_path / "burner.py").write_text(BURNER)
    done = subprocess.run(
        [sys.executable, str(REPO / "ci/suite_cpu.py"), "--", "-n", "0", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=REPO,
        env=rank_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    if done.stdout.startswith("skipped:"):  # no root, or no cgroup it may write (the script's own test)
        pytest.skip(done.stdout.strip())
    assert "pytest exited 0" in done.stdout, done.stdout + done.stderr
    charged = re.search(r"^\s+([0-9.]+)\s+[0-9.]+\s+test_orphan\.py::test_an_orphan_burns$", done.stdout, re.M)
    assert charged is not None, done.stdout
    assert float(charged.group(1)) >= BURN_S - 0.05, done.stdout
