"""compare.json as a typed, immutable record: ``bench.history.outputs`` writes it, and every reader (the report,
the metrics export) gets one from :func:`read_compare_json`.

The fields are declared in the order the writer writes its keys, under the keys' own names. A key a document
of an earlier release lacks takes its default (a metric's ``changes``, ``evidence`` and ``noise_source`` came
later); a value of the wrong type is refused in one line naming the file and the field (``bench.codec``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from bench import codec
from bench.codec import ABSENT, Absent
from bench.exits import UserError
from bench.jsondoc import optional_object
from bench.profile.compare import ThresholdRule
from bench.rundir.docversion import COMPARE_FORMAT_VERSION, COMPARE_STEPS, upgrade
from bench.rundir.sections import Number

FIX = "delete it or re-run railbench compare"


@dataclass(frozen=True, kw_only=True)
class ComparedRun:
    """``run``: tonight's run as the history holds it."""

    time_utc: str
    cluster: str
    nccl: str | None = None
    nranks: int | None = None
    nnodes: int | None = None
    node_hash: str | None = None


@dataclass(frozen=True, kw_only=True)
class BaselineEntry:
    """One run of the baseline as compare.json names it, newest first (the history's own
    ``bench.history.baseline.BaselineRun`` also knows its NCCL version, which the baseline says once)."""

    time_utc: str
    run_dir: str
    id: int | None = None


@dataclass(frozen=True, kw_only=True)
class OtherNcclRuns:
    """Runs of the cluster under another NCCL version, left out of the baseline."""

    nccl: str | None
    runs: int


@dataclass(frozen=True, kw_only=True)
class Baseline:
    """``baseline``: which runs tonight was compared with."""

    description: str
    nccl: str | None = None
    runs: tuple[BaselineEntry, ...] = ()
    other_nccl: tuple[OtherNcclRuns, ...] = ()


@dataclass(frozen=True, kw_only=True)
class JudgedWith:
    """``settings``: the part of the profile's ``[compare]`` (``bench.profile.compare.CompareSettings``) that
    judged the metrics, as written; a key an earlier release did not write stays absent."""

    default_threshold: Number | Absent = ABSENT
    noise_k: Number | Absent = ABSENT
    min_bytes: int | Absent = ABSENT
    resolution_GBps: Number | Absent = ABSENT
    min_runs: int | Absent = ABSENT
    noise_floor: Number | Absent = ABSENT
    rules: tuple[ThresholdRule, ...] | Absent = ABSENT
    """Each checked as the profile's ``[[compare.rule]]`` is."""


@dataclass(frozen=True, kw_only=True)
class ChangeEntry:
    """One fact that changed since the baseline (``NCCL 2.21.5 -> 2.23.4``)."""

    fact: str
    before: str
    after: str
    text: str


@dataclass(frozen=True, kw_only=True)
class RailErrorRise:
    """A rail whose error counter rose beyond what the baseline's runs explain."""

    rail: int
    counter: str
    count: int | None
    """None: the counter saturated, so no count can be given."""
    baseline: Number | None
    baseline_runs: int
    text: str


@dataclass(frozen=True, kw_only=True)
class OtherNcclMetric:
    """Tonight's metric against the runs of another NCCL version."""

    nccl: str | None
    runs: int
    baseline_GBps: Number | None
    change: Number | None


@dataclass(frozen=True, kw_only=True)
class ComparedMetric:
    """One metric's verdict (``bench.history.outputs.MetricComparison`` as written)."""

    metric: str
    collective: str
    scope: str
    group: str
    bytes: int
    state: str
    busbw_GBps: Number | None = None
    baseline_GBps: Number | None = None
    sigma_GBps: Number | None = None
    baseline_runs: int = 0
    change: Number | None = None
    threshold: Number | None = None
    allowed_GBps: Number | None = None
    noise_estimated: bool | Absent = ABSENT
    noise_source: str | Absent = ABSENT
    evidence: str | Absent = ABSENT
    changes: tuple[str, ...] = ()
    band_GBps: tuple[Number | None, ...] = ()
    history_GBps: tuple[Number | None, ...] = ()
    other_nccl: tuple[OtherNcclMetric, ...] = ()


@dataclass(frozen=True, kw_only=True)
class CompareDoc:
    """One compare.json."""

    format_version: int
    tool: str = "railbench"
    command: str = "compare"
    run_dir: str | Absent = ABSENT
    """The run directory compared."""
    run: ComparedRun | Absent = ABSENT
    baseline: Baseline | Absent = ABSENT
    settings: JudgedWith | Absent = ABSENT
    notes: tuple[str, ...] = ()
    kind: str | Absent | None = ABSENT
    changes_since_baseline: tuple[ChangeEntry, ...] = ()
    rail_errors: tuple[RailErrorRise, ...] = ()
    summary: Mapping[str, int] = field(default_factory=dict)
    """state -> how many metrics are in it."""
    exit_status: int | None = None
    metrics: tuple[ComparedMetric, ...] = ()


def read_compare_json(run_dir: Path | str) -> CompareDoc | None:
    """The run's compare.json brought to the current version and read strictly; None when compare has not run
    on it; UserError (exit 2) naming the file when it is damaged or newer than this railbench."""
    path = Path(run_dir) / "compare.json"
    doc = optional_object(path, fix=FIX)
    if doc is None:
        return None
    current = upgrade(doc, path, COMPARE_FORMAT_VERSION, COMPARE_STEPS)
    try:
        return codec.decode(CompareDoc, current, f"{path}: ")
    except codec.Refused as exc:
        raise UserError(f"{exc}: {FIX}") from None
