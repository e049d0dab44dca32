"""Issue 33 item 14: an NCCL log in which communicator init failed on every rank of one host is a fail that
names the host, its ranks and the reason, not a warning about a WARN line. Our own logs, in NCCL's formats:
the WARN, then the ``file:line -> code`` trace each NCCLCHECK prints on the way out (src/include/checks.h)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.nccllogs import nccl_evidence, nccl_log
from bench.profile.cluster import load_profile
from tests.support import railbench

PROFILE = load_profile("lambda-1cc")
USING = " ".join(f"[{k - 1}]mlx5_{k}:1/IB" for k in range(1, 9)) + " [RO]; OOB eno1:10.1.0.{n}<0>"


def _healthy(host: str, pid: int, dev: int, n: int) -> list[str]:
    return [
        f"{host}:{pid}:{pid} [{dev}] NCCL INFO NCCL version 2.23.4+cuda12.6",
        f"{host}:{pid}:{pid + 50} [{dev}] NCCL INFO NET/IB : Using {USING.format(n=n)}",
        f"{host}:{pid}:{pid + 50} [{dev}] NCCL INFO Using network IB",
        f"{host}:{pid}:{pid + 50} [{dev}] NCCL INFO Channel 00/0 : {dev}[{dev}] -> {dev + 4}[{dev}] [send] via "
        f"NET/IB/{dev}/GDRDMA",
        f"{host}:{pid}:{pid} [{dev}] NCCL INFO ncclCommInitRank comm 0x55a2{dev:02d} rank {dev} nranks 8 cudaDev "
        f"{dev} nvmlDev {dev} busId {0x18 + dev}000 commId 0x1a2b3c4d - Init COMPLETE",
    ]


def _failed(host: str, pid: int, dev: int, n: int) -> list[str]:
    """A rank whose bootstrap could not reach its peer: the WARN, then the trace out of ncclCommInitRank."""
    return [
        f"{host}:{pid}:{pid} [{dev}] NCCL INFO NCCL version 2.23.4+cuda12.6",
        f"{host}:{pid}:{pid + 50} [{dev}] NCCL INFO NET/IB : Using {USING.format(n=n)}",
        "",
        f"{host}:{pid}:{pid + 60} [{dev}] misc/socket.cc:484 NCCL WARN socketStartConnect: Connect to "
        "10.1.0.11<45123> failed : Software caused connection abort",
        f"{host}:{pid}:{pid + 60} [{dev}] NCCL INFO misc/socket.cc:565 -> 2",
        f"{host}:{pid}:{pid + 60} [{dev}] NCCL INFO bootstrap.cc:290 -> 2",
        f"{host}:{pid}:{pid + 60} [{dev}] NCCL INFO init.cc:1412 -> 2",
        f"{host}:{pid}:{pid + 60} [{dev}] NCCL INFO init.cc:1687 -> 2",
        f"{host}:{pid}:{pid + 60} [{dev}] NCCL INFO group.cc:64 -> 2 [Async thread]",
        f"{host}:{pid}:{pid} [{dev}] NCCL INFO group.cc:421 -> 2",
    ]


def _log(failing_ranks: int = 4) -> str:
    lines = []
    for dev in range(4):
        lines += _healthy("gpu-d01", 7100 + dev, dev, 11)
        lines += (_failed if dev < failing_ranks else _healthy)("gpu-d02", 8200 + dev, dev, 12)
    return "\n".join(lines) + "\n"


def test_init_failed_on_every_rank_of_one_host_is_a_fail_naming_it() -> None:
    log = nccl_log.parse_text(_log(), "init.log")
    assert log.hosts["gpu-d01"].init_failures == () and len(log.hosts["gpu-d01"].nccl_ranks) == 4
    failed = log.hosts["gpu-d02"].init_failures
    assert [(f.device, f.reason[:20]) for f in failed] == [(d, "socketStartConnect: ") for d in range(4)]
    found = nccl_evidence.findings([log], PROFILE)
    fails = [f for f in found if f.severity == "fail"]
    assert [f.host for f in fails] == ["gpu-d02"]
    message = fails[0].message
    assert message.startswith("gpu-d02: NCCL init failed on every rank the log shows (4) (GPU 0, 1, 2, 3): ")
    assert "Connect to 10.1.0.11<45123> failed" in message and message.endswith(
        " at init.log:9"
    )  # the WARN of the first failed rank
    assert not [f for f in found if f.host == "gpu-d02" and f.severity == "warn" and "NCCL WARN" in f.message]
    assert nccl_evidence.evidence([log], PROFILE)["verdict"] == "fail"


def test_init_failed_on_some_ranks_counts_them() -> None:
    found = nccl_evidence.findings([nccl_log.parse_text(_log(failing_ranks=1), "init.log")], PROFILE)
    (fail,) = [f for f in found if f.severity == "fail"]
    assert "NCCL init failed on 1 of 4 ranks (GPU 0)" in fail.message


def test_traces_that_do_not_stop_init_are_not_init_failures() -> None:
    """CollNet that cannot start (NCCL goes on without it), and an init that failed and then completed."""
    collnet = [
        "gpu-d03:9100:9130 [0] sharp_plugin.c:365 NCCL WARN NET/IB : SHARP coll init error: Cannot create SHARP job",
        "gpu-d03:9100:9130 [0] NCCL INFO transport.cc:356 -> 2",
        "gpu-d03:9100:9130 [0] transport.cc:384 NCCL WARN Cannot initialize CollNet, using point-to-point network",
        "gpu-d03:9100:9130 [0] NCCL INFO transport/coll_net.cc:1358 -> 2",
        *_healthy("gpu-d03", 9100, 0, 13),
    ]
    retried = [*_failed("gpu-d04", 9200, 0, 14), *_healthy("gpu-d04", 9200, 0, 14)]
    log = nccl_log.parse_text("\n".join(collnet + retried), "ok.log")
    assert all(host.init_failures == () for host in log.hosts.values())
    assert not [f for f in nccl_evidence.findings([log], PROFILE) if f.severity == "fail"]


def test_one_log_per_rank_merges_into_the_host() -> None:
    """railbench writes one NCCL log per rank (nccl/<host>-<rank>.log): the host's ranks add up."""
    per_rank = [nccl_log.parse_text("\n".join(_failed("gpu-d02", 8200 + d, d, 12)), f"r{d}.log") for d in range(4)]
    host = nccl_evidence.hosts(per_rank)["gpu-d02"]
    assert len(host.init_failures) == 4 and len(host.nccl_ranks) == 4


@pytest.mark.slow
def test_check_with_the_log_fails(tmp_path: Path) -> None:
    log = tmp_path / "init.log"
    log.write_text(_log())
    done = railbench(
        ["check", "--profile", "lambda-1cc", "--sysfs-root", str(tmp_path), "--nccl-log", str(log), "--no-gather"],
        env={"NCCL_IB_HCA": "^=mlx5_0"},
    )
    assert done.returncode == 1, done.stdout + done.stderr
    failed = [line for line in done.stdout.splitlines() if line.lstrip().startswith("FAIL") and "nccl-log" in line]
    assert len(failed) == 1 and "gpu-d02: NCCL init failed on every rank" in failed[0]
