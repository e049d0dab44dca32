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

from bench.exits import UserError
from bench.history.runfacts import run_environment, run_kind
from bench.jsondoc import table
from bench.rundir.files import iter_results_rows
from bench.rundir.runjson import read_run_json


def metric_key(collective: str, scope: str, group: str, nbytes: int) -> str:
    """``"all_reduce/world/world/1048576"``: the name thresholds match against (fnmatch patterns)."""
    return f"{collective}/{scope}/{group}/{nbytes}"


def node_hash(hosts: Iterable[str]) -> str:
    """A short stable name for a node *set*: the same nodes in any order hash the same."""
    joined = "\n".join(sorted(set(hosts)))
    return hashlib.sha256(joined.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class RunRecord:
    """The run row of the history: identity, placement on the cluster, versions, outcome."""

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
    hosts: tuple[str, ...]
    node_hash: str
    nnodes: int
    nranks: int
    torch: str | None
    nccl: str | None
    cuda: str | None
    driver: str | None
    kind: str = ""
    """The command and the shape of its sweep (``bench.history.runfacts.run_kind``): what makes runs comparable."""
    environment: Mapping[str, Any] = field(default_factory=dict)
    """Versions, node set and NCCL_* variables (``bench.history.runfacts.run_environment``)."""


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
        try:
            nbytes = int(row["bytes"])
        except (KeyError, ValueError):
            raise UserError(f"results.csv row has no whole 'bytes' value ({row.get('bytes')!r})") from None
        key = (row.get("collective", ""), row.get("scope", ""), row.get("group", ""), nbytes)
        metric = groups.setdefault(key, _Metric())
        wrong = _number(row.get("wrong"))
        if wrong is not None:
            metric.wrong_seen = True
            metric.wrong_total += int(wrong)
            metric.any_wrong = metric.any_wrong or wrong > 0
        samples = metric.in_place if row.get("placement") == "in-place" else metric.out_of_place
        samples.add(
            _number(row.get("busbw_GBps")),
            _number(row.get("algbw_GBps")),
            _number(row.get("time_us")),
            _number(row.get("nranks")),
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


def _whole(meta: Mapping[str, Any], key: str, run_dir: Path | str) -> int:
    value = meta.get(key) or 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise UserError(f"{run_dir}/run.json has {key} = {value!r}, not a whole number: the run directory is damaged")
    return value


def run_record(meta: Mapping[str, Any], run_dir: Path | str) -> RunRecord:
    """The run row for a run.json (already checked by ``read_run_json``)."""
    time_utc = meta.get("started_utc") or meta.get("finished_utc")
    if not time_utc:
        raise UserError(f"{run_dir}/run.json has no started_utc: it cannot be placed in the history")
    hosts = tuple(str(h) for h in meta.get("hosts") or ())
    versions = table(meta, "versions")
    cluster = str(meta.get("cluster") or "")
    command = str(meta.get("command") or "")
    nodes = node_hash(hosts)
    identity = "\n".join([cluster, str(time_utc), command, nodes, Path(run_dir).resolve().name])
    return RunRecord(
        run_key=hashlib.sha256(identity.encode()).hexdigest()[:24],
        run_dir=str(Path(run_dir).resolve()),
        time_utc=str(time_utc),
        cluster=cluster,
        profile=meta.get("profile"),
        command=command,
        status=str(meta.get("status") or ""),
        verdict=meta.get("verdict"),
        hosts=hosts,
        node_hash=nodes,
        nnodes=_whole(meta, "nnodes", run_dir) or len(hosts),
        nranks=_whole(meta, "nranks", run_dir),
        torch=versions.get("torch"),
        nccl=versions.get("nccl"),
        cuda=versions.get("cuda"),
        driver=versions.get("driver"),
        kind=run_kind(meta),
        environment=run_environment(meta, run_dir),
    )


def read_run(run_dir: Path | str) -> tuple[RunRecord, list[MetricRecord]]:
    """The run row and key metrics of a run directory; UserError if it is not one."""
    meta = read_run_json(run_dir)
    return run_record(meta, run_dir), metrics_from_rows(iter_results_rows(run_dir))
