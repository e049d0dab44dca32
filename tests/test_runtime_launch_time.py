"""The certificate's time is the user's whole wait (issue 43): the railbench launcher records when it started
(before mpirun and the ranks' own start) and the headline runs from there. A real ``railbench run --np 2`` under
mpirun, timed by the test from the moment it starts the command."""

from __future__ import annotations

import calendar
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.report.summary import headline
from bench.rundir.runjson import RunDoc
from bench.runtime.clock import LAUNCHED_SLACK_S, LAUNCHED_VAR, launched_at
from tests.support import REPO, rank_env


def _epoch(utc: str) -> int:
    return calendar.timegm(time.strptime(utc, "%Y-%m-%dT%H:%M:%SZ"))


@pytest.mark.mpi
def test_run_json_records_the_launchers_start_and_the_headline_says_the_whole_wait(tmp_path: Path) -> None:
    out = tmp_path / "run"
    argv = ["run", "--np", "2", "-b", "8", "-e", "64K", "-n", "1", "-w", "0", "--out", str(out)]
    began = time.time()
    done = subprocess.run(
        [sys.executable, "-m", "bench", *argv, "--history", str(tmp_path / "h.sqlite")],
        cwd=REPO,
        env=rank_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    waited_here = time.time() - began
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    doc = json.loads((out / "run.json").read_text())
    launched, started = _epoch(doc["launched_utc"]), _epoch(doc["started_utc"])
    # the launcher started when the test started it (whole seconds), before the ranks set their world up
    assert int(began) - 1 <= launched <= began + 2 and launched <= started, (began, doc)
    run = RunDoc.from_json(doc)
    said = headline(run)
    found = re.search(r", (?:(\d+) min )?(\d+) s from railbench run's start to the report \(", said)
    assert found is not None, said
    waited = int(found.group(1) or 0) * 60 + int(found.group(2))
    ranks = _epoch(doc["finished_utc"]) - started
    assert ranks <= waited <= waited_here + 2, (said, waited_here)


def test_a_launch_time_from_elsewhere_is_not_this_runs() -> None:
    now = 1_800_000_000.0
    assert launched_at({LAUNCHED_VAR: "1799999990.250"}, now) == 1799999990.25
    for text in ("nan", "inf", "-1", "soon", "", str(now + 60), str(now - LAUNCHED_SLACK_S - 1)):
        assert launched_at({LAUNCHED_VAR: text}, now) is None, text
    assert launched_at({}, now) is None  # the user's own mpirun or srun: no railbench launcher
