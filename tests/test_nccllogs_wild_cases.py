"""NCCL_DEBUG=INFO lines as public bug reports show them, beyond what the log format documents (issue 42): an
HCA's own async event before the flush errors it causes, NCCL's ``DMA-BUF is available`` line, and a host name
redacted by hand with a space before its ``:pid``. Each file is in ``tests/data/wild/nccl-info/`` (its URL in
that folder's ``cases.toml``)."""

from __future__ import annotations

from bench.nccllogs import nccl_evidence
from bench.nccllogs.nccl_log import parse_file, parse_text
from tests.support.wild.manifest import WILD

INFO = WILD / "nccl-info"


def test_an_hca_async_event_names_that_hca_not_the_peer() -> None:
    """NVIDIA/nccl#1524: ``mlx5_0:1 Got async event : local access violation work queue error`` and then a
    status 5 (a flush, which says nothing of where): the host's own mlx5_0 failed, whatever the peer."""
    log = parse_file(INFO / "cx4-nccl2.20.3-local-access-violation-status5.txt")
    host = log.hosts["ubuntu20-server-2"]
    assert [(e.device, e.fault) for e in host.async_events] == [("mlx5_0:1", True)]
    assert host.error_hcas == ("mlx5_0",) and host.error_peers == ()
    (found,) = [f for f in nccl_evidence.findings([log], None) if f.severity == "fail"]
    assert (found.host, found.device) == ("ubuntu20-server-2", "mlx5_0")
    assert "its own HCA failed" in found.message and "local access violation" in found.message


def test_an_async_notice_is_not_a_fault() -> None:
    """Only error, catastrophic and fatal events are the HCA failing; ``GID table change`` is a notice (the
    older wording, without the device, as NCCL before 2.20 prints it)."""
    log = parse_text("n1:10:20 [0] transport/net_ib.cc:90 NCCL WARN NET/IB : Got async event : GID table change\n")
    (event,) = log.hosts["n1"].async_events
    assert (event.device, event.event, event.fault) == ("", "GID table change", False)
    assert nccl_evidence.local_failures(nccl_evidence.hosts([log])) == []


def test_dma_buf_available_is_read_per_gpu() -> None:
    """aws/aws-ofi-nccl#715: NCCL's init.cc says ``DMA-BUF is available on GPU device N`` for each GPU whose
    memory the NIC can register without nvidia_peermem (the lines behind a CloudWatch ``| time |`` prefix)."""
    host = parse_file(INFO / "sagemaker-efa-dmabuf-available-timestamped.txt").hosts["algo-1"]
    assert host.dmabuf_gpus == tuple(range(8))


def test_dma_buf_on_every_gpu_of_a_roce_node() -> None:
    """An H100 node on 8 RoCE rails under NCCL 2.27 (the project's own lines, in NCCL's wording): DMA-BUF on
    all 8 GPUs, the path NCCL takes without nvidia_peermem, and the transport its ``NET/IB`` line says."""
    head = "rb-roce-07:4100:4100 [{gpu}] NCCL INFO "
    lines = [head.format(gpu=0) + "NCCL version 2.27.5+cuda12.9"]
    lines.append(head.format(gpu=0) + "NET/IB : Using [0]mlx5_2:1/RoCE [1]mlx5_3:1/RoCE ; OOB eth0:10.9.0.7<0>")
    lines += [head.format(gpu=gpu) + f"DMA-BUF is available on GPU device {gpu}" for gpu in range(8)]
    host = parse_text("\n".join(lines) + "\n").hosts["rb-roce-07"]
    assert (host.nccl_version, host.transport, host.dmabuf_gpus) == ("2.27.5+cuda12.9", "RoCE", tuple(range(8)))


def test_a_host_name_redacted_with_a_space_keeps_its_lines() -> None:
    """NVIDIA/nccl-tests#217: ``NAME :70918:70928 [0] NCCL INFO ...`` (the poster replaced the host name):
    the lines are that host's, with its socket fallback and its WARN, not lines without a host."""
    log = parse_file(INFO / "rtx-a6000-nccl2.21.5-socket-lo-closed.txt")
    host = log.hosts["NAME"]
    assert (host.transport, host.socket_devices, len(host.warnings)) == ("Socket", ("lo",), 1)
    assert log.hosts[""].socket_devices == () and not log.hosts[""].warnings


def test_a_completion_error_without_a_peer_address_is_still_read() -> None:
    """NCCL 2.18 printed ``Got completion from peer with error 4, ...`` with no address (NVIDIA/nccl#1052, an
    H800, whose title is the line): status 4 is local, so the host's own HCA is named all the same; a
    peer-side status with no address names no one. The title has no prefix; the one here is NCCL's own
    ``host:pid:tid [dev]`` with the issue's host and pid (its device line), the thread id made up."""
    line = (
        "node2:14159:14230 [0] transport/net_ib.cc:1295 NCCL WARN NET/IB : Got completion from peer with error 4, "
        "opcode 0, len 0, vendor err 81 (Send) localGid ::ffff: remoteGid ::ffff:\n"
    )
    log = parse_text(line)
    (completion,) = log.hosts["node2"].completions
    assert (completion.peer, completion.status, completion.points_at) == ("", 4, "local")
    (found,) = [f for f in nccl_evidence.findings([log], None) if f.severity == "fail"]
    assert found.host == "node2" and "its own HCA failed" in found.message
    retry = parse_text(line.replace("error 4", "error 12"))
    assert retry.hosts["node2"].completions[0].points_at == "nothing" and not retry.hosts["node2"].error_peers


def test_three_hosts_each_with_a_local_status_are_each_named() -> None:
    """NVIDIA/nccl#928: three hosts' NCCL 2.18 each got status 4 (IBV_WC_LOC_PROT_ERR, vendor err 81; ACS in
    that thread) from IPoIB link-local peers: each host's own HCA, never a peer's link."""
    log = parse_file(INFO / "ipoib-ipv6-peers-three-hosts-error4-local.txt")
    failed = sorted(
        (f.host, "its own HCA failed" in f.message) for f in nccl_evidence.findings([log], None) if f.severity == "fail"
    )
    assert failed == [("H100-1", True), ("H100-2", True), ("H100-5", True)]
    assert all(not h.error_peers for h in log.hosts.values())
