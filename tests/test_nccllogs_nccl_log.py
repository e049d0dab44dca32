"""The NCCL_DEBUG=INFO parser on every NCCL log in the corpus, on our own log fixtures, and as evidence."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bench.nccllogs import nccl_evidence, nccl_log
from bench.profile.cluster import load_profile
from tests.support import railbench
from tests.support.nccl_logs import GOOD_1CC

RAILS_1_8 = tuple(f"mlx5_{k}:1" for k in range(1, 9))


@dataclass(frozen=True)
class Host:
    """What one host's NCCL used, as the corpus file's .source.txt describes it."""

    transport: str | None
    devices: tuple[str, ...] = ()
    version: str | None = None
    channel_devices: frozenset[str] = frozenset()
    gdrdma: bool | None = None
    extra: dict[str, object] = field(default_factory=dict)


V2234, V2275, V2183 = "2.23.4+cuda12.4", "2.27.5+cuda12.9", "2.18.3+cuda12.2"
ISSUE311 = ("mlx5_2:1", "mlx5_0:1", "mlx5_6:1", "mlx5_8:1", "mlx5_9:1", "mlx5_4:1")
ROCE8 = ("mlx5_0:1", "mlx5_1:1", "mlx5_2:1", "mlx5_5:1", "mlx5_6:1", "mlx5_7:1", "mlx5_8:1", "mlx5_11:1")
AWS_SOCKET = ("12-210", "5-237", "0-110", "14-85", "5-41", "4-37", "6-136")  # NET/Socket : Using [0]ens3
# The two RoCE hosts of the tpgds logs, spelled by number: the expected answers name hosts, they copy no line.
AIHUB7, AIHUB8 = (f"tpgds-aihub{n:04d}" for n in (7, 8))
AWS_NO_IB = ("12-21", "5-233", "1-93", "1-46", "7-53", "1-23", "8-135", "11-39")  # only NET/IB : No device found

EXPECTED: dict[str, dict[str, Host]] = {
    "nccl_log_a100_4node_ib_sharp_collnet_fallback_ibext_channels_issue311.txt": {
        # The channel index is the position in the host's Using list, not the mlx5 number.
        "gpu34": Host("IB", ISSUE311, V2234, frozenset({"mlx5_0:1"}), True, {"sharp": True}),
        "gpu36": Host("IB", ISSUE311, V2234, frozenset({"mlx5_4:1"}), True, {"networks": ("IBext_v8",)}),
        "gpu40": Host("IB", ISSUE311, V2234, frozenset({"mlx5_2:1"}), True, {"ranks": (4, 5)}),
        "gpu41": Host("IB", ISSUE311, V2234, frozenset({"mlx5_0:1"}), True, {"intra_node": ("P2P/CUMEM/read",)}),
    },
    "nccl_log_aws_multinode_ib_not_found_socket_excerpt_nccl226.txt": {
        **{f"ip-172-31-{n}": Host("Socket", extra={"socket_devices": ("ens3",)}) for n in AWS_SOCKET},
        **{f"ip-172-31-{n}": Host("Socket", extra={"ib_no_device": True}) for n in AWS_NO_IB},
    },
    "nccl_log_azure_ib_roce_mixed_timeout_stas00.md": {
        "node-2": Host("IB+RoCE", ("ibP111p0s0:1", "rdmaP1111p0s2:1"), extra={"link_layers": ("IB", "RoCE")}),
    },
    "nccl_log_h100_2node_roce_8rails_nccl2.27.5_ofi_fallback.txt": {
        AIHUB8: Host(
            "RoCE",
            ROCE8,
            V2275,
            frozenset(ROCE8),
            True,
            {
                "plugin_fallback": True,
                "networks": ("IB",),
                "nccl_ib_hca": ("mlx5_0,mlx5_1,mlx5_2,mlx5_5,mlx5_6,mlx5_7,mlx5_8,mlx5_11",),
                "ranks": tuple(range(8, 16)),
            },
        ),
    },
    "nccl_log_h100_crusoe_ib_hca_excl_mlx5_0_sharp_issue294.txt": {
        # The log's only version line has no host prefix: it is given to no host (issue 12).
        "h100-4": Host("IB", RAILS_1_8, None, extra={"sharp": True, "networks": ("IBext_v6",)}),
    },
    "nccl_log_h100_roce_ibdev_discovery_and_completion_error.txt": {
        AIHUB7: Host("RoCE", ("mlx5_2:1", "mlx5_0:1", "mlx5_5:1"), extra={"error_hcas": ("mlx5_1",)}),
    },
    "nccl_log_h100_roce_single_hca_pxn_hang.txt": {
        AIHUB7: Host("RoCE", extra={"error_hcas": ("mlx5_0",), "roce_gid": True}),
        # Only channel lines: NIC index 0 (also through PXN proxy rank 8), whose name the log never gives.
        AIHUB8: Host(None, gdrdma=True, extra={"channel_nics": ("IB/0",), "ranks": tuple(range(8, 16))}),
    },
    "nccl_log_h800_1node_ib_not_found_socket_fallback.txt": {
        "nf5688m7-1": Host(
            "Socket",
            version=None,  # printed without a host prefix
            extra={"socket_devices": ("enx785ee8a015a1", "veth6f0b7dd"), "ib_no_device": True, "plugin_missing": True},
        ),
    },
}


def test_every_nccl_log_in_the_corpus_is_covered(corpus: Path) -> None:
    logs = {p.name for p in corpus.glob("nccl_log_*") if not p.name.endswith(".source.txt")}
    assert logs == set(EXPECTED) | {"nccl_log_netib_snippets_stas00_ml_engineering.md"}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_corpus_log_devices_transport_version_per_host(corpus: Path, name: str) -> None:
    log = nccl_log.parse_file(corpus / name)
    with_evidence = {h for h, net in log.hosts.items() if net.has_network_evidence}
    assert with_evidence == set(EXPECTED[name])
    for host, want in EXPECTED[name].items():
        got = log.hosts[host]
        assert got.transport == want.transport, host
        assert got.devices == want.devices, host
        assert got.nccl_version == want.version, host
        assert set(got.channel_devices) == want.channel_devices, host
        assert got.gdrdma is want.gdrdma, host
        for attr, value in want.extra.items():
            assert getattr(got, attr) == value, (host, attr)


def test_crusoe_bare_version_line_belongs_to_no_host(corpus: Path) -> None:
    log = nccl_log.parse_file(corpus / "nccl_log_h100_crusoe_ib_hca_excl_mlx5_0_sharp_issue294.txt")
    assert log.versions == (V2183,) and log.hosts[""].nccl_version == V2183
    assert [(f.value, f.net) for f in log.version_facts] == [(V2183, "")]
    assert log.hosts["h100-2"].nccl_version is None and not log.hosts["h100-2"].has_network_evidence
    assert "mlx5_0:1" not in log.hosts["h100-4"].devices  # excluded by NCCL_IB_HCA=^mlx5_0:1


def test_snippets_without_host_prefix(corpus: Path) -> None:
    log = nccl_log.parse_file(corpus / "nccl_log_netib_snippets_stas00_ml_engineering.md")
    assert set(log.hosts) == {""}
    seen = [(u.net, tuple(d.name for d in u.devices), u.oob) for u in log.usings]
    assert seen[0] == ("FastSocket", tuple(f"ibs{k}" for k in range(108, 116)), None)
    assert seen[1] == ("IB", tuple(f"mlx5_{k}:1" for k in range(8)), "eno1:101.262.0.9")
    assert seen[2] == ("Socket", ("eth0",), None)
    assert seen[3][1][-1] == "mlx5_bond_0:1" and log.usings[3].devices[-1].link_layer == "RoCE"
    assert all(u.relaxed_ordering for u in log.usings if u.net == "IB")


def test_every_corpus_file_parses(corpus: Path) -> None:
    """Any file of the corpus reads, NCCL log or not: only the NCCL logs give network evidence (ibstat output,
    nccl-tests tables, notes and topology dumps give none), and the evidence is plain JSON."""
    one_cc = load_profile("lambda-1cc")
    files = sorted(p for p in corpus.iterdir() if not p.name.endswith(".source.txt"))
    assert len(files) > 40
    for path in files:
        log = nccl_log.parse_file(path)
        evidence = nccl_evidence.evidence([log], one_cc)
        assert json.loads(json.dumps(evidence)) == evidence, path.name
        with_evidence = {h for h, net in log.hosts.items() if net.has_network_evidence}
        assert with_evidence <= set(evidence["hosts"]), path.name
        if path.name.startswith("nccl_log_"):
            assert log.nccl_lines > 0 and with_evidence, path.name
        else:
            assert with_evidence == set() and log.usings == (), path.name


def test_corpus_evidence_against_the_1cc_profile(corpus: Path) -> None:
    one_cc = load_profile("lambda-1cc")

    def fails(name: str) -> list[str]:
        found = nccl_evidence.findings([nccl_log.parse_file(corpus / name)], one_cc)
        return [f.message for f in found if f.severity == "fail"]

    assert any("used mlx5_0:1, which the profile excludes" in m for m in fails(next(iter(EXPECTED))))
    assert any("fell back to sockets" in m for m in fails("nccl_log_h800_1node_ib_not_found_socket_fallback.txt"))
    assert any("mlx5_bond_0:1/RoCE" in m for m in fails("nccl_log_netib_snippets_stas00_ml_engineering.md"))
    # mlx5_0 left out as the 1CC wants, but the bootstrap failed on h100-4: each rank's trace leaves init.cc
    (crusoe,) = fails("nccl_log_h100_crusoe_ib_hca_excl_mlx5_0_sharp_issue294.txt")
    assert crusoe.startswith("h100-4: NCCL init failed on 3 of 8 ranks (GPU 2, 4, 6): 'Net : connecting to")


def test_own_log_srun_prefixes_channels_and_gdr() -> None:
    log = nccl_log.parse_text(GOOD_1CC)
    a, b = log.hosts["nodea"], log.hosts["nodeb"]
    assert (a.transport, a.devices, a.nccl_version, a.gdrdma) == ("IB", RAILS_1_8, "2.21.5+cuda12.4", True)
    assert set(a.channel_devices) == set(RAILS_1_8) and a.nccl_ib_hca == ("^=mlx5_0",)
    assert b.channel_devices == ("mlx5_2:1",) and b.gdrdma is False and b.nccl_version is None
    assert log.usings[1].relaxed_ordering is False and log.usings[1].oob == "eno1:10.1.0.12"
    assert log.channels[-2].proxy_rank == 9 and log.channels[-2].nic_index == 1
    sockets = log.hosts["nodes"]
    assert (sockets.transport, sockets.socket_devices) == ("Socket", ("eth1", "eth2"))
    assert sockets.channel_devices == ("eth2",) and sockets.gdrdma is False


def test_new_nccl_rail_plane_fields_and_warnings() -> None:
    text = (
        "hostx:1:2 [3] NCCL INFO NET/IB : Using [0]mlx5_1:1:0:0/IB [1]mlx5_2:1:1:0/IB [RO]; OOB ib0:10.0.0.1<0>\n"
        "[2030-01-01 00:00:00] hostx:1:9 [3] transport/net_ib/init.cc:99 NCCL WARN NET/IB : something hca mlx5_2\n"
    )
    host = nccl_log.parse_text(text).hosts["hostx"]
    assert host.devices == ("mlx5_1:1", "mlx5_2:1") and host.error_hcas == ("mlx5_2",)
    assert host.warnings == ("NET/IB : something hca mlx5_2",)


def test_evidence_is_json_and_merges_logs(tmp_path: Path) -> None:
    one_cc = load_profile("lambda-1cc")
    good = nccl_log.parse_text(GOOD_1CC, "good.log")
    found = nccl_evidence.findings([good], one_cc)
    # nodeb opened only 2 rails and its NET channel had no GPUDirect RDMA; nothing fails.
    assert {f.severity for f in found if f.host == "nodeb"} == {"warn"}
    assert ("fail", "nodes") in {(f.severity, f.host) for f in found}  # sockets on a 1CC
    assert not [f for f in found if f.host == "nodea"]
    doc = nccl_evidence.evidence(
        [good, nccl_log.parse_text("nodec:7:7 [0] NCCL INFO NET/IB : No device found.")], one_cc
    )
    json.dumps(doc)
    assert doc["hosts"]["nodea"]["devices"] == list(RAILS_1_8) and doc["verdict"] == "fail"
    assert any("fell back to sockets" in f["message"] for f in doc["findings"])
    assert nccl_evidence.device_matches("mlx5_0:1", ["mlx5_0"]) and not nccl_evidence.device_matches(
        "mlx5_01:1", ["mlx5_0"]
    )


@pytest.mark.slow
def test_check_with_nccl_log_fails_on_excluded_device(tmp_path: Path) -> None:
    good = tmp_path / "good.log"
    good.write_text(GOOD_1CC)
    bad = tmp_path / "bad.log"
    bad.write_text(GOOD_1CC.replace("[0]mlx5_1:1/IB", "[0]mlx5_0:1/IB"))
    env = {"NCCL_IB_HCA": "^=mlx5_0"}
    proc = railbench(
        ["check", "--profile", "lambda-1cc", "--sysfs-root", str(tmp_path), "--nccl-log", str(good)], env=env
    )
    lines = [line for line in proc.stdout.splitlines() if "nccl-log" in line]
    assert any("PASS" in line and "nodea: IB via mlx5_1:1" in line and "GDRDMA yes" in line for line in lines)
    proc = railbench(
        ["check", "--profile", "lambda-1cc", "--sysfs-root", str(tmp_path), "--nccl-log", str(bad)], env=env
    )
    assert proc.returncode == 1
    assert any(line.lstrip().startswith("FAIL") and "mlx5_0:1" in line for line in proc.stdout.splitlines())
    missing = railbench(["check", "--profile", "lambda-1cc", "--nccl-log", str(tmp_path / "nope.log")])
    assert missing.returncode == 2 and "nope.log" in missing.stderr


def test_logs_of_one_host_merge() -> None:
    lines = [line for line in GOOD_1CC.splitlines() if "nodea" in line]
    first, second = nccl_log.parse_text("\n".join(lines[:3])), nccl_log.parse_text("\n".join(lines[3:]))
    merged = nccl_evidence.hosts([first, second])["nodea"]
    assert merged.devices == RAILS_1_8 and merged.networks == ("IB",) and merged.nccl_version == "2.21.5+cuda12.4"
    # Channel indexes resolve only against the Using list of the same log (the same process).
    assert second.hosts["nodea"].channel_nics == tuple(f"IB/{k}" for k in range(8)) and merged.gdrdma is True


def _rank_log(host: str, me: int, peers: tuple[int, ...], hca: str) -> str:
    """One rank's NCCL log on 10.0.0.<n> after a link died mid-measurement, written for this test in NCCL
    2.22-2.28.3's words (``src/transport/net_ib.cc``, 2.22.3 commit 178b6b75; real lines of every wording are in
    tests/data/nccl_completion/): NET/IB's device list with the host's OOB address, then net_ib's completion WARN
    for each peer it was talking to."""
    lines = [
        f"{host}:4101:4101 [1] NCCL INFO NET/IB : Using [0]mlx5_1:1/IB [1]{hca}:1/IB [RO]; OOB eno1:10.0.0.{me}<0>",
        f"{host}:4101:4101 [1] NCCL INFO Using network IB",
    ]
    lines += [
        f"{host}:4101:4190 [1] transport/net_ib.cc:1986 NCCL WARN NET/IB: Got completion from peer "
        f"10.0.0.{p}<50532> with status=12 opcode=0 len=0 vendor err 129 (Recv) localGid ::ffff:10.0.0.{me} "
        f"remoteGids::ffff:10.0.0.{p} hca {hca}"
        for p in peers
    ]
    return "\n".join(lines) + "\n"


def test_a_link_that_died_mid_measurement_is_named_from_the_ranks_logs() -> None:
    # node1's rail 1 goes dark: node0 and node2 lose node1, node1 loses both. The address two hosts name is
    # node1's own OOB address; node1's own errors say its NIC was mlx5_2.
    logs = [
        nccl_log.parse_text(_rank_log("node0", 1, (2,), "mlx5_2"), "node0-1.log"),
        nccl_log.parse_text(_rank_log("node1", 2, (1, 3), "mlx5_2"), "node1-3.log"),
        nccl_log.parse_text(_rank_log("node2", 3, (2,), "mlx5_2"), "node2-5.log"),
    ]
    merged = nccl_evidence.hosts(logs)
    assert merged["node1"].error_peers == ("10.0.0.1", "10.0.0.3") and merged["node1"].oob_addresses == ("10.0.0.2",)
    (dead,) = nccl_evidence.dead_links(merged)
    assert (dead.severity, dead.host, dead.device) == ("fail", "node1", "mlx5_2")
    assert dead.message == "node1 (10.0.0.2, mlx5_2): its link died: NCCL on node0, node2 got completion errors from it"
    assert dead in nccl_evidence.findings(logs, load_profile("lambda-1cc"))
    # Two nodes (or a point-to-point pair): each names only the other, so the pair is said, neither end alone.
    pair = [nccl_log.parse_text(_rank_log(host, me, (3 - me,), "mlx5_1")) for host, me in (("a", 1), ("b", 2))]
    (both,) = nccl_evidence.dead_links(nccl_evidence.hosts(pair))
    assert (both.host, both.device) == (None, None), both
    assert both.message.startswith("the link between a (10.0.0.1, mlx5_1) and b (10.0.0.2, mlx5_1) died: each end's")
    healthy = [nccl_log.parse_text(_rank_log("node0", 1, (), "mlx5_2"))]
    assert nccl_evidence.dead_links(nccl_evidence.hosts(healthy)) == []
