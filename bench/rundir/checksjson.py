"""checks.json in the run directory (``check --json`` as ``accept`` stores it) as a typed, immutable record: the
one reader every command uses (the report's preflight grid, the history's per-node versions).

Shape: ``{"format_version", "profile", "nranks", "verdict", "reasons", "nodes": [{"node", "verdict",
"versions": {...}, "results": [{check, status, reason, device, action, gpus}, ...]}, ...], "cross_node": [...],
"cabling": [...]}``; an older single node layout has ``"checks": [...]`` instead of ``nodes``. A key a document
of an earlier release (or one made by hand) lacks takes its default; a value of another type is refused in one
line naming the file and the field (``bench.codec``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from bench import codec, jsondoc
from bench.codec import ABSENT, Absent
from bench.exits import UserError
from bench.jsondoc import JSONValue
from bench.rundir.docversion import CHECKS_FORMAT_VERSION, CHECKS_STEPS, upgrade

FIX = "delete it or re-run railbench check"
MAX_CHECKS_JSON_BYTES = 64 << 20
"""A few KiB per node: 4,096 nodes fit in well under this."""


@dataclass(frozen=True, kw_only=True)
class CheckEntry:
    """One check's answer on a node (``bench.preflight.checks.CheckResult`` as written)."""

    check: str | Absent = ABSENT
    name: str | Absent = ABSENT
    """What the older single-node layout called the check."""
    status: str = ""
    reason: str = ""
    device: str | None = None
    action: str | Absent | None = ABSENT
    """What to do about a fail or warning; absent in a checks.json written before it said."""
    gpus: tuple[int, ...] | Absent = ABSENT


@dataclass(frozen=True, kw_only=True)
class NodeChecks:
    """One node's answers and the versions it runs."""

    node: str | None = None
    verdict: str | Absent = ABSENT
    versions: Mapping[str, str | None] | Absent = ABSENT
    results: tuple[CheckEntry, ...] = ()
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
    cross_node: tuple[CheckEntry, ...] = ()
    cabling: tuple[CheckEntry, ...] = ()
    """``--topology``: the cabling against the rail-optimised plan."""
    checks: tuple[CheckEntry, ...] = ()
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
