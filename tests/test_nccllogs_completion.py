"""net_ib's completion WARN in each NCCL wording and NCCL 2.20-2.23's fused NIC lists, read from real logs
(tests/data/nccl_completion/README.md says where each was posted): the peer and status of every wording
(bench/nccllogs/ib_completion.py), what the status points at, and each port of a fused NIC."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.nccllogs import ib_completion, nccl_evidence, nccl_log
from bench.nccllogs.ib_completion import Completion
from bench.profile.cluster import load_profile

DATA = Path(__file__).parent / "data" / "nccl_completion"


def _completions(name: str) -> dict[str, tuple[Completion, ...]]:
    return {host: h.completions for host, h in nccl_log.parse_file(DATA / name).hosts.items() if h.completions}


@pytest.mark.parametrize(
    ("name", "host", "first"),
    [
        # NCCL 2.17-2.19: "with error 12, opcode 0, len" (a peer pattern narrowed to "with status=" misses it)
        ("with-error-2.18.log", "node-2", Completion("10.2.0.5", 12)),
        # NCCL 2.20-2.21: "with status=12", no hca
        ("status-2.20-wording.log", "kp-ddp-worker-0", Completion("10.216.210.236", 12)),
        # NCCL 2.22-2.28.3: "NET/IB: ... status=4 ... hca mlx5_1", behind a launcher's time stamp
        ("hca-2.27-local-status.log", "tpgds-aihub0007", Completion("10.99.91.63", 4, "mlx5_1")),
        # NCCL 2.28.7+: "status=IBV_WC_RETRY_EXC_ERR(12)"; the post's markdown damage costs the host prefix only
        ("status-name-2.30-warn-only.log", "", Completion("10.153.235.13", 12, "mlx5_1")),
    ],
)
def test_every_wording_gives_the_peer_and_the_status(name: str, host: str, first: Completion) -> None:
    assert _completions(name)[host][0] == first


def test_what_each_status_points_at() -> None:
    (ours,) = _completions("hca-2.27-local-status.log").values()
    assert ours[0].points_at == "local" and ours[0].words() == "status 4 (IBV_WC_LOC_PROT_ERR)"
    (flushed,) = _completions("status-2.20-wording-flush.log").values()
    assert [(c.status, c.points_at) for c in flushed] == [(12, "peer"), (5, "nothing")]
    # Only the statuses that point at the peer name it as an error peer: the local one names the host's HCA.
    hosts = nccl_log.parse_file(DATA / "hca-2.27-local-status.log").hosts
    assert hosts["tpgds-aihub0007"].error_peers == () and hosts["tpgds-aihub0007"].error_hcas == ("mlx5_1",)
    assert nccl_log.parse_file(DATA / "with-error-2.18.log").hosts["node-2"].error_peers == ("10.2.0.5",)
    # rdma-core's enum ibv_wc_status, by number (libibverbs/verbs.h; NCCL's copy in src/include/ibvcore.h).
    assert ib_completion.STATUS_NAMES[12] == "IBV_WC_RETRY_EXC_ERR" and ib_completion.STATUS_NAMES[5].endswith(
        "FLUSH_ERR"
    )
    assert ib_completion.completion("NET/IB : Got completion with error 12, opcode 0, len 0, vendor err 129") is None


def test_a_local_status_names_the_reporting_hosts_hca_not_the_peer() -> None:
    log = nccl_log.parse_file(DATA / "hca-2.27-local-status.log")
    found = [f for f in nccl_evidence.findings([log], load_profile("lambda-1cc")) if "HCA failed" in f.message]
    (local,) = found
    assert (local.host, local.device) == ("tpgds-aihub0007", "mlx5_1")
    assert "status 4 (IBV_WC_LOC_PROT_ERR), a local error" in local.message and "10.99.91.63" not in local.message


def test_a_fused_nic_lists_each_of_its_ports_and_its_channels_go_over_them() -> None:
    log = nccl_log.parse_file(DATA / "fused-nic-2.20-wording.log")
    bigo = log.hosts["bigo"]
    assert bigo.devices == ("mlx5_2:1", "mlx5_3:1", "mlx5_0:1", "mlx5_1:1") and bigo.link_layers == ("RoCE",)
    assert bigo.oob_addresses == ("169.136.106.9",)
    # "via NET/IBext_v8/1" is the second net device, the fused mlx5_0 and mlx5_1, not the second port in the list.
    assert bigo.channel_devices == ("mlx5_0:1", "mlx5_1:1") and bigo.channel_nics == ()
    assert "no device named" not in nccl_evidence.describe(bigo)


def test_a_peer_that_refused_the_work_is_named_for_its_registration_not_its_link() -> None:
    """Status 10 (IBV_WC_REM_ACCESS_ERR) is the responder's answer (ibv_poll_cq(3)): packets crossed the link, so
    the peer's memory registration or HCA is named, not a dead link; status 12 from the same peer is the path.
    No public log with status 10 was found: the lines are the 2.20 wording's real line (status-2.20-wording.log)
    with its status number changed, and a second host's line for the peer's own OOB address."""
    real = (DATA / "status-2.20-wording.log").read_text().splitlines()[0]
    assert "status=12" in real
    peer_oob = "peer-node:11:11 [0] NCCL INFO Bootstrap : Using eth0:10.216.210.236<0>"

    def verdict(status: int) -> str:
        lines = [real.replace("status=12", f"status={status}"), peer_oob]
        log = nccl_log.parse_lines(lines, "nccl.log")
        (finding,) = [f for f in nccl_evidence.dead_links(nccl_evidence.hosts([log]))]
        return finding.message

    refused = verdict(10)
    assert "refused NCCL's RDMA work (status 10 (IBV_WC_REM_ACCESS_ERR)" in refused, refused
    assert "not its cable" in refused and "link died" not in refused
    assert "its link died" in verdict(12)
