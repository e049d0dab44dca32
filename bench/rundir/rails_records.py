"""The records of what the rails test named, as rails.json holds them and as the rails layer makes them: one
record per idea, built once by its writer (``bench.rails``) and read back by every reader (the report, compare,
the history, Slurm's drain). A defect (``RailDefect``), a transient (``Transient``), an intra-node defect
(``GpuDefect``), what convicts either (``Conviction``, written inline in the defect's own object), an error
window (``ErrorWindow``), the counters a defect's devices showed (``DefectErrors``) and a fault on a node's own
path that explains one (``DefectCause``). The kinds they name are one table,
``bench.rundir.defect_kinds``.

A record holds its numbers as measured; its JSON gives every rate to six decimals (:func:`rounded`), the
precision rails.json has always had. Each part's fields are declared in the order the writer writes its keys,
under the keys' own names, and read back strictly by ``bench.codec``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from bench import codec
from bench.codec import ABSENT, Absent, Written
from bench.jsondoc import JSONObject, JSONValue
from bench.rundir.checksjson import CheckResult
from bench.rundir.part import LocalGpu, Part

DECIMALS = 6
"""Rates in rails.json: a microbit per second is below any NIC's resolution."""


def rounded(value: JSONValue) -> JSONValue:
    """``value`` with every float in it to :data:`DECIMALS` places (whole numbers and flags as they are)."""
    if isinstance(value, float):
        return round(value, DECIMALS)
    if isinstance(value, list):
        return [rounded(v) for v in value]
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    return value


@dataclass(frozen=True, kw_only=True)
class DeviceCounters(Written):
    """One device's counters over a window: the bytes it carried and its error counters. A key the window did
    not record is None here and absent from the JSON (``errors_saturated`` only when one saturated)."""

    bytes: int | None = None
    tx_bytes: int | None = None
    rx_bytes: int | None = None
    kind: str | None = None
    """run.json's counters name the device's kind (``ib``, ``net``); rails.json's do not."""
    wrapped: bool | None = None
    """run.json's: a 32-bit data counter wrapped during the window (flagged only when so)."""
    saturated: bool | None = None
    """run.json's: a data counter saturated during the window (flagged only when so)."""
    errors: Mapping[str, int] | None = None
    """counter -> increase; a saturated or cleared counter is never counted here."""
    errors_saturated: tuple[str, ...] | None = None
    errors_reset: tuple[str, ...] | None = None

    def to_json(self) -> JSONObject:
        return {key: value for key, value in super().to_json().items() if value is not None}


Counters = Mapping[str, Mapping[str, DeviceCounters]]
"""node -> device -> its counters."""


def counters_from_json(value: Mapping[str, Mapping[str, Mapping[str, object]]]) -> dict[str, dict[str, DeviceCounters]]:
    """node -> device -> counters for rails.json, from the counter windows' own entries
    (``bench.fabric.counters``): rails.json has never recorded the wrap and saturation flags run.json keeps, so
    they are left out; a value of the wrong type is refused (:class:`bench.codec.Refused`)."""
    return {
        node: {
            device: replace(
                codec.decode(DeviceCounters, entry, f"counters.{node}.{device}.", extra="ignore"),
                wrapped=None,
                saturated=None,
            )
            for device, entry in devices.items()
        }
        for node, devices in value.items()
    }


@dataclass(frozen=True, kw_only=True)
class DefectErrors(Written):
    """The error counters of one device a defect names, summed over the defect's own windows."""

    node: str | None = None
    device: str | None = None
    errors: Mapping[str, int] = field(default_factory=dict)
    errors_saturated: tuple[str, ...] = ()
    errors_reset: tuple[str, ...] = ()

    @property
    def quiet(self) -> bool:
        """Nothing rose, saturated or was cleared."""
        return not (self.errors or self.errors_saturated or self.errors_reset)


@dataclass(frozen=True, kw_only=True)
class DefectCause(Written):
    """A fault on a node's own GPUDirect path (a preflight check's fail or warning,
    ``bench.rails.measurement.local_causes``): beside a defect it explains, it says why the rail or GPU is slow and what
    to do instead. The check's answer is held as the checks made it, written inline: its keys (``check``, ``status``,
    ``reason``, ``device``, ``action``, ``gpus``, ``gpu_buses``) are the cause's own in rails.json, then the node and
    whether a defect carries it."""

    result: CheckResult = field(metadata=codec.INLINE)
    """The check's answer: ``device`` names the part (``GPU3``, ``mlx5_4``, a PCI address), ``gpus`` the GPUs (PCI
    bus order) whose path it is on and ``gpu_buses`` their addresses, which tie it to the rail whose rank drove
    one of them."""
    node: str | None = None
    explains: bool = False
    """In ``node_causes``: whether a defect of the test carries it."""


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
class RailDefect(Written):
    """One broken part the rails test named and what convicts it, built once, whole, by the conviction step
    (``bench.rails.diagnosis.corroborate``) from the part the judge named (``bench.rails.diagnosis.cells.NamedPart``).
    Its ``kind`` is one of ``bench.rundir.defect_kinds.DEFECT_KINDS``; older releases wrote other kinds and fewer
    fields."""

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
    conviction: Conviction = field(default_factory=Conviction, metadata=codec.INLINE)
    """Its keys in rails.json's defect itself; the slow pairs in ``evidence`` read ``node02-node07/rail3``."""
    samples_Gbps: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    """Every sample (matrix repeats, then confirmations) of each slow pair in ``evidence``."""
    errors: tuple[DefectErrors, ...] | None = None
    """The error counters of the devices it names over the whole test (``bench.rails.diagnosis.corroborate``); None when
    they were not read."""
    action: str
    """What a technician does about it: its first cause's action, else the profile's ``[actions]``, decided once by
    the conviction step (``bench.rails.diagnosis.corroborate``). A rails.json defect without one reads as saying none
    (``bench.rundir.railsdoc``)."""
    severity: str = "fail"
    """``warn``: named, but fails nothing (an ``errors`` defect unless the profile's ``[errors]
    fail_on_errors`` says otherwise)."""
    switches: tuple[str, ...] = ()
    """With a topology: the leaf of a cable or leaf; the candidate leaves of an uplink; the spines of a spine."""
    ports: tuple[str, ...] = ()
    """With a topology: the switch ports to check (a cable's leaf port, the uplinks ``leaf port <-> spine port``)."""
    unit: str | None = None
    """With a topology: the scalable unit of a leaf, or of an uplink's leaf, ``unit 2 (node33-node64)``."""
    line: str | None = None
    """The one human line (``node07 rail 3 (mlx5_4): 212 Gb/s = 53% of 400 Gb/s in 7/7 pairs → link fault``),
    said when the record is written (``bench.rails.output.described``): None until then."""
    causes: tuple[DefectCause, ...] = ()
    """Faults on the node's own GPUDirect path that explain it (a GPU at x8 behind a slow rail); the action is
    then the first one's."""
    only_pair: bool | Absent = ABSENT
    """A pair fault that was its rail's only pair measured (two live nodes on the rail): either end's link or
    the switch between, which one pair cannot tell. Absent otherwise."""

    @property
    def address(self) -> Part:
        """The part it names, in fields (``bench.rundir.part``)."""
        return Part(
            kind=self.kind,
            node=self.node,
            peer=self.peer,
            rail=self.rail,
            device=self.device,
            switches=self.switches,
            ports=self.ports,
            unit=self.unit,
        )

    def to_json(self) -> JSONObject:
        return {key: rounded(value) for key, value in super().to_json().items()}


@dataclass(frozen=True, kw_only=True)
class Transient(Written):
    """A suspect pair that measured normal again when re-measured: recorded, not a fault."""

    node: str | None = None
    peer: str | None = None
    rail: int | None = None
    samples_Gbps: tuple[float, ...] = ()
    """The matrix's samples of this pair (one per repeat), the slow one among them."""
    confirm_Gbps: tuple[float, ...] = ()
    """The re-measurements, same partner and same concurrent load."""

    def to_json(self) -> JSONObject:
        return {key: rounded(value) for key, value in super().to_json().items()}


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


@dataclass(frozen=True, kw_only=True)
class GpuDefect(Written):
    """One slow GPU, GPU pair or node of the intra-node matrix, built once, whole, by the conviction step
    (``bench.rails.diagnosis.corroborate``): the part the matrix named, held whole (its keys first in rails.json's
    object, as they always were), then its action, its line and its causes."""

    named: NamedGpu = field(metadata=codec.INLINE)
    action: str
    """What a technician does about it: its first cause's action, else the profile's ``[actions]`` for its kind,
    decided once by the conviction step. A rails.json defect without one reads as saying none
    (``bench.rundir.railsdoc``)."""
    line: str | None = None
    """Said when the record is written (``bench.rails.documents.intra_node_section``): None until then."""
    severity: str | None = None
    """The intra-node matrix writes none (every GPU defect fails); a hand-made ``warn`` is kept."""
    causes: tuple[DefectCause, ...] = ()
    """Faults of the GPU itself that explain it (clocks held down, an NVLink inactive, Xid events)."""

    @property
    def kind(self) -> str:
        return self.named.kind

    @property
    def node(self) -> str | None:
        return self.named.node

    @property
    def gpu(self) -> int | None:
        return self.named.gpu

    @property
    def peer(self) -> int | None:
        return self.named.peer

    @property
    def conviction(self) -> Conviction:
        return self.named.conviction

    def __post_init__(self) -> None:
        # The intra-node matrix never measures one: a document that says one is not the one it wrote.
        if self.conviction.spread is not ABSENT:
            raise ValueError("a GPU defect has no spread")

    @property
    def address(self) -> Part:
        """The GPU, GPU pair or node it names, in fields (``bench.rundir.part``)."""
        return Part(
            kind=self.kind,
            node=self.node,
            gpu=None if self.gpu is None else LocalGpu(self.gpu, self.named.bus_id),
            peer_gpu=None if self.peer is None else LocalGpu(self.peer, self.named.peer_bus_id),
            intra=True,
        )

    @property
    def part(self) -> str:
        """The GPU or GPU pair as an operator finds it in the node (:attr:`bench.rundir.part.Part.gpus`)."""
        return self.address.gpus

    def to_json(self) -> JSONObject:
        doc = {key: rounded(value) for key, value in super().to_json().items()}
        return doc if self.severity is not None else {k: v for k, v in doc.items() if k != "severity"}


@dataclass(frozen=True)
class Localisation:
    """What the intra-node matrix says once its parts are convicted: the GPU defects (built by the conviction step,
    ``bench.rails.diagnosis.corroborate``, from what ``bench.rails.diagnosis.gpu_pairs`` named), the healthy level,
    why nothing could be named, if so, and the suspects that read normal again. rails.json's ``intra_node`` holds
    it inline (its keys flat beside the matrix's, ``bench.codec.INLINE``)."""

    defects: tuple[GpuDefect, ...] = ()
    level_Gbps: float | None = None
    too_noisy: str | None = None
    """Why the relative test named nothing: the healthy pairs' own spread is too wide to tell."""
    transients: tuple[Transient, ...] = ()
    """Suspect pairs that read normal when re-measured: shown, never a fault. A transient's ``node`` and
    ``peer`` are its two GPUs (``node03/gpu1``, ``node03/gpu5``); it has no rail. Absent from a rails.json
    written before the intra-node matrix re-measured."""


@dataclass(frozen=True, kw_only=True)
class ErrorWindow(Written):
    """One counter window of the test (the rail groups at once, each rail alone, the pairs...): the devices
    whose error counters said something in it, per node."""

    window: str = ""
    rails: tuple[int, ...] | None = None
    """None: every rail."""
    errors: Counters = field(default_factory=dict)
