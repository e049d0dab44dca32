"""checks.json in the run directory (``check --json`` as ``accept`` stores it) as a typed, immutable record: the
one reader every command uses (the report's preflight grid, the history's per-node versions). Its
:class:`CheckResult`, a check's answer, is the one record of it: the checks make it (``bench.preflight``), ranks
gather it over MPI as this codec's JSON, and rails.json's node-local causes hold it
(``bench.rails.measurement.local_causes``).

Shape: ``{"format_version", "profile", "nranks", "verdict", "reasons", "nodes": [{"node", "verdict",
"versions": {...}, "results": [{check, status, reason, device, action, gpus}, ...]}, ...], "cross_node": [...],
"cabling": [...]}``; an older single node layout has ``"checks": [...]`` instead of ``nodes``. A document of an
earlier release is brought to this shape by its upgrade steps (``bench.rundir.docversion``: the older layout's
``name`` becomes ``check``, ``action`` and ``gpus`` are added where they were not yet written); a key the current
shape leaves optional and a document lacks takes its default; a value of another type is refused in one line
naming the file and the field (``bench.codec``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from bench import codec, jsondoc
from bench.codec import ABSENT, Absent
from bench.exits import UserError
from bench.jsondoc import JSONValue
from bench.rundir.docversion import CHECKS_FORMAT_VERSION, CHECKS_STEPS, upgrade

FIX = "delete it or re-run railbench check"
MAX_CHECKS_JSON_BYTES = 64 << 20
"""A few KiB per node: 4,096 nodes fit in well under this."""


Status = Literal["pass", "warn", "fail", "skip"]
"""A check's answer: ``skip`` where the check does not apply (and why is its reason)."""


@dataclass(frozen=True)
class CheckResult:
    """One check's answer on a node: one line of the verdict table, and one entry of checks.json's results."""

    check: str
    status: Status
    reason: str
    """One line that names the device."""
    device: str | None = None
    action: str | None = None
    """What a technician does about a fail or warning (the profile's ``[actions]``); None where no action applies."""
    gpus: tuple[int, ...] = ()
    """The GPUs (in PCI bus order, as nvidia-smi numbers them) whose path the result is about."""
    gpu_buses: tuple[str, ...] = ()
    """The PCI addresses of ``gpus`` where the tree gives them (``0000:9a:00.0``): how ``rails`` and ``accept`` tie
    a node-local cause to the rail or GPU it slows, the GPU each rank drove whatever CUDA numbered it
    (``bench.rails.measurement.local_causes``)."""
    said: str | None = None
    """The reason's words without the device it opens with (``port DOWN ...`` of ``mlx5_1:1: port DOWN ...``),
    as the check wrote them (``bench.preflight.check_base.Check.on_device``): what a line that names the device
    itself says (the Slurm drain reason). None where the reason opens with no device."""


@dataclass(frozen=True, kw_only=True)
class NodeChecks:
    """One node's answers and the versions it runs."""

    node: str | None = None
    verdict: str | Absent = ABSENT
    versions: Mapping[str, str | None] | Absent = ABSENT
    results: tuple[CheckResult, ...] = ()
    nccl_evidence: Mapping[str, JSONValue] | Absent = ABSENT
    """``bench.nccllogs.nccl_evidence.evidence`` of the ``--nccl-log`` files checked on the node, as written."""


@dataclass(frozen=True, kw_only=True)
class ChecksDoc:
    """One checks.json."""

    format_version: int = CHECKS_FORMAT_VERSION
    profile: str | Absent = ABSENT
    nranks: int | Absent | None = ABSENT
    verdict: str | Absent = ABSENT
    reasons: tuple[str, ...] | Absent = ABSENT
    nodes: tuple[NodeChecks, ...] = ()
    cross_node: tuple[CheckResult, ...] = ()
    cabling: tuple[CheckResult, ...] = ()
    """``--topology``: the cabling against the rail-optimised plan."""
    checks: tuple[CheckResult, ...] = ()
    """The older single-node layout's flat list."""


def read_checks_json(run_dir: Path | str) -> ChecksDoc | None:
    """The run's checks.json brought to the current version and read strictly; None when the run has none;
    UserError (exit 2) naming the file when it is damaged or newer than this railbench."""
    path = Path(run_dir) / "checks.json"
    doc = jsondoc.optional_object(path, fix=FIX, max_bytes=MAX_CHECKS_JSON_BYTES)
    if doc is None:
        return None
    current = upgrade(doc, path, CHECKS_FORMAT_VERSION, CHECKS_STEPS)
    try:
        return codec.decode(ChecksDoc, current, f"{path}: ")
    except codec.Refused as exc:
        raise UserError(f"{exc}: {FIX}") from None
