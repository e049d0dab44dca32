"""No wait is open-ended and no rank outlives railbench (``bench.runtime.launcher_watch``, ``bench.runtime.orphan``).

Real ranks under mpirun, real signals: a rank stopped with SIGSTOP where the ranks' own watchdog cannot see it
(start-up, after the run was recorded, between accept's phases) ends the run as a named hang; ``kill -9`` of
mpirun, the one railbench starts or the user's own, leaves no rank running and no row appended afterwards.

The four stops the parent ends wait out its deadline (``--timeout`` plus ``STOPPED_GRACE_S``, 25 s) with nothing
to do: they run at once, from one module fixture, each test judging its own run, and one xdist group keeps
them in one worker (``tests/conftest.py``), so the suite waits the deadline once, not four times.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from bench.runtime.deadlines import STOPPED_GRACE_S
from tests.support import alive, mpirun_command, rank_env, rank_pids

pytestmark = [pytest.mark.mpi, pytest.mark.slow]
TOGETHER = pytest.mark.xdist_group("parent-deadlines")
"""The stopped runs' tests: one worker, whose module fixture starts every selected one at once."""

TIMEOUT_S = 10
"""The runs' --timeout: the parent ends a stopped rank after TIMEOUT_S + STOPPED_GRACE_S, well before the
ranks' own gloo timeout (2 x TIMEOUT_S + 30 s) would fail a collective on them."""
HOST = socket.gethostname()
SMALL_SWEEP = ["-b", "1K", "-e", "64K", "-f", "4", "-n", "2", "-w", "1", "--collectives", "all_reduce"]
LONGER_SWEEP = ["-b", "1K", "-e", "16M", "-f", "4", "-n", "20", "-w", "1", "--collectives", "all_reduce"]


def _start(cmd: list[str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        cmd, cwd=cwd, env=rank_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )


def _railbench(args: list[str], cwd: Path) -> subprocess.Popen[str]:
    return _start([sys.executable, "-m", "bench", *args], cwd)


def _until(what: str, ready: Callable[[], bool], proc: subprocess.Popen[str], limit_s: float = 180) -> None:
    deadline = time.monotonic() + limit_s
    while not ready():
        assert proc.poll() is None, (what, proc.communicate())
        assert time.monotonic() < deadline, f"never saw: {what}"
        time.sleep(0.05)


def _status(out: Path) -> tuple[str | None, str | None]:
    try:
        doc = json.loads((out / "run.json").read_text())
    except (OSError, ValueError):
        return None, None
    return doc.get("status"), doc.get("command")


def _rows(out: Path) -> int:
    # Read while the run writes it: a file caught before its header is written has no rows yet (DictReader would
    # read its fieldnames as None there and fail on the row that follows).
    try:
        with (out / "results.csv").open() as fh:
            return max(0, sum(1 for row in csv.reader(fh) if row) - 1)
    except FileNotFoundError:
        return 0


def _finish(proc: subprocess.Popen[str], limit_s: float, stopped: list[int]) -> tuple[str, float]:
    """Wait for railbench; returns its stderr and how long it took. Leaves nothing behind on failure."""
    started = time.monotonic()
    try:
        _, stderr = proc.communicate(timeout=limit_s)
    finally:
        for pid in stopped:
            for sig in (signal.SIGCONT, signal.SIGKILL):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    return stderr, time.monotonic() - started


def _one_named_hang(stderr: str, phase: str) -> None:
    said = [line for line in stderr.splitlines() if line.startswith("railbench: infrastructure fault:")]
    assert len(said) == 1, stderr
    assert f"{phase}: rank(s) 1 on {HOST} stopped responding" in said[0], stderr
    assert "Traceback" not in stderr, stderr


@dataclass(frozen=True)
class Stopped:
    """One run the test stopped and railbench ended: what its test judges."""

    out: Path
    returncode: int
    stderr: str
    took: float
    """From the stop to railbench's exit."""
    pids: dict[int, int]
    """rank -> pid, as seen when the test stopped one."""
    launcher: int | None = None
    """prterun's pid, where the test stopped the launcher."""


def _rank_stopped_in_start_up(tmp: Path) -> Stopped:
    out = tmp / "run"
    proc = _railbench(["run", "--np", "3", *SMALL_SWEEP, "--timeout", str(TIMEOUT_S), "--out", str(out)], tmp)
    _until("rank 1 started", lambda: 1 in rank_pids(out), proc)
    pid = rank_pids(out)[1]
    os.kill(pid, signal.SIGSTOP)  # before the rendezvous: the other ranks wait in MPI, which has no timeout
    assert not (out / "run.json").exists()
    pids = rank_pids(out)
    stderr, took = _finish(proc, 180, [pid])
    return Stopped(out, proc.returncode, stderr, took, pids)


def _rank_stopped_after_the_run_was_recorded(tmp: Path) -> Stopped:
    out = tmp / "run"
    proc = _railbench(["run", "--np", "3", *SMALL_SWEEP, "--timeout", str(TIMEOUT_S), "--out", str(out)], tmp)
    _until("run.json complete", lambda: _status(out)[0] == "complete", proc)
    pids = rank_pids(out)
    # Rank 0 draws the report before the ranks agree on the exit status: rank 1 is still there, waiting.
    os.kill(pids[1], signal.SIGSTOP)
    stderr, took = _finish(proc, 180, [pids[1]])
    return Stopped(out, proc.returncode, stderr, took, pids)


def _rank_stopped_between_accepts_phases(tmp: Path) -> Stopped:
    out = tmp / "accept"
    args = ["accept", "--profile", "local", "--np", "3", *LONGER_SWEEP, "--timeout", str(TIMEOUT_S), "--out", str(out)]
    proc = _railbench([*args, "--no-history"], tmp)
    # The node checks are gathered and written; the world sweep's start comes next (its first all_reduce
    # agrees on the sizes outside any measured step, so a stop there is for the parent to end; a stop that
    # lands in the sweep's first sizes is the ranks' watchdog's, named the same way). The sweep lasts seconds,
    # so that a test thread slowed by a busy host still stops rank 1 before the run concludes: with the small
    # sweep the whole accept once concluded (run.json complete) before the stop landed.
    _until("checks.json", lambda: (out / "checks.json").is_file(), proc)
    pids = rank_pids(out)
    os.kill(pids[1], signal.SIGSTOP)
    stderr, took = _finish(proc, 180, [pids[1]])
    return Stopped(out, proc.returncode, stderr, took, pids)


def _launcher_stopped(tmp: Path) -> Stopped:
    # Issue 33, item 16: SIGSTOP of prterun once the ranks run. They finish their run, but a stopped launcher
    # never reaps them nor exits: the parent ends it after the stopped-rank deadline and says it was the launcher.
    out = tmp / "run"
    args = ["run", "--np", "3", *SMALL_SWEEP, "--timeout", str(TIMEOUT_S), "--out", str(out), "--no-history"]
    proc = _railbench(args, tmp)
    _until("run.json", lambda: _status(out)[0] is not None, proc)
    launcher = _launcher_of(proc.pid)
    pids = rank_pids(out)
    os.kill(launcher, signal.SIGSTOP)
    stderr, took = _finish(proc, 180, [launcher])
    return Stopped(out, proc.returncode, stderr, took, pids, launcher)


STOPS: dict[str, Callable[[Path], Stopped]] = {
    "test_a_rank_stopped_in_start_up_ends_the_run": _rank_stopped_in_start_up,
    "test_a_rank_stopped_after_the_run_was_recorded_ends_it": _rank_stopped_after_the_run_was_recorded,
    "test_a_rank_stopped_between_accepts_phases_ends_it": _rank_stopped_between_accepts_phases,
    "test_a_stopped_launcher_is_ended_and_named": _launcher_stopped,
}
"""Each stopped run by the test that judges it."""


@pytest.fixture(scope="module")
def stopped_runs(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Future[Stopped]]]:
    """Every selected test's run, all started at once: each waits out the parent's deadline on its own."""
    mine = [item for item in request.session.items if getattr(item, "module", None) is request.module]
    chosen = [name for item in mine if (name := getattr(item, "originalname", "")) in STOPS]
    with ThreadPoolExecutor(max(1, len(chosen))) as pool:
        yield {name: pool.submit(STOPS[name], tmp_path_factory.mktemp("stopped")) for name in dict.fromkeys(chosen)}


@TOGETHER
def test_a_rank_stopped_in_start_up_ends_the_run(stopped_runs: dict[str, Future[Stopped]]) -> None:
    done = stopped_runs["test_a_rank_stopped_in_start_up_ends_the_run"].result()
    assert done.returncode == 3, done.stderr
    _one_named_hang(done.stderr, "start-up")
    assert done.took < TIMEOUT_S + STOPPED_GRACE_S + 30, done.took
    assert alive(list(done.pids.values())) == []
    assert not (done.out / "run.json").exists()


@TOGETHER
def test_a_rank_stopped_after_the_run_was_recorded_ends_it(stopped_runs: dict[str, Future[Stopped]]) -> None:
    done = stopped_runs["test_a_rank_stopped_after_the_run_was_recorded_ends_it"].result()
    assert done.returncode == 3, done.stderr
    _one_named_hang(done.stderr, "after the run was recorded")
    assert alive(list(done.pids.values())) == []
    meta = json.loads((done.out / "run.json").read_text())
    # The measurements were whole and judged: the verdict stays, the exit status says the ranks hung.
    assert (meta["status"], meta["verdict"], meta["exit_status"]) == ("complete", "measured", 3), meta
    assert meta["failure"]["kind"] == "hang" and meta["failure"]["missing_ranks"] == [1], meta
    assert _rows(done.out) == 4


@TOGETHER
def test_a_rank_stopped_between_accepts_phases_ends_it(stopped_runs: dict[str, Future[Stopped]]) -> None:
    done = stopped_runs["test_a_rank_stopped_between_accepts_phases_ends_it"].result()
    assert done.returncode == 3, done.stderr
    said = [line for line in done.stderr.splitlines() if line.startswith("railbench: infrastructure fault:")]
    assert len(said) == 1 and f"rank(s) 1 on {HOST} stopped responding" in said[0], done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert alive(list(done.pids.values())) == []
    meta = json.loads((done.out / "run.json").read_text())
    assert (meta["status"], meta["verdict"], meta["exit_status"]) == ("failed", "error", 3), meta
    assert meta["failure"]["kind"] == "hang" and meta["failure"]["missing_ranks"] == [1], meta


def _long_sweep(out: Path) -> list[str]:
    return ["run", "-b", "64K", "-e", "256M", "-n", "10", "-w", "1", "--collectives", "all_reduce", "--out", str(out)]


def _launcher_of(parent: int) -> int:
    """The pid of mpirun's process (prterun) started by ``parent``."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(stat[1]) == parent:
                    return int(entry.name)
    raise AssertionError(f"process {parent} has no child")


def _rows_stop_growing(out: Path, pids: list[int]) -> None:
    """No rank is left, and the rows stay as they are once none is."""
    deadline = time.monotonic() + 30
    while alive(pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert alive(pids) == [], "ranks outlived their launcher"
    kept = _rows(out)
    time.sleep(2.0)
    assert _rows(out) == kept >= 2


def test_kill_9_of_railbench_s_mpirun_leaves_no_rank(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = _railbench([*_long_sweep(out), "--np", "3", "--no-history"], tmp_path)
    _until("two rows", lambda: _rows(out) >= 2, proc)
    pids = list(rank_pids(out).values())
    os.kill(_launcher_of(proc.pid), signal.SIGKILL)
    stderr, took = _finish(proc, 60, [])
    assert proc.returncode == 3, stderr
    assert "the launcher was killed by signal 9" in stderr and "Traceback" not in stderr, stderr
    assert took < 20, took
    _rows_stop_growing(out, pids)
    meta = json.loads((out / "run.json").read_text())
    assert (meta["status"], meta["exit_status"], meta["failure"]["kind"]) == ("failed", 3, "launcher"), meta


def test_kill_9_of_the_users_mpirun_leaves_no_rank(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = _start(mpirun_command(3, [sys.executable, "-m", "bench", *_long_sweep(out), "--no-history"]), tmp_path)
    _until("two rows", lambda: _rows(out) >= 2, proc)
    pids = list(rank_pids(out).values())
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    _rows_stop_growing(out, pids)
    meta = json.loads((out / "run.json").read_text())
    # Each rank saw its launcher go and stopped itself as SIGTERM stops it: rank 0 recorded that.
    assert (meta["status"], meta["exit_status"]) == ("interrupted", 143), meta


@TOGETHER
def test_a_stopped_launcher_is_ended_and_named(stopped_runs: dict[str, Future[Stopped]]) -> None:
    done = stopped_runs["test_a_stopped_launcher_is_ended_and_named"].result()
    assert done.returncode == 3, done.stderr
    said = [line for line in done.stderr.splitlines() if line.startswith("railbench: infrastructure fault:")]
    assert (
        len(said) == 1
        and f"(pid {done.launcher}) on {HOST} was stopped for {TIMEOUT_S + STOPPED_GRACE_S:.0f} s" in said[0]
    )
    assert "Traceback" not in done.stderr, done.stderr
    assert done.took < TIMEOUT_S + STOPPED_GRACE_S + 30, done.took
    assert done.launcher is not None and alive([done.launcher, *done.pids.values()]) == []
    meta = json.loads((done.out / "run.json").read_text())
    assert meta["exit_status"] == 3 and meta["failure"]["kind"] == "launcher", meta
    assert meta["failure"]["message"] in said[0], (meta, said)
