"""The records of what the rails test named, as rails.json holds them and as the rails layer makes them: one
record per idea, built once by its writer (``bench.rails``) and read back by every reader (the report, compare,
the history, Slurm's drain). A defect (``RailDefect``), a transient (``Transient``), an intra-node defect
(``GpuDefect``), each defect holding whole the part the judge named and what convicts it
(``bench.rundir.named_parts``: ``NamedPart``, ``NamedGpu``, ``Conviction``, written inline in the defect's own
object), an error window (``ErrorWindow``), the counters a defect's devices showed (``DefectErrors``) and a
fault on a node's own path that explains one (``DefectCause``). The kinds they name are one table,
``bench.rundir.defect_kinds``.

A record holds its numbers as measured; its JSON gives every rate to six decimals (:func:`rounded`), the
precision rails.json has always had. Each part's fields are declared in the order the writer writes its keys,
under the keys' own names (a rails defect puts its part's place back where older releases wrote it,
``RailDefect.to_json``), and read back strictly by ``bench.codec``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from bench import codec
from bench.codec import ABSENT, Absent, Written
from bench.jsondoc import JSONObject, JSONValue
from bench.rundir.checksjson import CheckResult
from bench.rundir.named_parts import Conviction as Conviction
from bench.rundir.named_parts import NamedGpu as NamedGpu
from bench.rundir.named_parts import NamedPart
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


PLACED_AFTER_SEVERITY = ("switches", "ports", "unit", "line", "causes", "only_pair")
"""A rails defect's keys after its ``severity``, in rails.json's order since the first release that wrote them: the
part's place (its switches, ports and unit) between the defect's own severity and line, its ``only_pair`` last."""


@dataclass(frozen=True, kw_only=True)
class RailDefect(Written):
    """One broken part the rails test named and what convicts it, built once, whole, by the conviction step
    (``bench.rails.diagnosis.corroborate``): the part the judge named, held whole (``named``, its keys flat in the
    defect's object), and what the conviction step adds. Its ``kind`` is one of
    ``bench.rundir.defect_kinds.DEFECT_KINDS``; older releases wrote other kinds and fewer fields."""

    named: NamedPart = field(metadata=codec.INLINE)
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
    line: str | None = None
    """The one human line (``node07 rail 3 (mlx5_4): 212 Gb/s = 53% of 400 Gb/s in 7/7 pairs → link fault``),
    said when the record is written (``bench.rails.output.described``): None until then."""
    causes: tuple[DefectCause, ...] = ()
    """Faults on the node's own GPUDirect path that explain it (a GPU at x8 behind a slow rail); the action is
    then the first one's."""

    # The part's fields, read through the defect as every reader always has (``bench.rundir.named_parts``).
    @property
    def expected_device(self) -> str | None:
        return self.named.expected_device

    @property
    def carried(self) -> tuple[str, ...]:
        return self.named.carried

    @property
    def kind(self) -> str:
        return self.named.kind

    @property
    def node(self) -> str | None:
        return self.named.node

    @property
    def peer(self) -> str | None:
        return self.named.peer

    @property
    def rail(self) -> int | None:
        return self.named.rail

    @property
    def device(self) -> str | None:
        return self.named.device

    @property
    def conviction(self) -> Conviction:
        return self.named.conviction

    @property
    def samples_Gbps(self) -> Mapping[str, tuple[float, ...]]:
        return self.named.samples_Gbps

    @property
    def switches(self) -> tuple[str, ...]:
        return self.named.switches

    @property
    def ports(self) -> tuple[str, ...]:
        return self.named.ports

    @property
    def unit(self) -> str | None:
        return self.named.unit

    @property
    def only_pair(self) -> bool | Absent:
        return self.named.only_pair

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
        doc = {key: rounded(value) for key, value in super().to_json().items()}
        placed = {key: doc.pop(key) for key in PLACED_AFTER_SEVERITY if key in doc}
        return {**doc, **placed}


@dataclass(frozen=True, kw_only=True)
class Transient(Written):
    """A suspect pair that measured normal again when re-measured: recorded, not a fault. Evidence of the
    conviction step (a suspect it acquitted), not a finding: it names no part at fault, decides no item and has
    nothing to do about it (docs/design.md, "Adding a finding")."""

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
