"""The drain policy and ``railbench health`` without a scheduler: which findings drain a node and with what
reason, how sinfo's states read, the health check on sysfs fixture trees (its lines, exit status and time
limit), bad input, and the report's Slurm part. tests/test_slurm_health.py and tests/test_slurm_recipes.py run
the same against a real Slurm."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import jsonschema
import pytest

from bench import toolrun
from bench.health.config import HEALTH_CHECKS, HealthConfig
from bench.health.node import findings, run_checks, unjudged
from bench.preflight import check_base, checks
from bench.preflight.checks import CheckResult
from bench.profile.actions import Actions
from bench.profile.cluster import load_profile
from bench.report import scheduler as report_slurm
from bench.rundir.findings import check_finding, gpu_finding, hung_finding, rail_finding
from bench.rundir.rails_records import NamedGpu, NamedPart
from bench.rundir.railsdoc import Conviction, GpuDefect, RailDefect
from bench.rundir.runjson import SCHEMA_PATH, RunDoc
from bench.slurm import drain
from bench.slurm.scheduler import NodeState
from tests.support import railbench_inline
from tests.support.trees import fabric_trees
from tests.support.trees.counters import zero_errors

DOCS = Path(__file__).resolve().parent.parent / "docs" / "slurm.md"


@pytest.fixture(scope="module")
def trees(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("health-sysfs")
    healthy = fabric_trees.build(base / "healthy", fabric_trees.healthy_1cc())
    zero_errors(healthy, [f"mlx5_{k}" for k in range(9)], [f"ibp{k}s0" for k in range(1, 9)])
    return {
        "healthy": healthy,
        "port-down": fabric_trees.build(base / "port-down", fabric_trees.port_down("mlx5_3")),
    }


# -- the reason and whose node it is ------------------------------------------------------------------------


def test_the_reason_names_the_part_and_the_action_in_one_ascii_line() -> None:
    dead_link = RailDefect(
        named=NamedPart(
            kind="link",
            node="node02",
            rail=1,
            device="mlx5_2",
            conviction=Conviction.unmeasured("dead", ("no traffic on mlx5_2",), pairs=3, basis="line rate"),
        ),
        action="check the port state and the cable",
    )
    dead = drain.NodeFault("node02", rail_finding(dead_link))
    assert drain.reason([dead]) == "railbench[link:1/-] rail 1 (mlx5_2) link dead; check the port state and the cable"
    slow_gpu = GpuDefect(
        named=NamedGpu(kind="gpu", node="node02", gpu=3, conviction=Conviction(symptom="slow")), action=""
    )
    more = drain.reason([dead, drain.NodeFault("node02", gpu_finding(slow_gpu)), dead])
    assert more.endswith(" (+2 more)") and more.startswith("railbench[link:1/-] rail 1 (mlx5_2) link dead;")
    # a check's answer as a hostile checks.json could say it: the words are shortened, never the part
    said = CheckResult("rail 1 → x", "fail", "é " * 300 + "\n end", None)
    long = drain.reason([drain.NodeFault("n", check_finding("n", said))])
    assert len(long) <= drain.MAX_REASON_CHARS and long.isascii() and "\n" not in long and long.endswith("...")
    assert long.startswith("railbench[check/-] ") and len(long) - len("railbench[check/-] ") <= drain.MAX_SENTENCE_CHARS
    assert drain.owned(long) and not drain.owned("maintenance: railbench: later") and not drain.owned("")


def test_a_hung_check_drains_its_node_as_a_whole_in_its_own_words() -> None:
    """A check that did not finish (``bench.preflight.deadline``) names no part: the node as a whole, in the
    hung check's words and with what to do (``bench.health.node.act``)."""
    hung = CheckResult("time-limit", "fail", "rail-errors did not finish within the 3 s time limit", None)
    said = "check the node: its drivers and devices"
    fault = drain.NodeFault("node02", hung_finding("node02", hung, said, "rail-errors"))
    assert (fault.part, fault.finding) == ("", hung.reason)
    assert drain.reason([fault]) == f"railbench[run:rail-errors/-] {hung.reason}; {said}"
    # the check that hung is the one that must answer before railbench resumes the node
    assert drain.drained_for(drain.reason([fault]), HEALTH_CHECKS) == "rail-errors"


def test_failed_hardware_checks_drain_and_settings_of_the_run_do_not() -> None:
    results = [
        CheckResult(
            "rail",
            "fail",
            "mlx5_3:1: port DOWN (phys_state Disabled), expected ACTIVE/LinkUp",
            "mlx5_3:1",
            said="port DOWN (phys_state Disabled), expected ACTIVE/LinkUp",  # as the check writes it apart
        ),
        CheckResult("nccl-ib-hca", "fail", "NCCL_IB_HCA unset: NCCL would use mlx5_0", "mlx5_0:1"),
        CheckResult("rail-firmware", "warn", "rail firmware differs", "mlx5_4"),
        CheckResult("gpu-count", "fail", "7 GPUs, expected 8"),
        CheckResult("rail", "pass", "mlx5_1:1: ACTIVE LinkUp", "mlx5_1:1"),
    ]
    faults, not_drained = drain.check_faults("gpu-node07", results, Actions())
    assert [(f.part, f.finding, f.action) for f in faults] == [
        (
            "rail mlx5_3:1",
            "port DOWN (phys_state Disabled), expected ACTIVE/LinkUp",
            "check the port state, the rate and the cable of gpu-node07 mlx5_3 port 1",
        ),
        (
            "gpu-count",
            "7 GPUs, expected 8",
            "drain gpu-node07, check the power, seating and driver of its GPUs (lspci, nvidia-smi) and reboot it; "
            "replace (RMA) a GPU still missing or not the profile's model",
        ),
    ]
    assert not_drained == ["gpu-node07 nccl-ib-hca: a setting of the run, not a part of the node"]
    # every check the registry has is placed: a new check must say whether it is a part of the node
    from bench.preflight.checks import REGISTRY

    assert not drain.NODE_CHECKS & drain.RUN_SETTING_CHECKS
    assert {c.name for c in REGISTRY} <= drain.NODE_CHECKS | drain.RUN_SETTING_CHECKS
    # a check that words its own action (with the PCI address) keeps it in the drain reason
    pcie = CheckResult("pcie-link", "fail", "GPU 3 (0000:33:00.0): x8", "GPU3", "reseat GPU 3 (0000:33:00.0)")
    [fault], _ = drain.check_faults("gpu-node07", [pcie], Actions())
    assert fault.action == "reseat GPU 3 (0000:33:00.0)"


def _defect(kind: str, node: str | None, symptom: str = "dead", **extra: object) -> RailDefect:
    severity = str(extra.pop("severity", "fail"))
    part: dict[str, object] = {"kind": kind, "node": node, "rail": 1, "device": "mlx5_2", **extra}
    named = NamedPart(**part, conviction=Conviction(symptom=symptom))  # type: ignore[arg-type]
    return RailDefect(named=named, action=f"{kind} action", severity=severity)


def test_only_defects_of_one_nodes_parts_drain_it() -> None:
    defects = [
        _defect("link", "node02"),
        _defect("pair", "node03", peer="node04", symptom="slow"),
        _defect("rail", None, symptom="slow"),
        _defect("leaf", None, rail=1, symptom="slow"),
        _defect("errors", "node05", severity="warn", symptom="errors"),  # a warning fails nothing
        _defect("node", "node06", rail=None, symptom="slow"),
        _defect("path", "node07", symptom="misrouted"),
    ]
    gpus = [
        GpuDefect(
            named=NamedGpu(kind="gpu", node="node08", gpu=3, conviction=Conviction(symptom="slow")),
            action="drain node08 and check NVLink",
        ),
        GpuDefect(
            named=NamedGpu(
                kind="gpu-pair",
                node="node09",
                gpu=1,
                peer=6,
                bus_id="0000:2a:00.0",
                peer_bus_id="0000:ba:00.0",
                conviction=Conviction(symptom="slow"),
            ),
            action="drain node09 and check NVLink between GPU 1 and GPU 6",
        ),
    ]
    faults, not_drained = drain.defect_faults(defects, gpus)
    assert [(f.node, f.part, f.finding) for f in faults] == [
        ("node02", "rail 1 (mlx5_2)", "link dead"),
        ("node06", "every rail", "node slow"),
        ("node07", "rail 1 (mlx5_2)", "path misrouted"),
        ("node08", "GPU 3", "gpu slow"),
        # the number as CUDA and nvidia-smi say it, and the PCI address beside it (issue 29 item 6)
        ("node09", "GPU 1 (0000:2a:00.0) - GPU 6 (0000:ba:00.0)", "gpu-pair slow"),
    ]
    assert [line.split(":")[0] for line in not_drained] == [
        "node03-node04 rail 1 pair slow",
        "rail 1 rail slow",
        "rail 1 leaf slow",
    ]
    assert all("a part above the nodes, no node drained" in line for line in not_drained)


@pytest.mark.parametrize(
    ("state", "drained", "usable"),
    [
        ("idle", False, True),
        ("mixed", False, True),
        ("allocated", False, True),
        ("idle~", False, True),
        ("drained", True, False),
        ("draining", True, False),
        ("drain", True, False),
        ("drng", True, False),
        ("down*", False, False),
        ("idle*", False, False),
        ("reserved", False, False),
        ("maint", False, False),
        ("mixed+drain", True, False),
    ],
)
def test_sinfo_states_read_as_slurm_means_them(state: str, drained: bool, usable: bool) -> None:
    node = NodeState("node01", state, "")
    assert (node.drained, node.usable) == (drained, usable)


def test_what_railbench_did_is_said_in_one_line() -> None:
    done = drain.NodeAction("node02", "drained", "railbench: rail 1 link dead")
    assert done.line == "node02 drained (railbench: rail 1 link dead)"
    left = drain.NodeAction("node03", "left", "railbench: x", "drained by root for 'PSU', left as it is")
    assert left.words == "not drained by railbench: drained by root for 'PSU', left as it is"
    assert json.loads(json.dumps(left.to_json()))["outcome"] == "left"


# -- railbench health without a scheduler -------------------------------------------------------------------


def test_health_says_one_line_per_finding_and_exits_as_slurm_reads_it(trees: dict[str, Path]) -> None:
    healthy = railbench_inline(
        ["health", "--profile", "lambda-1cc", "--sysfs-root", str(trees["healthy"]), "--node", "gpu-node07"]
    )
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    assert healthy.stdout.splitlines()[-1].startswith("railbench health gpu-node07: PASS (22 pass, 9 skip in ")
    broken = railbench_inline(
        ["health", "--profile", "lambda-1cc", "--sysfs-root", str(trees["port-down"]), "--node", "gpu-node07"]
    )
    assert broken.returncode == 1, broken.stdout + broken.stderr
    lines = broken.stdout.splitlines()
    assert lines[0] == (
        "railbench health gpu-node07: FAIL rail: mlx5_3:1: port DOWN (phys_state Disabled), expected ACTIVE/LinkUp; "
        "action: check the port state, the rate and the cable of gpu-node07 mlx5_3 port 1"
    )
    assert lines[1].startswith("railbench health gpu-node07: FAIL (1 fail, 13 pass, 10 skip in ") and len(lines) == 2
    # the reason --drain gives this node, as docs/slurm.md shows it
    results = run_checks(HealthConfig("lambda-1cc", sysfs_root=trees["port-down"]), load_profile("lambda-1cc"))
    faults, _ = drain.check_faults("gpu-node07", results.results, load_profile("lambda-1cc").actions)
    shown = drain.reason(faults)
    assert shown == (
        "railbench[check:rail/rail] rail mlx5_3:1 port DOWN (phys_state Disabled), expected ACTIVE/LinkUp; check the "
        "port state, the rate and the cable of gpu-node07 mlx5_3 port 1"
    )
    assert f"drained ({shown})" in DOCS.read_text()


@pytest.mark.slow
def test_a_check_that_hangs_is_a_finding_at_the_time_limit_and_its_tool_is_ended(trees: dict[str, Path]) -> None:
    """A read that never returns (a wedged driver: here the error window's wait, spent in a tool that hangs):
    the health check ends at its limit, naming the check it was in, instead of being killed by slurmd with
    nothing said, and the hung tool is killed with it (one more was left behind every HealthCheckInterval).
    The limit is seconds, not a fraction of one, so the checks before it finish on a loaded host too."""
    hung_for = "297.25"  # a duration no other test sleeps, to find this tool among the machine's processes

    def hang(_: float) -> None:
        toolrun.run_tool(["sleep", hung_for], 600, 100)

    config = HealthConfig("lambda-1cc", time_limit_s=3.0, sysfs_root=trees["healthy"], error_window_s=0.1)
    checked = run_checks(config, load_profile("lambda-1cc"), sleep=hang)
    assert checked.stuck_in == "rail-errors" and checked.seconds < 30
    (hung,) = findings(checked)
    assert hung.check == "time-limit" and hung.status == "fail"
    assert hung.reason.startswith("rail-errors did not finish within the 3 s time limit")
    left = subprocess.run(["pgrep", "-f", f"sleep {hung_for}"], capture_output=True, text=True, check=False)
    deadline = time.monotonic() + 5
    while left.stdout.strip() and time.monotonic() < deadline:
        time.sleep(0.1)
        left = subprocess.run(["pgrep", "-f", f"sleep {hung_for}"], capture_output=True, text=True, check=False)
    assert not left.stdout.strip(), "the hung tool outlived the health check"


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--time-limit", "0"], "--time-limit 0 must be above 0 seconds"),
        (["--time-limit", "nan"], "--time-limit 'nan' is not a finite number"),
        (["--time-limit", "4000"], "above the largest plausible value 600"),
        (["--node", "node01,node02"], "is not one Slurm node name"),
        (["--time-limit", "2"], "does not fit in --time-limit 2 s"),  # lambda-1cc's window is 3 s
        (["--sysfs-root", "/nonexistent"], "--sysfs-root /nonexistent is not a directory"),
    ],
)
def test_bad_health_input_is_one_line(args: list[str], said: str) -> None:
    done = railbench_inline(["health", "--profile", "lambda-1cc", *args])
    assert done.returncode == 2 and done.stdout == "", done.stdout + done.stderr
    assert len(done.stderr.splitlines()) == 1 and said in done.stderr, done.stderr


@pytest.mark.parametrize("command", [["health", "--profile", "local"], ["accept", "--profile", "local", "--np", "2"]])
def test_drain_without_slurm_is_refused_before_anything_runs(tmp_path: Path, command: list[str]) -> None:
    done = railbench_inline([*command, "--drain"], env={"PATH": str(tmp_path)})
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.startswith("railbench: error: --drain: Slurm's sinfo is not on PATH") and done.stdout == ""


# -- the report's Slurm part --------------------------------------------------------------------------------


def test_the_report_says_what_was_left_out_and_drained() -> None:
    doc = {
        "format_version": 1,
        "tool": "railbench",
        "version": "0",
        "command": "accept",
        "cluster": "lab",
        "profile": "netns",
        "started_utc": "2026-11-24T02:00:00Z",
        "finished_utc": "2026-11-24T02:05:00Z",
        "status": "complete",
        "verdict": "fail",
        "exit_status": 1,
        "scheduler": {
            "job_id": "42",
            "partition": "rb",
            "nodelist": "node[01,03-04]",
            "left_out": [
                {"node": "node02", "state": "drained", "reason": "railbench: rail 1 link dead", "user": "root"}
            ],
        },
        "drain": {
            "nodes": [{"node": "node03", "outcome": "drained", "reason": "railbench: GPU 3 gpu slow", "note": ""}],
            "not_drained": ["rail 0 rail slow: a part above the nodes, no node drained (check leaf switch for rail 0)"],
        },
    }
    jsonschema.validate(doc, json.loads(SCHEMA_PATH.read_text()))
    run = RunDoc.from_json(doc)
    assert report_slurm.sentences(run) == (
        "Slurm job 42 in partition rb on node[01,03-04].",
        "Left out by the scheduler when the run started: node02 (drained: railbench: rail 1 link dead).",
        "--drain: 1 node(s) named by a defect, in the table below.",
        "Not drained: rail 0 rail slow: a part above the nodes, no node drained (check leaf switch for rail 0).",
    )
    assert report_slurm.drain_rows(run) == (("node03", "drained", "railbench: GPU 3 gpu slow", ""),)
    outside = RunDoc.from_json({k: v for k, v in doc.items() if k not in ("scheduler", "drain")})
    assert report_slurm.sentences(outside) == () and report_slurm.drain_rows(outside) == ()


# -- never passing what was not checked (issue 43) -----------------------------------------------------------


def test_a_check_that_raises_fails_as_itself_and_the_others_still_run(
    trees: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug in one reader (the campaign's: an nvidia-smi XML in an encoding the parser did not expect) used to
    end the health thread early with the checks so far, and the node passed, and --drain resumed it."""

    def broken(self: checks.Check, ctx: checks.Context) -> list[CheckResult]:
        raise LookupError("unknown encoding: rot13")

    monkeypatch.setattr(checks.RailCount, "run", broken)
    config = HealthConfig("lambda-1cc", node="gpu-node07", sysfs_root=trees["healthy"])
    checked = run_checks(config, load_profile("lambda-1cc"))
    (raised,) = [r for r in checked.results if r.check == "rail-count"]
    assert raised.status == "fail" and raised.reason == (
        "could not be judged: the check raised LookupError: unknown encoding: rot13"
    )
    assert "run railbench check on" in raised.action
    assert {r.check for r in checked.results} >= {"rail", "gpu-count", "pcie-link"}  # the later checks ran
    done = railbench_inline(
        ["health", "--profile", "lambda-1cc", "--sysfs-root", str(trees["healthy"]), "--node", "gpu-node07"]
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout.splitlines()[0] == (
        "railbench health gpu-node07: FAIL rail-count: could not be judged: the check raised LookupError: "
        "unknown encoding: rot13; action: keep gpu-node07 out of service until this check runs: run railbench "
        "check on gpu-node07 by hand and fix what stops it (the tool's own error is in the reason)"
    )


def test_nvidia_smi_failing_on_a_node_with_gpus_fails_its_checks(
    trees: dict[str, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The node's own nvidia-smi fails (a GPU fallen off the bus): every GPU check it feeds fails, naming the
    tool's own line; before, each skipped and the node passed."""
    monkeypatch.setattr(check_base, "LIVE_SYSFS", trees["healthy"])  # this tree stands for the node's own /sys
    said = "Unable to determine the device handle for GPU0000:1B:00.0: Unknown Error"
    tool = tmp_path / "nvidia-smi"
    tool.write_text(f"#!/bin/sh\necho '{said}'\nexit 255\n")
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    log = tmp_path / "kern.log"
    log.write_text("")
    results = checks.run_checks(
        load_profile("lambda-1cc"), trees["healthy"], env={}, kernel_log=log, sleep=lambda _: None
    )
    by_check = {r.check: r for r in results if r.check in ("gpu-ecc", "gpu-clocks", "nvlink", "fabric-manager")}
    assert {c: r.status for c, r in by_check.items()} == dict.fromkeys(
        ("gpu-ecc", "gpu-clocks", "nvlink", "fabric-manager"), "fail"
    )
    assert by_check["gpu-ecc"].reason == (
        f"8 GPUs on the PCI bus and no nvidia-smi report to judge them by: {tool} -q -x failed ({said})"
    )
    # without the tool at all the node has nothing to run: that is a skip that says so, as before
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    results = checks.run_checks(
        load_profile("lambda-1cc"), trees["healthy"], env={}, kernel_log=log, sleep=lambda _: None
    )
    assert {r.status for r in results if r.check == "gpu-ecc"} == {"skip"}


def test_a_node_drained_for_a_check_is_not_resumed_while_that_check_is_unjudged() -> None:
    remap = CheckResult(
        "gpu-ecc",
        "fail",
        "GPU3: GPU 3 (0000:1b:00.0): 1 pending row remap",
        "GPU3",
        "drain gpu-node07 and reset GPU 3",
        said="GPU 3 (0000:1b:00.0): 1 pending row remap",
    )
    now = drain.reason(drain.check_faults("gpu-node07", [remap], Actions())[0])
    assert now == (
        "railbench[check:gpu-ecc/gpu-ecc] gpu-ecc GPU3 GPU 3 (0000:1b:00.0): 1 pending row remap; drain gpu-node07 "
        "and reset GPU 3"
    )
    # the same node as the release before the key drained it (bench.slurm.drain_key's legacy reader)
    before = "railbench: gpu-ecc GPU3 GPU 3 (0000:1b:00.0): 1 pending row remap; drain gpu-node07 and reset GPU 3"
    assert drain.drained_for("railbench: rail-errors mlx5_1:1 symbol_error rose", HEALTH_CHECKS) == "rail-errors"
    assert drain.drained_for("railbench: rail 1 (rail1) link dead; check the cable", HEALTH_CHECKS) is None
    assert drain.drained_for("maintenance by ops", HEALTH_CHECKS) is None
    skipped = (CheckResult("gpu-ecc", "skip", "no nvidia-smi -q -x report: nvidia-smi is not on the PATH", None),)
    for drained in (now, before):
        assert drain.drained_for(drained, HEALTH_CHECKS) == "gpu-ecc"
        assert unjudged(drained, skipped) == (
            "gpu-ecc, which it was drained for, was not judged this time (no nvidia-smi -q -x report: nvidia-smi is "
            "not on the PATH); check the node by hand"
        )
        assert unjudged(drained, ()) is not None  # not run at all
        assert unjudged(drained, (CheckResult("gpu-ecc", "pass", "no pending remap on 8 GPUs", None),)) is None
        kept = drain.NodeAction("gpu-node07", "kept", drained, unjudged(drained, skipped) or "")
        assert kept.words.startswith(f"still drained by railbench ({drained}): gpu-ecc, which it was drained for")
    assert unjudged("railbench: link node02 rail 1 dead", skipped) is None
    # a link the rails test found dead: its port up again does not say it carries traffic (a black-holed NIC's
    # port is ACTIVE), so the node stays drained until someone resumes it, this release's reason or an older one's
    port = (CheckResult("rail", "pass", "mlx5_2:1: ACTIVE LinkUp", "mlx5_2:1"),)
    for dead in ("railbench[link:1/-] rail 1 (mlx5_2) link dead", "railbench: rail 1 (rail1) link dead"):
        assert "measured across nodes" in (unjudged(dead, port) or "")
    assert unjudged("railbench[link:1/-] rail 1 (mlx5_2) link dead", skipped) is not None
