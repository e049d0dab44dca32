"""Tonight's run against its baseline, metric by metric (the statistics are ``bench.history.compare`` and
``bench.history.regression``).

Prints the metrics that changed, writes ``compare.json``, ``compare-junit.xml`` and ``trend.csv`` into the run
directory and redraws the report; the exit status is 1 when any metric regressed, went missing or failed.
The run's own verdict becomes ``regressed`` in its run.json and the history (``bench.frame.decide``). The
command line is ``bench.commands.compare``.
"""

from __future__ import annotations

import os
import socket
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

import numpy as np

from bench.compare.config import CompareConfig
from bench.exits import InfraError, UserError
from bench.frame.decide import clear_regressed, mark_regressed
from bench.frame.finish import write_report_if_available
from bench.history import rail_errors
from bench.history.baseline import Baselines, BaselineSet, from_history, from_run_dir, parse_baseline_spec
from bench.history.compare import BAD_STATES, baseline_stats, relative_change
from bench.history.outputs import (
    MetricComparison,
    OtherVersion,
    describe,
    exit_status,
    first_night_note,
    print_table,
    write_compare_json,
    write_compare_junit,
    write_trend_csv,
)
from bench.history.rail_errors import ErrorRise
from bench.history.records import MetricRecord, RunRecord, read_run
from bench.history.regression import judge
from bench.history.store import history_for, opened
from bench.profile.compare import CompareSettings
from bench.rundir.junit import Case, Status
from bench.rundir.verdict import Verdict


def load_settings(profile: str | None) -> CompareSettings:
    """Thresholds from the profile's ``[compare]`` table, or the defaults."""
    if profile is None:
        return CompareSettings()
    from bench.profile.cluster import load_profile  # lazy: profiles are only read when asked for

    return load_profile(profile).compare


def _run_profile_settings(profile: str | None) -> tuple[CompareSettings, str | None]:
    """The thresholds of the profile the run was made with; the defaults and a note when it cannot be read."""
    if not profile:
        return CompareSettings(), None
    try:
        return load_settings(profile), None
    except UserError as exc:
        return CompareSettings(), f"the run's profile {profile!r} cannot be read ({exc}): default thresholds"


def _matrix(baseline: BaselineSet, keys: list[str]) -> np.ndarray:
    width = len(baseline.runs)
    rows = [[np.nan if v is None else v for v in baseline.values.get(k, (None,) * width)] for k in keys]
    return np.array(rows, dtype=np.float64).reshape(len(keys), width)


def _names_departed_node(metric: MetricRecord, departed: frozenset[str]) -> bool:
    """A per-node or per-pair metric of a node that is no longer in the set (``node03``, ``node01-node03/rail0``)."""
    if metric.scope not in ("node", "pair") or not departed:
        return False
    nodes = metric.group.split("/")[0]
    return any(nodes == h or nodes.startswith(f"{h}-") or nodes.endswith(f"-{h}") for h in departed)


def compare(tonight: list[MetricRecord], baselines: Baselines, settings: CompareSettings) -> list[MetricComparison]:
    """Every metric of tonight or of the baseline, with its state."""
    mine = {m.key: m for m in tonight if m.bytes >= settings.min_bytes}
    known = {
        k: m
        for k, m in baselines.same.metrics.items()
        if m.bytes >= settings.min_bytes and not _names_departed_node(m, baselines.departed_hosts)
    }
    records = known | mine
    keys = sorted(records, key=lambda k: (records[k].collective, records[k].scope, records[k].group, records[k].bytes))
    current = np.array([mine[k].busbw_GBps if k in mine and mine[k].busbw_GBps is not None else np.nan for k in keys])
    present = np.array([k in mine for k in keys], dtype=bool)
    failed = np.array([k in mine and mine[k].failed for k in keys], dtype=bool)
    thresholds = np.array([settings.threshold_for(k) for k in keys])
    history = _matrix(baselines.same, keys)
    series = [(records[k].collective, records[k].scope, records[k].group) for k in keys]
    judged = judge(current, present, failed, history, thresholds, series, [records[k].scope for k in keys], settings)
    states, sigma, allowed = judged.states, judged.sigma, judged.allowed
    median, count = judged.baseline.median, judged.baseline.count
    changes = tuple(c.describe() for c in baselines.changes)
    change = relative_change(current, median)
    others = []
    for other in baselines.others:
        other_median = baseline_stats(_matrix(other, keys)).median
        others.append((other, other_median, relative_change(current, other_median)))

    def num(value: float) -> float | None:
        return float(value) if np.isfinite(value) else None

    results = []
    for i, key in enumerate(keys):
        record = records[key]
        results.append(
            MetricComparison(
                metric=key,
                collective=record.collective,
                scope=record.scope,
                group=record.group,
                bytes=record.bytes,
                state=states[i],
                busbw_GBps=num(current[i]),
                baseline_GBps=num(median[i]),
                sigma_GBps=num(sigma[i]),
                baseline_runs=int(count[i]),
                change=num(change[i]),
                threshold=float(thresholds[i]),
                allowed_GBps=num(allowed[i]) if np.isfinite(median[i]) else None,
                history_GBps=tuple(num(v) for v in history[i]),
                other_nccl=tuple(
                    OtherVersion(o.nccl, len(o.runs), num(m[i]), num(c[i])) for o, m, c in others if np.isfinite(m[i])
                ),
                noise_estimated=judged.source[i] == "own",
                noise_source=judged.source[i],
                evidence=judged.evidence[i],
                changes=changes if states[i] in ("regressed", "improved") else (),
            )
        )
    return results


def _print_other_versions(baselines: Baselines, results: list[MetricComparison], out: TextIO) -> None:
    for other in baselines.others:
        changes = [o.change for r in results for o in r.other_nccl if o.nccl == other.nccl and o.change is not None]
        median = f"{float(np.median(changes)):+.1%}" if changes else "n/a"
        print(
            f"NCCL {other.nccl or 'unknown'} (not mixed into the baseline): {len(other.runs)} run(s), newest "
            f"{other.runs[0].time_utc}; tonight's median change against them {median} over {len(changes)} metrics",
            file=out,
        )


def _baselines(
    config: CompareConfig, spec: int | Path, history: Path, tonight_run: RunRecord, tonight_metrics: list[MetricRecord]
) -> tuple[Baselines, str | None]:
    """The baselines the spec names: the last N runs of the history (and the note when it was just started),
    or a run directory."""
    if not isinstance(spec, int):
        return from_run_dir(spec, tonight_run, tonight_metrics), None
    started = _history_exists(history, given=config.history is not None, init=config.init)
    return from_history(history, tonight_run, spec, same_environment=config.same_environment), started


def _run_verdict(
    run_dir: Path,
    history: Path,
    status: int,
    results: Sequence[MetricComparison],
    rises: Sequence[ErrorRise],
    settings: CompareSettings,
) -> Verdict | None:
    """The run's own verdict becomes "regressed" in its run.json and in the history when that holds the run (or
    returns from it); a history that does not hold the run is left alone."""
    if not status:
        return clear_regressed(run_dir, history)
    regressed = [describe(r) for r in results if r.state in BAD_STATES]
    regressed += [r.describe() for r in rises if settings.fail_on_error_rise]
    return mark_regressed(run_dir, regressed, history)


def run(config: CompareConfig, out: TextIO | None = None) -> int:
    """Compare, print, write the outputs; returns the exit status."""
    out = out or sys.stdout
    tonight_run, tonight_metrics = read_run(config.run_dir)
    _check_writable(config.run_dir)
    settings_note = None
    if config.profile is not None:
        settings = load_settings(config.profile)
    else:
        settings, settings_note = _run_profile_settings(tonight_run.doc.profile)
    spec = parse_baseline_spec(config.baseline)
    history = config.history or history_for(config.run_dir)
    baselines, started = _baselines(config, spec, history, tonight_run, tonight_metrics)
    results = compare(tonight_metrics, baselines, settings)
    if not results:
        raise UserError(
            f"{config.run_dir}/results.csv has no metrics to compare: none at or above [compare] min_bytes "
            f"({settings.min_bytes} bytes); measure larger sizes or lower min_bytes in the profile"
        )
    # The history's runs are of tonight's kind; a chosen run directory may be of another (its note says so).
    which = ""
    if isinstance(spec, int):
        which = " with the same NCCL and node set" if config.same_environment else f" of kind {tonight_run.kind!r}"
    print(
        f"railbench compare: {config.run_dir} (NCCL {tonight_run.nccl or 'unknown'}) against {baselines.description}: "
        f"{len(baselines.same.runs)} run(s){which}",
        file=out,
    )
    for note in (*baselines.notes, *(n for n in (started, settings_note) if n)):
        print(f"note: {note}", file=out)
    if baselines.changes:
        print(f"changed since the baseline: {'; '.join(c.describe() for c in baselines.changes)}", file=out)
    first = first_night_note(results, settings.min_runs)
    if first:
        print(f"note: {first}", file=out)
    print_table(results, out, show_all=config.show_all, min_runs=settings.min_runs, from_history=isinstance(spec, int))
    _print_other_versions(baselines, results, out)
    rises = _error_rises(config.run_dir, history, baselines, settings)
    for rise in rises:
        print(f"{'FAIL' if settings.fail_on_error_rise else 'WARN'} {rise.describe()}", file=out)
    status = max(exit_status(results), 1 if rises and settings.fail_on_error_rise else 0)
    with _refused_is_one_line(config.run_dir):
        verdict = _run_verdict(config.run_dir, history, status, results, rises, settings)
        _write_outputs(config.run_dir, tonight_run, baselines, settings, results, rises, status)
    if verdict is not None:
        print(f"# compare verdict: {verdict.label} (the run's verdict in its run.json and the history)", file=out)
    return status


def _check_writable(run_dir: Path) -> None:
    """UserError, before any work, when ``run_dir`` refuses a new file (a read-only mount, a tarball unpacked
    read-only): compare writes its verdict and its outputs there. A probe file is made and removed: permission
    bits do not say it for root, nor for a read-only mount."""
    try:
        fd, probe = tempfile.mkstemp(prefix=".railbench-probe.", dir=run_dir)
    except OSError as exc:
        raise UserError(
            f"the run directory {run_dir} cannot be written ({exc.strerror or exc}): compare writes its verdict and "
            "compare.json there; copy the run directory somewhere writable and compare the copy"
        ) from None
    os.close(fd)
    Path(probe).unlink(missing_ok=True)


@contextmanager
def _refused_is_one_line(run_dir: Path) -> Iterator[None]:
    """A run directory that refuses a write while compare writes its outputs (a disk that fills, a mount
    turned read-only) is an infrastructure fault in one line (exit 3), as it is for a run: each file is
    replaced whole, so what is there is the old file or the new one, never half of one."""
    try:
        yield
    except OSError as exc:
        raise InfraError(
            f"the run directory {run_dir} refused a write: {exc.strerror or exc}; free space there or fix its "
            "permissions, then compare again"
        ) from None


def _history_exists(path: Path, *, given: bool, init: bool) -> str | None:
    """A missing history is bad input (a typo, or a cron job's other working directory), unless asked to start
    one; returns a note when it started one."""
    if path.exists():
        return None
    if init:
        with opened(path, create=True, write=True):
            return f"started an empty history at {path} (--init): every metric is new"
    named = f"--history {path}" if given else f"the default history {path}"
    raise UserError(
        f"{named} does not exist: pass the history that run/accept wrote, or start an empty one with --init "
        f"(or 'railbench history init --history {path}')"
    )


def _error_rises(run_dir: Path, history: Path, baselines: Baselines, settings: CompareSettings) -> list[ErrorRise]:
    """Tonight's rails whose error counts rose against the same baseline runs as the busbw metrics."""
    tonight = rail_errors.read_run_dir(run_dir)
    if not tonight:
        return []
    stored = [r.id for r in baselines.same.runs if r.id is not None]
    past: dict[int, list[rail_errors.RailErrorCount]] = {}
    if stored:
        with opened(history, create=False) as conn:
            past = rail_errors.of_runs(conn, stored)
    runs = [past[r.id] if r.id is not None else rail_errors.read_run_dir(r.run_dir) for r in baselines.same.runs]
    return rail_errors.judge(tonight, runs, settings.error_counters, settings.error_allowance, settings.error_factor)


def _write_outputs(
    run_dir: Path,
    tonight: RunRecord,
    baselines: Baselines,
    settings: CompareSettings,
    results: list[MetricComparison],
    rises: list[ErrorRise],
    status: int,
) -> None:
    header = {
        "run_dir": str(run_dir),
        "run": {
            "time_utc": tonight.time_utc,
            "cluster": tonight.doc.cluster,
            "nccl": tonight.nccl,
            "nranks": tonight.nranks,
            "nnodes": tonight.nnodes,
            "node_hash": tonight.node_hash,
        },
        "baseline": {
            "description": baselines.description,
            "nccl": baselines.same.nccl,
            "runs": [{"time_utc": r.time_utc, "run_dir": r.run_dir, "id": r.id} for r in baselines.same.runs],
            "other_nccl": [{"nccl": o.nccl, "runs": len(o.runs)} for o in baselines.others],
        },
        "settings": {
            "default_threshold": settings.default_threshold,
            "noise_k": settings.noise_k,
            "min_bytes": settings.min_bytes,
            "resolution_GBps": settings.resolution_GBps,
            "min_runs": settings.min_runs,
            "noise_floor": settings.noise_floor,
            "rules": [{"pattern": r.pattern, "threshold": r.threshold} for r in settings.rules],
        },
        "notes": list(baselines.notes),
        "kind": tonight.kind,
        "changes_since_baseline": [
            {"fact": c.fact, "before": c.before, "after": c.after, "text": c.describe()} for c in baselines.changes
        ],
        "rail_errors": [r.to_json() for r in rises],
    }
    write_compare_json(run_dir / "compare.json", results, header, status)
    # JUnit has no warning state: a flagged rise passes unless the profile fails it, and says so in its output.
    severity: Status = "fail" if settings.fail_on_error_rise else "pass"
    cases = [
        Case(
            "railbench.compare.rail_errors",
            f"rail{r.rail}/{r.counter}",
            severity,
            r.describe() if severity == "fail" else "",
            f"WARN {r.describe()}",
        )
        for r in rises
    ]
    write_compare_junit(run_dir / "compare-junit.xml", results, hostname=socket.gethostname(), extra=cases)
    write_trend_csv(run_dir / "trend.csv", results, [r.time_utc for r in baselines.same.runs], tonight.time_utc)
    write_report_if_available(run_dir)
