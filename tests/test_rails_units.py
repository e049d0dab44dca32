"""Pure pieces of `railbench rails`: the layout, rail interfaces, settings, counter evidence and records."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bench.exits import UserError
from bench.frame.config_parts import Output
from bench.profile.cluster import load_profile
from bench.rails import documents
from bench.rails.diagnosis import evidence, rails_outcome
from bench.rails.diagnosis.corroborate import convicted
from bench.rails.diagnosis.matrix import PairTime
from bench.rails.diagnosis.rails_outcome import ExpectedNic, RailDevices
from bench.rails.plan.config import DEFAULTS, RailsConfig, resolve
from bench.rails.plan.layout import interface_for_rail, rail_interfaces, rail_layout
from bench.rundir.finding_words import counter_line, describe, sentences
from bench.rundir.findings import CounterFinding, Shortfall
from bench.rundir.railsdoc import RailsDoc
from tests.support.rails_configs import rails_config


def counter_lines(devices: list[RailDevices], quiet: list[str], tolerance_bytes: int, min_bytes: int) -> list[str]:
    """What ``bench.rails.diagnosis.evidence.findings`` found, as the terminal and rails.json say it."""
    return [counter_line(f) for f in evidence.findings(devices, quiet, tolerance_bytes, min_bytes)]


def test_layout_from_hostnames() -> None:
    layout = rail_layout(["a", "a", "b", "b", "c", "c"])
    assert layout.nodes == ("a", "b", "c") and layout.rails == 2
    assert layout.rail_group(1) == [1, 3, 5]
    assert layout.where(4) == (2, 0)
    # round-robin rank placement (mpirun --map-by node)
    spread = rail_layout(["a", "b", "a", "b"])
    assert spread.rail_group(0) == [0, 1] and spread.rail_group(1) == [2, 3]


def test_uneven_nodes_are_a_user_error() -> None:
    with pytest.raises(UserError, match="same number of ranks on every node"):
        rail_layout(["a", "a", "b"])


def test_rail_interfaces_follow_the_nccl_grammar_in_natural_order() -> None:
    available = ["lo", "eth0", "eth10", "eth2", "eth1", "docker0"]
    assert rail_interfaces("eth", available) == ["eth0", "eth1", "eth2", "eth10"]
    assert rail_interfaces("^eth0,lo,docker", available) == ["eth1", "eth2", "eth10"]
    assert rail_interfaces("=eth1,eth2", available) == ["eth1", "eth2"]
    assert interface_for_rail("=eth1,eth2", available, 1, "n1") == "eth2"
    with pytest.raises(UserError, match="local rank 2 needs rail interface number 3"):
        interface_for_rail("=eth1,eth2", available, 2, "n1")


def test_settings_come_from_flags_then_profile_then_defaults(tmp_path) -> None:
    path = tmp_path / "p.toml"
    path.write_text(
        'name = "p"\ntransport = "socket"\ncounter_tolerance_bytes = 1000\n[rails]\nrate_gbps = 200\n'
        'exclude = ["mlx5_0"]\n[network]\nsocket_ifnames = "=eth1,eth2"\noob_ifname = "eth0"\n'
        '[rails_test]\npair_bytes = "8M"\niters = 4\nrelative_fraction = 0.5\n'
    )
    profile = load_profile(str(path))
    s = resolve(rails_config(profile=str(path), iters=7), profile)
    assert (s.test.pair_bytes, s.test.iters, s.test.relative_fraction) == (8 << 20, 7, 0.5)
    assert s.test.rail_bytes == DEFAULTS["rail_bytes"] and s.test.warmup == DEFAULTS["warmup"]
    assert (s.socket_ifname, s.oob_ifname, s.rail_rate_gbps) == ("=eth1,eth2", "eth0", 200.0)
    assert s.quiet_devices == ("eth0", "mlx5_0") and s.profile.counter_tolerance_bytes == 1000
    flags = resolve(RailsConfig(profile=str(path), socket_ifname="eth", oob_ifname="ib0", rail_rate_gbps=100), profile)
    assert (flags.socket_ifname, flags.oob_ifname, flags.rail_rate_gbps) == ("eth", "ib0", 100)


def test_bad_profile_table_and_flags_are_user_errors(tmp_path) -> None:
    path = tmp_path / "p.toml"
    path.write_text('name = "p"\n[rails_test]\npairs_bytes = "8M"\n')
    with pytest.raises(UserError, match="unknown \\[rails_test\\] key 'pairs_bytes'"):
        resolve(RailsConfig(), load_profile(str(path)))
    path.write_text('name = "p"\n[rails_test]\niters = "many"\n')
    with pytest.raises(UserError, match=r'p\.toml:3: \[rails_test\] iters = "many" must be a whole number'):
        resolve(RailsConfig(), load_profile(str(path)))
    for bad, match in (
        ({"iters": 0}, "--iters"),
        ({"collectives": ("sendrecv",)}, "rail groups run"),
        ({"relative_fraction": 1.5}, "--relative-fraction"),
        ({"rail_rate_gbps": -1.0}, "--rail-rate-gbps"),
        ({"pair_bytes": 2}, "--pair-bytes"),
    ):
        with pytest.raises(UserError, match=match):
            rails_config(**bad)


def test_rank_argv_round_trips_through_the_parser(tmp_path) -> None:
    import argparse

    from bench.commands import rails as cmd
    from bench.commands.flags import config_or_spec

    config = rails_config(
        socket_ifname="eth",
        oob_ifname="eth0",
        pair_bytes=1 << 20,
        repeats=2,
        isolation=True,
        pairs=False,
        intra_node=True,
        relative_fraction=0.5,
        output=Output(cluster="c"),
        profile="generic",
    )
    parser = argparse.ArgumentParser()
    cmd.add_arguments(parser)
    argv = config.rank_argv(tmp_path)
    assert argv[0] == "rails"
    again = config_or_spec(parser.parse_args(argv[1:]), RailsConfig, cmd.config_from_args)  # as a rank reads it
    assert again == replace(config, output=replace(config.output, out=tmp_path))


def test_counter_attribution_and_findings() -> None:
    moved = {
        "n1": {"eth0": 9_000, "eth1": 50_000_000, "eth2": 10, "mlx5_0:1": 0},
        "n2": {"eth0": 8_000, "eth1": 10, "eth2": 49_000_000, "mlx5_0:1": 0},
    }
    rd = evidence.attribute(0, moved, 1_000_000, {"n1": ExpectedNic("eth1"), "n2": ExpectedNic("eth1")})
    assert rd.device == {"n1": "eth1", "n2": "eth2"}
    assert counter_lines([rd], ["eth0", "mlx5_0"], 64 * 1024, 1_000_000) == []
    # The rail left n2 through another interface: a path defect, with the expected and the actual one.
    (path,) = evidence.path_defects([rd], ["eth0", "mlx5_0"])
    assert (path.kind, path.node, path.rail, path.expected_device, path.carried) == ("path", "n2", 0, "eth1", ("eth2",))
    assert (
        describe(convicted(path, action=""))
        == "n2 rail 0 (eth2): bytes on eth2, expected eth1 (the interface it binds) → path misrouted"
    )
    noisy = evidence.attribute(1, {"n1": {"eth0": 5_000_000, "eth1": 40_000_000}}, 1_000_000)
    assert counter_lines([noisy], ["eth0"], 64 * 1024, 1_000_000) == [
        "n1 eth0 carried 4.8MB while rail 1 ran alone (tolerance 64KB)"
    ]
    idle = evidence.attribute(2, {"n1": {"eth1": 10}}, 1_000_000)
    assert counter_lines([idle], [], 0, 1_000_000) == ["n1 rail 2: no device moved 976.6KB while the rail ran alone"]
    over_mgmt = evidence.attribute(3, {"n1": {"eth0": 40_000_000, "eth1": 0}}, 1_000_000)
    assert counter_lines([over_mgmt], ["eth0"], 0, 1_000_000) == [
        "n1 rail 3: its bytes went over eth0, which must stay quiet"
    ]


def test_two_rails_on_one_hca_is_a_finding() -> None:
    a = evidence.attribute(0, {"n1": {"mlx5_1:1": 9_000_000}}, 1_000_000)
    b = evidence.attribute(1, {"n1": {"mlx5_1:1": 9_000_000, "mlx5_2:1": 10}}, 1_000_000)
    assert counter_lines([a, b], ["mlx5_0"], 0, 1_000_000) == ["n1: rails 0, 1 all went over mlx5_1"]
    assert rails_outcome.device_map([a, b]) == {("n1", 0): "mlx5_1", ("n1", 1): "mlx5_1"}


def test_pair_records_keep_the_slower_direction() -> None:
    nodes = ["n1", "n2", "n3"]
    times = [
        PairTime(0, 1, 0, 0, 0, 1_000_000, 1000.0),  # 8 Gb/s
        PairTime(1, 0, 0, 0, 0, 1_000_000, 4000.0),  # 2 Gb/s: the slower direction
        PairTime(0, 2, 0, 0, 1, 1_000_000, 1000.0),
        PairTime(2, 0, 0, 0, 1, 1_000_000, 1000.0),
    ]
    samples = rails_outcome.pair_samples(times, nodes)
    assert [(s.node_a, s.node_b, round(s.busbw_Gbps, 3)) for s in samples] == [("n1", "n2", 2.0), ("n1", "n3", 8.0)]
    rows = documents.pair_rows(times, nodes, {0: 10.0}, iters=3)
    assert [r["group"] for r in rows] == ["n1-n2/rail0", "n1-n3/rail0"]
    assert rows[0]["busbw_Gbps"] == pytest.approx(2.0) and rows[0]["efficiency"] == pytest.approx(0.2)
    assert rows[0]["time_us_min"] == 1000.0 and rows[0]["time_us_max"] == 4000.0
    cells = documents.pair_cells(times, nodes, {0: 10.0}, {("n2", 0): "mlx5_1"})
    assert (nodes[cells.node[1]], nodes[cells.peer[1]]) == ("n2", "n1")
    assert cells.device(0, cells.node[1]) == "mlx5_1" and cells.busbw_Gbps[1] == pytest.approx(2.0)


def test_rail_result_busbw_uses_the_collective_factor() -> None:
    r = rails_outcome.RailResult(0, "all_reduce", "concurrent", 4, 1_000_000, 250_000, 5, 1000.0, 900.0, 1100.0, 0)
    # algbw 8 Gb/s x 2(n-1)/n = 1.5
    assert r.busbw_Gbps == pytest.approx(12.0)
    rows = documents.rail_rows([r], {0: 400.0}, "float")
    assert rows[0]["scope"] == "rail" and rows[0]["group"] == "rail0" and rows[0]["target_Gbps"] == 400.0


def test_dead_links_from_the_transport_errors() -> None:
    from bench.rails.diagnosis.evidence import GroupFailure, dead_links
    from bench.rundir.finding_words import describe

    nodes = ["n1", "n2", "n3", "n4"]
    timed_out = "Gloo connectFullMesh failed with [pair.cc:152] timed out connecting: SO_ERROR: No route to host"
    reports = [
        GroupFailure("n1", 1, "10.1.0.1", "eth2", "Connect timeout [none]"),
        GroupFailure("n2", 1, "10.1.0.2", "eth2", "connect: Network is unreachable"),
        GroupFailure("n3", 1, "10.1.0.3", "eth2", f"{timed_out}, remote=[10.1.0.2]:7050"),
        GroupFailure("n4", 1, "10.1.0.4", "eth2", f"{timed_out}, remote=[10.1.0.2]:7051"),
        *(GroupFailure(n, 0, f"10.0.0.{i}", "eth1", None) for i, n in enumerate(nodes, 1)),
    ]
    (dead,) = dead_links(reports, nodes, 400.0)
    assert (dead.kind, dead.node, dead.rail, dead.conviction.symptom, dead.device) == ("link", "n2", 1, "dead", "eth2")
    assert describe(convicted(dead, action="")) == "n2 rail 1 (eth2): no traffic in 3/3 pairs → link dead"
    assert len(dead.conviction.evidence) == 4
    # Without a self-report, the node every witness names is the dead one.
    accused = [
        r if r.node != "n2" else GroupFailure("n2", 1, "10.1.0.2", "eth2", "Connect timeout [none]") for r in reports
    ]
    assert [(d.kind, d.node) for d in dead_links(accused, nodes, None)] == [("link", "n2")]
    # Nobody named: the rail as a whole could not form.
    vague = [GroupFailure(n, 3, None, None, "Connect timeout [none]") for n in nodes]
    assert [(d.kind, d.rail, d.conviction.symptom) for d in dead_links(vague, nodes, None)] == [("rail", 3, "dead")]


def test_outcome_reasons_per_rail_and_node() -> None:
    from bench.rundir.rails_records import Conviction, NamedPart, RailDefect

    pair = RailDefect(
        named=NamedPart(
            kind="pair",
            node="n1",
            peer="n3",
            rail=2,
            conviction=Conviction(
                measured_Gbps=100.0,
                expected_Gbps=400.0,
                basis="line rate",
                symptom="slow",
                slow_pairs=1,
                pairs=1,
                slow_samples=1,
                samples=1,
                spread=0.0,
                evidence=("n1-n3/rail2",),
            ),
        ),
        action="",
    )
    outcome = rails_outcome.RailsOutcome(
        RailsDoc(nodes=("n1", "n2", "n3")),
        3,
        defects=(pair,),
        findings=[
            CounterFinding("n2", (0, 1), "rails 0, 1 all went over mlx5_1", whole_node=True),
            CounterFinding("n3", (2,), "rail 2: its bytes went over eth0, which must stay quiet"),
        ],
        below_target=[Shortfall(1, "all_reduce", "concurrent", 1.0, 100.0, 90.0, 0.9, 3)],
    )
    assert outcome.failed
    assert sentences(outcome.rail_reasons(0)) == ["n2: rails 0, 1 all went over mlx5_1"]
    assert len(outcome.rail_reasons(1)) == 2
    assert sentences(outcome.rail_reasons(2)) == ["n3 rail 2: its bytes went over eth0, which must stay quiet"]
    assert sentences(outcome.node_reasons("n1"))[0].startswith("n1-n3 rail 2: 100 Gb/s = 25% of 400 Gb/s")
    assert len(outcome.node_reasons("n3")) == 2 and sentences(outcome.node_reasons("n2")) == [
        "n2: rails 0, 1 all went over mlx5_1"
    ]
