"""Byte counters: units, 32-bit wrap, extended counters, the audit, and real loopback traffic."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from bench import sysroot
from bench.fabric import counters
from bench.fabric.sysfs import Sysfs
from tests.support import REPO, free_port, rank_env
from tests.support.trees import fabric_trees
from tests.support.trees.fabric_trees import HcaSpec, NetSpec, NodeSpec, PortSpec


def _set(root: Path, device: str, name: str, value: int, folder: str = "counters") -> None:
    (root / "class" / "infiniband" / device / "ports" / "1" / folder / name).write_text(f"{value}\n")


def test_ib_counters_are_4_byte_words_and_wrap_at_32_bits(tmp_path: Path) -> None:
    spec = NodeSpec(
        hcas=(
            HcaSpec("mlx5_0", (PortSpec(xmit_words=100, rcv_words=0),)),
            HcaSpec("mlx5_1", (PortSpec(xmit_words=2**32 - 10, rcv_words=2**32 - 1),)),
            HcaSpec("mlx5_2", (PortSpec(xmit_words=5, rcv_words=7, ext64=True),)),
        ),
        nets=(NetSpec("eth0", tx_bytes=1000, rx_bytes=2000),),
    )
    root = fabric_trees.build(tmp_path / "node", spec)
    before = counters.snapshot(root)
    _set(root, "mlx5_0", "port_xmit_data", 100 + 256)
    _set(root, "mlx5_1", "port_xmit_data", 6)  # wrapped: 16 words later
    _set(root, "mlx5_2", "port_xmit_data", 2**32 - 1)  # the 32-bit counter saturated...
    _set(root, "mlx5_2", "port_xmit_data_64", 5 + 2**33, "counters_ext")  # ...the extended one kept counting
    (root / "class" / "net" / "eth0" / "statistics" / "tx_bytes").write_text("1500\n")
    after = counters.snapshot(root)
    moved = counters.delta(before, after)
    assert list(moved) == ["eth0", "mlx5_0:1", "mlx5_1:1", "mlx5_2:1"]
    assert (moved["mlx5_0:1"].tx_bytes, moved["mlx5_0:1"].rx_bytes) == (1024, 0)
    assert moved["mlx5_1:1"].tx_bytes == 16 * 4 and moved["mlx5_1:1"].wrapped
    assert moved["mlx5_1:1"].saturated  # rcv sits at 0xFFFFFFFF in a 32-bit counter
    assert moved["mlx5_2:1"].tx_bytes == 2**33 * 4 and not moved["mlx5_2:1"].saturated
    assert (moved["eth0"].tx_bytes, moved["eth0"].rx_bytes, moved["eth0"].kind) == (500, 0, "net")
    doc = counters.to_json(moved)
    json.dumps(doc)
    assert doc["mlx5_1:1"]["wrapped"] is True and doc["eth0"] == {"tx_bytes": 500, "rx_bytes": 0, "kind": "net"}


def test_audit_flags_excluded_traffic_and_idle_rails() -> None:
    moved = {
        "mlx5_0:1": counters.DeviceBytes(4 << 20, 0, "ib"),
        "mlx5_1:1": counters.DeviceBytes(8 << 30, 8 << 30, "ib"),
        "mlx5_2:1": counters.DeviceBytes(512, 256, "ib"),  # management packets only
        "mlx5_3:1": counters.DeviceBytes(0, 0, "ib", saturated=True),
        "eth0": counters.DeviceBytes(1 << 10, 1 << 10, "net"),
    }
    found = counters.audit(moved, ["mlx5_1", "mlx5_2:1", "mlx5_3:1", "mlx5_9:1"], ["mlx5_0", "eth0"], 1 << 20)
    assert [(f.severity, f.device) for f in found] == [
        ("fail", "mlx5_0:1"),
        ("fail", "mlx5_2:1"),
        ("warn", "mlx5_3:1"),
        ("fail", "mlx5_9:1"),
    ]
    assert "excluded device mlx5_0:1 carried 4MB" in found[0].message
    assert "carried nothing" in found[1].message and "no byte counter" in found[3].message
    assert counters.audit(moved, ["mlx5_2:1"], [], 1 << 20, min_rail_bytes=0) == []


def test_loopback_counters_move_by_at_least_the_bytes_sent() -> None:
    if Sysfs(sysroot.LIVE).read("class", "net", "lo", "statistics", "tx_bytes") is None:
        pytest.skip("no /sys/class/net/lo statistics on this machine")
    payload = b"\xa5" * (16 << 20)
    server = socket.create_server(("127.0.0.1", 0))
    received = bytearray()

    def receive() -> None:
        conn, _ = server.accept()
        with conn:
            while chunk := conn.recv(1 << 20):
                received.extend(chunk)

    thread = threading.Thread(target=receive)
    thread.start()
    before = counters.snapshot(sysroot.LIVE)
    with socket.create_connection(server.getsockname()) as client:
        client.sendall(payload)
    thread.join(timeout=30)
    after = counters.snapshot(sysroot.LIVE)
    server.close()
    assert len(received) == len(payload)
    lo = counters.delta(before, after)["lo"]
    assert lo.tx_bytes >= len(payload) and lo.rx_bytes >= len(payload)
    assert after.taken_at > before.taken_at
    assert counters.audit({"lo": lo}, ["lo"], [], 1 << 20) == []


_GLOO_RANK = """
import json, sys
import torch
import torch.distributed as dist
from bench import sysroot
from bench.fabric import counters

dist.init_process_group("gloo")
tensor = torch.ones(int(sys.argv[1]) // 4, dtype=torch.float32)
dist.barrier()
before = counters.snapshot(sysroot.LIVE)
dist.all_reduce(tensor)
dist.barrier()
after = counters.snapshot(sysroot.LIVE)
assert float(tensor[0]) == dist.get_world_size()
if dist.get_rank() == 0:
    print(json.dumps(counters.to_json(counters.delta(before, after))["lo"]))
dist.destroy_process_group()
"""


@pytest.mark.slow
@pytest.mark.mpi
def test_loopback_counters_cover_a_real_gloo_all_reduce() -> None:
    if Sysfs(sysroot.LIVE).read("class", "net", "lo", "statistics", "tx_bytes") is None:
        pytest.skip("no /sys/class/net/lo statistics on this machine")
    size, world = 32 << 20, 2
    port = free_port()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _GLOO_RANK, str(size)],
            cwd=REPO,
            env=rank_env(
                {
                    "RANK": str(rank),
                    "WORLD_SIZE": str(world),
                    "MASTER_ADDR": "127.0.0.1",
                    "MASTER_PORT": str(port),
                    "GLOO_SOCKET_IFNAME": "lo",
                }
            ),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank in range(world)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    lo = json.loads(outputs[0][0])
    # A bandwidth-optimal all_reduce sends 2(n-1)/n x size per rank; every byte crosses lo once each way.
    sent = world * 2 * (world - 1) * size // world
    assert lo["tx_bytes"] >= sent and lo["rx_bytes"] >= sent, (lo, sent)


def test_a_world_group_bound_to_the_management_interface_accuses_nothing(tmp_path: Path) -> None:
    # On a socket-rail cluster gloo's world group rides --oob-ifname (mgmt) by railbench's own choice: the
    # counters then show mgmt busy and the rails idle, and neither is a fault of the fabric.
    from bench.frame.evidence import audit_counters
    from bench.profile.cluster import load_profile

    toml = tmp_path / "sock.toml"
    toml.write_text(
        'name = "sock"\ntransport = "socket"\n[rails]\ncount = 2\nexclude_ifnames = ["mgmt"]\n'
        '[network]\nsocket_ifnames = "rail"\noob_ifname = "mgmt"\n'
    )
    profile = load_profile(str(toml))
    moved = {
        "mgmt": {"tx_bytes": 800 << 20, "rx_bytes": 800 << 20, "kind": "net"},
        "rail0": {"tx_bytes": 600, "rx_bytes": 600, "kind": "net"},
        "rail1": {"tx_bytes": 700, "rx_bytes": 700, "kind": "net"},
    }
    per_host = {"node01": moved, "node02": moved}
    unbound = audit_counters(per_host, profile, sysfs_root=sysroot.LIVE)
    assert [f.severity for f in unbound].count("fail") >= 2  # what the audit said before: mgmt busy, rails idle
    bound = audit_counters(per_host, profile, bound_ifname="mgmt", sysfs_root=sysroot.LIVE)
    assert [f.severity for f in bound] == ["warn"]
    assert "bound to mgmt" in bound[0].message
