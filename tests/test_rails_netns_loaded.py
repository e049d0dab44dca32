"""Issue 43: a clean `rails` run at the defaults on the 6-node namespace testbed, beside busy loops, names no part.

The fault campaign ran it with two busy loops beside it (host load 5-20 on 2 cores) and three runs of three
named parts: links and pairs printed at 100% and 126% of their peers' level (a cell that ran past its budget at
its peers' rate counted as slow), and pairs slow in two of their three samples, as deep as the run's own
transients beside them (a matrix of 30 cells is too small to rank a pair among its samples, and the screen's
yardstick, the spread above the level, does not show a loaded host's low tail). Here two more busy loops run
beside the ranks, on top of whatever else the machine is doing; the run must pass and name nothing, and what it
measured is printed when it does not. ``tests/test_rails_evidence_holds.py`` judges the same shapes without ranks.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.netns_testbed import PROFILE, NetnsCluster, build_cluster

pytestmark = [pytest.mark.netns, pytest.mark.mpi, pytest.mark.slow]

BUSY_LOOPS = 2


@pytest.fixture(scope="module")
def bed() -> Iterator[NetnsCluster]:
    with build_cluster(nodes=6, rails=2) as built:
        (built.workdir / "netns.toml").write_text(PROFILE)
        yield built


@pytest.fixture
def busy() -> Iterator[None]:
    """Busy loops beside the ranks, as the campaign ran them; each stopped by its own id."""
    loops = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(BUSY_LOOPS)]
    try:
        yield
    finally:
        for loop in loops:
            loop.kill()
            loop.wait()


def test_a_clean_run_beside_busy_loops_names_nothing(bed: NetnsCluster, busy: None, tmp_path: Path) -> None:
    out = tmp_path / "run"
    argv = [sys.executable, "-m", "bench", "rails", "--profile", str(bed.workdir / "netns.toml")]
    done = bed.run(2, [*argv, "--out", str(out), "--no-history", "--timeout", "120"], timeout=300)
    said = f"load {os.getloadavg()[0]:.1f}\n{done.stdout[-4000:]}\n{done.stderr[-2000:]}"
    assert (out / "rails.json").is_file(), said
    doc = json.loads((out / "rails.json").read_text())
    assert [d["line"] for d in doc["defects"]] == [], said
    assert done.returncode == 0, said
