"""`railbench accept`: end to end on this machine, verdicts per node and rail, and JUnit that CI can read."""

from __future__ import annotations

import csv
import json
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from bench.accept.rank import accept_items, accept_summary
from bench.check.items import check_items
from bench.finding import EvidenceFinding
from bench.frame.decide import decide, item_entries, junit_case, junit_cases
from bench.preflight.checks import CheckResult
from bench.preflight.cluster import NodeReport
from bench.profile.cluster import load_profile
from bench.rails.diagnosis.items import node_items, rail_items
from bench.rails.diagnosis.rails_outcome import RailDevices, RailResult, RailsOutcome
from bench.rundir.findings import Shortfall, check_finding
from bench.rundir.junit import junit_xml
from bench.rundir.rails_records import Conviction, NamedPart, RailDefect
from bench.rundir.railsdoc import RailsDoc
from bench.sweep.items import collective_items, counter_item
from tests.support import railbench_inline

SCHEMA = Path(__file__).parent / "data" / "junit_jenkins.xsd"


def validate_junit(document: bytes | Path) -> None:
    """Validate against the Jenkins-style JUnit schema (xmlschema is pure Python)."""
    xmlschema = pytest.importorskip("xmlschema")
    schema = xmlschema.XMLSchema(str(SCHEMA))
    source = str(document) if isinstance(document, Path) else document.decode("utf-8")
    schema.validate(source)


@pytest.mark.slow
def test_the_schema_rejects_what_ci_would_reject() -> None:
    xmlschema = pytest.importorskip("xmlschema")
    schema = xmlschema.XMLSchema(str(SCHEMA))
    assert schema.is_valid('<testsuites><testsuite name="s" tests="0" failures="0" errors="0"/></testsuites>')
    assert not schema.is_valid('<testsuites><testsuite name="s" tests="1"/></testsuites>')  # no failures/errors
    assert not schema.is_valid(
        '<testsuites><testsuite name="s" tests="1" failures="0" errors="0"><testcase classname="c"/>'
        "</testsuite></testsuites>"
    )  # a testcase without a name
    assert not schema.is_valid(
        '<testsuites><testsuite name="s" tests="1" failures="0" errors="0" time="1s"/></testsuites>'
    )


def _outcome() -> RailsOutcome:
    link = RailDefect(
        named=NamedPart(
            kind="link",
            node="node03",
            rail=1,
            device="mlx5_2",
            conviction=Conviction(
                measured_Gbps=212.0,
                expected_Gbps=400.0,
                basis="line rate",
                symptom="slow",
                slow_pairs=3,
                pairs=3,
                slow_samples=3,
                samples=3,
                spread=0.01,
                evidence=("node01-node03/rail1", "node02-node03/rail1", "node03-node04/rail1"),
            ),
        ),
        action="",
    )
    results = [
        RailResult(0, "all_reduce", "concurrent", 4, 1 << 28, 1 << 26, 10, 7000.0, 6900.0, 7100.0, 0),
        RailResult(1, "all_reduce", "concurrent", 4, 1 << 28, 1 << 26, 10, 14000.0, 13900.0, 14100.0, 0),
    ]
    nodes = ("node01", "node02", "node03", "node04")
    devices = [RailDevices(k, {n: f"mlx5_{k + 1}:1" for n in nodes}, {}) for k in range(2)]
    return RailsOutcome(
        RailsDoc(nodes=nodes),
        2,
        results,
        [],
        devices,
        defects=(link,),
        expected={0: 400.0, 1: 400.0},
        below_target=[Shortfall(1, "all_reduce", "concurrent", 230.0, 400.0, 360.0, 0.9, 4)],
    )


def test_verdicts_per_node_rail_collective_and_check() -> None:
    reports = [
        NodeReport(
            f"node0{i}",
            (
                CheckResult("rail", "pass", "4X NDR", "mlx5_1:1"),
                CheckResult("gpu-count", "warn" if i == 2 else "pass", "8 GPUs"),
            ),
            {},
        )
        for i in range(1, 5)
    ]
    reports[3] = NodeReport("node04", (CheckResult("rail", "fail", "mlx5_1:1 is DOWN", "mlx5_1:1"),), {})
    cross = [CheckResult("same-versions", "pass", "4 nodes run the same")]
    rows = [
        {
            "scope": "world",
            "collective": "all_reduce",
            "bytes": "268435456",
            "wrong": "0",
            "efficiency": "0.95",
            "busbw_Gbps": "3040",
            "target_Gbps": "3200",
        },
        {
            "scope": "world",
            "collective": "all_gather",
            "bytes": "268435456",
            "wrong": "0",
            "efficiency": "0.5",
            "busbw_Gbps": "1600",
            "target_Gbps": "3200",
        },
        {"scope": "rail", "collective": "all_reduce", "bytes": "268435456", "wrong": "", "efficiency": "0.1"},
    ]
    profile = load_profile("lambda-1cc")
    outcome = _outcome()
    failed_checks = {"node04": [check_finding("node04", CheckResult("rail", "fail", "mlx5_1:1 is DOWN", "mlx5_1:1"))]}
    items = accept_items(
        check_items(reports, cross),
        [
            *collective_items(rows, profile.judge_min_bytes, profile.pass_fraction, profile.name),
            counter_item([EvidenceFinding("fail", "mlx5_0 carried 9MB", "mlx5_0")], {}),
        ],
        rail_items(outcome),
        node_items(["node01", "node02", "node03", "node04"], outcome, failed_checks),
    )
    cases = [junit_case(i) for i in items]
    status = {(c.classname, c.name): c.status for c in cases}
    assert status[("railbench.check.node02", "gpu-count")] == "pass"  # a warning passes, and says so
    assert status[("railbench.check.node04", "rail mlx5_1:1")] == "fail"
    assert status[("railbench.run", "all_reduce")] == "pass"
    assert status[("railbench.run", "all_gather")] == "fail"
    assert status[("railbench.run", "counters")] == "fail"
    assert status[("railbench.rails", "rail0")] == "pass"
    assert status[("railbench.rails", "rail1")] == "fail"
    assert [n for (cls, n), s in status.items() if cls == "railbench.nodes" and s == "fail"] == ["node03", "node04"]
    node03 = next(c for c in cases if c.name == "node03")
    assert node03.message.startswith("node03 rail 1 (mlx5_2): 212 Gb/s = 53% of 400 Gb/s in 3/3 pairs → link fault")
    verdict = decide(items)
    assert verdict.word == "fail"
    # each failure once, named by its own item (the node lines repeat them and are not said again)
    assert verdict.reasons == (
        "node04 rail: mlx5_1:1 is DOWN",
        "all_gather at 256M: busbw 200 GB/s is 50% of its 400 GB/s target (3200 Gb/s; needs 90%)",
        "mlx5_0 carried 9MB",
        "node03 rail 1 (mlx5_2): 212 Gb/s = 53% of 400 Gb/s in 3/3 pairs → link fault; "
        "rail 1 all_reduce (concurrent): 230 Gb/s = 58% of 400 Gb/s (needs 360 Gb/s: 90% of line plus NCCL's latency "
        "over 4 nodes)",
    ), verdict.reasons
    summary = accept_summary(items)
    assert summary.checks == {
        "node01": "pass",
        "node02": "warn",
        "node03": "pass",
        "node04": "fail",
        "cluster": "pass",
    }
    assert summary.rails["rail1"].verdict == "fail" and summary.nodes["node01"].verdict == "pass"
    warned = next(c for c in cases if c.classname == "railbench.check.node02" and c.name == "gpu-count")
    assert warned.details == "WARN node02 gpu-count: 8 GPUs"
    validate_junit(junit_xml("railbench.accept", cases, hostname="head"))


def test_a_warning_is_kept_in_run_json_and_each_defect_fails_one_junit_case() -> None:
    """Issue 33 item 7: run.json ``items`` said a warned check passed, with no reason (checks.json kept the
    warning); junit.xml counted node04's one down port twice, under its check and again under its node line."""
    reports = [
        NodeReport("node01", (CheckResult("rail-errors", "warn", "mlx5_1:1 symbol_error rose by 3", "mlx5_1:1"),), {}),
        NodeReport("node02", (CheckResult("rail", "fail", "mlx5_1:1 is DOWN", "mlx5_1:1"),), {}),
    ]
    outcome = RailsOutcome(RailsDoc(skipped="rails not run here"))
    items = [
        *check_items(reports, []),
        *node_items(["node01", "node02"], outcome, {"node02": [check_finding("node02", reports[1].results[0])]}),
    ]
    recorded = {(i.group, i.name): i for i in item_entries(items)}
    warned = recorded[("railbench.check.node01", "rail-errors mlx5_1:1")]
    assert warned.state == "warn"
    assert warned.reason == "node01 rail-errors: mlx5_1:1 symbol_error rose by 3"
    assert decide(items[:1]).word == "pass"  # a warning alone passes (exit 0, "warnings allowed")
    document = ET.fromstring(junit_xml("railbench.accept", junit_cases(items)))
    suite = document.find("testsuite")
    assert suite is not None and suite.get("failures") == "1", ET.tostring(document).decode()
    (failed,) = [c for c in suite.iter("testcase") if c.find("failure") is not None]
    assert (failed.get("classname"), failed.get("name")) == ("railbench.check.node02", "rail mlx5_1:1")
    out = [c.findtext("system-out") for c in suite.iter("testcase") if c.get("name") == "rail-errors mlx5_1:1"]
    assert out == ["WARN node01 rail-errors: mlx5_1:1 symbol_error rose by 3"]


def test_a_single_node_skips_rails_and_a_skip_is_never_a_pass() -> None:
    outcome = RailsOutcome(RailsDoc(skipped="1 node (vm): a rail group needs local rank k of at least 2 nodes"))
    items = rail_items(outcome)
    assert [(i.name, i.state) for i in items] == [("rails", "skip")]
    verdict = decide(items)
    assert verdict.word == "skip" and verdict.reasons == (f"rails not tested: {outcome.written.skipped}",)
    validate_junit(junit_xml("railbench.accept", [junit_case(i) for i in items]))


def test_sizes_below_the_judged_size_are_measured_and_say_how_to_judge() -> None:
    """Issue 21: a sweep to 4M on a GPU profile is measured (not pass, not fail), and says to raise -e."""
    profile = load_profile("lambda-1cc")
    rows = [
        {
            "scope": "world",
            "collective": "all_reduce",
            "bytes": 4 << 20,
            "wrong": 0,
            "efficiency": 0.001,
            "busbw_Gbps": 3.0,
            "target_Gbps": 3840.0,
        },
    ]
    items = collective_items(rows, profile.judge_min_bytes, profile.pass_fraction, profile.name)
    verdict = decide(items)
    assert verdict.word == "measured"
    assert verdict.reasons == (
        "the largest size 4M is below the judged 256M (the profile's judge_min_bytes): "
        "run with -e 256M or more to judge against the targets",
    )
    # a judged size that meets its target beside it passes the collective; one that misses fails it
    at_256m = {**rows[0], "bytes": 256 << 20, "efficiency": 0.95, "busbw_Gbps": 3648.0}
    assert decide(collective_items([*rows, at_256m], 256 << 20, 0.9, "lambda-1cc")).word == "pass"
    assert decide(collective_items([{**at_256m, "efficiency": 0.5}], 256 << 20, 0.9, "lambda-1cc")).word == "fail"


@pytest.mark.mpi
def test_accept_local_np4_end_to_end(accept_local_np4: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    done, out = accept_local_np4  # the run the certificate test renders too (tests/conftest.py)
    assert done.returncode == 0, done.stdout + done.stderr
    # the local profile has no target: nothing was judged, so the word is MEASURED, never PASS
    assert "# accept verdict: MEASURED" in done.stdout
    for name in ("junit.xml", "run.json", "results.csv", "checks.json", "rails.json", "report.html"):
        assert (out / name).is_file(), name
    meta = json.loads((out / "run.json").read_text())
    assert meta["command"] == "accept" and meta["status"] == "complete"
    assert meta["verdict"] == "measured" and meta["exit_status"] == 0 and meta["nranks"] == 4
    assert set(meta["accept"]["collectives"]) == {"all_reduce", "all_gather", "sendrecv", "counters"}
    assert meta["accept"]["rails"]["rails"]["verdict"] == "skip"
    with (out / "results.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert {r["collective"] for r in rows} == {"all_reduce", "all_gather", "sendrecv"}
    assert all(r["wrong"] == "0" for r in rows)
    validate_junit(out / "junit.xml")
    # real times: the suite's wall time, and each collective's own sweep time
    suite = ET.parse(out / "junit.xml").getroot().find("testsuite")
    assert suite is not None and float(suite.get("time") or 0) > 1.0
    swept = {
        tc.get("name"): float(tc.get("time") or 0)
        for tc in suite.iter("testcase")
        if tc.get("classname") == "railbench.run"
    }
    assert all(seconds > 0 for seconds in swept.values()), swept
    assert sum(swept.values()) - swept["counters"] < float(suite.get("time") or 0)
    # every check, rail and node carries the time of the step that judged it, none 0.000
    untimed = [(tc.get("classname"), tc.get("name")) for tc in suite.iter("testcase") if tc.get("time") == "0.000"]
    assert untimed == []


def test_accept_needs_a_profile() -> None:
    done = railbench_inline(["accept", "--np", "2"])
    assert done.returncode == 2
    assert "--profile" in done.stderr and len(done.stderr.strip().splitlines()) == 1
