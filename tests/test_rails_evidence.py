"""The fabric testifies: error counters per rails window, on fixture trees that change between windows, and
what they add to the named defects (their counts, the ``errors`` kind, the action) in rails.json, the human
lines, JUnit and the report."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import jsonschema
import pytest

from bench.exits import UserError
from bench.frame.decide import junit_case
from bench.profile.actions import Actions
from bench.profile.cluster import load_profile
from bench.profile.errors import ErrorLimits
from bench.rails.diagnosis import evidence, rails_outcome
from bench.rails.diagnosis.corroborate import corroborate
from bench.rails.diagnosis.evidence import join
from bench.rails.diagnosis.items import node_items, rail_items
from bench.rails.diagnosis.localise import Thresholds, diagnose
from bench.rails.diagnosis.matrix import PairTime
from bench.rails.measurement.windows import NodeCounters
from bench.rails.output import rails_doc, rails_table
from bench.rundir.finding_words import describe
from bench.rundir.junit import junit_xml
from bench.rundir.railsdoc import SCHEMA_PATH, RailsDoc
from tests.support.trees import fabric_trees
from tests.support.trees.counters import write_errors, write_net_errors, zero_errors
from tests.support.trees.fabric_trees import HcaSpec, NetSpec, NodeSpec, PortSpec

NODES = ("node01", "node02", "node03", "node04")
RAILS = ("mlx5_1", "mlx5_2")
"""Rail k is mlx5_{k+1}; mlx5_0 is the front-end port, as on a 1CC."""
WINDOWS: tuple[tuple[str, tuple[int, ...] | None], ...] = (
    ("forming the rail groups", None),
    ("every rail group at once", None),
    ("rail 0 alone", (0,)),
    ("rail 1 alone", (1,)),
    ("pair matrix", None),
    ("re-measurements", None),
)
"""The windows ``bench.rails.rank.rails_phase`` closes, in its order, on two rails."""
LINE = 100.0
PAIR_BYTES = 1_000_000
RAILS_SCHEMA = json.loads(SCHEMA_PATH.read_text())

Change = Callable[[Path, str, str], None]
"""(tree, node, window) -> change the tree while that window is open."""


def _tree(root: Path) -> Path:
    spec = NodeSpec(hcas=tuple(HcaSpec(name, (PortSpec(),)) for name in ("mlx5_0", *RAILS)), nets=(NetSpec("eth0"),))
    fabric_trees.build(root, spec)
    zero_errors(root, ["mlx5_0", *RAILS], ["eth0"])
    return root


def _carry(root: Path, device: str, nbytes: int) -> None:
    """The port moved ``nbytes`` more each way (the data counters count 4-byte words)."""
    base = root / "class" / "infiniband" / device / "ports" / "1" / "counters"
    for name in ("port_xmit_data", "port_rcv_data"):
        path = base / name
        path.write_text(f"{int(path.read_text()) + nbytes // 4}\n")


def _walk(tmp_path: Path, change: Change) -> tuple[dict[str, NodeCounters], dict[str, list[dict[str, int] | None]]]:
    """Every node's counter windows as the rails test walks them, with ``change`` applied inside each window
    (a rail's bytes move in its own window; the pairs move bytes on every rail)."""
    trees = {node: _tree(tmp_path / node) for node in NODES}
    readers = {node: NodeCounters(True, trees[node]) for node in NODES}
    alone: dict[str, list[dict[str, int] | None]] = {node: [] for node in NODES}
    for name, rails in WINDOWS:
        for node, root in trees.items():
            for k in rails if rails is not None else range(len(RAILS)):
                _carry(root, RAILS[k], 64 << 20)
            change(root, node, name)
            moved = readers[node].close(name, rails)
            if rails is not None:
                alone[node].append(moved)
    return readers, alone


def _times(slow: tuple[str, int] | None) -> list[PairTime]:
    """Every pair both ways on both rails at 95% of the line rate; the links in ``slow`` at 53%."""
    out = []
    for k in range(len(RAILS)):
        for a in range(len(NODES)):
            for b in range(a + 1, len(NODES)):
                hit = slow is not None and slow[1] == k and slow[0] in (NODES[a], NODES[b])
                rate = LINE * (0.53 if hit else 0.95)
                time_us = PAIR_BYTES * 8 / (rate * 1e9) * 1e6
                out += [PairTime(a, b, k, 0, 0, PAIR_BYTES, time_us), PairTime(b, a, k, 0, 0, PAIR_BYTES, time_us)]
                if hit:  # the suspect is re-measured twice, slow again each time
                    out += [PairTime(a, b, k, 0, 0, PAIR_BYTES, time_us, confirm=c) for c in (1, 2)]
    return out


def _outcome(tmp_path: Path, change: Change, slow: tuple[str, int] | None = None) -> rails_outcome.RailsOutcome:
    """What rank 0 builds from the gathered windows and pair times, before corroboration."""
    readers, alone = _walk(tmp_path, change)
    devices = [evidence.attribute(k, {n: alone[n][k] or {} for n in NODES}, PAIR_BYTES) for k in range(len(RAILS))]
    times = _times(slow)
    rates = dict.fromkeys(range(len(RAILS)), LINE)
    found = diagnose(
        rails_outcome.pair_matrix(times, NODES, len(RAILS)), rates, Thresholds(), rails_outcome.device_map(devices)
    )
    return rails_outcome.RailsOutcome(
        RailsDoc(nodes=NODES, error_windows=join({n: readers[n].windows for n in NODES})),
        len(RAILS),
        [],
        times,
        devices,
        named=found.defects,
        expected=dict(rates),
        counters={n: readers[n].whole() or {} for n in NODES},
    )


def _quiet(root: Path, node: str, window: str) -> None:
    pass


def test_error_deltas_are_recorded_per_window_and_device(tmp_path: Path) -> None:
    def change(root: Path, node: str, window: str) -> None:
        if node == "node02" and window == "rail 1 alone":
            write_errors(root, "mlx5_2", {"symbol_error": 12, "link_downed": 1})
        if node == "node04" and window == "pair matrix":
            write_errors(root, "mlx5_1", {"port_xmit_discards": 5})

    outcome = _outcome(tmp_path, change)
    windows = {w.window: w for w in outcome.written.error_windows}
    assert [w.window for w in outcome.written.error_windows] == [name for name, _ in WINDOWS]
    assert windows["rail 1 alone"].rails == (1,)
    assert windows["rail 1 alone"].to_json()["errors"] == {
        "node02": {"mlx5_2:1": {"errors": {"symbol_error": 12, "link_downed": 1}}}
    }
    assert windows["pair matrix"].to_json()["errors"] == {"node04": {"mlx5_1:1": {"errors": {"port_xmit_discards": 5}}}}
    assert all(not w.errors for name, w in windows.items() if name not in ("rail 1 alone", "pair matrix"))
    # the whole test lists every device read, zeros included, beside its bytes
    whole = outcome.counters["node01"]["mlx5_2:1"]
    assert (
        whole["bytes"] > 0
        and whole["errors"]["symbol_error"] == 0
        and "carrier_changes" in outcome.counters["node01"]["eth0"]["errors"]
    )
    doc = rails_doc(corroborate(outcome, ErrorLimits(), Actions())).to_json()
    jsonschema.validate(doc, RAILS_SCHEMA)
    assert doc["error_windows"][3] == {
        "window": "rail 1 alone",
        "rails": [1],
        "errors": {"node02": {"mlx5_2:1": {"errors": {"symbol_error": 12, "link_downed": 1}}}},
    }


def test_a_saturated_counter_is_reported_saturated_never_as_a_delta(tmp_path: Path) -> None:
    def change(root: Path, node: str, window: str) -> None:
        if node == "node03" and window == "every rail group at once":
            write_errors(root, "mlx5_1", {"symbol_error": 65535, "link_error_recovery": 3})

    outcome = corroborate(_outcome(tmp_path, change), ErrorLimits(), Actions())
    said = [(w.window, w.errors["node03"]["mlx5_1:1"].to_json()) for w in outcome.written.error_windows if w.errors]
    # from the window it stuck in on, every window says "saturated", none gives a count
    assert said[0] == (
        "every rail group at once",
        {"errors": {"link_error_recovery": 3}, "errors_saturated": ["symbol_error"]},
    )
    assert [entry for _, entry in said[1:]] == [{"errors": {}, "errors_saturated": ["symbol_error"]}] * 4
    assert outcome.counters["node03"]["mlx5_1:1"]["errors_saturated"] == ["symbol_error"]
    assert "symbol_error" not in outcome.counters["node03"]["mlx5_1:1"]["errors"]
    # link_error_recovery rose on a link whose bandwidth held: named, as a warning, with its saturated counter
    (named,) = outcome.defects
    assert (named.kind, named.node, named.rail, named.severity) == ("errors", "node03", 0, "warn")
    assert named.errors is not None and named.errors[0].errors_saturated == ("symbol_error",)
    assert "3 link_error_recovery, symbol_error saturated (no count) on mlx5_1 port 1 during the test" in describe(
        named
    )
    assert not outcome.failed


def test_a_named_link_fault_is_corroborated_by_its_own_counters(tmp_path: Path) -> None:
    def change(root: Path, node: str, window: str) -> None:
        if node == "node03" and window == "pair matrix":
            write_errors(root, "mlx5_2", {"symbol_error": 1204, "link_downed": 2})
        if node == "node03" and window == "rail 0 alone":  # another rail's window: still this device's counters
            write_errors(root, "mlx5_2", {"port_rcv_errors": 7})
        if node == "node02" and window == "pair matrix":  # another node's device on the same rail: not this link
            write_errors(root, "mlx5_2", {"symbol_error": 5})

    outcome = corroborate(_outcome(tmp_path, change, slow=("node03", 1)), ErrorLimits(), Actions())
    link = next(d for d in outcome.defects if d.kind == "link")
    assert (link.kind, link.node, link.rail, link.device) == ("link", "node03", 1, "mlx5_2")
    assert link.errors is not None and [(e.node, e.device, dict(e.errors)) for e in link.errors] == [
        ("node03", "mlx5_2:1", {"port_rcv_errors": 7, "symbol_error": 1204, "link_downed": 2})
    ]
    assert describe(link) == (
        "node03 rail 1 (mlx5_2): 53 Gb/s = 53% of 100 Gb/s in 3/3 pairs → link fault; 7 port_rcv_errors and 1,204 "
        "symbol_error and 2 link_downed on mlx5_2 port 1 during the test; action: reseat or replace the "
        "cable/transceiver on node03 mlx5_2 port 1"
    )
    assert outcome.failed


def test_a_slow_link_with_quiet_counters_points_at_the_hca_and_switch_port(tmp_path: Path) -> None:
    outcome = corroborate(_outcome(tmp_path, _quiet, slow=("node02", 0)), ErrorLimits(), Actions())
    (link,) = outcome.defects
    assert describe(link).endswith(
        "→ link fault; no error counter rose on mlx5_1 port 1 during the test; action: check the HCA and the switch "
        "port of node02 mlx5_1 port 1"
    )
    assert link.to_json()["errors"] == [
        {"node": "node02", "device": "mlx5_1:1", "errors": {}, "errors_saturated": [], "errors_reset": []}
    ]


def test_rising_counters_on_a_link_whose_bandwidth_held_are_named_errors(tmp_path: Path) -> None:
    def change(root: Path, node: str, window: str) -> None:
        if node == "node04" and window == "re-measurements":
            write_net_errors(root, "eth0", {"rx_dropped": 9})  # not a rail device: recorded, names nothing
        if node == "node01" and window == "pair matrix":
            write_errors(root, "mlx5_2", {"link_downed": 1})
            write_errors(root, "mlx5_1", {"port_rcv_errors": 4})  # not a fail_on_rise counter: names nothing

    plain = _outcome(tmp_path / "warn", change)
    outcome = corroborate(plain, ErrorLimits(), Actions())
    (named,) = outcome.defects
    assert (named.kind, named.node, named.rail, named.device, named.severity) == (
        "errors",
        "node01",
        1,
        "mlx5_2",
        "warn",
    )
    assert describe(named) == (
        "node01 rail 1 (mlx5_2): bandwidth held at 95 Gb/s = 95% of 100 Gb/s in 3 pairs → link errors (warning); "
        "1 link_downed on mlx5_2 port 1 during the test; action: reseat or replace the cable/transceiver on node01 "
        "mlx5_2 port 1"
    )
    assert not outcome.failed and outcome.warnings == (named,)
    text = rails_table([], [], outcome.devices, outcome.defects, outcome.expected, [])
    assert "# defects: none" in text and "# warnings (error counters rose while the bandwidth held)" in text
    # the profile can make it a failure
    strict = corroborate(plain, ErrorLimits(fail_on_errors=True), Actions())
    assert strict.failed and strict.defects[0].severity == "fail"
    assert "→ link errors (FAIL)" in describe(strict.defects[0])
    jsonschema.validate(rails_doc(strict).to_json(), RAILS_SCHEMA)


def test_actions_reach_rails_json_junit_and_the_profile(tmp_path: Path) -> None:
    def change(root: Path, node: str, window: str) -> None:
        if node == "node03" and window == "rail 1 alone":
            write_errors(root, "mlx5_2", {"symbol_error": 40})
        if node == "node01" and window == "pair matrix":
            write_errors(root, "mlx5_1", {"local_link_integrity_errors": 2})

    profile_path = tmp_path / "p.toml"
    profile_path.write_text(
        '[actions]\nlink_errors = "open a ticket: swap the cable on {node} {device} (rail {rail})"\n'
    )
    actions = load_profile(str(profile_path)).actions
    outcome = corroborate(_outcome(tmp_path, change, slow=("node03", 1)), ErrorLimits(), actions)
    doc = rails_doc(outcome).to_json()
    jsonschema.validate(doc, RAILS_SCHEMA)
    link, warned = doc["defects"]
    assert link["action"] == "open a ticket: swap the cable on node03 mlx5_2 port 1 (rail 1)"
    assert link["line"].endswith("; action: open a ticket: swap the cable on node03 mlx5_2 port 1 (rail 1)")
    assert warned["kind"] == "errors" and warned["action"].startswith("reseat or replace the cable/transceiver")
    cases = [junit_case(i) for i in rail_items(outcome) + node_items(list(NODES), outcome)]
    failure = next(c for c in cases if c.name == "rail1")
    assert (
        failure.status == "fail" and "action: open a ticket: swap the cable on node03 mlx5_2 port 1" in failure.message
    )
    node01 = next(c for c in cases if c.name == "node01")
    assert node01.status == "pass" and "WARN node01 rail 0 (mlx5_1): bandwidth held" in node01.details
    xml = junit_xml("railbench.accept", cases).decode()
    assert "action: open a ticket: swap the cable on node03 mlx5_2 port 1 (rail 1)" in xml


def test_every_kind_has_an_action() -> None:
    actions = Actions()
    assert actions.action("rail", rail=3) == "check leaf switch for rail 3"
    assert actions.action("node", node="node05") == "drain node05 and check its PCIe/NUMA/GPU placement"
    assert actions.action("gpu", node="node02", gpu=5) == "drain node02 and check NVLink of GPU 5"
    assert actions.action("dead", node="n2", device="eth2") == "check the port state and the cable of n2 eth2"


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('[actions]\ntray = "x"\n', "p.toml:2: unknown [actions] key 'tray'"),
        ("[actions]\nlink = 3\n", "p.toml:2: [actions] link = 3 must be a sentence in quotes"),
        ('[actions]\n\nlink = "check {rack}"\n', "p.toml:3: [actions] link uses {rack}; placeholders: {device}"),
        ('[actions]\nrail = "check {rail"\n', "p.toml:2: [actions] rail = 'check {rail'"),
        ('[actions]\nrail = "{0}"\n', "p.toml:2: [actions] rail uses {0}"),
        ("[errors]\nfail_on_errors = 1\n", "p.toml:2: [errors] fail_on_errors = 1 must be true or false"),
    ],
)
def test_bad_actions_and_fail_on_errors_are_refused_with_the_line(tmp_path: Path, table: str, message: str) -> None:
    path = tmp_path / "p.toml"
    path.write_text(table)
    with pytest.raises(UserError) as caught:
        load_profile(str(path))
    assert message in str(caught.value)


def test_a_dead_link_keeps_its_devices_counters(tmp_path: Path) -> None:
    root = _tree(tmp_path / "n2")
    write_net_errors(root, "eth0", {"carrier_changes": 2})
    reader = NodeCounters(True, root)
    write_net_errors(root, "eth0", {"carrier_changes": 4})
    reader.close("forming the rail groups")
    failures = [
        evidence.GroupFailure("n1", 0, "10.0.0.1", "eth0", "connect: timed out remote=[10.0.0.2]"),
        evidence.GroupFailure("n2", 0, "10.0.0.2", "eth0", "Network is unreachable"),
    ]
    dead = evidence.dead_links(failures, ["n1", "n2"], None)
    outcome = rails_outcome.RailsOutcome(
        RailsDoc(nodes=("n1", "n2"), error_windows=join({"n2": reader.windows})),
        1,
        named=tuple(dead),
        counters={"n2": reader.whole() or {}},
    )
    (link,) = corroborate(outcome, ErrorLimits(), Actions()).defects
    assert describe(link) == (
        "n2 rail 0 (eth0): no traffic in 1/1 pairs → link dead; 2 carrier_changes on eth0 during the test; action: "
        "check the port state and the cable of n2 eth0"
    )
    assert link.errors is not None and link.errors[0].errors == {"carrier_changes": 2}


@pytest.mark.parametrize("edge", range(len(WINDOWS) - 1))
def test_a_flap_across_a_window_edge_counts_every_carrier_change(tmp_path: Path, edge: int) -> None:
    """Rail 1's netdev on node03 goes down in one window and up in the next, at every edge of the test in turn
    (among them: down while every rail group runs, up while rail 0 runs alone). Both carrier changes count in
    the defect's sentence, as they do in the windows and in the whole-test block."""
    nets = ("rail0", "rail1")
    trees: dict[str, Path] = {}
    for node in NODES:
        root = fabric_trees.build(tmp_path / node, NodeSpec(hcas=(), nets=tuple(NetSpec(n) for n in nets)))
        zero_errors(root, [], list(nets))  # carrier_changes 2: the link came up once at boot
        trees[node] = root
    readers = {node: NodeCounters(True, root) for node, root in trees.items()}
    for index, (name, rails) in enumerate(WINDOWS):
        if index in (edge, edge + 1):  # down in the window before the edge, up in the one after it
            write_net_errors(trees["node03"], "rail1", {"carrier_changes": 3 if index == edge else 4})
        for reader in readers.values():
            reader.close(name, rails)
    windows = join({node: reader.windows for node, reader in readers.items()})
    said = [w.errors.get("node03", {}).get("rail1") for w in windows]
    assert sum((entry.errors or {}).get("carrier_changes", 0) for entry in said if entry is not None) == 2
    devices = [rails_outcome.RailDevices(k, dict.fromkeys(NODES, nets[k]), {}) for k in range(len(nets))]
    outcome = rails_outcome.RailsOutcome(
        RailsDoc(nodes=NODES, error_windows=windows),
        len(nets),
        devices=devices,
        counters={node: reader.whole() or {} for node, reader in readers.items()},
    )
    (named,) = corroborate(outcome, ErrorLimits(), Actions()).defects
    assert (named.kind, named.node, named.rail, named.severity) == ("errors", "node03", 1, "warn")
    assert named.errors is not None and dict(named.errors[0].errors) == {"carrier_changes": 2}
    line = describe(named)
    assert "2 carrier_changes on rail1 during the test" in line and "node03 rail1" in named.action, line


def test_every_check_has_an_action_of_its_own_apart_from_the_defect_kinds(tmp_path: Path) -> None:
    """Issue 33 item 9: each preflight check has a default action, and the ``rail`` check (a port) never takes
    the ``rail`` defect's (a whole rail's leaf switch), nor the other way round."""
    from bench.check.config import INPUT_CHECK
    from bench.preflight.checks import REGISTRY
    from bench.profile.actions import DEFAULT_CHECK_ACTIONS

    names = {check.name for check in REGISTRY} | {INPUT_CHECK, "same-versions", "same-answers", "cabling"}
    assert names == set(DEFAULT_CHECK_ACTIONS)
    actions = Actions()
    assert actions.action("rail", rail=3) == "check leaf switch for rail 3"
    assert (
        actions.for_check("rail", "n1", "mlx5_4:1")
        == "check the port state, the rate and the cable of n1 mlx5_4 port 1"
    )
    path = tmp_path / "p.toml"
    path.write_text('[actions]\nrail = "leaf {rail}"\n[actions.checks]\nrail = "port {node} {device}"\n')
    mine = load_profile(str(path)).actions
    assert (mine.action("rail", rail=2), mine.for_check("rail", "n1", "eth3")) == ("leaf 2", "port n1 eth3")
    path.write_text('[actions.checks]\n\nrails = "x"\n')
    with pytest.raises(UserError, match=r"p.toml:3: unknown \[actions.checks\] key 'rails'"):
        load_profile(str(path))
