"""Bad input is one line and exit 2; a hang or a lost rank is exit 3 that names who; nothing measured is lost."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import (
    mpirun_command,
    railbench_inline,
    rank_env,
    rank_pids,
    start_long_sweep,
    sweep_rows,
    wait_for_rows,
)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--np", "2", "-b", "64M", "-e", "1M"], "larger than --max-bytes"),
        (["--np", "2", "-f", "0"], "--step-factor 0 must be at least 2"),
        (["--np", "2", "-f", "-2"], "--step-factor -2 must be at least 2"),
        (["--np", "2", "-i", "0"], "--step-bytes"),
        (["--np", "2", "-d", "float17"], "unknown dtype 'float17'"),
        (["--np", "2", "-b", "1Q"], "is not a size"),
        (["--np", "2", "--collectives", "all_reduce,allgather"], "unknown collective 'allgather'"),
        (["--np", "2", "-n", "0"], "--iters 0 must be at least 1"),
        (["--np", "1000"], "CPU ranks on"),
        (["--np", "2", "-e", "16G"], "GiB"),
        ([], "no launcher detected and no --np"),
        (["--np", "2", "--backend", "gloo", "--graph"], "--graph"),
        (["--nnodes", "2", "--node-rank", "2", "--main-address", "x", "--nproc-per-node", "1"], "--node-rank 2"),
        (["--nnodes", "2"], "needs all of"),
        (["--np", "2", "--timeout", "0"], "--timeout"),
        (["--bogus-flag"], "unrecognized arguments"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    proc = railbench_inline(["run", *args], cwd=tmp_path)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert message in lines[0]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "reports").exists()


@pytest.mark.mpi
def test_a_size_that_does_not_fit_the_ranks_memory_is_exit_2_before_anything_is_measured(tmp_path: Path) -> None:
    # Started by mpirun directly, so only the ranks' own check (each rank asks its device) stands in the way.
    out = tmp_path / "run"
    cmd = [
        *mpirun_command(2, []),
        sys.executable,
        "-m",
        "bench",
        "run",
        "-b",
        "1K",
        "-e",
        "1T",
        "-f",
        "1024",
        "--out",
        str(out),
        "--no-history",
    ]
    proc = subprocess.run(cmd, cwd=tmp_path, env=rank_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    said = [line for line in proc.stderr.splitlines() if "does not fit" in line]
    assert len(said) == 1 and "-e 1T does not fit in host memory" in said[0], proc.stderr
    assert "the largest size that fits is 1G" in said[0] or "the largest size that fits is 1M" in said[0]
    assert "Traceback" not in proc.stderr
    assert not (out / "results.csv").exists()


def test_unknown_command_is_exit_2() -> None:
    proc = railbench_inline(["frobnicate"])
    assert proc.returncode == 2 and "unknown command" in proc.stderr


@pytest.mark.mpi
def test_hung_rank_is_named_and_rows_are_kept(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = start_long_sweep(out, timeout_s=6)
    stopped: int | None = None
    try:
        wait_for_rows(out, proc, 2)
        stopped = rank_pids(out)[1]
        os.kill(stopped, signal.SIGSTOP)  # a real hang: rank 1 stops answering mid-sweep
        kept = len(sweep_rows(out))
        _, stderr = proc.communicate(timeout=120)
    finally:
        if stopped is not None:
            for sig in (signal.SIGCONT, signal.SIGKILL):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(stopped, sig)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 3, stderr
    assert f"rank(s) 1 on {socket.gethostname()} stopped responding" in stderr, stderr
    assert "Traceback" not in stderr
    meta = json.loads((out / "run.json").read_text())
    assert meta["status"] == "failed" and meta["exit_status"] == 3
    assert meta["failure"]["missing_ranks"] == [1]
    assert len(sweep_rows(out)) >= kept >= 2


@pytest.mark.mpi
def test_killed_rank_is_exit_3_and_rows_are_kept(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = start_long_sweep(out, timeout_s=60)
    try:
        wait_for_rows(out, proc, 2)
        os.kill(rank_pids(out)[2], signal.SIGKILL)
        kept = len(sweep_rows(out))
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 3, stderr
    assert "Traceback" not in stderr
    # The killed rank is named with its number and host, not only gloo's "Connection reset by peer".
    assert re.search(rf"rank(\(s\))? 2 on {socket.gethostname()}", stderr), stderr
    meta = json.loads((out / "run.json").read_text())
    assert meta["status"] == "failed" and meta["exit_status"] == 3
    assert re.search(rf"rank(\(s\))? 2 on {socket.gethostname()}", meta["failure"]["message"])
    assert len(sweep_rows(out)) >= kept >= 2


@pytest.mark.mpi
def test_losing_rank_0_under_the_users_own_mpirun_is_recorded_by_a_survivor(tmp_path: Path) -> None:
    """No railbench parent to notice: rank 0 dies mid-sweep and a surviving rank marks run.json failed."""
    out = tmp_path / "run"
    argv = ["-b", "64K", "-e", "256M", "-f", "2", "-n", "10", "-w", "1", "--collectives", "all_reduce"]
    cmd = mpirun_command(
        3, [sys.executable, "-m", "bench", "run", *argv, "--timeout", "60", "--out", str(out), "--no-history"]
    )
    proc = subprocess.Popen(
        cmd, env=rank_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        wait_for_rows(out, proc, 2)
        os.kill(rank_pids(out)[0], signal.SIGKILL)
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    meta = json.loads((out / "run.json").read_text())
    assert meta["status"] == "failed" and meta["exit_status"] == 3, (meta, stderr[-2000:])
    assert meta["failure"]["kind"] == "lost-rank" and meta["failure"]["missing_ranks"] == [0], meta["failure"]
    assert "rank 0" in meta["failure"]["message"]
