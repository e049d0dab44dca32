"""Node-local causes tied to the defects they explain (``bench.rails.diagnosis.causes``, in the conviction step
``bench.rails.diagnosis.corroborate``): a pure function
of the judged outcome and each node's GPUDirect checks, tied by the PCI address of the GPU each rank drove (GPU k's
path is rail k's only where no address is known)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from bench import codec
from bench.preflight.checks import run_checks
from bench.profile.actions import DEFAULT_ACTIONS, Actions
from bench.profile.cluster import load_profile
from bench.profile.errors import ErrorLimits
from bench.rails.diagnosis.causes import Reports
from bench.rails.diagnosis.corroborate import corroborate
from bench.rails.diagnosis.gpu_outcome import IntraNodeOutcome
from bench.rails.diagnosis.gpu_pairs import NamedGpus
from bench.rails.diagnosis.rails_outcome import ExpectedNic, RailDevices, RailsOutcome
from bench.rails.documents import intra_node_section
from bench.rails.output import described
from bench.rundir.checksjson import CheckResult, Status
from bench.rundir.finding_words import describe
from bench.rundir.named_parts import NamedPart
from bench.rundir.rails_records import Conviction, DefectCause, NamedGpu
from bench.rundir.railsdoc import RailsDoc
from tests.support.trees import gpudirect_trees

NODES = ("n1", "n2", "n3", "n4")


def _defect(kind: str, node: str | None, rail: int | None, symptom: str = "slow") -> NamedPart:
    return NamedPart(
        kind=kind,
        node=node,
        rail=rail,
        device="mlx5_2",
        conviction=Conviction(
            measured_Gbps=20.0,
            expected_Gbps=400.0,
            basis="line rate",
            symptom=symptom,
            slow_pairs=3,
            pairs=3,
            slow_samples=3,
            samples=3,
            spread=0.01,
            evidence=("n1-n3/rail1",),
        ),
    )


def _result(check: str, gpus: tuple[int, ...], status: Status = "fail", device: str | None = "GPU1") -> CheckResult:
    return CheckResult(check, status, f"{check} on {device}", device, f"fix {check} on {device}", gpus)


def _outcome(*defects: NamedPart, intra: IntraNodeOutcome | None = None) -> RailsOutcome:
    return RailsOutcome(RailsDoc(nodes=NODES), rails=2, named=defects, intra_node=intra)


CABLE = Actions(templates=dict.fromkeys(DEFAULT_ACTIONS, "cable"))
"""A profile whose every defect's action reads ``cable``: what a defect no cause explains keeps."""


def attribute(outcome: RailsOutcome, reports: Reports) -> RailsOutcome:
    """The conviction step with no counters read: each defect's causes, and its action the first cause's."""
    return corroborate(outcome, ErrorLimits(), CABLE, reports)


def test_a_link_takes_the_cause_on_its_own_gpus_path_and_its_action() -> None:
    reports = {
        "n3": [_result("pcie-link", (1,)), _result("pcie-link", (0,), device="GPU0"), _result("iommu", (), "pass")]
    }
    found = attribute(_outcome(_defect("link", "n3", 1)), reports)
    defect = found.defects[0]
    assert [(c.result.check, c.result.device, c.result.gpus) for c in defect.causes] == [("pcie-link", "GPU1", (1,))]
    assert defect.action == "fix pcie-link on GPU1"
    assert "cause on the node: pcie-link: pcie-link on GPU1; action: fix pcie-link on GPU1" in describe(defect)
    record = described(defect)
    assert record.causes[0].result.check == "pcie-link" and record.action == "fix pcie-link on GPU1"
    # Every failure is kept, and only the one carried says it explains something.
    assert {(c.result.device, c.explains) for c in found.node_causes} == {("GPU1", True), ("GPU0", False)}


def test_another_nodes_cause_or_a_gpu_check_never_explains_a_link() -> None:
    reports = {"n2": [_result("pcie-link", (1,))], "n3": [_result("gpu-clocks", (1,))]}
    defect = attribute(_outcome(_defect("link", "n3", 1)), reports).defects[0]
    assert defect.causes == () and defect.action == "cable"


def test_a_dead_link_is_explained_only_by_what_can_take_all_its_traffic() -> None:
    reports = {"n3": [_result("pcie-acs", (1,)), _result("gpu-xid", (1,))]}
    defect = attribute(_outcome(_defect("link", "n3", 1, "dead")), reports).defects[0]
    assert [c.result.check for c in defect.causes] == ["gpu-xid"]


def test_a_node_is_explained_by_what_spans_its_rails() -> None:
    reports = {"n2": [_result("pcie-link", (1,)), _result("gpu-peer-memory", tuple(range(8)), device=None)]}
    defect = attribute(_outcome(_defect("node", "n2", None)), reports).defects[0]
    assert [c.result.check for c in defect.causes] == ["gpu-peer-memory"]


def test_a_rail_is_explained_only_by_a_cause_every_node_shares() -> None:
    everyone = {n: [_result("nic-pcie", (1,), device="mlx5_2")] for n in NODES}
    assert len(attribute(_outcome(_defect("rail", None, 1)), everyone).defects[0].causes) == 4
    some = {**everyone, "n4": []}
    assert attribute(_outcome(_defect("rail", None, 1)), some).defects[0].causes == ()


def test_an_errors_defect_keeps_its_cable_action() -> None:
    """Counters that rose while the bandwidth held are the cable's, whatever the PCIe link says."""
    defect = attribute(_outcome(_defect("link", "n3", 1, "errors")), {"n3": [_result("pcie-link", (1,))]}).defects[0]
    assert defect.causes == () and defect.action == "cable"


def test_a_slow_gpu_of_the_intra_node_matrix_takes_its_own_gpus_cause() -> None:
    gpu = NamedGpu(
        kind="gpu",
        node="n2",
        gpu=5,
        bus_id="0000:b3:00.0",
        conviction=Conviction(
            measured_Gbps=100.0,
            expected_Gbps=400.0,
            basis="peers",
            symptom="slow",
            slow_pairs=7,
            pairs=7,
            slow_samples=7,
            samples=7,
            evidence=("n2/gpu5-gpu1",),
        ),
    )
    intra = IntraNodeOutcome(nodes=NODES, local_ranks=8, named=NamedGpus((gpu,), None, None))
    reports = {"n2": [_result("gpu-clocks", (5,), device="GPU5"), _result("pcie-link", (5,), device="GPU5")]}
    found = attribute(_outcome(intra=intra), reports)
    assert found.intra_node is not None
    defect = found.intra_node.defects[0]
    assert [c.result.check for c in defect.causes] == ["gpu-clocks"] and defect.action == "fix gpu-clocks on GPU5"
    (written,) = intra_node_section(found.intra_node).localisation.defects
    assert "cause on the node: gpu-clocks" in (written.line or "")


def test_warnings_are_kept_but_never_carried() -> None:
    found = attribute(_outcome(_defect("link", "n3", 1)), {"n3": [_result("pcie-link", (1,), "warn")]})
    assert found.defects[0].causes == ()
    assert [(c.result.status, c.explains) for c in found.node_causes] == [("warn", False)]


def test_a_cause_holds_the_checks_answer_and_writes_its_keys_flat() -> None:
    """rails.json keeps a cause's keys in its own object (the check's answer inline, then the node and whether a
    defect carries it), and reads them back into the same record."""
    found = attribute(_outcome(_defect("link", "n3", 1)), {"n3": [_result("pcie-link", (1,))]})
    (carried,) = found.node_causes
    written = codec.encode(carried)
    assert written == {
        "check": "pcie-link",
        "status": "fail",
        "reason": "pcie-link on GPU1",
        "device": "GPU1",
        "action": "fix pcie-link on GPU1",
        "gpus": [1],
        "gpu_buses": [],
        "said": None,
        "node": "n3",
        "explains": True,
    }
    # dict equality ignores order: rails.json's key order is the check's answer's, then node and explains
    assert isinstance(written, dict) and list(written)[-2:] == ["node", "explains"]
    expected = DefectCause(result=_result("pcie-link", (1,)), node="n3", explains=True)
    assert codec.decode(DefectCause, written) == carried == expected


# What each rank of rail k drove on n3 under CUDA_VISIBLE_DEVICES=0,3,2,1 (ExpectedNic.gpu, from the GPU's own PCI
# ids): local rank 1 drove the GPU at bus 5d, the fourth in bus order (an HGX H100's 18, 2a, 3a, 5d, ...).
PERMUTED = {0: "0000:18:00.0", 1: "0000:5d:00.0", 2: "0000:3a:00.0", 3: "0000:2a:00.0"}


def _driven(rails: dict[int, str], node: str = "n3") -> list[RailDevices]:
    return [
        RailDevices(rail=k, device={}, moved={}, nics={node: ExpectedNic("mlx5_1:1", "ACTIVE", "PIX", bus)})
        for k, bus in rails.items()
    ]


def test_a_cause_is_tied_to_the_rail_whose_rank_drove_its_gpu_by_pci_address() -> None:
    # pcie-link finds GPU3 in bus order (0000:5d:00.0) at x8; local rank 1 drove it, local rank 3 drove GPU1.
    x8 = dataclasses.replace(_result("pcie-link", (3,), device="GPU3"), gpu_buses=("0000:5d:00.0",))
    outcome = dataclasses.replace(
        _outcome(_defect("link", "n3", 1), _defect("link", "n3", 3)), rails=4, devices=_driven(PERMUTED)
    )
    rail1, rail3 = attribute(outcome, {"n3": [x8]}).defects
    assert [c.result.device for c in rail1.causes] == ["GPU3"] and rail1.action == "fix pcie-link on GPU3"
    assert rail3.causes == () and rail3.action == "cable"
    # A rail every node drove through the same check's failing GPU, wherever CUDA numbered it.
    everyone = {n: [x8] for n in NODES}
    on_rail1 = dataclasses.replace(
        _outcome(_defect("rail", None, 1)),
        devices=[RailDevices(1, {}, {}, nics={n: ExpectedNic("mlx5_1:1", gpu="0000:5d:00.0") for n in NODES})],
    )
    assert len(attribute(on_rail1, everyone).defects[0].causes) == 4


def test_without_addresses_gpu_k_is_rail_k() -> None:
    """A CPU run drives no GPU and a check may name none by address: the number ties them, as before."""
    found = attribute(_outcome(_defect("link", "n3", 1)), {"n3": [_result("pcie-link", (1,))]})
    assert [c.result.device for c in found.defects[0].causes] == ["GPU1"]


def test_an_intra_node_gpu_takes_the_cause_of_the_gpu_at_its_bus_id() -> None:
    clocks = dataclasses.replace(_result("gpu-clocks", (3,), device="GPU3"), gpu_buses=("0000:5d:00.0",))
    conviction = Conviction(measured_Gbps=100.0, expected_Gbps=400.0, basis="peers", symptom="slow", evidence=())
    slow = NamedGpu(kind="gpu", node="n2", gpu=1, bus_id="0000:5d:00.0", conviction=conviction)
    other = NamedGpu(kind="gpu", node="n2", gpu=3, bus_id="0000:2a:00.0", conviction=conviction)
    intra = IntraNodeOutcome(nodes=NODES, local_ranks=4, named=NamedGpus((slow, other), None, None))
    found = attribute(_outcome(intra=intra), {"n2": [clocks]}).intra_node
    assert found is not None
    assert [[c.result.device for c in d.causes] for d in found.defects] == [["GPU3"], []]


def test_every_check_names_its_gpus_by_pci_address(tmp_path: Path) -> None:
    node, spec = gpudirect_trees.gpu_at_x8(3)
    root = gpudirect_trees.build(tmp_path, node, spec)
    results = run_checks(load_profile("lambda-1cc"), root, env={}, node="n", only=("pcie-link",))
    (x8,) = [r for r in results if r.status == "fail"]
    # tests/support/trees/fabric_trees.py puts GPU k three buses below root port 0x10 + 0x20 k: GPU3 at bus 0x73.
    assert (x8.check, x8.gpus, x8.gpu_buses) == ("pcie-link", (3,), ("0000:73:00.0",))
