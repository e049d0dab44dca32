"""What ``railbench check`` prints: every FAIL and WARN line with its action (the profile's ``[actions]`` where
the check words none of its own), and, on several nodes, what was not judged with why (issue 43: the
multi-node answer said "SKIP above" and printed no SKIP line; FAIL lines carried no action)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from bench.check.items import check_items
from bench.check.node import CheckAnswer, render
from bench.frame.decide import decide
from bench.preflight import checks
from bench.preflight.checks import CheckResult
from bench.preflight.cluster import NodeReport
from bench.profile.cluster import load_profile
from tests.support.trees import fabric_trees
from tests.support.trees.counters import zero_errors

PORT_DOWN = CheckResult("rail", "fail", "mlx5_3:1: port DOWN (phys_state Disabled), expected ACTIVE/LinkUp", "mlx5_3:1")
NO_SMI = CheckResult("gpu-ecc", "skip", "no nvidia-smi -q -x report: nvidia-smi is not on the PATH", None)
PASSED = CheckResult("rail-count", "pass", "8 rails", None)


def _answer(reports: list[NodeReport]) -> str:
    profile = load_profile("lambda-1cc")
    verdict = decide(check_items(reports, []))
    return render(CheckAnswer(profile, reports, [], verdict, nranks=len(reports)))


def test_a_fail_line_carries_the_profiles_action_on_one_node_and_on_many() -> None:
    action = "  action: check the port state, the rate and the cable of gpu-node02 mlx5_3 port 1"
    one = _answer([NodeReport("gpu-node02", (PORT_DOWN, PASSED), {})]).splitlines()
    assert one[1].startswith("  FAIL  rail ") and one[2].strip() == action.strip()
    many = _answer([NodeReport("gpu-node01", (PASSED,), {}), NodeReport("gpu-node02", (PORT_DOWN, PASSED), {})])
    lines = many.splitlines()
    at = lines.index("node gpu-node02: FAIL (1 fail, 1 pass)")
    assert lines[at + 1].startswith("  FAIL  rail ") and lines[at + 2].strip() == action.strip()


def test_what_several_nodes_did_not_judge_is_listed_with_why() -> None:
    reports = [NodeReport(f"gpu-node0{k}", (PASSED, NO_SMI), {}) for k in (1, 2)]
    lines = _answer(reports).splitlines()
    assert "SKIP above" not in "\n".join(lines)
    at = lines.index("not judged: gpu-ecc")
    assert lines[at + 1] == (
        "  SKIP  gpu-ecc             no nvidia-smi -q -x report: nvidia-smi is not on the PATH (on 2 of 2 nodes)"
    )
    assert lines[-1].startswith("verdict: PASS")


@pytest.mark.slow
def test_checks_that_hang_answer_at_the_time_limit(tmp_path: Path) -> None:
    """``check`` and ``accept`` run the node's checks within a limit too: a read that never returns (here the
    error window's wait) is a ``time-limit`` failure naming the check, and the checks before it keep their
    answers; it used to leave ``check`` without an answer and ``accept``'s other ranks waiting."""
    root = fabric_trees.build(tmp_path / "node", fabric_trees.healthy_1cc())
    zero_errors(root, [f"mlx5_{k}" for k in range(9)], [f"ibp{k}s0" for k in range(1, 9)])
    released = threading.Event()
    try:
        results = checks.run_checks(
            load_profile("lambda-1cc"),
            root,
            env={},
            error_window_s=0.1,
            sleep=lambda _: released.wait(60),
            time_limit_s=3.0,
        )
    finally:
        released.set()
    assert results[-1].check == "time-limit" and results[-1].status == "fail"
    assert results[-1].reason == "rail-errors did not finish within the 3 s time limit: reading the node's devices hung"
    assert {"ib-devices", "rail", "gpu-count"} <= {r.check for r in results}
    assert checks.verdict(results) == "fail"
