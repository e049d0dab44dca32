"""Findings stay data until the edge (docs/design.md, "Adding a finding"): a run directory with one finding of
each kind (a rails defect of every kind that fails, a GPU defect, a failed check, a rail group below its
target, a counter finding) says each in every output from the same findings: the terminal's ``# FAIL`` lines,
junit.xml's messages, the certificate's rows and the Slurm drain reasons, all rendered by
``bench.rundir.finding_words``; the certificate's Other failures are the failures no row says, whole and once.
Documents older releases wrote (a rails.json whose defects carry no line, a checks.json with no actions) still
render from their fields."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from bench import codec
from bench.check.items import check_items
from bench.finding import EvidenceFinding
from bench.frame.decide import Item, decide, item_entries, said, write_junit_items
from bench.frame.job import print_verdict
from bench.preflight.cluster import NodeReport
from bench.profile.actions import Actions
from bench.rails.diagnosis.gpu_outcome import IntraNodeOutcome
from bench.rails.diagnosis.items import local_cause_items, node_items, rail_items
from bench.rails.diagnosis.rails_outcome import RailsOutcome
from bench.rails.output import rails_doc
from bench.report.inputs import load_inputs
from bench.report.page import summarize
from bench.rundir.checksjson import CheckResult
from bench.rundir.finding_words import counter_line, drain_words, item_reason, row, sentence, shortfall_line
from bench.rundir.findings import (
    CollectiveMiss,
    CounterFinding,
    Finding,
    Shortfall,
    check_finding,
    counter_finding,
    gpu_finding,
    rail_finding,
    shortfall_finding,
)
from bench.rundir.rails_records import (
    Conviction,
    DefectCause,
    DefectErrors,
    GpuDefect,
    Localisation,
    NamedGpu,
    NamedPart,
    RailDefect,
)
from bench.rundir.railsdoc import RailsDoc
from bench.slurm.drain import NODE_DEFECTS, by_node, check_faults, defect_faults, reason
from bench.slurm.drain_key import key_of
from bench.sweep.items import collective_items, counter_item
from tests.support.report_data import ClusterModel, write_run_dir

HOSTS = ("node01", "node02", "node03", "node04")


def _slow(pairs: int = 3) -> Conviction:
    return Conviction(
        measured_Gbps=212.0,
        expected_Gbps=400.0,
        basis="line rate",
        symptom="slow",
        slow_pairs=pairs,
        pairs=pairs,
        slow_samples=pairs,
        samples=pairs,
        spread=0.0,
        evidence=("node01-node03/rail1",),
    )


DEAD = Conviction.unmeasured("dead", ("no traffic on mlx5_1",), pairs=3, expected_Gbps=400.0, basis="line rate")
DEFECTS = (
    RailDefect(
        named=NamedPart(kind="link", node="node03", rail=1, device="mlx5_2", conviction=_slow()),
        action="reseat node03 mlx5_2",
    ),
    RailDefect(
        named=NamedPart(
            kind="cable",
            node="node04",
            rail=2,
            device="mlx5_3",
            conviction=_slow(),
            switches=("leaf-r2",),
            ports=("leaf-r2 port 7",),
        ),
        errors=(DefectErrors(node="node04", device="mlx5_3:1", errors={"symbol_error": 1204}),),
        action="reseat or replace the cable on node04 mlx5_3 port 1 and leaf-r2 port 7",
    ),
    RailDefect(named=NamedPart(kind="node", node="node02", conviction=_slow(12)), action="check node02's PCIe and CPU"),
    RailDefect(
        named=NamedPart(kind="pair", node="node01", peer="node04", rail=0, conviction=_slow(1)), action="check the pair"
    ),
    RailDefect(named=NamedPart(kind="rail", rail=3, device="mlx5_4", conviction=DEAD), action="check rail 3's switch"),
    RailDefect(
        named=NamedPart(kind="leaf", rail=3, switches=("leaf-r3",), unit="unit 1", conviction=_slow(6)),
        action="check leaf-r3",
    ),
    RailDefect(
        named=NamedPart(kind="spine", switches=("spine-1", "spine-2"), conviction=_slow(4)), action="check the spines"
    ),
)
GPU = GpuDefect(
    named=NamedGpu(
        kind="gpu",
        node="node01",
        gpu=5,
        bus_id="0000:9a:00.0",
        conviction=Conviction(
            measured_Gbps=120.0, expected_Gbps=480.0, basis="peers", symptom="slow", slow_pairs=7, pairs=7
        ),
    ),
    action="reset GPU 5 (0000:9a:00.0) on node01",
)
CHECK = CheckResult(
    "pcie-link",
    "fail",
    "GPU3: PCIe link at x8 at 32 GT/s (Gen5), capable of x16",
    "GPU3",
    "reseat GPU 3 (0000:73:00.0) on node02",
    said="PCIe link at x8 at 32 GT/s (Gen5), capable of x16",
)
SHORT = Shortfall(0, "all_reduce", "concurrent", 230.0, 400.0, 360.0, 0.9, 4)
COUNTED = CounterFinding("node03", (1,), "rail 1: its bytes went over eth0, which must stay quiet")


def _findings() -> list[Finding]:
    return [
        *map(rail_finding, DEFECTS),
        gpu_finding(GPU),
        check_finding("node02", CHECK),
        shortfall_finding(SHORT),
        counter_finding(COUNTED),
    ]


def _outcome() -> RailsOutcome:
    intra = IntraNodeOutcome(nodes=HOSTS, local_ranks=8, localisation=Localisation(defects=(GPU,)))
    return RailsOutcome(
        RailsDoc(nodes=HOSTS),
        4,
        defects=DEFECTS,
        findings=[COUNTED],
        expected={k: 400.0 for k in range(4)},
        below_target=[SHORT],
        intra_node=intra,
    )


def _items(outcome: RailsOutcome) -> list[Item]:
    reports = [NodeReport(h, (CHECK,) if h == "node02" else (), {}) for h in HOSTS]
    other = {"node02": [check_finding("node02", CHECK)]}  # accept's node line gathers its checks too
    return [*check_items(reports, []), *rail_items(outcome), *node_items(HOSTS, outcome, other)]


def _run_dir(tmp_path: Path, items: Sequence[Item], *, lines: bool = True) -> Path:
    """A run directory as accept writes it: run.json's verdict, reasons and items, rails.json, checks.json."""
    run_dir = write_run_dir(
        tmp_path / "run", ClusterModel(bad=None, intra_node=False), rails=False, checks=False, trend=False
    )
    verdict = decide(items)
    run = json.loads((run_dir / "run.json").read_text())
    run.update(
        verdict=verdict.word, reasons=list(verdict.reasons), items=codec.encode(item_entries(items)), exit_status=1
    )
    (run_dir / "run.json").write_text(json.dumps(run))
    rails = rails_doc(_outcome())
    if not lines and rails.intra_node is not None:  # as a release before the defects carried their line wrote them
        local = rails.intra_node.localisation
        unsaid = replace(local, defects=tuple(replace(g, line=None) for g in local.defects))
        defects = tuple(replace(d, line=None) for d in rails.defects)
        rails = replace(rails, defects=defects, intra_node=replace(rails.intra_node, localisation=unsaid))
    (run_dir / "rails.json").write_text(json.dumps(rails.to_json()))
    checks = {
        "format_version": 2,
        "nodes": [{"node": h, "results": [_check_json(lines)] if h == "node02" else []} for h in HOSTS],
        "cross_node": [],
    }
    (run_dir / "checks.json").write_text(json.dumps(checks))
    return run_dir


def _check_json(actions: bool) -> object:
    """The failed check as checks.json version 2 holds it (its words apart, ``said``, came with version 3);
    without its action as a release before actions wrote it."""
    said = codec.encode(CHECK)
    assert isinstance(said, dict)
    return {k: v for k, v in said.items() if k != "said" and (actions or k != "action")}


def test_every_output_renders_the_same_findings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    found = _findings()
    items = _items(_outcome())
    verdict = decide(items)
    # the terminal: every finding's sentence on a FAIL line, each line nothing but findings' sentences
    print_verdict("accept", verdict)
    fails = [line.removeprefix("# FAIL ") for line in capsys.readouterr().out.splitlines() if line.startswith("# FAIL")]
    said = [sentence(f) for f in found]
    assert all(any(s in line for line in fails) for s in said), (said, fails)
    assert all(line == "; ".join(s for s in said if s in line) for line in fails), fails
    # junit.xml: the same sentences, as the failing testcases' messages
    write_junit_items(tmp_path / "junit.xml", "railbench.accept", items, verdict)
    messages = [f.get("message", "") for f in ET.parse(tmp_path / "junit.xml").getroot().iter("failure")]
    assert all(any(s in m for m in messages) for s in said), messages
    # the certificate: a row per broken part, and Other failures only what no row says, each whole
    summary = summarize(load_inputs(_run_dir(tmp_path, items)), 0.9)
    parts = [f for f in found if f.part.kind not in ("rail-group", "counters")]
    assert set(summary.defects) == {row(f) for f in parts} and len(summary.defects) == len(parts)
    assert summary.reasons == (shortfall_line(SHORT), counter_line(COUNTED))
    # the drain: the first fault of each node's reason is its finding's key, part, finding and action
    faults, above = defect_faults(DEFECTS, (GPU,))
    checked, _ = check_faults("node02", (CHECK,), Actions())
    drained = by_node([*checked, *faults])
    for f in found:
        if f.part.kind == "check" or f.step == "intra-node" or f.part.kind in NODE_DEFECTS:
            said = (key_of(f), *drain_words(f))
            assert any((x.key, x.part, x.finding, x.action) == said for x in drained[f.part.node or ""])
    assert reason(drained["node04"]) == (
        "railbench[cable:2/-] rail 2 (mlx5_3) cable slow; reseat or replace the cable on node04 mlx5_3 port 1 and "
        "leaf-r2 port 7"
    )
    assert reason(drained["node02"]).startswith(
        "railbench[check:pcie-link/pcie-link] pcie-link GPU3 PCIe link at x8 at 32 GT/s (Gen5), capable of x16; "
        "reseat GPU 3"
    )
    assert len(above) == 4  # the pair's switch path, the rail, the leaf and the spines drain no node


def test_a_cable_is_one_row_and_no_other_failure_when_its_line_was_not_written(tmp_path: Path) -> None:
    """rails.json (version 1) from a release whose defects carried no line, and checks.json (version 2) before it
    carried actions: the cable is said from its fields in its one row,
    and Other failures never holds its sentence cut at ``; `` (the finding, its counters, its action: one cable as
    three bullets)."""
    summary = summarize(load_inputs(_run_dir(tmp_path, _items(_outcome()), lines=False)), 0.9)
    (cable,) = [d for d in summary.defects if d.kind == "cable"]
    assert cable.finding.startswith("node04 rail 2 (cable node04 mlx5_3 <-> leaf-r2 port 7): 212 Gb/s = 53% of 400")
    assert "1,204 symbol_error on mlx5_3 port 1 during the test" in cable.finding
    assert summary.reasons == (shortfall_line(SHORT), counter_line(COUNTED))
    # checks.json without actions (version 2 before they were written): the check's default action
    (check,) = [d for d in summary.defects if d.kind == "check"]
    assert check.action == Actions().for_check("pcie-link", "node02", "GPU3") and check.action


def test_other_failures_has_no_bullet_without_a_failure(tmp_path: Path) -> None:
    """A failed item whose sentence carries its action (``rails``' GPUDirect path: ``...; action: reseat``) is one
    bullet, its sentence whole: never a bullet that is only an action, or empty."""
    cause = "node02 pcie-link: GPU3: PCIe link at x8 at 32 GT/s (Gen5), capable of x16; action: reseat GPU 3"
    collective = (
        "all_gather at 1G: 3 wrong elements; "
        "all_gather at 256M: busbw 200 GB/s is 50% of its 400 GB/s target (3200 Gb/s; needs 90%)"
    )
    items = [Item("railbench.gpudirect", "node02", "fail", cause), *_swept()]
    run_dir = _run_dir(tmp_path, items)
    (run_dir / "checks.json").unlink()
    (run_dir / "rails.json").unlink()
    summary = summarize(load_inputs(run_dir), 0.9)
    assert summary.reasons == (cause, collective)
    assert all(r.strip(" ;:") and not r.startswith("action:") for r in summary.reasons)


WORLD = (
    {"collective": "all_gather", "bytes": 256 << 20, "busbw_Gbps": 1600.0, "target_Gbps": 3200.0, "efficiency": 0.5},
    {
        "collective": "all_gather",
        "bytes": 1 << 30,
        "busbw_Gbps": 3104.0,
        "target_Gbps": 3200.0,
        "efficiency": 0.97,
        "wrong": 3,
    },
)
"""A world collective below its target at 256M and with wrong elements at 1G (as ``bench.sweep.rank`` holds its
rows)."""


def _swept() -> list[Item]:
    """The world sweep's items: the collective above, failed by its two misses."""
    return collective_items(WORLD, 256 << 20, 0.9, "lambda-1cc")


def test_the_world_sweeps_findings_are_said_in_every_output_and_kept_as_data(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A world collective below its target and with wrong elements, and what the byte counters and NCCL's log
    said around the sweep, are findings whose records hold the numbers; the terminal's ``# FAIL`` lines,
    junit.xml's messages, run.json's items and the certificate's Other failures say the sentences
    ``bench.rundir.finding_words`` renders from them, and run.json's items name their step, ``sweep``."""
    counted = [
        EvidenceFinding("fail", "node02: expected rail mlx5_2 carried nothing (0 bytes)", "mlx5_2", "node02"),
        EvidenceFinding("fail", "node01: NCCL init failed on every rank the log shows (8)", None, "node01"),
    ]
    items = [*_swept(), counter_item(counted, {})]
    (collective, counters) = items
    misses = [f.evidence for f in collective.findings]
    assert misses == [
        CollectiveMiss("all_gather", 1 << 30, 3104.0, wrong=3),
        CollectiveMiss("all_gather", 256 << 20, 1600.0, 0, 3200.0, 0.5, 0.9),
    ]
    assert {(f.part.kind, f.step, f.symptom) for f in collective.findings} == {
        ("run", "sweep", "wrong"),
        ("run", "sweep", "slow"),
    }
    assert [(f.part.kind, f.part.node, f.part.device, f.part.where) for f in counters.findings] == [
        ("device", "node02", "mlx5_2", "node02 mlx5_2"),
        ("run", "node01", None, "node01"),
    ]
    assert [f.evidence for f in counters.findings] == counted
    said = [item_reason(i.findings) for i in items]
    assert not any(i.reason for i in items)  # no note: the findings say it
    verdict = decide(items)
    assert verdict.reasons == tuple(said)
    print_verdict("run", verdict)
    fails = [line.removeprefix("# FAIL ") for line in capsys.readouterr().out.splitlines() if line.startswith("# FAIL")]
    assert fails == said
    write_junit_items(tmp_path / "junit.xml", "railbench.run", items, verdict)
    messages = [f.get("message", "") for f in ET.parse(tmp_path / "junit.xml").getroot().iter("failure")]
    assert messages == said
    run_dir = _run_dir(tmp_path, items)
    (run_dir / "checks.json").unlink()
    (run_dir / "rails.json").unlink()
    run = json.loads((run_dir / "run.json").read_text())
    assert [i["reason"] for i in run["items"]] == said
    assert [[f["step"] for f in i["findings"]] for i in run["items"]] == [["sweep", "sweep"], ["sweep", "sweep"]]
    assert summarize(load_inputs(run_dir), 0.9).reasons == tuple(said)
    # a format-2 run.json written before the sweep's items carried findings: the same Other failures
    older = [{**i, "findings": []} for i in run["items"]]
    (run_dir / "run.json").write_text(json.dumps({**run, "items": older}))
    assert summarize(load_inputs(run_dir), 0.9).reasons == tuple(said)


def test_a_node_local_cause_no_defect_carries_is_its_nodes_item_with_its_action() -> None:
    """``rails``: a GPUDirect path check that failed on a node with nothing the traffic felt is that node's item,
    said by the renderer as the check's items say a check, with its action."""
    cause = DefectCause(result=CHECK, node="node02")
    (item,) = local_cause_items(replace(_outcome(), node_causes=(cause,)))
    assert (item.name, item.state) == ("node02", "fail")
    assert said(item) == f"node02 pcie-link: {CHECK.reason}; action: {CHECK.action}"


def test_a_run_json_of_format_1_says_the_same_other_failures(tmp_path: Path) -> None:
    """run.json before its items said their findings (format 1, read by ``run_upgrade_1_to_2``): the certificate's
    Other failures are picked from the items' groups as that release did, the same as from the findings a
    format-2 item carries: without checks.json (``rails`` writes none), the failed check and a node's GPUDirect
    path (checks no row says) and a collective below target stay; the rails test's and the nodes' lines do not."""
    collective = (
        "all_gather at 1G: 3 wrong elements; "
        "all_gather at 256M: busbw 200 GB/s is 50% of its 400 GB/s target (3200 Gb/s; needs 90%)"
    )
    cause = DefectCause(result=CHECK, node="node02")
    items = [*_items(_outcome()), *local_cause_items(replace(_outcome(), node_causes=(cause,))), *_swept()]
    run_dir = _run_dir(tmp_path, items)
    (run_dir / "checks.json").unlink()
    now = summarize(load_inputs(run_dir), 0.9)
    run = json.loads((run_dir / "run.json").read_text())
    assert {f["step"] for i in run["items"] for f in i["findings"]} == {"preflight", "rails", "intra-node", "sweep"}
    older = [{k: v for k, v in i.items() if k not in ("repeats", "findings")} for i in run["items"]]
    (run_dir / "run.json").write_text(json.dumps({**run, "format_version": 1, "items": older}))
    before = summarize(load_inputs(run_dir), 0.9)
    check = f"node02 pcie-link: {CHECK.reason}"
    said = (shortfall_line(SHORT), counter_line(COUNTED), check, f"{check}; action: {CHECK.action}", collective)
    assert now.reasons == before.reasons == said
    assert now.defects == before.defects
