"""NCCL's bootstrap interface is never loopback when the job spans hosts (``bench.rails.measurement.bootstrap_nic``).

Two pretend nodes of the namespace testbed, each with its own hostname and a Debian/Ubuntu ``/etc/hosts``
(bind-mounted in a private mount namespace): the node's FQDN on 127.0.1.1. torchrun then sets ``MASTER_ADDR`` to
node01's FQDN (its c10d rendezvous: ``socket.getfqdn()``), as does a per-node launch given ``$(hostname -f)``;
on node01 it resolves to 127.0.1.1, the route to it is ``lo``, and ``=lo`` there would leave NCCL's bootstrap
root listening on loopback where node02 can never join.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from bench.runtime.launch import elastic_command
from tests.support import REPO, rank_env
from tests.support.testbeds.netns_testbed import HEAD_ADDRESS, NetnsCluster, build_cluster, mgmt_address

pytestmark = [pytest.mark.netns, pytest.mark.slow]

DOMAIN = "cluster.test"
MAIN = f"node01.{DOMAIN}"


@pytest.fixture(scope="module")
def bed() -> Iterator[NetnsCluster]:
    with build_cluster(nodes=2, rails=1) as built:
        yield built


def _hosts_file(bed: NetnsCluster, node: str, where: Path) -> Path:
    """``node``'s /etc/hosts as Debian and Ubuntu write it: its own name on 127.0.1.1, the others' real."""
    lines = ["127.0.0.1 localhost"]
    for i, name in enumerate(bed.nodes, start=1):
        address = "127.0.1.1" if name == node else mgmt_address(i)
        lines.append(f"{address} {name}.{DOMAIN} {name}")
    path = where / f"hosts-{node}"
    path.write_text("\n".join(lines) + "\n")
    return path


def _on_every_node(
    bed: NetnsCluster, tmp_path: Path, launch: dict[str, list[str]]
) -> tuple[list[dict[str, str | None]], list[str]]:
    """Start ``launch[node]`` on each pretend node at once (its hostname, its /etc/hosts); returns every rank's
    JSON line (tests/support/ranks/bootstrap_probe.py) in rank order, and the lines said about NCCL_SOCKET_IFNAME."""
    env = rank_env({"GLOO_SOCKET_IFNAME": "mgmt", "TORCH_CPP_LOG_LEVEL": "ERROR"})
    script = 'hostname "$0" && mount --bind "$1" /etc/hosts && shift && exec "$@"'
    procs = []
    for node, argv in launch.items():
        cmd = ["ip", "netns", "exec", bed.namespace(node), "unshare", "--uts", "--mount", "sh", "-c", script]
        cmd += [node, str(_hosts_file(bed, node, tmp_path)), *argv]
        procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    said: list[dict[str, str | None]] = []
    outputs = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=240)
            outputs.append(out + err)
            assert proc.returncode == 0, "\n".join(outputs)
            said += [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    finally:
        bed.kill_processes()
    lines = [line for text in outputs for line in text.splitlines() if line.startswith("# NCCL_SOCKET_IFNAME")]
    return sorted(said, key=lambda s: int(s["rank"] or 0)), lines


def _probe(out: Path, oob: str | None) -> list[str]:
    return ["-m", "tests.support.ranks.bootstrap_probe", str(out), *([oob] if oob else [])]


def test_torchrun_with_its_own_master_addr_keeps_nccls_bootstrap_off_loopback(
    bed: NetnsCluster, tmp_path: Path
) -> None:
    # torchrun's c10d rendezvous: MASTER_ADDR is node01's FQDN, which node01's /etc/hosts puts on 127.0.1.1.
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1"]
    torchrun += ["--rdzv-backend", "c10d", "--rdzv-endpoint", f"{MAIN}:29517", "--rdzv-id", "i41"]
    argv = [*torchrun, *_probe(tmp_path / "run", "mgmt")]
    ranks, _ = _on_every_node(bed, tmp_path, {node: argv for node in bed.nodes})
    assert [(r["host"], r["launcher"], r["master_addr"]) for r in ranks] == [
        ("node01", "torchrun", MAIN),
        ("node02", "torchrun", MAIN),
    ]
    # --oob-ifname mgmt on node01, where the route to its own FQDN is lo; node02 routes to it over mgmt.
    assert [r["NCCL_SOCKET_IFNAME"] for r in ranks] == ["=mgmt", "=mgmt"]


def _per_node(node_rank: int, out: Path) -> Sequence[str]:
    """The per-node form's own command line (``railbench run --nnodes ... --main-address``), with this test's
    rank module in place of railbench's."""
    cmd = elastic_command(2, node_rank, 1, MAIN, 29518, [])
    assert cmd[-2:] == ["-m", "bench"]
    return [*cmd[:-2], *_probe(out, None)]


def test_a_per_node_launch_with_no_management_interface_leaves_nccl_its_own_choice_and_says_so(
    bed: NetnsCluster, tmp_path: Path
) -> None:
    # No --oob-ifname, none in the profile, and no default route in the testbed's nodes: nothing names the
    # management interface on node01, so NCCL picks its own (never loopback), said in one line there.
    launch = {node: list(_per_node(i, tmp_path / "run")) for i, node in enumerate(bed.nodes)}
    ranks, lines = _on_every_node(bed, tmp_path, launch)
    assert [(r["host"], r["master_addr"], r["NCCL_SOCKET_IFNAME"]) for r in ranks] == [
        ("node01", MAIN, None),
        ("node02", MAIN, "=mgmt"),
    ]
    (line,) = lines
    assert line.startswith(f"# NCCL_SOCKET_IFNAME left to NCCL on node01: MASTER_ADDR {MAIN} resolves to loopback")
    assert "--oob-ifname" in line


_CHOICE = """
import json, sys
sys.path.insert(0, sys.argv[1])
from bench.rails.measurement.bootstrap_nic import management_socket_ifname as m
print(json.dumps([m("127.0.1.1", 1, True, None), m("127.0.1.1", 1, True, "lo"), m("127.0.1.1", 1, True, "mgmt"),
                  m("127.0.1.1", 1, False, "mgmt"), m("198.18.255.2", 1, True, None)]))
"""


def test_the_default_routes_interface_stands_in_for_loopback(bed: NetnsCluster) -> None:
    node = bed.nodes[0]
    bed.exec(node, "ip", "route", "add", "default", "via", HEAD_ADDRESS, "dev", "mgmt")
    try:
        done = bed.exec(node, sys.executable, "-c", _CHOICE, str(REPO), check=False)
    finally:
        bed.exec(node, "ip", "route", "del", "default", check=False)
    assert done.returncode == 0, done.stderr
    # Across hosts: the default route's interface, never lo (not even as --oob-ifname), --oob-ifname first;
    # one host keeps loopback; a rendezvous reached over mgmt is mgmt.
    assert json.loads(done.stdout) == ["=mgmt", "=mgmt", "=mgmt", "=lo", "=mgmt"]


_RENDEZVOUS = """
import sys
sys.path.insert(0, sys.argv[1])
from bench.exits import UserError
from bench.netaddr import rendezvous_address
try:
    print(rendezvous_address(None, single_host=False))
except UserError as exc:
    print("refused:", exc)
print(rendezvous_address(None, single_host=True))
"""


def test_an_mpi_rendezvous_across_hosts_never_listens_on_the_hostnames_loopback(
    bed: NetnsCluster, tmp_path: Path
) -> None:
    # Under mpirun rank 0 picks the store's address itself: with no --oob-ifname and no default route it falls
    # back to its hostname, which a Debian /etc/hosts puts on 127.0.1.1, where no other node reaches the store.
    script = 'hostname "$0" && mount --bind "$1" /etc/hosts && shift && exec "$@"'
    hosts = _hosts_file(bed, "node01", tmp_path)
    argv = [sys.executable, "-c", _RENDEZVOUS, str(REPO)]
    cmd = ["ip", "netns", "exec", bed.namespace("node01"), "unshare", "--uts", "--mount", "sh", "-c", script]
    done = subprocess.run([*cmd, "node01", str(hosts), *argv], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    refused, single = done.stdout.splitlines()
    assert refused.startswith("refused: no rendezvous address for rank 0 on node01: no default route and the")
    assert "resolves to loopback (127.0.1.1" in refused and "--oob-ifname" in refused
    assert single == "127.0.0.1"  # every rank on this host: loopback is right
