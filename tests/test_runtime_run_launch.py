"""`railbench run` end to end with real ranks: mpirun, torchrun, the per-node form and RunPod's variables.

gloo on CPU over loopback; nothing is mocked. Each test reads back the run directory a user would read.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from bench.runtime.launch import child_environment, run_ranks
from bench.runtime.launcher_watch import Watch
from tests.support import free_port, mpirun_command, railbench, rank_env

pytestmark = pytest.mark.mpi

SWEEP = ["-b", "1K", "-e", "16M", "-f", "4", "-n", "5", "-w", "2", "-c"]
FULL_SIZES = [1 << 10, 1 << 12, 1 << 14, 1 << 16, 1 << 18, 1 << 20, 1 << 22, 1 << 24]
# The launcher forms need the whole path, not the whole sweep: a short one keeps CI quick on 2 cores.
SHORT = ["-b", "1K", "-e", "64K", "-f", "4", "-n", "3", "-w", "1", "-c"]
SHORT_SIZES = [1 << 10, 1 << 12, 1 << 14, 1 << 16]
FACTORS = {"all_reduce": lambda n: 2 * (n - 1) / n, "all_gather": lambda n: (n - 1) / n, "sendrecv": lambda n: 1.0}


def read_rows(out: Path) -> list[dict[str, str]]:
    with (out / "results.csv").open() as fh:
        return list(csv.DictReader(fh))


def assert_complete_sweep(out: Path, nranks: int, stdout: str, sizes: list[int] = SHORT_SIZES) -> dict:
    rows = read_rows(out)
    assert [(r["collective"], int(r["bytes"])) for r in rows] == [(c, b) for c in FACTORS for b in sizes]
    for row in rows:
        assert row["wrong"] == "0", row
        assert int(row["nranks"]) == nranks
        factor = FACTORS[row["collective"]](nranks)
        assert float(row["busbw_GBps"]) == pytest.approx(float(row["algbw_GBps"]) * factor, rel=1e-4)
        assert float(row["time_us_min"]) <= float(row["time_us"]) <= float(row["time_us_max"])
        assert float(row["busbw_Gbps"]) == pytest.approx(8 * float(row["busbw_GBps"]), rel=1e-4)
    # the nccl-tests table on stdout: one line per row, with the same numbers
    assert stdout.count("#       size         count      type   redop    root     time   algbw   busbw  #wrong") == 3
    assert "# Out of bounds values : 0 OK" in stdout
    meta = json.loads((out / "run.json").read_text())
    # no target applies on CPU (local profile): nothing was judged, so the verdict is measured, exit 0
    assert meta["status"] == "complete" and meta["verdict"] == "measured" and meta["exit_status"] == 0
    assert meta["nranks"] == nranks and meta["backend"] == "gloo"
    assert meta["versions"]["torch"].startswith("2.")
    assert len(meta["ranks"]) == nranks
    return meta


def test_np4_full_sweep_with_check(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = railbench(["run", "--np", "4", *SWEEP, "--out", str(out), "--no-history"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    meta = assert_complete_sweep(out, 4, proc.stdout, FULL_SIZES)
    assert meta["launcher"] == "openmpi"
    assert meta["sweep"]["check"] is True
    # Counters as proof: loopback carried at least what sendrecv alone sent (4 ranks x S x timed iterations).
    sent = sum(4 * int(r["bytes"]) * int(r["iters"]) for r in read_rows(out) if r["collective"] == "sendrecv")
    (per_device,) = meta["counters"].values()
    assert per_device["lo"]["tx_bytes"] >= sent > 0
    assert meta["findings"] == []
    # the report is drawn at the end of the run
    assert (out / "report.html").is_file() and (out / "charts" / "busbw-vs-size.vl.json").is_file()


def test_default_run_directory_under_reports(first_run_np2: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    proc, cwd = first_run_np2  # run --np 2 --cluster lab with no --out, launched once (tests/conftest.py)
    assert proc.returncode == 0, proc.stderr
    (run_dir,) = (cwd / "reports" / "runs").iterdir()
    assert run_dir.name.endswith("-lab")
    assert (run_dir / "results.csv").is_file()
    listing = railbench(["history", "list"], cwd=cwd)  # the run went into reports/history.sqlite
    assert listing.returncode == 0 and "lab" in listing.stdout, listing


def test_under_torchrun(tmp_path: Path) -> None:
    out = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc-per-node",
        "2",
        "--master-port",
        str(free_port()),
        "-m",
        "bench",
        "run",
        *SHORT,
        "--out",
        str(out),
        "--no-history",
    ]
    proc = subprocess.run(cmd, cwd=tmp_path, env=rank_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert assert_complete_sweep(out, 2, proc.stdout)["launcher"] == "torchrun"


def test_per_node_form_with_one_node(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = railbench(
        [
            "run",
            "--nnodes",
            "1",
            "--node-rank",
            "0",
            "--main-address",
            "127.0.0.1",
            "--main-port",
            str(free_port()),
            "--nproc-per-node",
            "2",
            *SHORT,
            "--out",
            str(out),
            "--no-history",
        ],
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert assert_complete_sweep(out, 2, proc.stdout)["launcher"] == "torchrun"


def test_runpod_variables_alone(tmp_path: Path) -> None:
    out = tmp_path / "run"
    pod = {
        "PRIMARY_ADDR": "127.0.0.1",
        "PRIMARY_PORT": str(free_port()),
        "NODE_RANK": "0",
        "NUM_NODES": "1",
        "NUM_TRAINERS": "2",
        "WORLD_SIZE": "2",
        "NODE_ADDR": "127.0.0.1",
    }
    proc = railbench(["run", *SHORT, "--out", str(out), "--no-history"], cwd=tmp_path, env=pod)
    assert proc.returncode == 0, proc.stderr
    assert_complete_sweep(out, 2, proc.stdout)


def test_under_mpirun_directly(tmp_path: Path) -> None:
    out = tmp_path / "run"
    cmd = [
        *mpirun_command(2, []),
        sys.executable,
        "-m",
        "bench",
        "run",
        *SHORT,
        "--out",
        str(out),
        "--no-history",
    ]
    proc = subprocess.run(cmd, cwd=tmp_path, env=rank_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert_complete_sweep(out, 2, proc.stdout)


def _next_pid_is(pid: int) -> None:
    """The kernel gives the next new process ``pid`` (root; another process forking first takes it)."""
    Path("/proc/sys/kernel/ns_last_pid").write_text(str(pid - 1))


@pytest.mark.skipif(os.geteuid() != 0, reason="choosing the next pid needs root")
def test_a_killed_launcher_s_session_directory_does_not_stop_the_next_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A kill -9 of mpirun leaves $TMPDIR/ompi.<pid>; the next mpirun the kernel gives that pid exits 213 ("The
    PMIx server's listener thread failed to start") before any rank runs. railbench gives each launch a TMPDIR
    of its own, so a stale session directory is never in its way, and removes it afterwards."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    env = rank_env({"TMPDIR": str(temp)})
    # mpirun in this test's session: a session of its own would keep its pid in use (a session or process
    # group id is not handed out again while a member, even a zombie, holds it), and the hazard would not show.
    killed = subprocess.Popen(mpirun_command(1, ["sleep", "60"]), env=env)
    stale = temp / f"ompi.{killed.pid}"
    children = Path(f"/proc/{killed.pid}/task/{killed.pid}/children")
    deadline = time.monotonic() + 30
    while not (stale.is_dir() and children.read_text().split()) and time.monotonic() < deadline:
        time.sleep(0.1)
    ranks = [int(pid) for pid in children.read_text().split()]
    killed.kill()  # mpirun alone, as kill -9 does: nothing cleans up its session directory
    killed.wait()
    for pid in ranks:  # then its rank, which would otherwise outlive the test
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    assert stale.is_dir(), "mpirun made no session directory"

    said = tmp_path / "rank_tmp"
    _next_pid_is(killed.pid)
    ended = run_ranks(
        mpirun_command(1, ["sh", "-c", f'echo "$TMPDIR" > {said}']),
        child_environment(),
        Watch(timeout_s=60.0, command="run"),
    )
    assert ended.rc == 0, ended
    rank_tmp = Path(said.read_text().strip())
    assert rank_tmp.parent == temp and rank_tmp.name.startswith("railbench-launch-")
    assert not list(temp.glob("railbench-launch-*")), "the launch's own TMPDIR was not removed"
    # The hazard itself, in the same set-up: a launch without a TMPDIR of its own, given the same pid.
    assert stale.is_dir()
    _next_pid_is(killed.pid)
    bare = subprocess.run(mpirun_command(1, ["true"]), env=env, capture_output=True, text=True, timeout=60)
    if bare.returncode == 0:
        pytest.skip("another process took the stale pid first: the hazard did not show this time")
    assert "PMIx server's listener thread failed to start" in bare.stdout + bare.stderr, bare
