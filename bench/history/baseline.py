"""Where a baseline comes from: the last N comparable runs in the history, or one chosen run directory.

Comparable runs share the cluster, the node set (``node_hash``) and nranks with tonight, and started before
it; per metric, collective, scope, group and size must match too (the metric key). Runs with a different
NCCL version are gathered into their own ``BaselineSet``s, shown beside the verdict but never mixed into
the baseline that decides it.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from bench.errors import UserError
from bench.history.records import MetricRecord, RunRecord, read_run
from bench.history.store import comparable_runs, metrics_of, open_store


@dataclass(frozen=True)
class BaselineRun:
    """One run that contributes to a baseline."""

    time_utc: str
    nccl: str | None
    run_dir: str
    id: int | None = None
    """Its id in the history (None for a ``--baseline RUN_DIR``)."""


@dataclass(frozen=True)
class BaselineSet:
    """The values of each metric over some runs (newest first); None where a run lacks it or it failed."""

    nccl: str | None
    runs: tuple[BaselineRun, ...]
    values: dict[str, tuple[float | None, ...]]
    metrics: dict[str, MetricRecord]
    """A representative record per metric key (collective, scope, group, bytes)."""


@dataclass(frozen=True)
class Baselines:
    """The baseline that decides the states, and the other NCCL versions shown beside it."""

    same: BaselineSet
    others: tuple[BaselineSet, ...]
    description: str
    notes: tuple[str, ...] = ()


def parse_baseline_spec(spec: str) -> int | Path:
    """``"last:10"`` -> 10; anything else is a run directory."""
    if spec.startswith("last:"):
        count = spec.removeprefix("last:")
        if not count.isdigit() or int(count) < 1:
            raise UserError(f"--baseline {spec!r}: write last:N with N >= 1 (e.g. last:10) or a run directory")
        return int(count)
    return Path(spec)


def _set(nccl: str | None, runs: Sequence[tuple[BaselineRun, Sequence[MetricRecord]]]) -> BaselineSet:
    values: dict[str, list[float | None]] = {}
    records: dict[str, MetricRecord] = {}
    for index, (_, metrics) in enumerate(runs):
        for metric in metrics:
            column = values.setdefault(metric.key, [None] * len(runs))
            column[index] = None if metric.failed else metric.busbw_GBps
            records.setdefault(metric.key, metric)
    return BaselineSet(nccl, tuple(run for run, _ in runs), {k: tuple(v) for k, v in values.items()}, records)


def from_history(history: Path, tonight: RunRecord, last: int) -> Baselines:
    """The last ``last`` comparable runs of the history, split by NCCL version."""
    description = f"last {last} comparable runs in {history}"
    if not history.exists():
        empty = BaselineSet(tonight.nccl, (), {}, {})
        return Baselines(empty, (), description, (f"no history at {history} yet: every metric is new",))
    with closing(open_store(history, create=False)) as conn:
        candidates = comparable_runs(
            conn,
            cluster=tonight.cluster,
            node_hash=tonight.node_hash,
            nranks=tonight.nranks,
            before_utc=tonight.time_utc,
            exclude_key=tonight.run_key,
        )
        by_version: dict[str | None, list[BaselineRun]] = {}
        for stored in candidates:
            chosen = by_version.setdefault(stored.nccl, [])
            if len(chosen) < last:
                chosen.append(BaselineRun(stored.time_utc, stored.nccl, stored.run_dir, stored.id))
        ids = [run.id for runs in by_version.values() for run in runs if run.id is not None]
        metrics = metrics_of(conn, ids)
    sets = {
        version: _set(version, [(run, metrics[run.id]) for run in runs if run.id is not None])
        for version, runs in by_version.items()
    }
    same = sets.pop(tonight.nccl, BaselineSet(tonight.nccl, (), {}, {}))
    notes = []
    if not same.runs and sets:
        notes.append(
            f"no earlier run with NCCL {tonight.nccl or 'unknown'}; runs with other NCCL versions are shown "
            "separately, not used as the baseline"
        )
    others = tuple(sorted(sets.values(), key=lambda s: s.runs[0].time_utc, reverse=True))
    return Baselines(same, others, description, tuple(notes))


def from_run_dir(run_dir: Path, tonight: RunRecord) -> Baselines:
    """One chosen run as the baseline (no noise estimate: only the threshold applies)."""
    run, metrics = read_run(run_dir)
    notes = []
    if run.nccl != tonight.nccl:
        notes.append(f"baseline run has NCCL {run.nccl}, tonight has {tonight.nccl}: compared as asked")
    if (run.cluster, run.node_hash, run.nranks) != (tonight.cluster, tonight.node_hash, tonight.nranks):
        notes.append("baseline run is on another cluster, node set or rank count: compared as asked")
    base = BaselineRun(run.time_utc, run.nccl, run.run_dir)
    return Baselines(_set(tonight.nccl, [(base, metrics)]), (), f"run {run_dir}", tuple(notes))
