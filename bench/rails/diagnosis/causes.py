"""Which node-local failures explain a defect the rails test named: the pure half of the node-local causes
(``bench.rails.measurement.local_causes`` reads each node's GPUDirect path checks on the ranks; this ties them).

Rank 0 ties each failure to the defects it explains by PCI address: rail k's path on node N is that of the GPU
its rank drove there (the address in the rank's ``ExpectedNic``), which a check names by its address
(``CheckResult.gpu_buses``). CUDA's own numbering is no tie: a permuted ``CUDA_VISIBLE_DEVICES`` gives local rank
k another GPU than the k-th in bus order (and without ``CUDA_DEVICE_ORDER=PCI_BUS_ID``, which railbench sets where
the site set none, ``bench.runtime.env.cuda_device_order``, CUDA numbers the fastest first). Where a rank drove no
GPU (a CPU run) or a check gives no address, GPU k's path is rail k's, by number:

  =============================  ======================================================================
  defect                         explained by a failure on node N of
  =============================  ======================================================================
  link or cable, slow or flaky   a path check (:data:`PATH_CHECKS`) whose GPUs include k
  link or cable, dead            ``pcie-link`` (a link down) or ``gpu-xid`` whose GPUs include k
  node                           a path check covering two of its rails or more (node-wide: the IOMMU,
                                 peer memory, several degraded links)
  rail                           the same path check with GPU k on every node
  intra-node gpu, gpu-pair       a GPU check (:data:`GPU_CHECKS`) of that GPU (or its peer)
  =============================  ======================================================================

The defect keeps its measurements and its counters; it gains the causes (rails.json ``causes``), its line
says the first, and its action becomes the cause's: the reseat of GPU k, not the cable. Every failure found is
also kept in rails.json's ``node_causes``, ``explains`` saying whether a defect carries it; one that explains
no defect still fails the node (``bench.rails.diagnosis.items``): a GPU at x8 is a fault whether or not this run's
messages were large enough to feel it.

This is the seam on the output side: the conviction step (``bench.rails.diagnosis.corroborate``) ties each part named to
its causes here (:func:`rail_causes`, :func:`gpu_causes`) and decides its action once, from its symptom, its
counters and its causes; nothing of the judge changes.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from bench.rails.diagnosis.rails_outcome import RailsOutcome
from bench.rundir.checksjson import CheckResult
from bench.rundir.named_parts import NamedPart
from bench.rundir.rails_records import NamedGpu
from bench.rundir.railsdoc import DefectCause

PATH_CHECKS = ("pcie-link", "pcie-acs", "iommu", "gpu-peer-memory", "nic-pcie", "port-mtu")
"""Checks of the path between GPU k and its NIC: a failure slows GPUDirect RDMA on rail k."""
GPU_CHECKS = ("gpu-xid", "gpu-ecc", "gpu-clocks", "nvlink", "fabric-manager")
"""Checks of the GPU itself: a failure slows its intra-node (NVLink) pairs."""
DEAD_CHECKS = ("pcie-link", "gpu-xid")
"""What can take a link's traffic away entirely: a PCIe link down, a GPU fallen off the bus."""

Reports = Mapping[str, Sequence[CheckResult]]
"""node -> its GPUDirect checks' results."""


def _failures(reports: Reports, node: str | None, names: Sequence[str]) -> list[CheckResult]:
    if node is None:
        return []
    return [r for r in reports.get(node, ()) if r.status == "fail" and r.check in names]


def _drives(result: CheckResult, k: int | None, bus: str | None) -> bool:
    """Whether ``result`` is on the path of the GPU a rank drove: its PCI address ``bus`` where both sides know
    addresses, else GPU number ``k`` (PCI bus order)."""
    if bus and result.gpu_buses:
        return bus.lower() in {b.lower() for b in result.gpu_buses}
    return k is not None and k in result.gpus


def rail_gpu_buses(outcome: RailsOutcome, rail: int) -> dict[str, str]:
    """node -> the PCI address of the GPU that drove ``rail`` there, where its rank knew it (``ExpectedNic``)."""
    for found in outcome.devices:
        if found.rail == rail:
            return {node: nic.gpu for node, nic in found.nics.items() if nic.gpu}
    return {}


def rail_causes(defect: NamedPart, reports: Reports, outcome: RailsOutcome) -> list[tuple[str, CheckResult]]:
    """(node, failure) of each check that explains ``defect`` (the table above)."""
    k = defect.rail
    buses = rail_gpu_buses(outcome, k) if k is not None else {}
    if defect.kind in ("link", "cable") and k is not None:
        names = DEAD_CHECKS if defect.conviction.symptom == "dead" else PATH_CHECKS
        bus = buses.get(defect.node or "")
        return [(defect.node or "", r) for r in _failures(reports, defect.node, names) if _drives(r, k, bus)]
    if defect.kind == "node":
        return [(defect.node or "", r) for r in _failures(reports, defect.node, PATH_CHECKS) if len(r.gpus) > 1]
    if defect.kind == "rail" and k is not None and outcome.nodes:
        per_node = {
            n: [r for r in _failures(reports, n, PATH_CHECKS) if _drives(r, k, buses.get(n))] for n in outcome.nodes
        }
        shared = set.intersection(*({r.check for r in found} for found in per_node.values()))
        return [(n, r) for n, found in per_node.items() for r in found if r.check in shared]
    return []


def gpu_causes(part: NamedGpu, reports: Reports) -> list[tuple[str, CheckResult]]:
    """(node, failure) of each GPU check that explains ``part``, which the intra-node matrix named."""
    node = part.node
    if node is None:  # the matrix names every part on its node; a record without one has no checks to tie
        return []
    ends = [(g, bus) for g, bus in ((part.gpu, part.bus_id), (part.peer, part.peer_bus_id)) if g is not None]
    found = _failures(reports, node, GPU_CHECKS)
    if part.kind == "node":
        return [(node, r) for r in found]
    return [(node, r) for r in found if any(_drives(r, g, bus) for g, bus in ends)]


def node_causes(reports: Reports, carried: Collection[tuple[str, str, str, str | None]]) -> tuple[DefectCause, ...]:
    """rails.json's ``node_causes``: every failure and warning of the nodes' checks, ``explains`` set on those a
    defect carries (``carried``: node, check, reason and device of each)."""
    return tuple(
        DefectCause(result=r, node=node, explains=(node, r.check, r.reason, r.device) in carried)
        for node, results in reports.items()
        for r in results
        if r.status in ("fail", "warn")
    )
