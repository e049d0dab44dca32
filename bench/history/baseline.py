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

from bench.bounded import ascii_digits
from bench.codec import present
from bench.exits import UserError
from bench.history.records import MetricRecord, RunRecord, read_run
from bench.history.runfacts import EnvironmentChange, environment_changes
from bench.history.store import StoredRun, comparable_runs, metrics_of, opened, other_shapes, run_id_of
from bench.rundir.runjson import read_run_json


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
        if not ascii_digits(count) or len(count) > 6 or int(count) < 1:
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
    with opened(history, create=False) as conn:
        candidates = comparable_runs(
            conn,
            cluster=tonight.doc.cluster,
            nranks=tonight.nranks,
            nnodes=tonight.nnodes,
            kind=tonight.kind,
            command=tonight.doc.command,
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
        shapes = (
            []
            if candidates
            else other_shapes(
                conn,
                cluster=tonight.doc.cluster,
                kind=tonight.kind,
                command=tonight.doc.command,
                nranks=tonight.nranks,
                nnodes=tonight.nnodes,
            )
        )
    sets = {
        version: _set(version, [(BaselineRun(r.time_utc, r.nccl, r.run_dir, r.id), metrics[r.id]) for r in runs])
        for version, runs in by_version.items()
    }
    same = sets.pop(tonight.nccl, BaselineSet(tonight.nccl, (), {}, {}))
    notes = []
    if shapes:
        notes.append(
            f"no comparable run: tonight has {tonight.nranks} ranks on {tonight.nnodes} node(s), the history's runs of "
            f"this kind have {', '.join(shapes)}; busbw is not compared across shapes"
        )
    if not same.runs and sets:
        notes.append(
            f"no earlier run with NCCL {tonight.nccl or 'unknown'}; runs with other NCCL versions are shown "
            "separately, not used as the baseline (--same-environment)"
        )
    others = tuple(sorted(sets.values(), key=lambda s: s.runs[0].time_utc, reverse=True))
    chosen_runs = by_version.get(tonight.nccl, [])
    facts = [r.environment_facts for r in chosen_runs]
    changes = tuple(environment_changes(facts, tonight.environment))
    departed = {h for r in chosen_runs for h in r.host_names} - set(tonight.doc.hosts)
    return Baselines(same, others, description, tuple(notes), changes, frozenset(departed))


def rail_count(metrics: Sequence[MetricRecord]) -> int:
    """How many rails a run measured (its ``rail`` and ``pair`` metrics' ``railN`` groups); 0 for none."""
    rails = {m.group.rsplit("/", 1)[-1] for m in metrics if m.scope in ("rail", "pair")}
    return len({r for r in rails if r.startswith("rail")})


def shape_changes(
    base: RunRecord, base_metrics: Sequence[MetricRecord], tonight: RunRecord, metrics: Sequence[MetricRecord]
) -> tuple[list[str], list[str]]:
    """(what makes busbw incomparable, what only names missing metrics) between a chosen run and tonight.

    busbw depends on the rank and node counts (the busbw factor, NVLink against the network), so a baseline
    with others is no baseline. A different number of rails is a fact about tonight (a dead rail) that the
    rails' ``missing`` metrics show, so it is named, not refused.
    """
    refuse = [
        f"{what} {before} -> {after}"
        for what, before, after in (("nranks", base.nranks, tonight.nranks), ("nnodes", base.nnodes, tonight.nnodes))
        if before != after
    ]
    rails_before, rails_after = rail_count(base_metrics), rail_count(metrics)
    named = [f"rails {rails_before} -> {rails_after}"] if rails_before and rails_before != rails_after else []
    return refuse, named


def _dtype(run_dir: Path | str) -> str | None:
    """The element type a run's sweep measured (run.json ``sweep.dtype``; None for a rails run)."""
    sweep = read_run_json(run_dir).sweep
    return present(sweep.dtype) if sweep else None


def like_with_like(
    run_dir: Path,
    base: RunRecord,
    base_metrics: Sequence[MetricRecord],
    tonight: RunRecord,
    tonight_metrics: Sequence[MetricRecord],
) -> tuple[list[MetricRecord], str | None]:
    """The chosen run's metrics that tonight's run set out to measure too, and a note when that left any out.

    A run of another kind (another command, sizes or collectives) measured things tonight's run never tried:
    those are left out, not called ``missing``, so a shorter sweep is never REGRESSED on the sizes it did not
    run. A (collective, scope, size) tonight measured anywhere still expects every group of the baseline, so a
    rail or pair that went quiet tonight is missing as it should be. Refused (UserError) when nothing is left,
    or when the element types differ (busbw of bfloat16 sums is not the number float sums give).
    """
    if base.kind == tonight.kind:
        return list(base_metrics), None
    choose = "choose a run of the same kind, or use last:N"
    dtypes = _dtype(run_dir), _dtype(tonight.run_dir)
    if None not in dtypes and dtypes[0] != dtypes[1]:
        raise UserError(
            f"--baseline {run_dir} measured {dtypes[0]}, tonight's run {dtypes[1]}: busbw of another element type "
            f"is not like with like; {choose}"
        )
    measured = {(m.collective, m.scope, m.bytes) for m in tonight_metrics}
    common = [m for m in base_metrics if (m.collective, m.scope, m.bytes) in measured]
    if not common:
        raise UserError(
            f"--baseline {run_dir} is a run of another kind ({base.kind}) with no collective, scope and size in "
            f"common with tonight's ({tonight.kind}): nothing to compare; {choose}"
        )
    left = len({(m.collective, m.scope, m.bytes) for m in base_metrics} - measured)
    note = (
        f"baseline run is of another kind ({base.kind}; tonight: {tonight.kind}): compared on the collectives, "
        f"scopes and sizes both runs measured; {left} that only the baseline measured are left out, not missing"
    )
    return common, note if left else note.split("; ", 1)[0] + ": compared on what both runs measured"


def from_run_dir(run_dir: Path, tonight: RunRecord, tonight_metrics: Sequence[MetricRecord] = ()) -> Baselines:
    """One chosen run as the baseline; refused (UserError) when its rank or node count is not tonight's, and
    compared on what both measured when it is of another kind (:func:`like_with_like`)."""
    run, metrics = read_run(run_dir)
    refuse, named = shape_changes(run, metrics, tonight, tonight_metrics)
    if refuse:
        raise UserError(
            f"--baseline {run_dir} has another shape ({', '.join(refuse)}): busbw is not comparable across rank "
            "or node counts; choose a run of the same shape, or use last:N"
        )
    metrics, kind_note = like_with_like(run_dir, run, metrics, tonight, tonight_metrics)
    notes = [kind_note] if kind_note else []
    notes += [f"baseline run has {n}: the rails not measured tonight are missing" for n in named]
    if run.nccl != tonight.nccl:
        notes.append(f"baseline run has NCCL {run.nccl}, tonight has {tonight.nccl}: compared as asked")
    if (run.doc.cluster, run.node_hash) != (tonight.doc.cluster, tonight.node_hash):
        notes.append("baseline run is on another cluster or node set: compared as asked")
    base = BaselineRun(run.time_utc, run.nccl, run.run_dir)
    changes = tuple(environment_changes([dict(run.environment)], tonight.environment))
    departed = frozenset(set(run.doc.hosts) - set(tonight.doc.hosts))
    return Baselines(_set(tonight.nccl, [(base, metrics)]), (), f"run {run_dir}", tuple(notes), changes, departed)
