"""What rank 0 knows of the intra-node pair matrix once ``bench.rails.diagnosis.gpu_pairs`` has judged it.

Data only: its results.csv rows and rails.json's ``intra_node`` section are said by ``bench.rails.documents``,
its terminal table by ``bench.rails.output``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from bench.rails.diagnosis.gpu_pairs import LocalPairTime, NamedGpus
from bench.rundir.findings import Finding, gpu_finding
from bench.rundir.rails_records import GpuDefect, Localisation


@dataclass(frozen=True)
class IntraNodeOutcome:
    """What rank 0 knows after the intra-node pair matrix."""

    nodes: tuple[str, ...]
    local_ranks: int
    times: tuple[LocalPairTime, ...] = ()
    bus_ids: Mapping[str, tuple[str | None, ...]] = field(default_factory=dict)
    """node -> PCI bus id of each local rank's GPU (None on CPU)."""
    target_Gbps: float | None = None
    """The profile's NVLink sendrecv target (GPUs only), else None: only the relative test applies."""
    named: NamedGpus = field(default_factory=NamedGpus)
    """What the matrix named (``bench.rails.diagnosis.gpu_pairs.localise_gpus``), before its conviction."""
    localisation: Localisation = field(default_factory=Localisation)
    """rails.json's record of it, each part named made a ``GpuDefect`` once by the conviction step
    (``bench.rails.diagnosis.corroborate``: its causes and its action). Empty until then."""
    skipped: str | None = None
    process_groups: int = 0
    """Node groups made: one per node, pairs inside it, never one per pair."""
    remeasured: tuple[LocalPairTime, ...] = ()
    """The re-measurements of the suspect pairs (``LocalPairTime.confirm`` 1..); ``times`` is the matrix."""

    @property
    def defects(self) -> tuple[GpuDefect, ...]:
        return self.localisation.defects

    @property
    def failed(self) -> bool:
        return bool(self.localisation.defects)

    def node_reasons(self, node: str) -> list[Finding]:
        return [f for f in map(gpu_finding, self.defects) if f.part.covers(node=node)]
