"""railbench's Slurm recipes under a real slurmctld and a slurmd per node (tests/support/testbeds/slurm_testbed.py):
``srun`` for run and rails across the node namespaces, with the rails on their veth links, and the nightly sbatch
recipe (ci/nightly/) end to end, its exit status read back through sacct."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import REPO, rank_env
from tests.support.rails_pairs import pair_directions
from tests.support.testbeds.netns_testbed import PROFILE, NetnsCluster, build_cluster
from tests.support.testbeds.slurm_testbed import JobEnd, SlurmCluster, build_slurm, require_slurm

pytestmark = [pytest.mark.slurm, pytest.mark.netns, pytest.mark.slow]

NODES = 3


@pytest.fixture(scope="module")
def slurm() -> Iterator[SlurmCluster]:
    with build_cluster(nodes=NODES, rails=2) as bed, build_slurm(bed) as cluster:
        (bed.workdir / "netns.toml").write_text(PROFILE)
        yield cluster


@pytest.fixture
def cluster(slurm: SlurmCluster) -> Iterator[SlurmCluster]:
    """The module's cluster with every rail up and every node back in service, before and after each test."""
    slurm.bed.clear_faults()
    yield slurm
    slurm.bed.clear_faults()


def profile(bed: NetnsCluster) -> str:
    return str(bed.workdir / "netns.toml")


def test_srun_run_spans_the_node_namespaces(cluster: SlurmCluster, tmp_path: Path) -> None:
    """The README's recipe, ``srun -N 3 --ntasks-per-node=2 railbench run``: srun's tasks find each other
    through PMIx (MpiDefault=pmix) and every node's ranks run under its own hostname."""
    out = tmp_path / "run"
    done = cluster.command(
        [
            "srun",
            f"-N{NODES}",
            "--ntasks-per-node=2",
            "railbench",
            "run",
            "--profile",
            profile(cluster.bed),
            "--oob-ifname",
            "mgmt",
            "-b",
            "1K",
            "-e",
            "64K",
            "-n",
            "2",
            "-w",
            "1",
            "-c",
            "--out",
            str(out),
            "--no-history",
        ],
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    meta = json.loads((out / "run.json").read_text())
    assert meta["launcher"] == "slurm" and meta["status"] == "complete" and meta["exit_status"] == 0
    assert meta["hosts"] == list(cluster.nodes) and meta["nnodes"] == NODES and meta["nranks"] == 2 * NODES
    assert [(r["host"], r["local_rank"]) for r in meta["ranks"]] == [
        (node, local) for node in cluster.nodes for local in range(2)
    ]
    assert "# Out of bounds values : 0 OK" in done.stdout


def test_srun_without_a_reachable_rendezvous_is_one_line(cluster: SlurmCluster, tmp_path: Path) -> None:
    """A Slurm node whose name resolves nowhere and that has no default route (the testbed's, and many a
    cluster's compute nodes): rank 0 says in one line what to pass, every task exits 2, none hangs."""
    done = cluster.command(
        ["srun", "-N2", "--ntasks-per-node=1", "railbench", "run", "-e", "1K", "--out", str(tmp_path / "r")],
        timeout=180,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    said = [line for line in done.stderr.splitlines() if line.startswith("railbench: error:")]
    assert len(said) == 1 and "--oob-ifname" in said[0], done.stderr
    assert "Traceback" not in done.stderr


def test_srun_rails_runs_on_the_veth_rails(cluster: SlurmCluster, tmp_path: Path) -> None:
    """``srun ... railbench rails`` across the node namespaces: each rail group on its own veth link, every
    pair measured, nothing named on a healthy testbed."""
    out = tmp_path / "rails"
    done = cluster.command(
        [
            "srun",
            f"-N{NODES}",
            "--ntasks-per-node=2",
            "railbench",
            "rails",
            "--profile",
            profile(cluster.bed),
            "--out",
            str(out),
            "--no-history",
            "--timeout",
            "120",
        ],
        timeout=360,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    doc = json.loads((out / "rails.json").read_text())
    assert doc["defects"] == []
    for rail in doc["rails"]:
        assert rail["devices"] == {n: f"rail{rail['rail']}" for n in cluster.nodes}
    pairs = {(m["rail"], m["node"], m["peer"]) for m in pair_directions(doc)}
    assert len(pairs) == 2 * NODES * (NODES - 1)  # both directions of every pair, on both rails
    meta = json.loads((out / "run.json").read_text())
    assert meta["launcher"] == "slurm" and meta["hosts"] == list(cluster.nodes) and meta["verdict"] == "pass"


@pytest.mark.parametrize("command", ["accept"])
def test_srun_on_two_nodes_a_dead_link_is_named_with_its_action(
    cluster: SlurmCluster, tmp_path: Path, command: str
) -> None:
    """Issue 41's first contact, under srun: 2 nodes, node02's rail 1 down. Rail 1 has one live node and no
    group; the DOWN port names the link, the run exits 1 with its action, and the report is written. Under
    ``accept``, which runs the ``rails`` step in the same ranks; both commands meet the dead link under mpirun
    (tests/test_rails_netns_two_nodes.py), and ``rails`` runs under srun above."""
    out = tmp_path / command
    cluster.bed.link_down("node02", 1)
    sweep = ["-b", "64K", "-e", "64K", "-n", "2", "-w", "1", "--collectives", "all_reduce"]
    argv = ["srun", "-N2", "-w", "node01,node02", "--ntasks-per-node=2", "railbench", command]
    argv += ["--profile", profile(cluster.bed), "--out", str(out), "--no-history", "--timeout", "60"]
    done = cluster.command([*argv, "--rail-bytes", "1M", *(sweep if command == "accept" else [])], timeout=360)
    assert done.returncode == 1, done.stdout[-4000:] + done.stderr[-4000:]
    doc = json.loads((out / "rails.json").read_text())
    assert [(d["kind"], d["node"], d["rail"], d["symptom"]) for d in doc["defects"]] == [("link", "node02", 1, "dead")]
    (defect,) = doc["defects"]
    assert defect["action"] == "check the port state and the cable of node02 rail1"
    assert f"# FAIL {defect['line']}" in done.stdout
    meta = json.loads((out / "run.json").read_text())
    assert meta["launcher"] == "slurm" and meta["hosts"] == ["node01", "node02"] and meta["exit_status"] == 1
    assert "| link | node02 | 1 | rail1 | no traffic in 1/1 pairs → link dead" in (out / "report.md").read_text()


NIGHTLY = REPO / "ci" / "nightly"


def nightly_env(cluster: SlurmCluster, results: Path, textfile: Path) -> dict[str, str]:
    """The recipe's settings on the testbed: 2 ranks per node (2 rails), the testbed's profile, small sizes."""
    railbench = Path(sys.executable).parent / "railbench"
    if not railbench.is_file():
        pytest.skip(f"no railbench script beside {sys.executable}: install railbench (pip install -e .)")
    return {
        "RESULTS": str(results),
        "RAILBENCH": str(railbench),
        "PROFILE": profile(cluster.bed),
        "RANKS_PER_NODE": "2",
        "ACCEPT_ARGS": "-b 64K -e 256K -n 2 -w 1 --timeout 120",
        "TEXTFILE_DIR": str(textfile),
    }


def submit_nightly(cluster: SlurmCluster, env: dict[str, str], cwd: Path, *script_args: str) -> tuple[JobEnd, str]:
    """``sbatch --nodes="$(ci/nightly/usable-nodes.sh)" ci/nightly/lambda-1cc.sbatch`` as docs/slurm.md says,
    with sbatch's own flags for a test bed without GPUs in slurm.conf; waits for the end through sacct.
    Returns how the job ended and what usable-nodes.sh said on stderr."""
    usable = cluster.command(["bash", str(NIGHTLY / "usable-nodes.sh")])
    assert usable.returncode == 0, usable.stderr
    job = cluster.sbatch(
        [
            f"--nodes={usable.stdout.strip()}",
            "--ntasks-per-node=2",
            "--gpus-per-node=0",
            str(NIGHTLY / "lambda-1cc.sbatch"),
            *script_args,
        ],
        env=env,
        cwd=cwd,
    )
    return cluster.wait_job(job, timeout=600), usable.stderr


def test_the_nightly_under_sbatch_a_dead_rail_then_the_next_night(cluster: SlurmCluster, tmp_path: Path) -> None:
    """Night one: node02's rail 1 is dead; the nightly under sbatch (--drain) ends FAILED with exit 1 in
    sacct, names node02 rail 1, drains node02 alone with the part and the action. Night two: usable-nodes.sh
    counts the two nodes left and says node02 is left out; the nightly runs on them, passes (exit 0 in sacct),
    and its history, compare, metrics and report are there, the report naming node02 as left out."""
    results, textfile = tmp_path / "results", tmp_path / "textfile"
    textfile.mkdir()
    env = nightly_env(cluster, results, textfile)
    cluster.bed.link_down("node02", 1)
    try:
        end, said = submit_nightly(cluster, env, tmp_path, "--drain")
        output = (tmp_path / f"railbench-nightly-{end.job_id}.out").read_text()
        assert (end.state, end.exit_code, end.nodes) == ("FAILED", 1, "node[01-03]"), output[-4000:]
        assert said == ""  # every node was usable
        assert "node02 rail 1 (rail1): no traffic" in output and "link dead" in output, output[-4000:]
        states = cluster.sinfo_states()
        assert states["node02"][0] == "drained"
        assert states["node02"][1].startswith(
            "railbench[check:socket-rail/socket-rail] socket-rail rail1 operstate down, expected up; check the link, "
            "the speed and the cable of node02"
        ), states
        assert states["node01"] == states["node03"] == ("idle", "none")  # drained exactly the node named
        (first,) = (results / "reports" / "runs").iterdir()
        meta = json.loads((first / "run.json").read_text())
        assert meta["verdict"] == "fail" and meta["exit_status"] == 1 and meta["launcher"] == "slurm"
        assert [(n["node"], n["outcome"]) for n in meta["drain"]["nodes"]] == [("node02", "drained")]
        assert meta["scheduler"]["left_out"] == [] and meta["scheduler"]["job_id"] == str(end.job_id)
        slurm_part = (first / "report.md").read_text().split("\n## Slurm", 1)[1].split("\n## ", 1)[0]
        # the reason as Markdown shows it: its key's brackets escaped (bench.report.markdown.md_text)
        key = r"railbench\[check:socket-rail/socket-rail\]"
        assert f"| node02 | drained | {key} socket-rail rail1" in slurm_part, slurm_part
    finally:
        cluster.bed.clear_faults()

    end, said = submit_nightly(cluster, env, tmp_path)
    output = (tmp_path / f"railbench-nightly-{end.job_id}.out").read_text()
    assert (end.state, end.exit_code, end.nodes) == ("COMPLETED", 0, "node[01,03]"), output[-4000:]
    key = "railbench[check:socket-rail/socket-rail]"
    assert said.startswith(f"usable-nodes: node02 left out (drain: {key} socket-rail rail1"), said
    assert f"# scheduler: node02 left out (drained: {key} socket-rail rail1" in output
    second = Path((results / "reports" / "latest-run").read_text().strip())
    meta = json.loads((second / "run.json").read_text())
    assert meta["verdict"] == "pass" and meta["hosts"] == ["node01", "node03"]
    assert [e["node"] for e in meta["scheduler"]["left_out"]] == ["node02"]
    report = (second / "report.md").read_text()
    shown = r"railbench\[check:socket-rail/socket-rail\] socket-rail"
    assert f"Left out by the scheduler when the run started: node02 (drained: {shown}" in report
    assert (second / "compare.json").is_file()
    listed = cluster.command(
        ["railbench", "history", "list", "--history", str(results / "reports" / "history.sqlite"), "--json"]
    )
    assert listed.returncode == 0, listed.stderr
    nights = [json.loads(line) for line in listed.stdout.splitlines()]  # JSON lines, newest first
    assert [n["verdict"] for n in nights] == ["pass", "fail"], nights
    prom = (textfile / "railbench.prom").read_text()
    # the cluster is named as Slurm names it (slurm.conf's ClusterName, SLURM_CLUSTER_NAME in the job)
    assert 'railbench_verdict{cluster="railbench-testbed",verdict="PASS"} 1' in prom, prom[:2000]
    cluster.resume("node02")


def test_the_testbed_starts_by_hand_and_leaves_nothing(tmp_path: Path) -> None:
    """``python -m tests.support.testbeds.slurm_testbed 2`` (docs/slurm.md, for a try by hand): up, then Enter takes
    every daemon, job step and namespace away."""
    require_slurm()  # the other tests skip through their fixture; this one starts the testbed itself
    done = subprocess.run(
        [sys.executable, "-m", "tests.support.testbeds.slurm_testbed", "2"],
        input="\n",
        capture_output=True,
        text=True,
        timeout=180,
        cwd=REPO,
        env=rank_env(),
        check=False,
    )
    assert done.returncode == 0 and "Slurm is up on node01, node02" in done.stdout, done.stdout + done.stderr
    conf = next(w for w in done.stdout.split() if w.startswith("SLURM_CONF=")).removeprefix("SLURM_CONF=")
    assert not Path(conf).exists()
    left = [p for p in Path("/proc").iterdir() if p.name.isdigit() and _cmdline_holds(p, Path(conf).parent)]
    assert left == []


def _cmdline_holds(proc: Path, folder: Path) -> bool:
    try:
        return str(folder).encode() in (proc / "cmdline").read_bytes()
    except OSError:
        return False


SOAK = REPO / "ci" / "slurm" / "railbench-soak.sbatch"


def test_the_soak_under_sbatch_drains_the_node_of_a_dead_rail(cluster: SlurmCluster, tmp_path: Path) -> None:
    """docs/soak.md's recipe (ci/slurm/railbench-soak.sbatch --drain) on the whole allocation with node02's rail 1
    dead throughout: the soak runs its windows, its gates name node02 rail 1 dead in every window, the job ends
    FAILED with exit 1 in sacct, node02 alone is drained with the link's key, and the soak's run directory is where
    SOAK_DIR says, so the next job would resume it."""
    railbench = Path(sys.executable).parent / "railbench"
    if not railbench.is_file():
        pytest.skip(f"no railbench script beside {sys.executable}: install railbench (pip install -e .)")
    results = tmp_path / "results"
    env = {
        "RESULTS": str(results),
        "RAILBENCH": str(railbench),
        "PROFILE": profile(cluster.bed),
        "RANKS_PER_NODE": "2",
        "SOAK_HOURS": "0.006",
        "WINDOW_S": "4",
        "SOAK_ARGS": "--timeout 120 --no-history",
    }
    cluster.bed.link_down("node02", 1)
    job = cluster.sbatch(
        [f"--nodes={NODES}", "--ntasks-per-node=2", "--gpus-per-node=0", str(SOAK), "--drain"], env=env, cwd=tmp_path
    )
    end = cluster.wait_job(job, timeout=400)
    output = (tmp_path / f"railbench-soak-{job}.out").read_text()
    assert (end.state, end.exit_code) == ("FAILED", 1), output[-4000:]
    meta = json.loads((results / "reports" / "soak" / "run.json").read_text())
    assert meta["command"] == "soak" and meta["verdict"] == "fail" and meta["launcher"] == "slurm"
    assert meta["soak"]["windows"] >= 2 and meta["soak"]["stopped"] is None, meta["soak"]
    dead = [f["record"] for f in meta["soak"]["findings"] if f["record"]["part"]["node"] == "node02"]
    assert dead and all(r["part"]["rail"] == 1 for r in dead), meta["soak"]["findings"]
    assert [(n["node"], n["outcome"]) for n in meta["drain"]["nodes"]] == [("node02", "drained")]
    states = cluster.sinfo_states()
    assert states["node02"][0] == "drained" and states["node02"][1].startswith("railbench[link:1/"), states
    assert states["node01"] == states["node03"] == ("idle", "none")
