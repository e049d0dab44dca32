"""The frame's lifecycle faults (issue 24, item 10): a run directory that refuses writes, and a signal while
the run finishes, are recorded in run.json and said in one line, never a traceback or a ``complete``/0 with
files missing. Real ranks under mpirun; the full disk is the kernel's own refusal (``RLIMIT_FSIZE``, which
Python turns into ``OSError: File too large`` as a full disk gives ``No space left on device``)."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support import REPO, rank_env

LIMIT = 16 << 10
"""Bytes a file may grow to: run.json (about 5 KB) fits, results.csv of the sweep below (about 12 KB per 100
rows) outgrows it midway."""


def _limited() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT, LIMIT))


@pytest.mark.mpi
def test_a_full_run_directory_is_a_recorded_failure_in_one_line(tmp_path: Path) -> None:
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "bench", "run", "--np", "2", "-b", "8", "-e", "1M", "-n", "1", "-w", "0"]
    done = subprocess.run(
        [*cmd, "--out", str(out), "--no-history"],
        cwd=REPO,
        env=rank_env(),
        capture_output=True,
        text=True,
        timeout=600,
        preexec_fn=_limited,
    )
    assert done.returncode == 3, done.stdout[-2000:] + done.stderr[-2000:]
    assert "Traceback" not in done.stderr and "Traceback" not in done.stdout, done.stderr[-3000:]
    said = [line for line in done.stderr.splitlines() if line.startswith("railbench: ")]
    assert said and "refused a write: File too large" in said[0], done.stderr[-2000:]
    meta = json.loads((out / "run.json").read_text())
    assert (meta["status"], meta["verdict"], meta["exit_status"]) == ("failed", "error", 3), meta
    assert meta["failure"]["kind"] == "write" and "results.csv" in meta["failure"]["message"]
    rows = (out / "results.csv").read_text().splitlines()
    assert len(rows) > 10  # every row that fitted is still there


@pytest.mark.mpi
def test_a_signal_while_finishing_is_recorded(tmp_path: Path) -> None:
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "bench", "run", "--np", "2", "-b", "8", "-e", "64K", "-n", "1", "-w", "0"]
    proc = subprocess.Popen(
        [*cmd, "--out", str(out), "--history", str(tmp_path / "h.sqlite")],
        cwd=REPO,
        env=rank_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 300
        while True:  # the finish step (the history, then the report) starts once the verdict is written
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the run never reached its finish step"
            try:
                if json.loads((out / "run.json").read_text()).get("finish") == "running":
                    break
            except (OSError, ValueError):
                pass
            time.sleep(0.02)
        os.killpg(proc.pid, signal.SIGTERM)  # what scancel or timeout sends
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 143, stdout[-2000:] + stderr[-2000:]
    meta = json.loads((out / "run.json").read_text())
    assert (meta["status"], meta["exit_status"], meta["finish"]) == ("interrupted", 143, "interrupted"), meta
    assert meta["verdict"] == "measured"  # the verdict was decided before the signal; it stands
