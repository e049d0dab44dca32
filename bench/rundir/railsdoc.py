"""rails.json as one typed, immutable record: ``bench.rails.output`` builds a :class:`RailsDoc` and writes its
``to_json()``; every reader (the report, compare, the history) gets one from :func:`read_rails_doc`.

``rails.schema.json`` beside this module is the contract as a JSON Schema, shipped in the package; the tests
check every rails.json they produce against it. A document of an older ``format_version`` is upgraded by its
named steps (``bench.rundir.docversion``) and then read strictly by ``bench.codec``: a field of the wrong type
(``"measurements": 5``, ``"rails": true``, a defect's ``rail`` as text), a list item that is not an object, a
measurement without its numbers or a key no release wrote is refused in one line naming the file and the
field, never a traceback deep in a reader. A field a document lacks takes its default: older releases wrote
fewer sections (no ``skipped``, no ``links``) and other defect kinds, and the report still draws them.

Every part's fields are declared in the order the writer writes its keys, under the keys' own names.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from bench import codec, jsondoc
from bench.codec import ABSENT, Absent, Written
from bench.exits import UserError
from bench.jsondoc import JSONObject, JSONValue, Parsed
from bench.rundir.docversion import RAILS_FORMAT_VERSION, RAILS_STEPS, upgrade
from bench.rundir.pair_cells import LinkLevels, PairCells
from bench.rundir.rails_records import Conviction as Conviction
from bench.rundir.rails_records import Counters as Counters
from bench.rundir.rails_records import DefectCause as DefectCause
from bench.rundir.rails_records import DefectErrors as DefectErrors
from bench.rundir.rails_records import DeviceCounters as DeviceCounters
from bench.rundir.rails_records import ErrorWindow as ErrorWindow
from bench.rundir.rails_records import GpuDefect as GpuDefect
from bench.rundir.rails_records import Localisation as Localisation
from bench.rundir.rails_records import RailDefect as RailDefect
from bench.rundir.rails_records import Transient as Transient
from bench.rundir.rails_records import counters_from_json as counters_from_json

SCHEMA_PATH = Path(__file__).with_name("rails.schema.json")
MAX_RAILS_JSON_BYTES = 512 << 20
"""rails.json of 4,096 nodes x 8 rails is tens of MiB; a larger file is not one railbench wrote."""
FIX = "re-run railbench rails"


@dataclass(frozen=True, kw_only=True)
class RailEntry(Written):
    """One rail: its line rate, the device that carried it on each node and the one expected there."""

    rail: int
    line_rate_Gbps: float | None = None
    devices: Mapping[str, str | None] = field(default_factory=dict)
    """node -> the device that moved the most bytes while the rail ran alone (None: none moved its share)."""
    expected_devices: Mapping[str, str | None] = field(default_factory=dict)
    path: Mapping[str, Mapping[str, JSONValue]] = field(default_factory=dict)
    """node -> the NIC expected, its port state and PCI distance, and the NICs that carried the rail."""
    bytes_alone: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    """node -> device -> bytes while the rail ran alone."""


@dataclass(frozen=True, kw_only=True)
class Measurement(Written):
    """One rail-group result (``kind`` rail: no peer, and a node only in per-node records) or one direction of
    a node pair on a rail (``kind`` pair)."""

    kind: Literal["rail", "pair"]
    rail: int
    node: str | None = None
    peer: str | None = None
    device: str | None = None
    collective: str | None = None
    mode: str | None = None
    """A rail group's: ``concurrent`` or ``isolated``."""
    busbw_Gbps: float
    expected_Gbps: float | None = None
    bytes: int | None = None
    time_us: float | None = None
    time_us_min: float | None = None
    time_us_max: float | None = None
    wrong: int | None = None
    repeat: int = 0
    round: int | None = None
    confirm: int = 0
    """A pair's: 0 for the matrix, 1.. for a re-measurement of a suspect."""
    stopped: bool = False
    samples_us: tuple[float, ...] | Absent = ABSENT
    """A rail group's, where it fell short of its mark and was measured again: each measurement's ``time_us`` in
    the order taken (``time_us`` is the best of them, the one judged)."""

    def __post_init__(self) -> None:
        # a rail group spans every node (no node, but a per-node record's); a pair names both of its nodes
        if self.kind == "pair" and (self.node is None or self.peer is None):
            raise ValueError(f"a pair measurement on rail {self.rail} names no node or peer")

    def to_json(self) -> JSONObject:
        # a rail group has a mode, a spread and a count of wrong elements; a pair its round and re-measurement
        other = (
            ("round", "confirm", "stopped") if self.kind == "rail" else ("mode", "time_us_min", "time_us_max", "wrong")
        )
        return {key: value for key, value in super().to_json().items() if key not in other}


@dataclass(frozen=True, kw_only=True)
class LocalMeasurement(Written):
    """One direction of one local GPU pair on one node: GPU ``gpu`` sends, GPU ``peer`` receives."""

    node: str
    gpu: int
    peer: int
    bus_id: str | None = None
    peer_bus_id: str | None = None
    collective: str | None = None
    busbw_Gbps: float | None = None
    bytes: int | None = None
    time_us: float | None = None
    repeat: int = 0
    round: int | None = None


@dataclass(frozen=True, kw_only=True)
class IntraNode(Written):
    """rails.json's ``intra_node``: each node's GPU x GPU matrix and the GPUs it named."""

    skipped: str | None = None
    nodes: tuple[str, ...] = ()
    local_ranks: int | None = None
    bus_ids: Mapping[str, tuple[str | None, ...]] = field(default_factory=dict)
    """node -> the PCI bus id of each local rank's GPU (None where unknown)."""
    target_Gbps: float | None = None
    process_groups: int | None = None
    measurements: tuple[LocalMeasurement, ...] = ()
    localisation: Localisation = field(default_factory=Localisation, metadata=codec.INLINE)
    """What the matrix named (``defects``), its healthy level (``level_Gbps``), ``too_noisy`` and its
    ``transients``, written flat beside the matrix."""


@dataclass(frozen=True, kw_only=True)
class Link(Written):
    """One (node, rail) link as found before the rail groups formed."""

    node: str = ""
    rail: int = 0
    device: str | None = None
    port: str = ""
    port_up: bool | None = None
    """The port's state in sysfs; None where it could not be read."""
    reached: tuple[str, ...] = ()
    unreached: Mapping[str, str] = field(default_factory=dict)
    """peer -> why it was not reached."""
    in_group: bool = False


@dataclass(frozen=True, kw_only=True)
class RailsDoc(Written):
    """One rails.json. ``partial`` while the test runs: the measurements so far, no devices, defects or
    verdict yet, and only the sections the schema requires."""

    partial: bool = False
    skipped: str | None = None
    """Why nothing was measured (a single node)."""
    nodes: tuple[str, ...] = ()
    rails: tuple[RailEntry, ...] = ()
    measurements: tuple[Measurement, ...] = ()
    """The rail groups' results; before format 3, every pair direction too (one object each)."""
    pair_cells: PairCells | Absent = ABSENT
    """Format 3 on: every pair direction measured, in columns (``bench.rundir.pair_cells``)."""
    link_levels: LinkLevels | Absent = ABSENT
    """Format 3 on: each link's aggregate over the matrix (partners, median, minimum, directions under the pass
    line)."""
    units: tuple[tuple[str, ...], ...] | Absent = ABSENT
    """The run's nodes in each unit of the cabling (``--topology``), where one was given: the report's matrix at
    many nodes is drawn unit by unit (``bench.report.matrices``)."""
    defects: tuple[RailDefect, ...] = ()
    transients: tuple[Transient, ...] = ()
    too_noisy: str | None = None
    """Why the pair matrix named nothing: the fabric's healthy spread is too wide to tell."""
    fabric_capacity: str | Absent = ABSENT
    """What the fabric between units carries, a property of the fabric, never a defect, in sentences joined by
    "; ": its taper where the run showed it binding (``the fabric's uplinks are tapered, 2:1 between units:
    cross-unit pairs expected at 50% in rounds that fill the uplinks ...``), a slowdown between groups of nodes
    without the cabling, a slowdown between units that needs company (ECMP's collisions); absent elsewhere."""
    counter_findings: tuple[str, ...] = ()
    below_target: tuple[str, ...] = ()
    """Rail-group results under the pass line, as the verdict says them."""
    counters: Counters = field(default_factory=dict)
    """Per node, per device: bytes and error counters over the whole test."""
    error_windows: tuple[ErrorWindow, ...] = ()
    process_groups: int | None = None
    intra_node: IntraNode | None = None
    links: tuple[Link, ...] = ()
    node_causes: tuple[DefectCause, ...] = ()
    """Every fault each node's GPUDirect path checks found, whether or not a defect carries it."""

    def __post_init__(self) -> None:
        if isinstance(self.pair_cells, PairCells):
            self.pair_cells.check_nodes(len(self.nodes))

    def to_json(self) -> JSONObject:
        doc = super().to_json()
        # the version first: a reader decides how to read the rest from it (bench.rundir.docversion)
        head: JSONObject = {"format_version": RAILS_FORMAT_VERSION}
        if self.partial:
            keys = ("partial", "skipped", "nodes", "rails", "measurements", "pair_cells", "defects")
            return head | {key: doc[key] for key in keys if key in doc}
        return head | {key: value for key, value in doc.items() if key != "partial"}

    @classmethod
    def from_json(cls, doc: Parsed, where: str | Path = "rails.json") -> RailsDoc:
        """The record in ``doc`` (a current document, as ``bench.jsondoc`` reads it); UserError naming ``where``
        and the field when a value is not of its declared type."""
        try:
            read = {k: v for k, v in doc.items() if k != "format_version"}
            return codec.decode(cls, _actions_said(read), f"{where}: ")
        except codec.Refused as exc:
            raise UserError(f"{exc}: {FIX}") from None


def _actions_said(doc: Parsed) -> Parsed:
    """``doc`` with an empty action on every defect that says none, and an empty kind on one that names none, the
    rails defects' and the intra-node matrix's alike: the schema never required an action, and a document written
    before every defect carried its action reads as one whose defects say no action (a defect without a kind read
    as one of no kind before the record required it). The judge builds every defect with both
    (``bench.rails.diagnosis.corroborate``); only reading supplies them."""
    out = {**doc, "defects": _said(doc["defects"])} if "defects" in doc else doc
    intra = out.get("intra_node")
    if isinstance(intra, dict) and "defects" in intra:
        out = {**out, "intra_node": {**intra, "defects": _said(intra["defects"])}}
    return out


def _said(defects: object) -> object:
    """Each defect object in ``defects`` with an empty kind and action where it has none (any other value as it
    is: the codec refuses it where it is read)."""
    if not isinstance(defects, list):
        return defects
    return [{"kind": "", "action": "", **d} if isinstance(d, dict) else d for d in defects]


def read_rails_doc(run_dir: Path | str) -> RailsDoc | None:
    """The run's rails.json as its record; None when the run has none. UserError (exit 2) when it is damaged:
    a FIFO, a link to a device, too large, not JSON, nested too deep, numbers out of range, fields of the
    wrong type."""
    path = Path(run_dir) / "rails.json"
    doc = jsondoc.optional_object(path, fix=FIX, max_bytes=MAX_RAILS_JSON_BYTES)
    if doc is None:
        return None
    return RailsDoc.from_json(upgrade(doc, path, RAILS_FORMAT_VERSION, RAILS_STEPS), path)
