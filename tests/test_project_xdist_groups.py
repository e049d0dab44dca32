"""The testbed tests' xdist groups hold under the pytest and xdist this project installs (tests/conftest.py):
pytest 9.2 dropped the mark's own route (pytest-dev/pytest-xdist#1386), and for as long as nobody looked every
testbed test ran on whichever worker was free. A small suite of its own, run by pytest on two workers with the
project's conftest as a plugin: each group's tests on one worker, the two groups on two, a testbed test that names
the Slurm worker's group on that worker and one that names another on the testbed's, and a group a test names
itself (``xdist_group``) on one worker too."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import rank_env

pytestmark = pytest.mark.slow

SUITE = """
import os
import pytest

@pytest.mark.netns
@pytest.mark.parametrize("i", range(4))
def test_testbed(i):
    pass

@pytest.mark.netns
@pytest.mark.slurm
@pytest.mark.parametrize("i", range(4))
def test_slurm(i):
    pass

@pytest.mark.netns
@pytest.mark.xdist_group("slurm-testbed")
@pytest.mark.parametrize("i", range(4))
def test_beside_slurm(i):
    pass

@pytest.mark.netns
@pytest.mark.xdist_group("elsewhere")
@pytest.mark.parametrize("i", range(4))
def test_testbed_named_elsewhere(i):
    pass

@pytest.mark.xdist_group("together")
@pytest.mark.parametrize("i", range(4))
def test_together(i):
    pass

@pytest.mark.parametrize("i", range(4))
def test_unit(i):
    pass
"""

CONFIG = """
[tool.pytest.ini_options]
addopts = "-p tests.conftest --numprocesses=2 --dist=loadgroup -v -p no:cacheprovider"
markers = ["netns: x", "slurm: x", "gpu: x"]
"""


def test_each_testbed_group_runs_on_one_worker(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(CONFIG)
    (tmp_path / "test_suite.py").write_text(SUITE)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "test_suite.py"],
        cwd=tmp_path,
        env=rank_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    ran = re.findall(r"\[(gw\d)\] \[ *\d+%\] PASSED test_suite\.py::(test_\w+)\[", done.stdout)
    assert len(ran) == 24, done.stdout[-3000:]
    names = ("test_testbed", "test_slurm", "test_together", "test_beside_slurm", "test_testbed_named_elsewhere")
    workers = {name: {w for w, n in ran if n == name} for name in names}
    assert len(workers["test_testbed"]) == 1 and len(workers["test_slurm"]) == 1, ran
    assert len(workers["test_together"]) == 1, ran  # a group a test names itself holds as well
    assert workers["test_testbed"] != workers["test_slurm"], ran
    # A testbed module may join the Slurm worker's group; no other group of its own (at most two clusters at once).
    assert workers["test_beside_slurm"] == workers["test_slurm"], ran
    assert workers["test_testbed_named_elsewhere"] == workers["test_testbed"], ran
