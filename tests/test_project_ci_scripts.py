"""Every script in ci/ runs, at its smallest size, so an API change cannot break one unseen (issue 33 item 24:
``ci/bench_honest.py`` crashed on ``init_distributed``'s new signature, ``ci/bench_compare.py`` on the history's
new run record, and nobody knew until they were run by hand).

The convention, for every ``ci/*.py`` (found by glob, so a new script is held to it the day it lands): it takes
``--tiny``, which runs the same code at the smallest size that still goes through all of it, prints as usual
and exits 0 when it ran, whatever its numbers (a tiny run's times and rates say nothing of the targets). Where
its environment cannot run it (the namespace testbed without root), it prints one line starting ``skipped:``
and exits 0, and the test says skipped with that line.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import REPO, rank_env

SCRIPTS = sorted((REPO / "ci").glob("*.py"))
TESTBED = {"bench_plan.py", "diagnosis_campaign.py", "loaded_rails.py", "sample_report.py"}
"""Scripts that build the namespace testbed in their tiny run: in the testbed's xdist group (tests/conftest.py), so
no more clusters run at once than the groups allow."""
TIMEOUT_S = 300


def test_the_ci_folder_has_scripts() -> None:
    assert len(SCRIPTS) >= 10


@pytest.mark.slow
@pytest.mark.parametrize(
    "script",
    [pytest.param(p, marks=[pytest.mark.netns] if p.name in TESTBED else []) for p in SCRIPTS],
    ids=[p.name for p in SCRIPTS],
)
def test_every_ci_script_runs_tiny(script: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(script), "--tiny"],
        cwd=REPO,
        env=rank_env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    said = (done.stdout + done.stderr).strip()
    if "unrecognized arguments: --tiny" in done.stderr:
        pytest.fail(f"ci/{script.name} does not take --tiny: every ci/ script must (tests/test_project_ci_scripts.py)")
    assert done.returncode == 0, f"ci/{script.name} --tiny exited {done.returncode}:\n{said[-3000:]}"
    first = done.stdout.strip().splitlines()[:1]
    if first and first[0].startswith("skipped:"):
        pytest.skip(f"ci/{script.name}: {first[0]}")
    assert done.stdout.strip(), f"ci/{script.name} --tiny printed nothing"
