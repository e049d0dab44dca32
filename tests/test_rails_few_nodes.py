"""Rank 0's judgment when a rail has 0, 1 or 2 live nodes (issue 41), without ranks: what every rank would
send (``bench.rails.diagnosis.judge.RankReport``), judged, corroborated, written and printed as a run does.

A 2-node cluster (the smallest a 1-Click Cluster comes in) has one pair per rail: a dead link leaves its rail
with one live node and no group; a lost leaf leaves none; a slow pair is every pair of its rail and of both
ends' links, so it is named as the pair and says that its end cannot be told. The namespace testbed runs the
same cases with real ranks (``tests/test_rails_netns_two_nodes.py``).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from pathlib import Path

import pytest

from bench.profile.cluster import load_profile
from bench.rails import output
from bench.rails.diagnosis import judge, rails_outcome
from bench.rails.diagnosis.corroborate import corroborate
from bench.rails.diagnosis.evidence import NodeWindow
from bench.rails.diagnosis.items import rail_items
from bench.rails.diagnosis.liveness import LinkReport, Membership, decide
from bench.rails.diagnosis.matrix import PairTime
from bench.rails.output import rails_table
from bench.rails.plan.config import RailsSettings, resolve
from bench.rails.plan.layout import RailLayout
from tests.support.rails_configs import rails_config
from tests.support.testbeds.netns_testbed import PROFILE

RAILS = 2
NBYTES = 4 << 20
HEALTHY_GBPS = (7.6, 8.4, 8.0, 7.8, 8.2, 7.9)
"""Healthy pairs' rates, in turn: a spread like the testbed's, well inside a relative test's yardstick."""
SLOW_GBPS = 0.15
"""The testbed's 150 Mbit/s token bucket."""

Link = tuple[int, int]
"""(node, rail)."""


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> RailsSettings:
    path = tmp_path_factory.mktemp("profile") / "netns.toml"
    path.write_text(PROFILE)
    return resolve(rails_config(profile=str(path)), load_profile(str(path)))


def _reports(nodes: int, down: Collection[Link]) -> list[LinkReport]:
    """Every rank's link report as the socket probe makes it: a port down says its own connects are
    unreachable, and its peers' connects to it find no route."""
    out = []
    for k in range(RAILS):
        for n in range(nodes):
            reached, failed = [], []
            for p in (p for p in range(nodes) if p != n):
                if (n, k) in down:
                    failed.append((p, "Network is unreachable"))
                elif (p, k) in down:
                    failed.append((p, "No route to host"))
                else:
                    reached.append(p)
            up = (n, k) not in down
            port = "up" if up else "down (no carrier)"
            address = f"198.18.{k}.{n + 1}"
            out.append(LinkReport(n, k, f"rail{k}", address, port, up, tuple(reached), tuple(failed)))
    return out


def _time_us(gbps: float) -> float:
    return NBYTES * 8 / (gbps * 1e3)


def _gathered(
    layout: RailLayout, membership: Membership, slow: Collection[tuple[int, int, int]], flapped: Collection[Link]
) -> list[judge.RankReport]:
    """What each rank sends rank 0: its rail group's result (the group's first live node), its pairs both ways
    (``slow``: (rail, a, b) cells at the token bucket's rate, measured again twice as a confirmation does) and
    on local rank 0 its node's counters, rail k's interface carrying rail k alone where its link is in a group
    (``flapped`` links went down and up four times in the pair matrix's window)."""
    nodes = layout.nodes
    healthy = iter(HEALTHY_GBPS * 8)
    out: list[judge.RankReport] = []
    for a, host in enumerate(nodes):
        for k in range(RAILS):
            live = membership.live[k]
            times = []
            for b in (b for b in range(len(nodes)) if b != a and membership.pair_open(a, b, k)):
                cell = (k, min(a, b), max(a, b))
                rate = SLOW_GBPS if cell in slow else next(healthy)
                passes = (0, 1, 2) if cell in slow else (0,)
                times += [PairTime(a, b, k, 0, 0, NBYTES, _time_us(rate), confirm=c) for c in passes]
            result = rails_outcome.RailResult(
                k, "all_reduce", "concurrent", len(live), NBYTES, NBYTES // 4, 3, 9e3, 8e3, 1e4, 0
            )
            flaps = {
                f"rail{j}": {"errors": {"carrier_changes": 4}, "errors_saturated": [], "errors_reset": []}
                for j in range(RAILS)
                if (a, j) in flapped
            }
            moved = [
                {f"rail{j}": (3 * NBYTES if j == w and a in membership.live[w] else 0) for j in range(RAILS)}
                for w in range(RAILS)
            ]
            out.append(
                {
                    "host": host,
                    "results": [result] if live and live[0] == a else [],
                    "times": times,
                    "windows": moved if k == 0 else [None] * RAILS,
                    "whole": {f"rail{j}": {"bytes": 9 * NBYTES, "errors": {}} for j in range(RAILS)}
                    if k == 0
                    else None,
                    "error_windows": [NodeWindow("pair matrix", None, flaps)] if k == 0 else [],
                    "ifname": f"rail{k}",
                    "nic": rails_outcome.ExpectedNic(f"rail{k}"),
                    "rail": k,
                    "rates": None,
                }
            )
    return out


def _judged(
    settings: RailsSettings,
    tmp_path: Path,
    nodes: int,
    down: Collection[Link] = (),
    slow: Collection[tuple[int, int, int]] = (),
    flapped: Collection[Link] = (),
    rate_Gbps: float | None = None,
) -> tuple[Membership, rails_outcome.RailsOutcome, Mapping[str, object], dict[str, str], str]:
    """The membership, the outcome (corroborated), rails.json as written, each rail item's state and the table."""
    names = tuple(f"node{i:02d}" for i in range(1, nodes + 1))
    layout = RailLayout(names, tuple(tuple(a * RAILS + k for k in range(RAILS)) for a in range(nodes)))
    reports = _reports(nodes, down)
    membership = decide(reports, nodes, RAILS)
    gathered = _gathered(layout, membership, slow, flapped)
    if rate_Gbps is not None:  # every port's rate as sysfs gives it, read by each node's local rank 0
        for g in gathered:
            g["rates"] = {f"rail{j}": rate_Gbps for j in range(RAILS)} if g["windows"][0] is not None else None
    # Confirmation picks the suspects from the matrix alone, before any re-measurement: the slow cells.
    first = [{**g, "times": [t for t in g["times"] if not t.confirm]} for g in gathered]
    found = judge.suspect_cells(settings, layout, first, membership)  # type: ignore[arg-type]
    assert {(rail, a, b) for _repeat, _round, rail, a, b in found} == set(slow)
    outcome = judge.outcome(settings, layout, gathered, membership, reports)
    outcome = corroborate(outcome, settings.profile.errors, settings.profile.actions)
    output.write_outputs(outcome, tmp_path, None, settings.test.iters)
    doc = json.loads((tmp_path / "rails.json").read_text())
    items = {i.name: i.state for i in rail_items(outcome)}
    samples = [s for s in rails_outcome.pair_samples(outcome.pair_times, outcome.nodes) if not s.confirm]
    table = rails_table(
        outcome.rail_results, samples, outcome.devices, outcome.defects, outcome.expected, outcome.findings
    )
    return membership, outcome, doc, items, table


def _named(doc: Mapping[str, object]) -> list[tuple[object, ...]]:
    defects = doc["defects"]
    assert isinstance(defects, list)
    return [(d["kind"], d["node"], d.get("peer"), d["rail"], d["symptom"]) for d in defects]


def test_two_nodes_clean_name_nothing_and_judge_every_rail(settings: RailsSettings, tmp_path: Path) -> None:
    membership, _, doc, items, table = _judged(settings, tmp_path, 2)
    assert membership.live == ((0, 1), (0, 1)) and doc["defects"] == []
    # One pair per rail, compared across the two rails: each rail judged by its peers, and passed.
    assert items == {"rail0": "pass", "rail1": "pass"}
    assert "# rail 1 carried by rail1" in table and "# defects: none" in table


def test_two_nodes_a_dead_link_is_that_link_and_the_live_rail_is_only_measured(
    settings: RailsSettings, tmp_path: Path
) -> None:
    """One live node on rail 1: no group, no pair; the DOWN port says which end. Rail 0's one pair has nothing
    to be compared with, so rail 0 is measured, not passed (nothing unjudged says PASS)."""
    membership, outcome, doc, items, table = _judged(settings, tmp_path, 2, down={(1, 1)})
    assert membership.live == ((0, 1), ())
    assert _named(doc) == [("link", "node02", None, 1, "dead")]
    (defect,) = outcome.defects
    assert defect.action == "check the port state and the cable of node02 rail1"
    assert defect.line is None and "node02 rail 1 (rail1): no traffic in 1/1 pairs → link dead" in table
    assert items == {"rail0": "measured", "rail1": "fail"}
    assert doc["too_noisy"].startswith("one pair measured (node01-node02 rail 0)")
    assert "# rail 1 carried by nothing measured (no rail group)" in table
    assert [r["rail"] for r in doc["measurements"] if r["kind"] == "rail"] == [0]


def test_two_nodes_a_dead_rail_leaves_the_line_rate_to_judge_the_other(settings: RailsSettings, tmp_path: Path) -> None:
    """Where sysfs gives each port's rate, a rail with no group has none to read: rail 0's pair is still judged
    against its line rate (not left to a relative test that has one pair to compare with)."""
    _, _, doc, _, _ = _judged(settings, tmp_path, 2, down={(1, 1)}, slow={(0, 0, 1)}, rate_Gbps=8.0)
    assert _named(doc) == [("link", "node02", None, 1, "dead"), ("pair", "node01", "node02", 0, "slow")]
    assert doc["defects"][1]["basis"] == "line rate" and doc["too_noisy"] is None
    assert [r["line_rate_Gbps"] for r in doc["rails"]] == [8.0, None]


def test_two_nodes_both_ports_down_on_a_rail_is_the_rail(settings: RailsSettings, tmp_path: Path) -> None:
    """A lost leaf on 2 nodes: no live node on rail 1, named the rail with the rail's action."""
    membership, outcome, doc, items, _ = _judged(settings, tmp_path, 2, down={(0, 1), (1, 1)})
    assert membership.live == ((0, 1), ())
    assert _named(doc) == [("rail", None, None, 1, "dead")]
    assert outcome.defects[0].action == "check leaf switch for rail 1"
    assert items["rail1"] == "fail"


def test_two_nodes_a_node_dead_on_every_rail_leaves_no_group(settings: RailsSettings, tmp_path: Path) -> None:
    membership, outcome, doc, items, table = _judged(settings, tmp_path, 2, down={(1, 0), (1, 1)})
    assert membership.live == ((), ())
    assert _named(doc) == [("node", "node02", None, None, "dead")]
    assert outcome.defects[0].action == "check the port state and the cable of node02 on every rail"
    assert outcome.pair_times == [] and outcome.rail_results == []
    assert "# rail groups: none measured (no rail had two live nodes)" in table
    assert "# rail groups (local rank k" not in table
    assert "fail" in items.values()


def test_two_nodes_a_slow_pair_is_the_pair_and_says_its_end_cannot_be_told(
    settings: RailsSettings, tmp_path: Path
) -> None:
    _, _, doc, items, _ = _judged(settings, tmp_path, 2, slow={(1, 0, 1)})
    assert _named(doc) == [("pair", "node01", "node02", 1, "slow")]
    (defect,) = doc["defects"]
    assert defect["only_pair"] is True and 0.1 < defect["measured_Gbps"] < 0.2
    assert (
        "node01-node02 rail 1: 0.15 Gb/s = 2% of peers' 7.6 Gb/s in 1/1 pairs, the rail's only pair: node01's link, "
        "node02's link or the switch, one pair cannot tell which → pair fault"
    ) in defect["line"]
    assert defect["action"] == "check the switch path between node01 and node02 on rail 1"
    assert items == {"rail0": "pass", "rail1": "fail"}


def test_two_nodes_a_slow_pair_whose_one_end_flapped_is_that_end(settings: RailsSettings, tmp_path: Path) -> None:
    """The port's counters tell what one pair cannot: node02's rail1 went down and up, node01's did not."""
    _, _, doc, items, _ = _judged(settings, tmp_path, 2, slow={(1, 0, 1)}, flapped={(1, 1)})
    assert _named(doc) == [("link", "node02", None, 1, "slow")]
    (defect,) = doc["defects"]
    assert "only_pair" not in defect and [(e["node"], e["device"]) for e in defect["errors"]] == [("node02", "rail1")]
    assert "→ link fault; 4 carrier_changes on rail1 during the test" in defect["line"]
    assert defect["action"] == "reseat or replace the cable/transceiver on node02 rail1"
    assert items == {"rail0": "pass", "rail1": "fail"}
    # Both ends' counters rose: nothing tells them apart, and the pair stays the pair.
    _, _, doc, _, _ = _judged(settings, tmp_path, 2, slow={(1, 0, 1)}, flapped={(0, 1), (1, 1)})
    assert _named(doc) == [("pair", "node01", "node02", 1, "slow")]


def test_three_nodes_one_live_node_on_a_rail_names_its_dead_links(settings: RailsSettings, tmp_path: Path) -> None:
    """A leaf lost but for one node: rail 1 has one live node, so no group; the two DOWN ports are named."""
    membership, _, doc, items, table = _judged(settings, tmp_path, 3, down={(0, 1), (1, 1)})
    assert membership.live == ((0, 1, 2), ())
    assert _named(doc) == [("link", "node01", None, 1, "dead"), ("link", "node02", None, 1, "dead")]
    assert items == {"rail0": "pass", "rail1": "fail"}
    assert "# rail 1 carried by nothing measured (no rail group)" in table


def test_three_nodes_two_live_nodes_on_a_rail_leave_one_pair(settings: RailsSettings, tmp_path: Path) -> None:
    """node03's rail 1 is down and the pair left on rail 1 is slow: the dead link, and the pair that cannot
    tell its end (never rail 1 as a whole, nor one end's link)."""
    membership, _, doc, _, _ = _judged(settings, tmp_path, 3, down={(2, 1)}, slow={(1, 0, 1)})
    assert membership.live == ((0, 1, 2), (0, 1))
    assert _named(doc) == [("link", "node03", None, 1, "dead"), ("pair", "node01", "node02", 1, "slow")]
    assert doc["defects"][1]["only_pair"] is True


def test_three_nodes_a_slow_link_is_still_the_link(settings: RailsSettings, tmp_path: Path) -> None:
    """With three live nodes a link has two partners and is told as before; no pair says it is a rail's only."""
    _, _, doc, _, _ = _judged(settings, tmp_path, 3, slow={(1, 0, 2), (1, 1, 2)})
    assert _named(doc) == [("link", "node03", None, 1, "slow")]
    assert "only_pair" not in doc["defects"][0]


def test_four_nodes_a_rail_of_one_or_two_live_nodes(settings: RailsSettings, tmp_path: Path) -> None:
    """The same on 4 nodes: rail 1 with one live node names its three DOWN ports; with two live nodes, their
    slow pair is the rail's only pair."""
    membership, _, doc, items, _ = _judged(settings, tmp_path, 4, down={(0, 1), (1, 1), (2, 1)})
    assert membership.live == ((0, 1, 2, 3), ())
    assert _named(doc) == [("link", f"node0{n}", None, 1, "dead") for n in (1, 2, 3)]
    assert items == {"rail0": "pass", "rail1": "fail"}
    membership, _, doc, _, _ = _judged(settings, tmp_path, 4, down={(0, 1), (1, 1)}, slow={(1, 2, 3)})
    assert membership.live == ((0, 1, 2, 3), (2, 3))
    assert _named(doc)[2:] == [("pair", "node03", "node04", 1, "slow")] and doc["defects"][2]["only_pair"] is True
