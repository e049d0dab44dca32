"""The symptoms of issue 9, reproduced: bad usage is exit 2 and one line before any rank starts (also
under the user's own mpirun), an older run in ``--out`` never decides tonight's exit status, SIGTERM and
SIGINT stop every rank and leave run.json ``interrupted``."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from bench.runtime.gpus import gpu_count
from tests.support import (
    mpirun_command,
    railbench,
    railbench_inline,
    rank_env,
    rank_pids,
    start_long_sweep,
    sweep_rows,
    wait_for_rows,
)

BAD_PROFILE = 'name = "bad"\ntransport = "loopback"\npass_fraction = 0.9\ncounter_tolerance_bytes = -1\n'


def _make_file(tmp: Path) -> str:
    (tmp / "a-file").write_text("not a directory\n")
    return str(tmp / "a-file")


def _make_old_run(tmp: Path) -> str:
    old = tmp / "old-run"
    old.mkdir()
    (old / "run.json").write_text(json.dumps({"format_version": 1, "status": "complete", "exit_status": 0}))
    return str(old)


def _make_corrupt_history(tmp: Path) -> str:
    (tmp / "history.sqlite").write_bytes(b"this is not an sqlite database, it is a corrupt file" * 40)
    return str(tmp / "history.sqlite")


def _make_bad_profile(tmp: Path) -> str:
    (tmp / "bad.toml").write_text(BAD_PROFILE)
    return str(tmp / "bad.toml")


CASES: list[tuple[str, list[str], Callable[[Path], str] | None, str]] = [
    ("unknown-profile", ["--profile", "nosuch"], None, "unknown profile 'nosuch'"),
    ("bad-profile-contents", ["--profile", "{}"], _make_bad_profile, "counter_tolerance_bytes"),
    ("out-is-a-file", ["--out", "{}"], _make_file, "is a file, not a directory"),
    ("out-holds-a-run", ["--out", "{}"], _make_old_run, "already holds a run"),
    ("corrupt-history", ["--history", "{}"], _make_corrupt_history, "is not a railbench history"),
    ("negative-confirm", ["--confirm", "-1"], None, "--confirm -1 must be at least 0"),
]


@pytest.mark.parametrize("command", ["run", "rails", "accept"])
@pytest.mark.parametrize(("case", "args", "make", "message"), CASES, ids=[c[0] for c in CASES])
def test_bad_usage_is_exit_2_one_line_before_any_rank(
    tmp_path: Path, command: str, case: str, args: list[str], make: Callable[[Path], str] | None, message: str
) -> None:
    value = make(tmp_path) if make else ""
    argv = [a.replace("{}", value) for a in args]
    if command == "accept" and "--profile" not in argv:
        argv += ["--profile", "local"]
    before = (tmp_path / "old-run" / "run.json").read_bytes() if case == "out-holds-a-run" else b""
    proc = railbench_inline([command, "--np", "2", *argv], cwd=tmp_path)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr and "prterun" not in proc.stderr and proc.stdout == ""
    assert not (tmp_path / "reports").exists()  # no rank started, nothing written
    if case == "out-holds-a-run":
        assert (tmp_path / "old-run" / "run.json").read_bytes() == before  # last night's run is left alone


@pytest.mark.skipif(gpu_count() > 0, reason="this node has a GPU: --graph is valid here")
def test_graph_without_a_gpu_is_exit_2(tmp_path: Path) -> None:
    proc = railbench_inline(["run", "--np", "2", "--graph"], cwd=tmp_path)
    assert proc.returncode == 2 and "--graph" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.mpi
def test_bad_usage_under_the_users_own_mpirun_is_said_once(tmp_path: Path) -> None:
    cmd = mpirun_command(2, [sys.executable, "-m", "bench", "run", "--profile", "nosuch", "--no-history"])
    proc = subprocess.run(cmd, cwd=tmp_path, env=rank_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    said = [line for line in proc.stderr.splitlines() if "railbench: error:" in line]
    assert len(said) == 1 and "unknown profile 'nosuch'" in said[0], proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.mpi
def test_input_only_one_ranks_node_refuses_is_said_by_that_rank(tmp_path: Path) -> None:
    """Rank 1 refuses what rank 0 accepted (here its own profile argument; on a cluster a profile file or a GPU
    only its node lacks): mpirun used to stop the job with "exit code 2" and no reason. Rank 1 now says it,
    with its rank and host, once rank 0 has plainly not said the same."""
    common = ["--no-history", "-e", "1K", "-n", "1", "-w", "1", "--out", str(tmp_path / "run")]
    bench = [sys.executable, "-m", "bench", "run", "--profile"]
    cmd = mpirun_command(1, [*bench, "local", *common], then=[(1, [*bench, "nosuch", *common])])
    proc = subprocess.run(cmd, cwd=tmp_path, env=rank_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    said = [line for line in proc.stderr.splitlines() if "railbench: error:" in line]
    assert len(said) == 1 and said[0].startswith("railbench: error: rank 1 on "), proc.stderr
    assert "unknown profile 'nosuch'" in said[0] and "Traceback" not in proc.stderr


def _strays(out: Path) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if str(out).encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
    return found


@pytest.mark.mpi
@pytest.mark.parametrize(("signum", "status"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)], ids=["TERM", "INT"])
def test_a_signal_to_the_parent_stops_every_rank_and_is_recorded(tmp_path: Path, signum: int, status: int) -> None:
    out = tmp_path / "run"
    proc = start_long_sweep(out, timeout_s=60)
    try:
        wait_for_rows(out, proc, 2)
        ranks = rank_pids(out)
        assert len(ranks) == 3
        kept = len(sweep_rows(out))
        os.kill(proc.pid, signum)  # the parent only, as scancel/timeout/Ctrl-C in a script would
        _, stderr = proc.communicate(timeout=30)
        deadline = time.monotonic() + 10
        while _strays(out) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _strays(out) == [], "ranks outlived the parent by more than 10 s"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == status, stderr
    assert "Traceback" not in stderr
    meta = json.loads((out / "run.json").read_text())
    assert meta["status"] == "interrupted" and meta["exit_status"] == status
    assert len(sweep_rows(out)) >= kept >= 2


@pytest.mark.mpi
def test_a_fail_verdict_under_np_is_exit_1_without_the_open_mpi_box(tmp_path: Path) -> None:
    """A target no loopback reaches: each judged size is measured again twice (``--confirm``'s default) before it
    fails, every output keeps one row per size at the best measurement, and the failure says each one."""
    profile = tmp_path / "fast.toml"
    profile.write_text(
        'name = "fast"\ntransport = "loopback"\nnvlink_target_gbps = 1000000\njudge_min_bytes = "1K"\n'
        '[network]\nsocket_ifnames = "lo"\noob_ifname = "lo"\n'
    )
    out = tmp_path / "run"
    sweep = ["-b", "4K", "-e", "8K", "-n", "2", "-w", "0", "--collectives", "all_reduce"]
    args = ["run", "--np", "2", *sweep, "--profile", str(profile), "--out", str(out), "--no-history"]
    proc = railbench(args, cwd=tmp_path, timeout=300)
    assert proc.returncode == 1, proc.stderr
    assert "# FAIL all_reduce at 4K" in proc.stdout
    assert "prterun" not in proc.stderr and "-----" not in proc.stderr, proc.stderr
    meta = json.loads((out / "run.json").read_text())
    assert meta["exit_status"] == 1 and meta["sweep"]["confirm"] == 2
    assert proc.stdout.count("# all_reduce: under its target, measured 3 times: busbw ") == 2, proc.stdout
    rows = sweep_rows(out)
    assert [int(r["bytes"]) for r in rows] == [4096, 8192]
    (reason,) = [i["reason"] for i in meta["items"] if i["name"] == "all_reduce"]
    said = re.findall(r", the best of 3 measurements: ([^;]*) GB/s", reason)
    # The row holds the best measurement, as the failure says it.
    for row, every in zip(rows, said, strict=True):
        best = max(float(g) for g in every.split(", "))
        assert f"{float(row['busbw_GBps']):.4g}" == f"{best:.4g}", (row, every)
