"""Where a baseline comes from: the last N comparable runs in the history, or one chosen run directory.

Comparable runs share the cluster, the node count, nranks and the run's *kind* (the command and the shape
of its sweep, ``bench.history.runfacts.run_kind``) with tonight, and came before it (earlier start, or the
same start and added earlier); per metric, collective, scope, group and size must match too (the metric
key). The baseline is the last N of them whatever their versions: what changed between them and tonight
(NCCL, torch, CUDA, driver, HCA firmware, kernel, the node set, NCCL_* variables) is *named*, not used to
hide a change. A replaced node keeps world metrics comparable; per-node and per-pair metrics are keyed by
node name, so those of a node that left are not expected tonight.

``same_environment=True`` restores the strict rule: the same node set, and runs with another NCCL version
gathered into their own ``BaselineSet``s, shown beside the verdict but never mixed into the baseline.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.exits import UserError
from bench.history.records import MetricRecord, RunRecord, read_run
from bench.history.runfacts import EnvironmentChange, environment_changes
from bench.history.store import StoredRun, comparable_runs, metrics_of, opened, run_id_of


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
    changes: tuple[EnvironmentChange, ...] = ()
    """What differs between the baseline runs and tonight (named beside the verdict)."""
    departed_hosts: frozenset[str] = frozenset()
    """Nodes of the baseline runs that tonight's run does not have (a replaced node)."""


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


def from_history(history: Path, tonight: RunRecord, last: int, *, same_environment: bool = False) -> Baselines:
    """The last ``last`` comparable runs of the history (see the module docstring)."""
    description = f"last {last} comparable runs in {history}"
    if not history.exists():
        empty = BaselineSet(tonight.nccl, (), {}, {})
        return Baselines(empty, (), description, (f"no history at {history} yet: every metric is new",))
    with opened(history, create=False) as conn:
        candidates = comparable_runs(
            conn,
            cluster=tonight.cluster,
            nranks=tonight.nranks,
            nnodes=tonight.nnodes,
            kind=tonight.kind,
            command=tonight.command,
            before_utc=tonight.time_utc,
            before_id=run_id_of(conn, tonight.run_key),
            node_hash=tonight.node_hash if same_environment else None,
            exclude_key=tonight.run_key,
        )
        if same_environment:
            by_version: dict[str | None, list[StoredRun]] = {}
            for stored in candidates:
                chosen = by_version.setdefault(stored.nccl, [])
                if len(chosen) < last:
                    chosen.append(stored)
        else:
            by_version = {tonight.nccl: candidates[:last]}
        ids = [run.id for runs in by_version.values() for run in runs]
        metrics = metrics_of(conn, ids)
    sets = {
        version: _set(version, [(BaselineRun(r.time_utc, r.nccl, r.run_dir, r.id), metrics[r.id]) for r in runs])
        for version, runs in by_version.items()
    }
    same = sets.pop(tonight.nccl, BaselineSet(tonight.nccl, (), {}, {}))
    notes = []
    if not same.runs and sets:
        notes.append(
            f"no earlier run with NCCL {tonight.nccl or 'unknown'}; runs with other NCCL versions are shown "
            "separately, not used as the baseline (--same-environment)"
        )
    others = tuple(sorted(sets.values(), key=lambda s: s.runs[0].time_utc, reverse=True))
    chosen_runs = by_version.get(tonight.nccl, [])
    facts = [r.environment_facts for r in chosen_runs]
    changes = tuple(environment_changes(facts, tonight.environment))
    departed = {h for r in chosen_runs for h in r.host_names} - set(tonight.hosts)
    return Baselines(same, others, description, tuple(notes), changes, frozenset(departed))


def from_run_dir(run_dir: Path, tonight: RunRecord) -> Baselines:
    """One chosen run as the baseline (no noise estimate: only the threshold applies)."""
    run, metrics = read_run(run_dir)
    notes = []
    if run.nccl != tonight.nccl:
        notes.append(f"baseline run has NCCL {run.nccl}, tonight has {tonight.nccl}: compared as asked")
    if (run.cluster, run.node_hash, run.nranks) != (tonight.cluster, tonight.node_hash, tonight.nranks):
        notes.append("baseline run is on another cluster, node set or rank count: compared as asked")
    base = BaselineRun(run.time_utc, run.nccl, run.run_dir)
    changes = tuple(environment_changes([dict(run.environment)], tonight.environment))
    departed = frozenset(set(run.hosts) - set(tonight.hosts))
    return Baselines(_set(tonight.nccl, [(base, metrics)]), (), f"run {run_dir}", tuple(notes), changes, departed)
