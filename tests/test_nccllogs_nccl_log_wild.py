"""Issue 12, the NCCL log reader against the wild: names with spaces, labelled version lines, NCCL 2.4's
bootstrap NET/Socket line, hosts seen only in plugin lines, bare version lines, hostile numbers and long
lines; and the structured evidence ``check --nccl-log --json`` carries."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from bench.bounded import InputError
from bench.nccllogs import nccl_evidence, nccl_log
from bench.profile.cluster import load_profile
from tests.support import railbench

# NCCL 2.4 on two nodes: every rank prints its bootstrap interface as NET/Socket, IB carries the data.
NCCL_24 = """\
nodea:100:100 [0] NCCL INFO NET/Socket : Using [0]ib0:10.0.0.1<0>
nodea:100:100 [0] NCCL INFO NET/Plugin : No plugin found (libnccl-net.so).
nodea:100:100 [0] NCCL INFO NET/IB : Using [0]mlx5_0:1/IB ; OOB ib0:10.0.0.1<0>
NCCL version 2.4.8+cuda10.1
nodeb:200:200 [0] NCCL INFO NET/Socket : Using [0]ib0:10.0.0.2<0>
nodea:100:130 [0] NCCL INFO Ring 00 : 1 -> 0 [receive] via NET/IB/0/GDRDMA
nodeb:200:230 [0] NCCL INFO Ring 00 : 0 -> 1 [receive] via NET/IB/0/GDRDMA
"""


def test_nccl_24_bootstrap_socket_line_is_not_a_fallback() -> None:
    log = nccl_log.parse_text(NCCL_24, "old.log")
    a, b = log.hosts["nodea"], log.hosts["nodeb"]
    assert a.transport == "IB" and a.channel_devices == ("mlx5_0:1",) and a.gdrdma is True
    assert b.socket_reason is None and b.transport != "Socket" and b.socket_devices == ("ib0",)
    found = nccl_evidence.findings([log], load_profile("lambda-1cc"))
    assert not [f for f in found if "sockets" in f.message]
    # The bare version line is the log's, not every host's.
    assert a.nccl_version is None and log.hosts[""].nccl_version == "2.4.8+cuda10.1"


def test_socket_fallback_quotes_the_line_in_the_log() -> None:
    text = (
        "h1:1:1 [0] NCCL INFO NET/IB : No device found.\nh1:1:1 [0] NCCL INFO NET/Socket : Using [0]eth0:1.2.3.4<0>\n"
    )
    found = nccl_evidence.findings([nccl_log.parse_text(text, "s.log")], load_profile("lambda-1cc"))
    (fallback,) = [f for f in found if "sockets" in f.message]
    assert "'NET/IB : No device found.' at s.log:1" in fallback.message
    assert "Using network Socket" not in fallback.message  # a line this log does not have


TAGGED = """\
[1,0]<stdout>:NCCL version 2.12.7+cuda11.4
    [1,0]<stderr>:ip-10-0-0-5:300:300 [0] NCCL INFO NET/OFI Using aws-ofi-nccl 1.7.1
    [1,0]<stderr>:ip-10-0-0-5:300:300 [0] NCCL INFO NET/Plugin: Loaded net plugin AWS Libfabric (v6)
[1,8]<stderr>:ip-10-0-0-6:400:400 [0] NCCL INFO Using network AWS Libfabric
"""


def test_tag_output_version_plugin_only_host_and_name_with_space() -> None:
    log = nccl_log.parse_text(TAGGED, "efa.log")
    assert log.hosts[""].nccl_version == "2.12.7+cuda11.4"
    assert log.hosts["ip-10-0-0-5"].plugins == ("AWS Libfabric",) and log.hosts["ip-10-0-0-5"].has_network_evidence
    assert log.hosts["ip-10-0-0-6"].networks == ("AWS Libfabric",)
    doc = nccl_evidence.evidence([log], None)
    assert set(doc["hosts"]) == {"", "ip-10-0-0-5", "ip-10-0-0-6"}  # "": the bare version line
    net = doc["hosts"]["ip-10-0-0-6"]["evidence"]["network"]
    assert net == [{"name": "AWS Libfabric", "file": "efa.log", "line": 4}]


@pytest.mark.parametrize(
    "line",
    [
        "h:" + "9" * 5000 + ":1 [0] NCCL INFO NET/IB : Using [0]mlx5_0:1/IB",
        "h:1:1 [0] NCCL INFO NET/IB : Using [" + "3" * 5000 + "]mlx5_0:1/IB",
        "h:1:1 [0] NCCL INFO Channel 00/0 : 0[0] -> 1[0] via NET/IB/" + "4" * 5000,
    ],
)
def test_huge_numbers_are_refused(line: str) -> None:
    with pytest.raises(InputError, match=r"x\.log:1: "):
        nccl_log.parse_text(line, "x.log")


@pytest.mark.parametrize("line", ["a" * 40_000, "a:" * 8000, "h:1:1 [0] NCCL INFO " + "[0]a:1:" * 2000, "x" * 200_000])
def test_long_lines_are_fast(line: str) -> None:
    started = time.perf_counter()
    log = nccl_log.parse_text(line + "\nh:1:1 [0] NCCL INFO Using network IB\n")
    assert time.perf_counter() - started < 1.0 and log.hosts["h"].networks == ("IB",)


@pytest.mark.slow
def test_check_json_carries_structured_evidence(tmp_path: Path) -> None:
    from tests.support.nccl_logs import GOOD_1CC

    log = tmp_path / "good.log"
    log.write_text(GOOD_1CC)
    done = railbench(
        [
            "check",
            "--profile",
            "lambda-1cc",
            "--sysfs-root",
            str(tmp_path),
            "--nccl-log",
            str(log),
            "--json",
            "--no-gather",
        ],
        env={"NCCL_IB_HCA": "^=mlx5_0"},
    )
    doc = json.loads(done.stdout)
    hosts = doc["nodes"][0]["nccl_evidence"]["hosts"]
    a = hosts["nodea"]["evidence"]
    assert a["nccl_version"] == {"value": "2.21.5+cuda12.4", "file": str(log), "line": 1}
    assert a["listed_devices"][0] == {
        "device": "mlx5_1:1",
        "net": "IB",
        "link_layer": "IB",
        "file": str(log),
        "line": 3,
    }
    assert {d["device"] for d in a["channel_devices"]} == {f"mlx5_{k}:1" for k in range(1, 9)}
    assert all(d["gdrdma"] for d in a["channel_devices"]) and a["gdrdma"] is True
    assert hosts["nodes"]["evidence"]["socket_fallback"] == {
        "line_text": "Using network Socket",
        "file": str(log),
        "line": 17,
    }
