"""What the history keeps of a run: one ``RunRecord`` and one ``MetricRecord`` per key metric.

A key metric is one (collective, scope, group, size) of a run: ``all_reduce/world/world/1048576``. Its value
is the out-of-place busbw, the nccl-tests headline (in-place only where a run has no out-of-place row).
Repeated measurements of one metric in one run (``-N`` cycles, a log with two tables of the same test) are
summarised by their median. A metric is *failed* when any of its rows reports wrong elements or has no
finite busbw.
"""

from __future__ import annotations

import hashlib
import math
import statistics
from array import array
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.bounded import Where, ascii_digits, parse_float, parse_int
from bench.exits import UserError
from bench.history.runfacts import run_environment, run_kind
from bench.history.soak_runs import SoakSummary, read_soak
from bench.jsondoc import INT_MAX
from bench.rundir.results_csv import iter_results_rows
from bench.rundir.runjson import RunDoc, read_run_json


def metric_key(collective: str, scope: str, group: str, nbytes: int) -> str:
    """``"all_reduce/world/world/1048576"``: the name thresholds match against (fnmatch patterns)."""
    return f"{collective}/{scope}/{group}/{nbytes}"


def node_hash(hosts: Iterable[str]) -> str:
    """A short stable name for a node *set*: the same nodes in any order hash the same."""
    joined = "\n".join(sorted(set(hosts)))
    return hashlib.sha256(joined.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class RunIdentity:
    """What the history knows of every run it lists: identity, placement, outcome."""

    run_key: str
    """Identity used to make adding a run idempotent (cluster, start time, command, nodes, folder name)."""
    run_dir: str
    time_utc: str
    """When the run started, ISO 8601 with Z; orders the history."""
    cluster: str
    profile: str | None
    command: str
    status: str
    verdict: str | None
    node_hash: str
    nnodes: int
    nranks: int
    nccl: str | None


@dataclass(frozen=True)
class RunRecord:
    """The run the history is given, read from a run directory: its run.json whole, and what the history
    derives from it to place and compare the run."""

    doc: RunDoc
    run_dir: str
    """The run directory, resolved."""
    run_key: str
    """Identity used to make adding a run idempotent (cluster, start time, command, nodes, folder name)."""
    time_utc: str
    """When the run started (else finished), ISO 8601 with Z; orders the history."""
    node_hash: str
    kind: str = ""
    """The command and the shape of its sweep (``bench.history.runfacts.run_kind``): what makes runs comparable."""
    environment: Mapping[str, Any] = field(default_factory=dict)
    """Versions, node set and NCCL_* variables (``bench.history.runfacts.run_environment``)."""

    @property
    def nnodes(self) -> int:
        """run.json's node count, else its hosts counted."""
        return self.doc.nnodes or len(self.doc.hosts)

    @property
    def nranks(self) -> int:
        return self.doc.nranks or 0

    @property
    def nccl(self) -> str | None:
        return self.doc.version_of("nccl")


@dataclass(frozen=True)
class MetricRecord:
    """One key metric of one run."""

    collective: str
    scope: str
    group: str
    bytes: int
    nranks: int | None
    busbw_GBps: float | None
    """Median headline busbw; None when no row had a finite value."""
    algbw_GBps: float | None
    time_us: float | None
    wrong: int | None
    failed: bool
    samples: int

    @property
    def key(self) -> str:
        return metric_key(self.collective, self.scope, self.group, self.bytes)


def _number(text: str | None) -> float | None:
    try:
        value = float(text) if text not in (None, "") else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) else None


def _count(row: Mapping[str, str | None], key: str) -> int | None:
    """A count of results.csv (bytes, wrong, nranks): blank is None; anything else must be a whole number from
    0 to the store's 64-bit limit (``wrong`` may be written ``3.0``). NaN, ``1e999`` or a 30-digit count is
    damage: UserError, exit 2, never a count the history cannot hold or a check silently taken as passed."""
    text = (row.get(key) or "").strip()
    if not text:
        return None
    where = Where("results.csv", f"{key} of {row.get('collective') or '?'} at {row.get('bytes') or '?'} bytes")
    if ascii_digits(text.lstrip("+-")):
        return parse_int(text, where, maximum=INT_MAX)  # exact, where a float would round above 2**53
    value = parse_float(text, where)
    if value != int(value) or int(value) > INT_MAX:
        raise UserError(f"{where} is {text[:20]}, not a whole number the history can hold: the file is damaged")
    return int(value)


@dataclass
class _Samples:
    """One placement's numbers for one metric, packed: 8 bytes per number, NaN where a row had none."""

    busbw: array[float] = field(default_factory=lambda: array("d"))
    algbw: array[float] = field(default_factory=lambda: array("d"))
    time_us: array[float] = field(default_factory=lambda: array("d"))
    nranks: float | None = None

    def add(self, busbw: float | None, algbw: float | None, time_us: float | None, nranks: float | None) -> None:
        for column, value in ((self.busbw, busbw), (self.algbw, algbw), (self.time_us, time_us)):
            column.append(math.nan if value is None else value)
        if self.nranks is None:
            self.nranks = nranks


@dataclass
class _Metric:
    """Everything a key metric needs from its rows; memory grows by a few packed numbers per row."""

    out_of_place: _Samples = field(default_factory=_Samples)
    in_place: _Samples = field(default_factory=_Samples)
    wrong_total: int = 0
    wrong_seen: bool = False
    any_wrong: bool = False


def _packed_median(values: array[float]) -> float | None:
    present = [v for v in values if not math.isnan(v)]
    return statistics.median(present) if present else None


def metrics_from_rows(rows: Iterable[Mapping[str, str]]) -> list[MetricRecord]:
    """Key metrics of results.csv rows (strings, as ``read_results_rows`` gives them).

    Only a few packed numbers are kept per row, so ``rows`` may be a stream of any length (a year of
    imported nightly logs): the medians need every sample, but as 8-byte doubles, not row objects.
    """
    groups: dict[tuple[str, str, str, int], _Metric] = {}
    for row in rows:
        nbytes = _count(row, "bytes")
        if nbytes is None:
            raise UserError("results.csv row has no 'bytes' value: the file is damaged; re-run or re-import the run")
        key = (row.get("collective") or "", row.get("scope") or "", row.get("group") or "", nbytes)
        metric = groups.setdefault(key, _Metric())
        wrong = _count(row, "wrong")
        if wrong is not None:
            metric.wrong_seen = True
            metric.wrong_total = min(metric.wrong_total + wrong, INT_MAX)  # the store keeps 64-bit integers
            metric.any_wrong = metric.any_wrong or wrong > 0
        samples = metric.in_place if row.get("placement") == "in-place" else metric.out_of_place
        samples.add(
            _number(row.get("busbw_GBps")),
            _number(row.get("algbw_GBps")),
            _number(row.get("time_us")),
            _count(row, "nranks"),
        )
    metrics = []
    for (collective, scope, group, nbytes), metric in groups.items():
        # The headline is out-of-place, as nccl-tests' own summary is; in-place only when that is all there is.
        headline = metric.out_of_place if len(metric.out_of_place.busbw) else metric.in_place
        nranks = headline.nranks
        metrics.append(
            MetricRecord(
                collective=collective,
                scope=scope,
                group=group,
                bytes=nbytes,
                nranks=int(nranks) if nranks is not None else None,
                busbw_GBps=_packed_median(headline.busbw),
                algbw_GBps=_packed_median(headline.algbw),
                time_us=_packed_median(headline.time_us),
                wrong=metric.wrong_total if metric.wrong_seen else None,
                failed=metric.any_wrong or any(math.isnan(b) for b in headline.busbw),
                samples=len(headline.busbw),
            )
        )
    return metrics


def run_record(doc: RunDoc, run_dir: Path | str) -> RunRecord:
    """The run row for a run.json (read by ``read_run_json``, so every field has its declared type)."""
    time_utc = doc.started_utc or doc.finished_utc
    if not time_utc:
        raise UserError(f"{run_dir}/run.json has no started_utc: it cannot be placed in the history")
    nodes = node_hash(doc.hosts)
    identity = "\n".join([doc.cluster, str(time_utc), doc.command, nodes, Path(run_dir).resolve().name])
    return RunRecord(
        doc=doc,
        run_dir=str(Path(run_dir).resolve()),
        run_key=hashlib.sha256(identity.encode()).hexdigest()[:24],
        time_utc=str(time_utc),
        node_hash=nodes,
        kind=run_kind(doc),
        environment=run_environment(doc, run_dir),
    )


SOAK_GROUP = "soak"
"""The group of a soak's world metrics (``all_reduce/world/soak/1073741824``): apart from a sweep's ``world``."""


def soak_metrics(doc: RunDoc, soak: SoakSummary | None) -> list[MetricRecord]:
    """A soak's key metrics: each world collective and size at its median busbw over the windows (one sample per
    window), so ``compare`` sets a soak beside the earlier soaks of its kind as it does any run's metrics."""
    if soak is None:
        return []
    return [
        MetricRecord(
            collective=c.collective,
            scope="world",
            group=SOAK_GROUP,
            bytes=c.bytes,
            nranks=doc.nranks,
            busbw_GBps=c.median_busbw_GBps,
            algbw_GBps=None,
            time_us=None,
            wrong=c.wrong,
            failed=c.wrong > 0,
            samples=c.windows,
        )
        for c in soak.collectives
    ]


def read_run_and_soak(run_dir: Path | str) -> tuple[RunRecord, list[MetricRecord], SoakSummary | None]:
    """The run row, key metrics and, for a soak, its summary (``bench.history.soak_runs``), its windows read once."""
    doc = read_run_json(run_dir)
    soak = read_soak(run_dir, doc)
    metrics = metrics_from_rows(iter_results_rows(run_dir)) + soak_metrics(doc, soak)
    return run_record(doc, run_dir), metrics, soak


def read_run(run_dir: Path | str) -> tuple[RunRecord, list[MetricRecord]]:
    """The run row and key metrics of a run directory; UserError if it is not one."""
    run, metrics, _ = read_run_and_soak(run_dir)
    return run, metrics
