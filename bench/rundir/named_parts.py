"""What the rails test names before its conviction step, as rails.json holds it inside each defect: what convicts
a part (``Conviction``), a part of the fabric the rails test named (``NamedPart``) and a GPU, GPU pair or node the
intra-node matrix named (``NamedGpu``). The judge builds them whole where it finds the part; the conviction step
(``bench.rails.diagnosis.corroborate``) makes each the defect that holds it whole (``bench.rundir.rails_records``:
``RailDefect``, ``GpuDefect``), adding only its counters, causes and action.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from bench import codec
from bench.codec import ABSENT, Absent, Written


@dataclass(frozen=True, kw_only=True)
class Conviction(Written):
    """What convicts a defect (a rail defect's or a GPU defect's): the rate its pairs measured against the rate
    expected, and how many of its pairs and samples were slow. Written inline, its keys in the defect's own
    object (``bench.codec.INLINE``)."""

    measured_Gbps: float | None = None
    """The rate the part is convicted at: the lower median of its measurements (at least half of them at or under
    it, so a slow part prints a rate under its mark), of the slow samples for a flaky part."""
    expected_Gbps: float | None = None
    """The line rate where known (``basis`` ``line rate``), else the peers' healthy level (``peers``)."""
    basis: str | None = None
    symptom: str | None = None
    """``slow``, ``flaky``, ``dead``, ``errors`` or ``misrouted``."""
    slow_pairs: int | None = None
    """Pairs with at least one slow sample."""
    pairs: int | None = None
    """Pairs that test this part."""
    slow_samples: int | None = None
    samples: int | None = None
    spread: float | Absent | None = ABSENT
    """(max - min) / median over the part's samples: high for a flaky part. A GPU defect has none."""
    evidence: tuple[str, ...] = ()
    """The slow pairs (at most ``bench.rails.diagnosis.defects.EVIDENCE_LIMIT``), or what told a part dead
    unmeasured."""

    @classmethod
    def unmeasured(
        cls,
        symptom: str,
        evidence: tuple[str, ...],
        *,
        pairs: int = 0,
        slow_pairs: int | None = None,
        expected_Gbps: float = 0.0,
        basis: str,
    ) -> Conviction:
        """A part told ``symptom`` (``dead``, ``misrouted``) by its port's state, its counters or its transport's
        errors, not by a rate: no sample measured it, and each of the ``pairs`` it should have been measured in
        counts as slow unless ``slow_pairs`` says how many did."""
        return cls(
            measured_Gbps=0.0,
            expected_Gbps=expected_Gbps,
            basis=basis,
            symptom=symptom,
            slow_pairs=pairs if slow_pairs is None else slow_pairs,
            pairs=pairs,
            slow_samples=0,
            samples=0,
            spread=0.0,
            evidence=evidence,
        )


@dataclass(frozen=True, kw_only=True)
class NamedPart(Written):
    """A part the rails test named (localisation from the pair matrix, ``bench.rails.diagnosis.liveness`` before the
    groups formed, ``bench.rails.diagnosis.evidence`` from the ports and the byte counters), whole where it is found:
    its kind and address, where it sits in the cabling, and what convicts it. The conviction step
    (``bench.rails.diagnosis.corroborate``) adds its counters, its causes and its action: rails.json's ``RailDefect``
    holds it whole. Its ``kind`` is one of ``bench.rundir.defect_kinds.DEFECT_KINDS``; its fields are declared in
    the order rails.json writes their keys."""

    expected_device: str | None = None
    """A ``path`` defect's NIC nearest the rail's GPU (``mlx5_4:1``), or a dead port's own."""
    carried: tuple[str, ...] = ()
    """A ``path`` defect's NICs that carried the rail's bytes, busiest first."""
    kind: str
    node: str | None = None
    """None for a rail fault or a switch part."""
    peer: str | None = None
    """The other node, for a pair fault."""
    rail: int | None = None
    """None for a node fault, or a spine layer that every rail crosses."""
    device: str | None = None
    """The HCA or interface that carries this rail on this node, e.g. ``mlx5_4``, where known."""
    conviction: Conviction = field(metadata=codec.INLINE)
    """Its keys in rails.json's defect itself; the slow pairs in ``evidence`` read ``node02-node07/rail3``."""
    samples_Gbps: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    """Every sample (matrix repeats, then confirmations) of each slow pair in ``evidence``."""
    switches: tuple[str, ...] = ()
    """With a topology: the leaf of a cable or leaf; the candidate leaves of an uplink; the spines of a spine."""
    ports: tuple[str, ...] = ()
    """With a topology: the switch ports to check (a cable's leaf port, the uplinks ``leaf port <-> spine port``)."""
    unit: str | None = None
    """With a topology: the scalable unit of a leaf, or of an uplink's leaf, ``unit 2 (node33-node64)``."""
    only_pair: bool | Absent = ABSENT
    """A pair fault that was its rail's only pair measured (two live nodes on the rail): either end's link or
    the switch between, which one pair cannot tell. Absent otherwise."""


@dataclass(frozen=True, kw_only=True)
class NamedGpu(Written):
    """A GPU, GPU pair or node the intra-node matrix named (``bench.rails.diagnosis.gpu_pairs.localise_gpus``),
    whole where it is found: its kind and address, and what convicts it. Its ``GpuDefect`` holds it whole, its
    keys first in the defect's own object. Its ``kind`` is one of ``bench.rundir.defect_kinds.GPU_DEFECT_KINDS``."""

    kind: str
    node: str | None = None
    """None only in a hand-made rails.json: the matrix names every part on its node."""
    gpu: int | None = None
    """Local rank; None for a node."""
    peer: int | None = None
    """The other local rank of a ``gpu-pair``."""
    bus_id: str | None = None
    """PCI bus id of ``gpu`` where known (GPUs), e.g. ``0000:9a:00.0``."""
    peer_bus_id: str | None = None
    conviction: Conviction = field(default_factory=Conviction, metadata=codec.INLINE)
    """Of its local pairs: ``basis`` ``target`` (below the profile's NVLink sendrecv target) or ``peers`` (below
    the healthy level), the slow local pairs in ``evidence`` (``node03/gpu1-gpu5``), no ``spread``."""
