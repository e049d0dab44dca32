"""The scale scripts of ``ci/`` still run (they print figures nobody asserts, so nothing else would notice them
break): ``bench_coord.py`` and ``bench_results.py`` at toy sizes, each printing its ratio line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import REPO, rank_env


@pytest.mark.slow
def test_bench_results_prints_the_cost_of_a_row_first_and_last(tmp_path: Path) -> None:
    cmd = [sys.executable, "ci/bench_results.py", "--rows", "64", "--window", "16", "--dir", str(tmp_path)]
    done = subprocess.run(cmd, cwd=REPO, env=rank_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "last / first:" in done.stdout and "rows 49-64" in done.stdout, done.stdout
    assert list(tmp_path.iterdir()) == [], "the script removes its run directory"


@pytest.mark.slow
def test_bench_coord_prints_both_agreements_at_two_sizes() -> None:
    cmd = [sys.executable, "ci/bench_coord.py", "--ranks", "3", "6", "--rounds", "2", "--workers", "1"]
    done = subprocess.run(cmd, cwd=REPO, env=rank_env(), capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert any(line.split()[:1] == ["3"] for line in lines) and any(line.split()[:1] == ["6"] for line in lines)
    assert "per rank, 6 / 3 ranks" in lines[-1], done.stdout
