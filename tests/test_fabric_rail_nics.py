"""Rail k's NIC is the one nearest GPU k in the PCIe tree, as NCCL's topology picks it (bench.fabric.rail_nics),
and the byte counters judge the path each rail took (bench.rails.diagnosis.evidence.path_defects), on sysfs fixture
trees.

The case the old rule got wrong: with rail k = the k-th ACTIVE HCA in name order, one port down on a node
shifted every higher rail of that node onto a neighbour's NIC and never named the dead port.
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema

from bench.fabric.rail_nics import PlacedGpu, PlacedNic, nearest_rail_nics, node_rail_nics
from bench.fabric.sysfs import Sysfs
from bench.profile.actions import Actions
from bench.profile.errors import ErrorLimits
from bench.rails.diagnosis import evidence
from bench.rails.diagnosis.corroborate import convicted, corroborate
from bench.rails.diagnosis.rails_outcome import ExpectedNic, RailsOutcome
from bench.rails.output import rails_doc
from bench.rundir.finding_words import describe, sentences
from bench.rundir.railsdoc import SCHEMA_PATH, RailsDoc
from tests.support.trees.fabric_trees import build, healthy_1cc, port_down

MIB = 1 << 20


def _expected(tree: Path, nccl_ib_hca: str) -> list[ExpectedNic]:
    """What each local rank k (driving the k-th GPU in PCI order) expects on this node."""
    found = node_rail_nics(Sysfs(tree), nccl_ib_hca)
    return [ExpectedNic(nic.nic, nic.state, nic.distance, gpu, nic.shared) for gpu, nic in sorted(found.items())]


def test_rail_k_is_the_nic_next_to_gpu_k(tmp_path: Path) -> None:
    expected = _expected(build(tmp_path / "node", healthy_1cc()), "^=mlx5_0")
    assert [e.device for e in expected] == [f"mlx5_{k}:1" for k in range(1, 9)]
    assert all(e.distance == "PIX" and e.state == "ACTIVE" and not e.shared for e in expected)


def test_a_port_down_moves_no_other_rail_and_is_named(tmp_path: Path) -> None:
    healthy = _expected(build(tmp_path / "healthy", healthy_1cc()), "^=mlx5_0")
    broken = _expected(build(tmp_path / "broken", port_down("mlx5_3")), "^=mlx5_0")
    # Only rail 2 differs, and only in its port's state: every rail keeps the NIC next to its GPU.
    assert [k for k in range(8) if broken[k] != healthy[k]] == [2]
    assert [e.device for e in broken] == [e.device for e in healthy]
    assert broken[2].state == "DOWN"

    # What the counters then show while each rail runs alone: NCCL, which skips ports that are not ACTIVE,
    # sent GPU 2's bytes through a neighbour's NIC; every other rail through its own.
    def window(k: int) -> dict[str, int]:
        carrier = "mlx5_4:1" if k == 2 else f"mlx5_{k + 1}:1"
        return {f"mlx5_{j}:1": (512 * MIB if f"mlx5_{j}:1" == carrier else 4096) for j in range(9)}

    devices = [evidence.attribute(k, {"node02": window(k)}, 128 * MIB, {"node02": broken[k]}) for k in range(8)]
    defects = evidence.path_defects(devices, ["mlx5_0"])
    assert [(d.kind, d.conviction.symptom, d.node, d.rail, d.expected_device) for d in defects] == [
        ("link", "dead", "node02", 2, "mlx5_3:1")
    ]
    outcome = corroborate(
        RailsOutcome(RailsDoc(nodes=("node02",)), rails=8, devices=devices, named=tuple(defects)),
        ErrorLimits(),
        Actions(),
    )
    (dead,) = outcome.defects
    assert describe(dead).startswith("node02 rail 2 (mlx5_3): mlx5_3 port 1 is DOWN, the NIC nearest GPU ")
    assert dead.action == "check the port state and the cable of node02 mlx5_3 port 1"
    assert outcome.failed and outcome.rail_reasons(3) == []


def test_bytes_on_another_nic_or_on_two_are_path_defects() -> None:
    nic = ExpectedNic("mlx5_4:1", "ACTIVE", "PIX", "0000:50:00.0")
    elsewhere = evidence.attribute(3, {"node07": {"mlx5_4:1": 10, "mlx5_6:1": 300 * MIB}}, MIB, {"node07": nic})
    spread = evidence.attribute(3, {"node07": {"mlx5_4:1": 150 * MIB, "mlx5_5:1": 150 * MIB}}, MIB, {"node07": nic})
    own = evidence.attribute(3, {"node07": {"mlx5_4:1": 300 * MIB, "mlx5_0:1": 2 * MIB}}, MIB, {"node07": nic})
    found = evidence.path_defects([elsewhere, spread, own], ["mlx5_0"])
    assert [(d.kind, d.carried) for d in found] == [("path", ("mlx5_6:1",)), ("path", ("mlx5_4:1", "mlx5_5:1"))]
    outcome = corroborate(
        RailsOutcome(RailsDoc(nodes=("node07",)), rails=4, named=tuple(found)), ErrorLimits(), Actions()
    )
    first, second = outcome.defects
    assert describe(first) == (
        "node07 rail 3 (mlx5_6): bytes on mlx5_6 port 1, expected mlx5_4 port 1 (nearest GPU 0000:50:00.0) → path "
        "misrouted; action: check that rail 3 of node07 leaves through mlx5_4 port 1 (found mlx5_6 port 1): its "
        "PCIe slot, NCCL_IB_HCA, NCCL_TOPO_FILE"
    )
    assert "bytes on 2 NICs (mlx5_4 port 1, mlx5_5 port 1)" in describe(second)
    assert sentences(outcome.rail_reasons(3)) == [describe(first), describe(second)]


def test_a_gpu_whose_own_nic_is_excluded_is_far_from_every_nic(tmp_path: Path) -> None:
    expected = _expected(build(tmp_path / "node", healthy_1cc()), "^=mlx5_0,mlx5_1")
    gpu0 = expected[0]
    assert gpu0.distance not in ("PIX", "PXB") and gpu0.shared  # several NICs equally far: NCCL spreads over them
    rd = evidence.attribute(0, {"n": {gpu0.device or "": 300 * MIB}}, MIB, {"n": gpu0})
    (far,) = evidence.path_defects([rd])
    assert far.kind == "path" and f"{gpu0.distance} from GPU" in describe(convicted(far, action=""))


def test_gpus_sharing_their_nics_take_them_in_turn() -> None:
    switch = ("pci0000:10", "0000:10:01.0", "0000:11:00.0")
    gpus = [
        PlacedGpu("0000:13:00.0", (*switch, "0000:12:00.0", "0000:13:00.0"), 0),
        PlacedGpu("0000:15:00.0", (*switch, "0000:12:04.0", "0000:15:00.0"), 0),
    ]
    nics = [
        PlacedNic("mlx5_1:1", (*switch, "0000:12:08.0", "0000:16:00.0"), 0, "ACTIVE"),
        PlacedNic("mlx5_2:1", (*switch, "0000:12:0c.0", "0000:17:00.0"), 0, "ACTIVE"),
    ]
    found = nearest_rail_nics(gpus, nics)
    assert [found[g.address].nic for g in gpus] == ["mlx5_1:1", "mlx5_2:1"]
    assert all(found[g.address].shared and found[g.address].distance == "PIX" for g in gpus)


def test_rails_json_says_per_node_which_nic_was_expected_and_which_carried() -> None:
    nic = ExpectedNic("mlx5_4:1", "ACTIVE", "PIX", "0000:50:00.0")
    rd = evidence.attribute(3, {"node07": {"mlx5_4:1": 10, "mlx5_6:1": 300 * MIB}}, MIB, {"node07": nic})
    outcome = corroborate(
        RailsOutcome(RailsDoc(nodes=("node07",)), rails=4, devices=[rd], named=tuple(evidence.path_defects([rd]))),
        ErrorLimits(),
        Actions(),
    )
    doc = json.loads(json.dumps(rails_doc(outcome).to_json()))
    jsonschema.validate(doc, json.loads(SCHEMA_PATH.read_text()))
    assert doc["rails"][0]["path"] == {
        "node07": {
            "expected": "mlx5_4:1",
            "state": "ACTIVE",
            "distance": "PIX",
            "gpu": "0000:50:00.0",
            "shared": False,
            "carried": ["mlx5_6:1"],
        }
    }
    (defect,) = doc["defects"]
    assert (defect["kind"], defect["expected_device"], defect["carried"]) == ("path", "mlx5_4:1", ["mlx5_6:1"])
