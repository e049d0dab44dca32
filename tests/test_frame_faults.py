"""The frame's lifecycle faults (issue 24, item 10): a run directory that refuses writes, and a signal while
the run finishes, are recorded in run.json and said in one line, never a traceback or a ``complete``/0 with
files missing. Real ranks under mpirun; the full disk is a real one: a 48 KiB tmpfs mounted in a mount
namespace of the test's own (``unshare --mount``), so nothing outside sees it and it goes with the command."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import (
    REPO,
    history_locked,
    kill_leftovers,
    rank_env,
    rank_pids,
    spawn_railbench,
    wait_for_finish_step,
)


@pytest.mark.mpi
def test_a_full_run_directory_is_a_recorded_failure_in_one_line(tmp_path: Path) -> None:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare to mount a small tmpfs in a mount namespace of its own")
    full, kept = tmp_path / "full", tmp_path / "kept"
    full.mkdir()
    # 768 rows of small sizes (about 100 KB of results.csv): quick, and far more than the disk holds
    run = [sys.executable, "-m", "bench", "run", "--np", "2", "-b", "8", "-e", "64K", "-i", "512", "-n", "1", "-w", "0"]
    script = (
        f"mount -t tmpfs -o size=48k railbench-full {shlex.quote(str(full))} || exit 97; "
        f"{shlex.join([*run, '--out', str(full / 'run'), '--no-history'])}; rc=$?; "
        f"cp -r {shlex.quote(str(full / 'run'))} {shlex.quote(str(kept))}; exit $rc"
    )
    done = subprocess.run(
        ["unshare", "--mount", "sh", "-c", script],
        cwd=REPO,
        env=rank_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode == 97:
        pytest.skip(f"this machine refuses a tmpfs mount: {done.stderr.strip()}")
    assert done.returncode == 3, done.stdout[-2000:] + done.stderr[-2000:]
    assert "Traceback" not in done.stderr and "Traceback" not in done.stdout, done.stderr[-3000:]
    said = [line for line in done.stderr.splitlines() if line.startswith("railbench: ")]
    # One line: rank 1, whose next collective failed under rank 0's exit, reads the status rank 0 said and ends
    # with it in silence (it held back 5 s and then named rank 0 gone, while rank 0 waited in MPI's finalize).
    assert len(said) == 1, done.stderr[-3000:]
    assert "refused a write of results.csv: No space left on device" in said[0], done.stderr[-2000:]
    meta = json.loads((kept / "run.json").read_text())
    assert (meta["status"], meta["verdict"], meta["exit_status"]) == ("failed", "error", 3), meta
    assert meta["failure"]["kind"] == "write" and meta["failure"]["message"] in said[0]
    rows = (kept / "results.csv").read_text().splitlines()
    assert len(rows) > 10  # every row that fitted is still there


@pytest.mark.mpi
def test_a_signal_while_finishing_is_recorded(tmp_path: Path) -> None:
    out, history = tmp_path / "run", tmp_path / "h.sqlite"
    cmd = ["run", "--np", "2", "-b", "8", "-e", "64K", "-n", "1", "-w", "0"]
    with history_locked(history):  # released once signalled: rank 0 then meets the signal in the step
        proc = spawn_railbench([*cmd, "--out", str(out), "--history", str(history)])
        try:
            wait_for_finish_step(out, proc)  # the finish step starts once the verdict is written
            os.killpg(proc.pid, signal.SIGTERM)  # what scancel or timeout sends
        except BaseException:
            kill_leftovers(proc)
            raise
    try:
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        kill_leftovers(proc)
    assert proc.returncode == 143, stdout[-2000:] + stderr[-2000:]
    meta = json.loads((out / "run.json").read_text())
    assert (meta["status"], meta["exit_status"], meta["finish"]) == ("interrupted", 143, "interrupted"), meta
    assert meta["verdict"] == "measured"  # the verdict was decided before the signal; it stands


@pytest.mark.mpi
def test_a_fault_the_parent_records_while_finishing_says_what_is_missing(tmp_path: Path) -> None:
    # Issue 33, item 17: rank 0 stopped in its finish step (the history, then the report). The parent ends the
    # run as a hang; run.json must not say ``finish: running`` for ever, and the line names what is missing.
    out, history = tmp_path / "run", tmp_path / "h.sqlite"
    cmd = ["run", "--np", "2", "-b", "8", "-e", "64K", "-n", "1", "-w", "0", "--timeout", "10"]
    with history_locked(history):  # the finish step waits at its history row until rank 0 is stopped
        proc = spawn_railbench([*cmd, "--out", str(out), "--history", str(history)])
        try:
            wait_for_finish_step(out, proc)
            os.kill(rank_pids(out)[0], signal.SIGSTOP)
        except BaseException:
            kill_leftovers(proc, out)
            raise
    try:
        stdout, stderr = proc.communicate(timeout=180)
    finally:
        kill_leftovers(proc, out)  # SIGKILL ends a stopped rank too
    assert proc.returncode == 3, stdout[-2000:] + stderr[-2000:]
    said = [line for line in stderr.splitlines() if line.startswith("railbench: ")]
    assert len(said) == 1 and "Traceback" not in stderr, stderr
    assert "rank(s) 0" in said[0] and "history row and report may be missing" in said[0], said
    assert f"railbench report {out}" in said[0], said
    meta = json.loads((out / "run.json").read_text())
    assert (meta["status"], meta["verdict"], meta["exit_status"], meta["finish"]) == (
        "complete",
        "measured",
        3,
        "failed",
    )
    assert meta["failure"]["kind"] == "hang" and meta["failure"]["message"] in said[0], meta
