"""railbench as Slurm's health check and prolog on a real Slurm cluster (tests/support/testbeds/slurm_testbed.py):
slurmd runs ``ci/slurm/railbench-health.sh`` (copied and edited as docs/slurm.md says) every few seconds on each idle
node and before each job; a dead rail drains its node with a reason naming the part and the action, the
node is resumed once the rail is back, and a node someone else drained is never touched."""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import REPO
from tests.support.testbeds.netns_testbed import PROFILE, build_cluster
from tests.support.testbeds.slurm_testbed import SlurmCluster, build_slurm

pytestmark = [pytest.mark.slurm, pytest.mark.netns, pytest.mark.slow]

INTERVAL_S = 3
"""HealthCheckInterval here (300 in docs/slurm.md): a few seconds, so each test sees several runs per node."""
SCRIPT = REPO / "ci" / "slurm" / "railbench-health.sh"
# The testbed's profile with a short idle window for the error counters: every run fits well inside the interval.
HEALTH_PROFILE = PROFILE.replace("[plan]", "[errors]\nwindow_s = 0.5\n\n[plan]")
DEAD_RAIL1 = (
    "railbench[check:socket-rail/socket-rail] socket-rail rail1 operstate down, expected up; check the link, the "
    "speed and the cable of {node} rail1"
)


def installed_script(cluster: SlurmCluster) -> list[str]:
    """The health script as an operator installs it: a copy with its settings edited; the slurm.conf lines."""
    profile = cluster.root / "health.toml"
    profile.write_text(HEALTH_PROFILE)
    railbench = Path(sys.executable).parent / "railbench"
    if not railbench.is_file():
        pytest.skip(f"no railbench script beside {sys.executable}: install railbench (pip install -e .)")
    text = SCRIPT.read_text()
    edits = {
        'RAILBENCH="${RAILBENCH:-/opt/railbench/bin/railbench}"': f'RAILBENCH="{railbench}"',
        'PROFILE="${PROFILE:-lambda-1cc}"': f'PROFILE="{profile}"',
        'LOG="${LOG:-}"': f'LOG="{cluster.root / "health.log"}"',
        "# export SLURM_CONF=/etc/slurm/slurm.conf": f"export SLURM_CONF={cluster.conf}",
    }
    for old, new in edits.items():
        assert old in text, f"{SCRIPT} no longer has the line docs/slurm.md says to edit: {old}"
        text = text.replace(old, new)
    installed = cluster.root / "railbench-health.sh"
    installed.write_text(text)
    installed.chmod(0o755)
    return [
        f"HealthCheckProgram={installed}",
        f"HealthCheckInterval={INTERVAL_S}",
        "HealthCheckNodeState=IDLE",
        f"Prolog={installed}",
        "SchedulerParameters=nohold_on_prolog_fail",
    ]


@pytest.fixture(scope="module")
def slurm() -> Iterator[SlurmCluster]:
    with build_cluster(nodes=3, rails=2) as bed, build_slurm(bed, extra_conf=installed_script) as cluster:
        yield cluster


@pytest.fixture
def cluster(slurm: SlurmCluster) -> Iterator[SlurmCluster]:
    """Every rail up and every node in service before and after each test."""
    restore(slurm)
    yield slurm
    restore(slurm)


def restore(cluster: SlurmCluster) -> None:
    """Every rail up, every job cancelled and every node resumed, until all are idle.

    Resumed once, a node can be drained again behind the resume: after the prolog test, in the whole suite on the
    2-core CI machine, node01 was resumed and then drained by Slurm itself, reason 'Prolog error' (its job's prolog
    had failed while its rail was down), and it never came back to idle within 90 s. So the jobs are cancelled and
    the nodes resumed on every poll until all are idle."""
    cluster.bed.clear_faults()

    def settled() -> bool:
        cluster.command(["scancel", "--partition", "rb"])
        states = cluster.sinfo_states()
        for node, (state, _) in states.items():
            if _needs_resume(state):
                # Slurm refuses RESUME for a node that is no longer drained or down ("Invalid node state
                # specified"): the health check may have resumed it since sinfo answered. The next poll reads again.
                cluster.command(["scontrol", "update", f"NodeName={node}", "State=RESUME"])
        # A job scancel stopped leaves its node completing (or mixed) a while; only waiting brings that to idle.
        return all(states.get(node, ("", ""))[0] == "idle" for node in cluster.nodes)

    cluster.wait_for("every node resumed and idle", settled)


def _needs_resume(state: str) -> bool:
    """Whether Slurm's long node state is one only RESUME ends: drained, draining, down or failed."""
    return any(word in state for word in ("drain", "down", "fail"))


def runs(cluster: SlurmCluster, node: str) -> list[str]:
    """What each run of the script on ``node`` said (its verdict line), oldest first, from its log."""
    log = cluster.root / "health.log"
    lines = log.read_text().splitlines() if log.is_file() else []
    return [line for line in lines if line.startswith(f"railbench health {node}:") and "(" in line.rsplit(":", 1)[-1]]


def wait_runs(cluster: SlurmCluster, node: str, more: int) -> list[str]:
    """Until ``more`` further runs on ``node`` have ended; returns every line the log holds for it after them."""
    before = len(runs(cluster, node))
    cluster.wait_for(f"{more} health checks on {node}", lambda: len(runs(cluster, node)) >= before + more, 60)
    log = (cluster.root / "health.log").read_text().splitlines()
    return [line for line in log if line.startswith(f"railbench health {node}:")]


def test_a_dead_rail_drains_its_node_and_the_node_comes_back(cluster: SlurmCluster) -> None:
    wait_runs(cluster, "node02", 1)
    cluster.bed.link_down("node02", 1)
    cluster.wait_for("node02 drained", lambda: cluster.sinfo_states()["node02"][0] == "drained", 60)
    states = cluster.sinfo_states()
    assert states["node02"] == ("drained", DEAD_RAIL1.format(node="node02"))
    assert states["node01"] == states["node03"] == ("idle", "none")  # the healthy nodes stay in service
    said = wait_runs(cluster, "node02", 1)
    # the finding, then what to do about it on the same line (the check's action, without --drain too)
    assert (
        "railbench health node02: FAIL socket-rail: rail1: operstate down, expected up; action: check the link, "
        "the speed and the cable of node02 rail1"
    ) in said, said
    # what docs/slurm.md shows an operator: sinfo -R (the reason cut at 20 characters), and the whole of it
    listed = cluster.command(["sinfo", "-R"]).stdout.splitlines()
    assert listed[0].split() == ["REASON", "USER", "TIMESTAMP", "NODELIST"]
    assert listed[1].startswith("railbench[check:sock root ") and listed[1].endswith(" node02"), listed
    whole = cluster.command(["sinfo", "-N", "-o", "%N %T %E"]).stdout.splitlines()
    assert f"node02 drained {DEAD_RAIL1.format(node='node02')}" in whole, whole
    cluster.bed.clear_faults()
    cluster.wait_for("node02 resumed", lambda: cluster.sinfo_states()["node02"] == ("idle", "none"), 60)
    assert any("node02: resumed: railbench had drained it" in line for line in wait_runs(cluster, "node02", 1))


def test_a_node_someone_else_drained_is_never_resumed_nor_relabelled(cluster: SlurmCluster) -> None:
    cluster.drain("node03", "maintenance: swap the PSU")
    said = wait_runs(cluster, "node03", 2)
    assert cluster.sinfo_states()["node03"] == ("drained", "maintenance: swap the PSU")
    assert any("left as it is" in line for line in said), said
    cluster.bed.link_down("node03", 0)  # a fault on it too: still not railbench's node
    said = wait_runs(cluster, "node03", 2)
    assert cluster.sinfo_states()["node03"] == ("drained", "maintenance: swap the PSU")
    assert any(re.search(r"node03: not drained by railbench: drained by root for 'maintenance", s) for s in said), said


def test_the_prolog_drains_a_broken_node_before_the_job_runs_on_it(cluster: SlurmCluster, tmp_path: Path) -> None:
    """HealthCheckNodeState=IDLE leaves a busy node to the prolog: node01 runs a long job, its rail dies, and
    the next job given node01 is stopped by the prolog, which drains node01 with railbench's reason (Slurm's
    own 'Prolog error' does not overwrite a drained node's reason)."""
    busy = cluster.sbatch(["-N1", "-w", "node01", "-n1", "--wrap", "sleep 300"], cwd=tmp_path)
    cluster.wait_for("node01 busy", lambda: cluster.sinfo_states()["node01"][0] == "mixed", 30)
    cluster.bed.link_down("node01", 1)
    started = time.monotonic()
    done = cluster.command(["srun", "-N1", "-w", "node01", "-n1", "true"], timeout=120)
    assert done.returncode != 0, done.stdout + done.stderr
    state, reason = cluster.sinfo_states()["node01"]
    assert state in ("draining", "drained") and reason == DEAD_RAIL1.format(node="node01"), (state, reason)
    log = (cluster.root / "health.log").read_text()
    assert "railbench-health: prolog_slurmd on node01 exit 1" in log
    assert time.monotonic() - started < 60
    cluster.command(["scancel", str(busy)])
