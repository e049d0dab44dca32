"""Error counters in every snapshot: per-window deltas per device, saturated counters, and run.json's shape."""

from __future__ import annotations

import json
from pathlib import Path

from bench.fabric import counters, error_counters
from bench.fabric.sysfs_io import Sysfs
from bench.rundir import runjson
from tests.support.trees import fabric_trees
from tests.support.trees.counters import write_errors, write_net_errors, zero_errors
from tests.support.trees.fabric_trees import HcaSpec, NetSpec, NodeSpec, PortSpec


def _node(tmp_path: Path) -> Path:
    spec = NodeSpec(
        hcas=(HcaSpec("mlx5_0", (PortSpec(),)), HcaSpec("mlx5_1", (PortSpec(),)), HcaSpec("mlx5_2", (PortSpec(),))),
        nets=(NetSpec("eth0"), NetSpec("eth1")),
    )
    root = fabric_trees.build(tmp_path / "node", spec)
    zero_errors(root, ["mlx5_0", "mlx5_1", "mlx5_2"], ["eth0", "eth1"])
    return root


def test_error_deltas_per_device_per_window(tmp_path: Path) -> None:
    root = _node(tmp_path)
    first = counters.snapshot(root)
    write_errors(root, "mlx5_1", {"symbol_error": 12, "link_downed": 1})
    write_errors(root, "mlx5_1", {"out_of_sequence": 7}, "hw_counters")
    write_net_errors(root, "eth1", {"carrier_changes": 4, "rx_crc_errors": 3})
    second = counters.snapshot(root)
    write_errors(root, "mlx5_2", {"port_xmit_discards": 5})
    third = counters.snapshot(root)

    window1 = counters.error_delta(first, second)
    assert window1["mlx5_1:1"].risen == {"symbol_error": 12, "link_downed": 1, "out_of_sequence": 7}
    assert window1["eth1"].risen == {"rx_crc_errors": 3, "carrier_changes": 2}
    assert window1["mlx5_2:1"].risen == {} and window1["eth0"].risen == {}
    window2 = counters.error_delta(second, third)
    assert window2["mlx5_1:1"].risen == {}  # the first window's errors stay in the first window
    assert window2["mlx5_2:1"].risen == {"port_xmit_discards": 5}
    assert error_counters.describe(window1["mlx5_1:1"]) == "symbol_error +12, link_downed +1, out_of_sequence +7"


def test_saturated_counters_are_saturated_never_a_delta(tmp_path: Path) -> None:
    root = _node(tmp_path)
    write_errors(root, "mlx5_1", {"symbol_error": 65535, "local_link_integrity_errors": 3})
    before = counters.snapshot(root)
    write_errors(root, "mlx5_1", {"local_link_integrity_errors": 15, "link_downed": 255})  # both at their top
    write_errors(root, "mlx5_2", {"link_error_recovery": 254})  # one below its 8-bit maximum: counted
    after = counters.snapshot(root)
    errors = counters.error_delta(before, after)
    port = errors["mlx5_1:1"]
    assert port.saturated == ("symbol_error", "link_downed", "local_link_integrity_errors")
    assert port.counts["symbol_error"].delta is None and port.counts["link_downed"].delta is None
    assert "symbol_error" not in port.risen and "link_downed" not in port.risen
    assert errors["mlx5_2:1"].risen == {"link_error_recovery": 254}
    entry = counters.to_json(counters.delta(before, after), errors)["mlx5_1:1"]
    assert entry["errors_saturated"] == ["symbol_error", "link_downed", "local_link_integrity_errors"]
    assert "symbol_error" not in entry["errors"] and "link_downed" not in entry["errors"]
    assert error_counters.describe(port).startswith("saturated: symbol_error")


def test_a_counter_cleared_during_the_window_is_reset_not_negative(tmp_path: Path) -> None:
    root = _node(tmp_path)
    write_errors(root, "mlx5_1", {"port_rcv_errors": 40})
    before = counters.snapshot(root)
    write_errors(root, "mlx5_1", {"port_rcv_errors": 2})  # perfquery -R cleared it
    port = counters.error_delta(before, counters.snapshot(root))["mlx5_1:1"]
    assert port.reset == ("port_rcv_errors",) and port.counts["port_rcv_errors"].delta is None


def test_counters_json_keeps_bytes_and_adds_errors_beside_them(tmp_path: Path) -> None:
    root = _node(tmp_path)
    before = counters.snapshot(root)
    write_errors(root, "mlx5_1", {"port_xmit_data": 1000, "symbol_error": 3})
    after = counters.snapshot(root)
    doc = counters.to_json(counters.delta(before, after), counters.error_delta(before, after))
    entry = doc["mlx5_1:1"]
    assert (entry["tx_bytes"], entry["rx_bytes"], entry["kind"]) == (4000, 0, "ib")
    assert entry["errors"]["symbol_error"] == 3 and entry["errors"]["link_downed"] == 0
    assert doc["eth0"]["errors"]["carrier_changes"] == 0
    # Without error deltas the entry is what it always was.
    assert counters.to_json(counters.delta(before, after))["eth0"] == {"tx_bytes": 0, "rx_bytes": 0, "kind": "net"}
    # The typed run record takes it, and the report's reader still reads the bytes.
    record = runjson.new_record(
        format_version=1,
        tool="railbench",
        version="0",
        command="run",
        cluster="c",
        profile=None,
        started_utc="2025-01-01T00:00:00Z",
        status="running",
        counters={"node1": doc},
    )
    assert json.loads(json.dumps(record.to_json()))["counters"]["node1"]["mlx5_1:1"]["errors"]["symbol_error"] == 3
    from bench.report.traffic import traffic_proof

    proof = traffic_proof(record, None, None)
    assert proof is not None
    (row,) = [r for r in proof.windows[0].rows if r.device == "mlx5_1:1"]
    assert (row.tx, row.rx, row.total) == (4000, 0, 4000)


def test_only_limits_the_devices_read_and_damaged_values_are_problems(tmp_path: Path) -> None:
    root = _node(tmp_path)
    write_errors(root, "mlx5_2", {"link_downed": 300})  # an 8-bit counter cannot hold 300
    sysfs = Sysfs(root)
    readings = error_counters.read(sysfs, only=["mlx5_1:1", "eth1"])
    assert sorted(readings) == ["eth1", "mlx5_1:1"]
    assert "out_of_sequence" in readings["mlx5_1:1"] and "carrier_changes" in readings["eth1"]
    full = error_counters.read(sysfs)
    assert "link_downed" not in full["mlx5_2:1"]
    assert any("link_downed" in p.path for p in sysfs.problems)


def test_a_tree_without_error_counters_reads_none(tmp_path: Path) -> None:
    spec = NodeSpec(hcas=(HcaSpec("mlx5_1", (PortSpec(),)),), nets=(NetSpec("eth0"),))
    root = fabric_trees.build(tmp_path / "bare", spec)
    snap = counters.snapshot(root)
    assert dict(snap.errors) == {}
    assert counters.error_delta(snap, counters.snapshot(root)) == {}
