"""One fault, one defect: on 3 nodes with node02's rail 1 cable down, ``accept`` names the link once.

The outcome is built from the records the ranks would make (no ranks): each node's check answers as the checks
give them on the namespace testbed with ``rail1`` down in node02 (``socket-rail``: ``operstate down``), the
cross-node comparison ``bench.preflight.cluster`` makes of them, the rails test's outcome (rail groups over the
two live nodes, the one pair left on rail 1, the link told dead by its port), then accept's own items, verdict
and files, and the report drawn from them. The same run on the testbed is
``tests/test_rails_netns_errors.py::test_accept_names_a_dead_cable_once``.
"""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import pytest

from bench import codec
from bench.accept.rank import (
    Checked,
    _dead_parts,
    _not_measured,
    _where,
    accept_summary,
    judged_items,
    sweep_skipped_line,
)
from bench.check.items import check_items
from bench.check.node import CheckAnswer, to_json
from bench.frame.decide import Item, decide, junit_cases
from bench.preflight.checks import CheckResult
from bench.preflight.cluster import NodeReport, compare_nodes
from bench.preflight.told import told
from bench.profile.cluster import load_profile
from bench.rails.diagnosis.matrix import PairTime
from bench.rails.diagnosis.rails_outcome import RailDevices, RailResult, RailsOutcome
from bench.rails.output import rails_doc, rails_table
from bench.report import data, matrices
from bench.report.build import ReportOptions, write_report
from bench.rundir.files import atomic_write_json
from bench.rundir.finding_words import describe
from bench.rundir.rails_records import Conviction, NamedPart, RailDefect
from bench.rundir.railsdoc import RailsDoc
from tests.support.history_fixtures import make_run_dir
from tests.support.testbeds.netns_testbed import PROFILE

NODES = ("node01", "node02", "node03")
DEAD = ("node02", 1)
ACTION = "check the port state and the cable of node02 rail1"


def _answers(node: str) -> tuple[CheckResult, ...]:
    """A node's link checks as the testbed gives them (``bench.preflight.checks.SocketRails``, ``RailErrorWindow``)."""
    out = [CheckResult("nccl-socket-ifname", "warn", "NCCL_SOCKET_IFNAME unset: NCCL picks mgmt, rail0, rail1")]
    for rail in (0, 1):
        name = f"rail{rail}"
        if (node, rail) == DEAD:
            out.append(CheckResult("socket-rail", "fail", f"{name}: operstate down, expected up", name))
        else:
            out.append(CheckResult("socket-rail", "pass", f"{name}: up, speed unknown", name))
        out.append(CheckResult("rail-errors", "pass", f"{name}: no error counter rose", name))
    return tuple(out)


def _outcome() -> RailsOutcome:
    """What rank 0 knows after the rails test: the rail groups ran, rail 1's pairs with node02 were never tried."""
    groups = [
        RailResult(rail, coll, "concurrent", 3, 4 << 20, 1 << 20, 3, t, t, t, 0)
        for rail in (0, 1)
        for coll, t in (("all_reduce", 9000.0), ("all_gather", 12000.0))
    ]
    pairs = [PairTime(a, b, 0, 0, 0, 4 << 20, 4000.0) for a, b in ((0, 1), (0, 2), (1, 2))]
    pairs.append(PairTime(0, 2, 1, 0, 0, 4 << 20, 3800.0))  # rail 1: node01-node03, the pair both ends live
    dead = RailDefect(
        named=NamedPart(
            kind="link",
            node=DEAD[0],
            rail=DEAD[1],
            device="rail1",
            conviction=Conviction.unmeasured(
                "dead",
                (
                    "node02: port rail1 is down",
                    "node01-node02/rail1: not attempted",
                    "node02-node03/rail1: not attempted",
                ),
                pairs=2,
                basis="peers",
            ),
        ),
        errors=(),
        action=ACTION,
    )
    devices = [RailDevices(r, {n: f"rail{r}" for n in NODES}, {}) for r in (0, 1)]
    return RailsOutcome(
        written=RailsDoc(nodes=NODES),
        rails=2,
        rail_results=groups,
        pair_times=pairs,
        devices=devices,
        defects=(dead,),
        expected={0: None, 1: None},
    )


@pytest.fixture(scope="module")
def judged(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Item]]:
    """accept's run directory and items for the outcome, drawn as ``railbench report`` draws it."""
    out = tmp_path_factory.mktemp("onefault")
    profile_path = out / "netns.toml"
    profile_path.write_text(PROFILE)
    reports = [NodeReport(n, _answers(n), {"railbench": "0.1.0"}) for n in NODES]
    cross = compare_nodes(reports)
    outcome = _outcome()
    checked = CheckAnswer(load_profile(str(profile_path)), reports, cross, decide(check_items(reports, cross)), 6)
    atomic_write_json(out / "checks.json", to_json(checked))
    atomic_write_json(out / "rails.json", rails_doc(outcome).to_json())
    dead = _dead_parts(outcome)
    assert dead == "the link node02 rail 1 (rail1)"
    items = judged_items(Checked(reports, cross), _not_measured(["all_reduce"], dead), outcome, NODES)
    verdict = decide(items)
    meta = {
        "verdict": verdict.word,
        "reasons": list(verdict.reasons),
        "exit_status": verdict.exit_status,
        "accept": codec.encode(accept_summary(items)),
    }
    make_run_dir(
        out, started_utc="2026-11-25T18:51:41Z", busbw={}, hosts=NODES, nranks=6, command="accept", meta_extra=meta
    )
    write_report(out, options=ReportOptions(images=False))
    return out, items


def test_the_cable_is_one_defect_and_its_checks_its_evidence(judged: tuple[Path, list[Item]]) -> None:
    run_dir, items = judged
    meta = json.loads((run_dir / "run.json").read_text())
    line = describe(_outcome().defects[0])
    # still a failure, exit 1; the one reason (the terminal's one "# FAIL" line) is the link
    assert meta["verdict"] == "fail" and meta["exit_status"] == 1
    assert meta["reasons"] == [line]
    # CI counts one failure per defect: the check answers that saw the cable are no testcase of their own
    assert [(c.classname, c.name) for c in junit_cases(items) if c.status == "fail"] == [("railbench.rails", "rail1")]
    # the node's line names the link once, and the check phase's answers keep their fail (the grid shows them)
    assert meta["accept"]["nodes"]["node02"] == {"verdict": "fail", "reason": line}
    assert meta["accept"]["checks"]["node02"] == "fail" and meta["accept"]["checks"]["cluster"] == "fail"
    md = (run_dir / "report.md").read_text()
    assert "### Defects (1)" in md, md
    (row,) = [r for r in md.splitlines() if r.startswith("| link | node02 | 1 | rail1 |")]
    assert "link dead" in row and ACTION in row
    # the checks that saw the same cable, kept as its evidence in its row
    assert "node02 socket-rail: rail1: operstate down, expected up" in row
    assert "same-answers: nodes disagree on socket-rail" in row
    assert "| check |" not in md and "Other failures" not in md
    # no empty bullet, no header without rows
    assert not [r for r in md.splitlines() if r.strip() in ("-", "- ", "*")]
    assert "across nodes\n" not in md


def test_the_charts_draw_the_dead_link_dead(judged: tuple[Path, list[Item]]) -> None:
    run_dir, _ = judged
    with (run_dir / "charts" / "rails.csv").open() as f:
        rails = {r["label"]: r for r in csv.DictReader(f)}
    assert float(rails["rail 1 (rail1)"]["busbw_Gbps"]) == 0.0 and rails["rail 1 (rail1)"]["status"] == "fail"
    assert rails["rail 1 (rail1)"]["detail"] == "weakest node node02: dead"
    assert float(rails["rail 0 (rail0)"]["busbw_Gbps"]) > 0 and rails["rail 0 (rail0)"]["status"] != "fail"
    with (run_dir / "charts" / "nodes.csv").open() as f:
        nodes = {r["label"]: r for r in csv.DictReader(f)}
    assert float(nodes["node02"]["busbw_Gbps"]) == 0.0 and nodes["node02"]["status"] == "fail"
    assert nodes["node02"]["detail"] == "weakest rail 1 (rail1): dead"
    assert {nodes[n]["status"] for n in ("node01", "node03")} == {"no target"}
    spec = (run_dir / "charts" / "rails.vl.json").read_text()
    assert "(dead)" in spec  # a bar with no length says dead in its label
    # the pair matrix: node02's two pairs on rail 1, never attempted, at 0 and marked dead; the live pair measured
    with (run_dir / "charts" / "pairs.csv").open() as f:
        cells = {(r["panel"], r["row"], r["col"]): (float(r["busbw_Gbps"]), r["mark"]) for r in csv.DictReader(f)}
    assert cells[("rail 1", "node01", "node02")] == (0.0, "dead") == cells[("rail 1", "node02", "node03")]
    assert cells[("rail 1", "node01", "node03")][0] > 0 and cells[("rail 1", "node01", "node03")][1] == ""
    assert {mark for (panel, _, _), (_, mark) in cells.items() if panel == "rail 0"} == {""}


def test_the_skipped_world_sweep_says_why(judged: tuple[Path, list[Item]]) -> None:
    run_dir, _ = judged
    said = "the rails test found the link node02 rail 1 (rail1) dead, and the world communicator crosses every link"
    assert sweep_skipped_line("the link node02 rail 1 (rail1)").startswith(f"# world sweep skipped: {said}")
    md = (run_dir / "report.md").read_text()
    (row,) = [r for r in md.splitlines() if r.startswith("| world sweep |")]
    assert f"all\\_reduce not measured: {said}" in row
    page = (run_dir / "report.html").read_text()
    assert f"all_reduce not measured: {said}" in page


def test_the_terminal_never_prints_a_rail_groups_header_without_rows() -> None:
    outcome = _outcome()
    shown = rails_table(outcome.rail_results, [], outcome.devices, outcome.defects, outcome.expected, [])
    assert "# rail groups" in shown
    bare = rails_table([], [], outcome.devices, outcome.defects, outcome.expected, [])
    # no bare header: one line says none ran (tests/test_rails_few_nodes.py holds its words)
    assert "# rail groups (local rank k" not in bare and "collective" not in bare
    assert "# rail groups: none measured" in bare
    assert describe(outcome.defects[0]) in bare


def test_only_the_link_checks_on_the_named_nic_fold() -> None:
    """By node, device and check name: an IB port (``mlx5_4:1``) folds into a defect that names its HCA; a check
    that does not read the link (port-mtu), another NIC, another node, a warned defect and a disagreement that
    stands without the folded answers do not."""
    link = RailDefect(
        named=NamedPart(kind="link", node="node02", rail=3, device="mlx5_4", conviction=Conviction(symptom="dead")),
        action="",
    )
    node02 = (
        CheckResult("rail", "fail", "mlx5_4:1: port DOWN (phys_state Disabled), expected ACTIVE/LinkUp", "mlx5_4:1"),
        CheckResult("port-mtu", "fail", "mlx5_4:1: active MTU 1024, expected 4096", "mlx5_4:1"),
        CheckResult("rail", "fail", "mlx5_5:1: port DOWN (phys_state Disabled), expected ACTIVE/LinkUp", "mlx5_5:1"),
    )
    healthy = (
        CheckResult("rail", "pass", "mlx5_4:1: ACTIVE LinkUp 400 Gb/s InfiniBand", "mlx5_4:1"),
        CheckResult("port-mtu", "pass", "mlx5_4:1: active MTU 4096", "mlx5_4:1"),
        CheckResult("rail", "pass", "mlx5_5:1: ACTIVE LinkUp 400 Gb/s InfiniBand", "mlx5_5:1"),
    )
    nodes = {"node01": healthy, "node02": node02, "node03": healthy}
    cross = compare_nodes([NodeReport(n, r, {}) for n, r in nodes.items()])
    found = told([link], nodes, cross)
    assert [(t.node, t.result) for t in found] == [("node02", node02[0])]
    # rail's disagreement stands on mlx5_5 still; port-mtu's was never the link's
    said = [r.reason for r in cross if r.check == "same-answers"]
    assert [s.split(":")[0] for s in said] == ["nodes disagree on rail", "nodes disagree on port-mtu"]
    assert told([dataclasses.replace(link, severity="warn")], nodes, cross) == []
    assert told([dataclasses.replace(link, named=dataclasses.replace(link.named, node="node01"))], nodes, cross) == []
    # with mlx5_5 healthy, the rail disagreement is the link's alone: it folds too
    alone = {**nodes, "node02": (node02[0], node02[1], healthy[2])}
    cross_alone = compare_nodes([NodeReport(n, r, {}) for n, r in alone.items()])
    folded = told([link], alone, cross_alone)
    assert [(t.node, t.result.check) for t in folded] == [("node02", "rail"), ("", "same-answers")]
    assert "nodes disagree on rail" in folded[1].result.reason


@pytest.mark.parametrize(
    ("kind", "node", "peer", "rail", "bars", "cells"),
    [
        # a dead node: its weakest rail is dead, and every rail's weakest node is it; rail 1's unmeasured pairs
        ("node", "node02", None, None, {"node02": 0.0}, {(1, "node01", "node02"), (1, "node02", "node03")}),
        # a dead pair: neither end's level is the pair's (their other pairs hold), only its cell is dead
        ("pair", "node01", "node02", 1, {}, {(1, "node01", "node02")}),
        # a dead rail: every node on it
        (
            "rail",
            None,
            None,
            1,
            {"node01": 0.0, "node02": 0.0, "node03": 0.0},
            {(1, "node01", "node02"), (1, "node02", "node03")},
        ),
    ],
)
def test_each_dead_kind_is_drawn_on_the_cells_it_covers(
    kind: str,
    node: str | None,
    peer: str | None,
    rail: int | None,
    bars: dict[str, float],
    cells: set[tuple[int, str, str]],
) -> None:
    outcome = _outcome()
    named = dataclasses.replace(outcome.defects[0].named, kind=kind, node=node, peer=peer, rail=rail, device=None)
    defect = dataclasses.replace(outcome.defects[0], named=named)
    doc = rails_doc(dataclasses.replace(outcome, defects=(defect,)))
    nodes = data.node_bars_table(doc, 0.9).frame.set_index("label")
    assert {n: 0.0 for n in nodes.index if nodes.loc[n, "busbw_Gbps"] == 0} == bars
    assert all(nodes.loc[n, "status"] == "fail" for n in bars)
    weakest = data.rail_bars_table(doc, 0.9).frame
    assert (weakest["busbw_Gbps"] == 0).sum() == (0 if kind == "pair" else 1 if kind == "rail" else 2)
    pairs = data._rail_measurements(doc, "pair")
    heat = matrices.pair_matrix_table(pairs, NODES, 0.9, rails=doc).frame
    dead = {(int(r.panel_order), r.row, r.col) for r in heat.itertuples() if r.mark == "dead"}
    assert dead == cells and (heat.loc[heat["mark"] == "dead", "busbw_Gbps"] == 0).all()


def test_a_dead_pair_is_said_with_both_its_nodes() -> None:
    """A 2-node rail's one pair named dead: the world sweep's reason names both ends ("the pair node01 rail 1"
    read as a node)."""
    conviction = Conviction(symptom="dead", pairs=1, slow_pairs=1, evidence=("node01-node02/rail1",))
    pair = RailDefect(
        named=NamedPart(kind="pair", node="node01", peer="node02", rail=1, conviction=conviction), action=""
    )
    assert _where(pair) == "the pair node01-node02 rail 1"
