"""Issue 23: the fabric's cabling as an input, checked against the rail-optimised plan.

Fixtures in ``tests/data/topology/`` are written by hand in ibnetdiscover(8)'s documented text format and in
railbench's cabling TOML: 4 nodes in 2 units, rails mlx5_1 and mlx5_2, one leaf per rail per unit, 2 spines;
the broken ones miswire node02's rail-1 cable onto the rail-0 leaf and leave node04's rail-0 HCA uncabled.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.exits import UserError
from bench.fabric import cabling_plan, ibnetdiscover
from bench.fabric.cabling import Cable, Cabling, HostPort, SwitchPort
from bench.fabric.topology_file import load_cabling
from tests.support import mpirun_command, railbench, rank_env
from tests.support.trees import fabric_trees

DATA = Path(__file__).resolve().parent / "data" / "topology"
RAILS = ("mlx5_1", "mlx5_2", "mlx5_3")  # a profile's rail names: only the cabled ones are this fabric's rails


def _check(name: str) -> tuple[cabling_plan.FabricShape, list[cabling_plan.CablingFinding]]:
    cabling = load_cabling(DATA / name)
    return cabling_plan.check(cabling, cabling_plan.rail_order(cabling, RAILS, ("mlx5_0",)))


def test_ibnetdiscover_output_reads_as_the_cabling_it_shows() -> None:
    cabling = load_cabling(DATA / "two-units.ibnet")
    # 8 rail cables, 4 storage cables on mlx5_0, 8 uplinks: each link once though ibnetdiscover lists both ends.
    assert len(cabling.cables) == 20
    assert cabling.cable_of("node03", "mlx5_2") == Cable(
        HostPort("node03", "mlx5_2"), SwitchPort("leaf-su2-r1", 1), "4xNDR"
    )
    fabric, found = _check("two-units.ibnet")
    assert found == []
    assert fabric.rail_hcas == ("mlx5_1", "mlx5_2")
    assert fabric.units == (("node01", "node02"), ("node03", "node04"))
    assert {n: (leaf.rail, leaf.unit) for n, leaf in fabric.leaves.items()} == {
        "leaf-su1-r0": (0, 0),
        "leaf-su1-r1": (1, 0),
        "leaf-su2-r0": (0, 1),
        "leaf-su2-r1": (1, 1),
    }
    assert fabric.spines == ("spine-1", "spine-2")  # the storage switch is neither a leaf nor a spine


@pytest.mark.parametrize("name", ["two-units-broken.ibnet", "two-units-broken.toml"])
def test_a_miswired_and_a_missing_cable_are_named_with_node_port_and_switch_port(name: str) -> None:
    _, found = _check(name)
    by_kind = {f.kind: f for f in found}
    miswired, missing = by_kind["miswired"], by_kind["missing"]
    assert (miswired.node_port, miswired.switch_port) == ("node02 mlx5_2 port 1", "leaf-su1-r0 port 3")
    assert miswired.line == (
        "miswired cable: node02 mlx5_2 port 1 (rail 1) is on leaf-su1-r0 port 3, a rail 0 leaf; the plan puts it "
        "on leaf-su1-r1 port 2"
    )
    # node04 uses port 2 on its unit's other leaf, and port 2 of leaf-su2-r0 is free: that is where it goes.
    assert (missing.node_port, missing.switch_port) == ("node04 mlx5_1 port 1", "leaf-su2-r0 port 2")
    if name.endswith(".ibnet"):  # only ibnetdiscover says how fast a link trained, and the fixture lost an uplink
        assert by_kind["degraded"].node_port == "node03 mlx5_2 port 1"
        assert "2xNDR" in by_kind["degraded"].line
        assert by_kind["uplink"].switch_port == "leaf-su2-r1 -> spine-2"
        assert len(found) == 4
    else:
        assert len(found) == 2


@pytest.mark.slow
def test_check_topology_flags_the_cabling_and_exits_1(tmp_path: Path) -> None:
    node = fabric_trees.build(tmp_path / "node", fabric_trees.healthy_1cc())
    env = {"NCCL_IB_HCA": "^=mlx5_0", "NCCL_SOCKET_IFNAME": "=eno1"}
    base = ["check", "--profile", "lambda-1cc", "--sysfs-root", str(node), "--error-window", "0.1"]
    clean = railbench([*base, "--topology", str(DATA / "two-units.ibnet")], env=env)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "4 nodes x 2 rails on 4 leaves in 2 units, 2 spines: cabled as the rail-optimised plan says" in clean.stdout
    broken = railbench([*base, "--topology", str(DATA / "two-units-broken.toml")], env=env)
    assert broken.returncode == 1
    assert "FAIL  cabling             miswired cable: node02 mlx5_2 port 1 (rail 1)" in broken.stdout
    assert "FAIL  cabling             missing cable: node04 mlx5_1 port 1 (rail 0)" in broken.stdout


@pytest.mark.slow
@pytest.mark.parametrize(
    ("text", "suffix", "message"),
    [
        ("just some text\n", ".txt", "no 'Switch' blocks: give ibnetdiscover's text output"),
        ('[nodes.node01]\nmlx5_1 = "leaf-1"\n', ".toml", 'must be "switch:port", e.g. "leaf-su1-r3:7"'),
        ('[nodes.node01]\nmlx5_1 = "leaf-1:99999"\n', ".toml", "must be a port number from 1 to 4096"),
        ('[nodes.node01]\nmlx5_1 = "leaf-1:1"\nmlx5_2 = "leaf-1:1"\n', ".toml", "is cabled twice"),
        ('[cables]\nx = "y"\n', ".toml", "unknown key 'cables'"),
    ],
)
def test_bad_topology_files_are_one_line_exit_2(tmp_path: Path, text: str, suffix: str, message: str) -> None:
    path = tmp_path / f"fabric{suffix}"
    path.write_text(text)
    with pytest.raises(UserError) as caught:
        load_cabling(path)
    assert message in str(caught.value)
    proc = railbench(["check", "--profile", "lambda-1cc", "--topology", str(path)])
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and message in proc.stderr


def test_switch_names_fall_back_to_their_ids_when_descriptions_repeat() -> None:
    text = (DATA / "two-units.ibnet").read_text().replace('"spine-2"', '"spine-1"')
    lines = [(i + 1, line) for i, line in enumerate(text.splitlines())]
    cabling = ibnetdiscover.parse(lines, "repeated")
    ends = {end.switch for c in cabling.switch_links for end in (c.a, c.b) if isinstance(end, SwitchPort)}
    assert {"S-fc6a1c0300e4a900", "S-fc6a1c0300e4aa00", "leaf-su1-r0"} <= ends
    assert "spine-1" not in ends


def test_the_rail_order_comes_from_the_file_then_the_profile_then_the_names() -> None:
    cables = (Cable(HostPort("n1", "eth2"), SwitchPort("a", 1)), Cable(HostPort("n1", "eth10"), SwitchPort("b", 1)))
    assert cabling_plan.rail_order(Cabling(cables, "x")) == ("eth2", "eth10")
    assert cabling_plan.rail_order(Cabling(cables, "x"), ("eth10", "eth2")) == ("eth10", "eth2")
    assert cabling_plan.rail_order(Cabling(cables, "x", ("eth10",))) == ("eth10",)


@pytest.mark.mpi
def test_accept_topology_judges_the_cabling_as_check_does(tmp_path: Path) -> None:
    """Issue 33 item 8: the miswired file that fails ``check --topology`` was MEASURED, exit 0, under
    ``accept --topology``. Both now judge the cabling by one rule, and accept's every output says it."""
    out = tmp_path / "run"
    args = ["accept", "--profile", "local", "--np", "2", "-b", "1K", "-e", "64K", "-n", "2", "-w", "1"]
    args += ["--topology", str(DATA / "two-units-broken.toml"), "--out", str(out), "--no-history"]
    done = railbench(args, cwd=tmp_path)
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-2000:]
    assert "# FAIL fabric cabling: miswired cable: node02 mlx5_2 port 1 (rail 1)" in done.stdout
    assert "# FAIL fabric cabling: missing cable: node04 mlx5_1 port 1 (rail 0)" in done.stdout
    doc = json.loads((out / "run.json").read_text())
    assert doc["verdict"] == "fail" and doc["exit_status"] == 1
    failed = [i for i in doc["items"] if i["state"] == "fail"]
    assert {(i["group"], i["name"]) for i in failed} == {
        ("railbench.check.fabric", "cabling node02 mlx5_2 port 1"),
        ("railbench.check.fabric", "cabling node04 mlx5_1 port 1"),
    }
    cabling = json.loads((out / "checks.json").read_text())["cabling"]
    how = "where the line says (missing, miswired, uplink), or reseat or replace its cable (degraded)"
    assert [c["action"] for c in cabling] == [
        f"re-cable node02 mlx5_2 port 1 {how}",
        f"re-cable node04 mlx5_1 port 1 {how}",
    ]
    # the certificate's defect table (Markdown escapes the underscore)
    assert f"| re-cable node04 mlx5\\_1 port 1 {how} |" in (out / "report.md").read_text()


def _users_mpirun(tmp: Path, *per_rank: list[str]) -> subprocess.CompletedProcess[str]:
    """The user's own mpirun, one rank per argv (Open MPI's ``A : B`` form), no railbench parent."""
    first, *rest = ([sys.executable, "-m", "bench", *argv] for argv in per_rank)
    cmd = mpirun_command(1, first, then=[(1, argv) for argv in rest])
    return subprocess.run(cmd, cwd=tmp, env=rank_env(), capture_output=True, text=True, timeout=240)


@pytest.mark.mpi
def test_rank_0_alone_reads_the_topology_under_the_users_own_launcher(tmp_path: Path) -> None:
    """Only the judge (rank 0) reads ``--topology``: the other ranks neither parse a whole fabric's dump nor
    need the file on their node. Here rank 1's path names no file and the run goes on; a file rank 0 cannot
    read is one line and exit 2 from every rank, never ranks left waiting for rank 0."""
    base = ["rails", "--profile", "local", "--pair-bytes", "64K", "--iters", "2", "--no-history", "--topology"]
    out = tmp_path / "run"
    fine = _users_mpirun(
        tmp_path,
        [*base, str(DATA / "two-units.ibnet"), "--out", str(out)],
        [*base, str(tmp_path / "not-on-this-node.ibnet"), "--out", str(out)],
    )
    assert fine.returncode == 0, fine.stdout[-2000:] + fine.stderr[-2000:]
    assert json.loads((out / "run.json").read_text())["rails_test"]["topology"] == str(DATA / "two-units.ibnet")
    missing = str(tmp_path / "missing.ibnet")
    bad = _users_mpirun(tmp_path, [*base, missing], [*base, missing])
    assert bad.returncode == 2, bad.stdout[-2000:] + bad.stderr[-2000:]
    said = [line for line in bad.stderr.splitlines() if "railbench: error:" in line]
    assert len(said) == 1 and f"topology file {missing} is not a file" in said[0], bad.stderr
    assert "Traceback" not in bad.stderr
