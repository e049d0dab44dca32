"""Which members join each rail group, decided from every rank's link report before any group forms
(``bench.rails.diagnosis.liveness``), and the connect probe itself on loopback
(``bench.rails.measurement.links.connect_all``)."""

from __future__ import annotations

import socket
from dataclasses import replace
from pathlib import Path

import pytest

from bench.fabric.sysfs import Sysfs, nvidia_gpus
from bench.rails.diagnosis.corroborate import convicted
from bench.rails.diagnosis.liveness import LinkReport, dead_defects, decide
from bench.rails.measurement.links import connect_all, ib_port
from bench.rundir.finding_words import describe
from bench.rundir.named_parts import NamedPart
from tests.support.trees import fabric_trees


def _said(part: NamedPart) -> str:
    """The line of ``part`` as liveness names it: no counters read, no cause, no action yet."""
    return describe(convicted(part, action=""))


NODES = ("n1", "n2", "n3", "n4", "n5")
TIMED_OUT = "Connection timed out"
NO_ROUTE = "No route to host"


def reports(
    rails: int, nodes: int, down: set[tuple[int, int]] = frozenset(), cut: set[tuple[int, int, int]] = frozenset()
) -> list[LinkReport]:
    """Every rank's report: ``down`` (node, rail) ports are down (their own connects say ENETUNREACH, their
    peers' time out); ``cut`` (rail, a, b) pairs cannot connect although both ports are up."""
    out = []
    for k in range(rails):
        for n in range(nodes):
            reached, failed = [], []
            for p in range(nodes):
                if p == n:
                    continue
                if (n, k) in down:
                    failed.append((p, "Network is unreachable"))
                elif (p, k) in down:
                    failed.append((p, NO_ROUTE))
                elif (k, min(n, p), max(n, p)) in cut:
                    failed.append((p, TIMED_OUT))
                else:
                    reached.append(p)
            up = (n, k) not in down
            out.append(
                LinkReport(
                    n, k, f"rail{k}", f"198.18.{k}.{n + 1}", "up" if up else "down", up, tuple(reached), tuple(failed)
                )
            )
    return out


def test_a_port_down_leaves_its_rail_group_and_nothing_else() -> None:
    m = decide(reports(3, 5, down={(1, 0)}), 5, 3)
    assert m.live == ((0, 2, 3, 4), (0, 1, 2, 3, 4), (0, 1, 2, 3, 4))
    assert [(d.kind, d.node, d.rail) for d in m.dead] == [("link", 1, 0)]
    assert not m.pair_open(1, 3, 0) and m.pair_open(1, 3, 1) and m.pair_open(0, 4, 0)
    (defect,) = dead_defects(m, NODES, None, {(1, 0): "rail0"})
    assert (defect.kind, defect.node, defect.rail, defect.conviction.symptom, defect.device) == (
        "link",
        "n2",
        0,
        "dead",
        "rail0",
    )
    assert _said(defect) == "n2 rail 0 (rail0): no traffic in 4/4 pairs → link dead"
    assert "n2: port rail0 is down" in defect.conviction.evidence
    assert "n1-n2/rail0: not attempted" in defect.conviction.evidence


def test_a_dead_peer_whose_port_says_up_is_found_by_its_peers() -> None:
    # The port reads up (a switch-side fault), but nobody connects with node 3 on rail 1.
    cut = {(1, min(3, p), max(3, p)) for p in range(5) if p != 3}
    m = decide(reports(2, 5, cut=cut), 5, 2)
    assert m.live == ((0, 1, 2, 3, 4), (0, 1, 2, 4))
    assert [(d.kind, d.node, d.rail) for d in m.dead] == [("link", 3, 1)]


def test_one_cable_between_two_healthy_ends_is_a_dead_pair() -> None:
    m = decide(reports(1, 4, cut={(0, 1, 2)}), 4, 1)
    assert [(d.kind, d.node, d.peer, d.rail) for d in m.dead] == [("pair", 1, 2, 0)]
    assert m.live == ((0, 1, 3),) and (2, 0) in m.unmeasured  # a group cannot form around the broken pair


def test_a_rail_where_nobody_connects_is_the_rail_and_a_node_dead_everywhere_is_the_node() -> None:
    everything = {(0, a, b) for a in range(4) for b in range(a + 1, 4)}
    m = decide(reports(2, 4, cut=everything), 4, 2)
    assert [(d.kind, d.rail) for d in m.dead] == [("rail", 0)] and m.live[0] == ()
    m = decide(reports(2, 4, down={(2, 0), (2, 1)}), 4, 2)
    assert [(d.kind, d.node) for d in m.dead] == [("node", 2)]
    (defect,) = dead_defects(m, NODES[:4], 400.0, {})
    assert _said(defect).startswith("n3 (every rail): no traffic")


def test_every_port_down_is_the_rail_and_two_nodes_cannot_tell_a_link_from_the_rail() -> None:
    m = decide(reports(1, 3, down={(0, 0), (1, 0), (2, 0)}), 3, 1)
    assert [(d.kind, d.rail) for d in m.dead] == [("rail", 0)]
    m = decide(reports(1, 2, down={(0, 0), (1, 0)}), 2, 1)
    assert [(d.kind, d.rail) for d in m.dead] == [("rail", 0)] and m.live == ((),)
    (rail,) = dead_defects(m, NODES[:2], None, {})
    assert _said(rail).startswith("rail 0 (every node): ")
    # Two ports up that cannot connect: the rail's one pair, which cannot tell either end's link from the switch.
    m = decide(reports(1, 2, cut={(0, 0, 1)}), 2, 1)
    assert [(d.kind, d.node, d.peer, d.rail) for d in m.dead] == [("pair", 0, 1, 0)] and m.live == ((),)
    (pair,) = dead_defects(m, NODES[:2], None, {})
    assert pair.only_pair is True
    assert _said(pair) == (
        "n1-n2 rail 0: no traffic in 1/1 pairs, the rail's only pair: n1's link, n2's link or the switch, one pair "
        "cannot tell which → pair dead"
    )


def test_reports_cross_the_store_as_json() -> None:
    (r, *_) = reports(1, 3, down={(0, 0)})
    assert LinkReport.from_json(r.to_json()) == r


@pytest.mark.slow
def test_connect_all_reaches_a_listener_and_names_what_fails() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    closed = socket.create_server(("127.0.0.1", 0))
    refused_port = closed.getsockname()[1]
    closed.close()
    try:
        reached, failed = connect_all(
            "127.0.0.1", {1: ("127.0.0.1", listener.getsockname()[1]), 2: ("127.0.0.1", refused_port)}, 0.6
        )
    finally:
        listener.close()
    assert reached == (1,)
    assert failed == ((2, "Connection refused"),)


def test_liveness_reads_the_port_nearest_each_rails_gpu_where_hca_names_are_out_of_gpu_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Rail k's NIC is GPU k's nearest (the path proof's and NCCL's mapping), not the k-th HCA by name: with
    # names out of GPU order a DOWN port read by name order is charged to another rail, and the rail whose
    # NIC is really dead then fails its group probe too, the same fault twice.
    monkeypatch.setenv("NCCL_IB_HCA", "^=mlx5_0")
    down_gpu = 2
    healthy = Sysfs(fabric_trees.build(tmp_path / "healthy", fabric_trees.hca_names_out_of_gpu_order()))
    broken = Sysfs(fabric_trees.build(tmp_path / "broken", fabric_trees.hca_names_out_of_gpu_order(down_gpu)))
    names = fabric_trees.SHUFFLED_HCA_NAMES
    assert [ib_port(k, healthy).device for k in range(8)] == [f"mlx5_{names[k]}:1" for k in range(8)]
    # A rank that knows its GPU (CUDA) reads the port nearest that GPU, whatever its rail number says.
    gpu2 = nvidia_gpus(broken)[down_gpu].address
    assert ib_port(5, broken, gpu2).device == f"mlx5_{names[down_gpu]}:1"
    found = []
    for node, sysfs in enumerate((healthy, healthy, broken)):
        for k in range(8):
            port = ib_port(k, sysfs)
            found.append(LinkReport(node, k, port.device, None, port.words, port.up))
    membership = decide(found, 3, 8)
    assert [(d.kind, d.node, d.rail) for d in membership.dead] == [("link", 2, down_gpu)]
    devices = {(r.node, r.rail): r.device for r in found}
    (defect,) = dead_defects(membership, NODES[:3], None, devices)
    assert defect.device == f"mlx5_{names[down_gpu]}:1" and "DOWN (Disabled)" in " ".join(defect.conviction.evidence)


def test_with_no_gpu_on_the_node_rail_k_is_the_kth_selected_port_in_any_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A DOWN port keeps its place: were only ACTIVE ports counted, rails 2..6 would read their neighbours' NICs
    # and rail 7 none, and the DOWN port would be charged to no rail at all.
    monkeypatch.setenv("NCCL_IB_HCA", "^=mlx5_0")
    spec = replace(fabric_trees.port_down("mlx5_3"), gpus=())
    sysfs = Sysfs(fabric_trees.build(tmp_path / "nogpu", spec))
    ports = [ib_port(k, sysfs) for k in range(8)]
    assert [p.device for p in ports] == [f"mlx5_{k + 1}:1" for k in range(8)]
    assert [k for k, p in enumerate(ports) if not p.up] == [2] and ports[2].words == "DOWN (Disabled)"
    monkeypatch.setenv("NCCL_IB_HCA", "=mlx5_4:1")  # a rank pinned to one port reads that port, on any rail
    assert ib_port(0, sysfs).device == "mlx5_4:1"
