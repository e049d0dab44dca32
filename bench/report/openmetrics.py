"""A run's headline metrics and verdict for Prometheus (exposition through ``prometheus_client``).

Two renderings of the same metrics:

* ``openmetrics_text``: the OpenMetrics text format (``railbench export openmetrics RUN_DIR``);
* ``prometheus_text``: the Prometheus text format 0.0.4, which the node exporter's textfile collector, the
  pushgateway and ``promtool check metrics`` read; ``write_metrics_file`` puts it beside the report as
  ``metrics.prom``.

Both are gauges only, so the OpenMetrics rendering is also a valid Prometheus text document: its ``# UNIT``
and ``# EOF`` lines are comments there. OpenMetrics' ``info`` type is not used (a Prometheus text parser
refuses the whole document over its ``# TYPE`` line).

Metrics (all gauges; units in the names, as Prometheus naming asks):

* ``railbench_busbw_bytes_per_second``, ``railbench_algbw_bytes_per_second``, ``railbench_time_seconds`` and
  ``railbench_wrong_elements`` with labels ``cluster``, ``collective``, ``scope``, ``group``, ``size_bytes``:
  the headline rows, world and rail scope, sizes from the profile's ``[compare] min_bytes`` up (per-pair
  rows stay out: n^2 series are not for monitoring);
* ``railbench_verdict{cluster, verdict}``: 1 for the run's verdict word, 0 for the others (a state set);
* ``railbench_run_start_timestamp_seconds{cluster}``;
* ``railbench_compare_metrics{cluster, state}``: metric counts per compare state, when compare ran;
* ``railbench_run_info{cluster, command, profile, nccl, torch, kind}`` = 1;
* a soak's windows, duration, errors accumulated (per port and per window) and parts named
  (``bench.report.soak_metrics``).
"""

from __future__ import annotations

import calendar
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from prometheus_client.core import CollectorRegistry, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest as prometheus_latest
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest

from bench.exits import UserError
from bench.history.records import MetricRecord, metrics_from_rows
from bench.history.runfacts import run_kind
from bench.history.soak_runs import SoakSummary, read_soak
from bench.report.badge import LABELS, run_verdict
from bench.report.soak_metrics import soak_metrics
from bench.rundir.comparedoc import read_compare_json
from bench.rundir.files import atomic_write_text
from bench.rundir.results_csv import iter_results_rows
from bench.rundir.runjson import RunDoc, read_run_json
from bench.rundir.verdict import Verdict

HEADLINE_SCOPES = ("world", "rail")
DEFAULT_MIN_BYTES = 1 << 20
METRICS_FILE = "metrics.prom"
_COMPARE_STATES = ("regressed", "improved", "unchanged", "new", "missing", "failed")


def _min_bytes(profile: str | None) -> int:
    """Today's profile's ``[compare] min_bytes`` for a run that did not record its own (1M when the run has no
    readable profile)."""
    if not profile:
        return DEFAULT_MIN_BYTES
    from bench.profile.cluster import load_profile

    try:
        return load_profile(profile).compare.min_bytes
    except UserError:
        return DEFAULT_MIN_BYTES


def headline_metrics(metrics: Sequence[MetricRecord], min_bytes: int) -> list[MetricRecord]:
    """World and rail metrics from ``min_bytes`` up, in collective, scope, group, size order."""
    chosen = [m for m in metrics if m.scope in HEADLINE_SCOPES and m.bytes >= min_bytes]
    if not chosen:  # a sweep that never reached min_bytes still reports its largest size
        world = [m for m in metrics if m.scope in HEADLINE_SCOPES]
        top = max((m.bytes for m in world), default=None)
        chosen = [m for m in world if m.bytes == top]
    return sorted(chosen, key=lambda m: (m.collective, m.scope, m.group, m.bytes))


def scaled(value: float, factor: float) -> float:
    """``value * factor`` to 12 significant digits: GB/s and µs hold at most 7 in results.csv, so nothing is
    lost, and 260.135900 GB/s reads ``2.601359e+08``, not the binary product's ``2.6013589999999997e+08``."""
    return float(f"{value * factor:.12g}")


def _epoch(iso: object) -> float | None:
    try:
        return float(calendar.timegm(time.strptime(str(iso), "%Y-%m-%dT%H:%M:%SZ")))
    except ValueError:
        return None


class RunCollector:
    """A ``prometheus_client`` collector over one run directory (read once, at construction)."""

    def __init__(self, run_dir: Path, soak: SoakSummary | None = None) -> None:
        """``soak``: the run's soak as the caller read it already (a report has), else it is read here."""
        self.run: RunDoc = read_run_json(run_dir)
        # only the headline scopes are said: a 1024-node run's pair rows (hundreds of thousands) are not read as metrics
        rows = (row for row in iter_results_rows(run_dir) if row.get("scope") in HEADLINE_SCOPES)
        recorded = self.run.judged_by
        min_bytes = recorded.compare_min_bytes if recorded else _min_bytes(self.run.profile)
        self.metrics = headline_metrics(metrics_from_rows(rows), min_bytes)
        self.compare = read_compare_json(run_dir)
        self.verdict: Verdict = run_verdict(self.run)
        self.soak = soak if soak is not None else read_soak(run_dir, self.run)

    def collect(self) -> Iterator[Metric]:
        cluster = self.run.cluster
        labels = ["cluster", "collective", "scope", "group", "size_bytes"]
        busbw = GaugeMetricFamily(
            "railbench_busbw", "Bus bandwidth (nccl-tests formula)", labels=labels, unit="bytes_per_second"
        )
        algbw = GaugeMetricFamily(
            "railbench_algbw", "Algorithm bandwidth, size / time", labels=labels, unit="bytes_per_second"
        )
        latency = GaugeMetricFamily(
            "railbench_time", "Time per operation, mean over ranks", labels=labels, unit="seconds"
        )
        wrong = GaugeMetricFamily("railbench_wrong_elements", "Elements that failed the check (-c)", labels=labels)
        for m in self.metrics:
            values = [cluster, m.collective, m.scope, m.group, str(m.bytes)]
            if m.busbw_GBps is not None:
                busbw.add_metric(values, scaled(m.busbw_GBps, 1e9))
            if m.algbw_GBps is not None:
                algbw.add_metric(values, scaled(m.algbw_GBps, 1e9))
            if m.time_us is not None:
                latency.add_metric(values, scaled(m.time_us, 1e-6))
            if m.wrong is not None:
                wrong.add_metric(values, float(m.wrong))
        yield from (busbw, algbw, latency, wrong)
        verdict = GaugeMetricFamily(
            "railbench_verdict",
            "1 for the run's verdict (PASS, FAIL, MEASURED, REGRESSED, SKIP, ERROR), 0 for the others",
            labels=["cluster", "verdict"],
        )
        for word in LABELS:
            verdict.add_metric([cluster, word], 1.0 if word == self.verdict.label else 0.0)
        yield verdict
        started = _epoch(self.run.started_utc)
        if started is not None:
            start = GaugeMetricFamily(
                "railbench_run_start_timestamp", "When the run started", labels=["cluster"], unit="seconds"
            )
            start.add_metric([cluster], started)
            yield start
        if self.compare is not None:
            summary = self.compare.summary
            states = GaugeMetricFamily(
                "railbench_compare_metrics", "Metrics per state in tonight's compare", labels=["cluster", "state"]
            )
            for state in _COMPARE_STATES:
                states.add_metric([cluster, state], float(summary.get(state, 0)))
            yield states
        # A gauge of 1, not OpenMetrics' info type: "# TYPE ... info" is a line the Prometheus text format does
        # not have, and its parsers (promtool check metrics, the textfile collector, the pushgateway) refuse the
        # whole document over it. A gauge named *_info is Prometheus' own convention (node_uname_info).
        facts = {
            "cluster": cluster,
            "command": self.run.command,
            "profile": self.run.profile or "",
            "nccl": str(self.run.version_of("nccl") or ""),
            "torch": str(self.run.version_of("torch") or ""),
            "kind": run_kind(self.run),
        }
        info = GaugeMetricFamily("railbench_run_info", "What ran, and with which versions", labels=list(facts))
        info.add_metric(list(facts.values()), 1.0)
        yield info
        if self.soak is not None:
            yield from soak_metrics(cluster, self.soak)


def _registry(run_dir: Path, soak: SoakSummary | None = None) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RunCollector(run_dir, soak))
    return registry


def openmetrics_text(run_dir: Path) -> str:
    """The run's metrics in the OpenMetrics text format (ends with ``# EOF``)."""
    return openmetrics_latest(_registry(run_dir)).decode("utf-8")


def prometheus_text(run_dir: Path, soak: SoakSummary | None = None) -> str:
    """The run's metrics in the Prometheus text format 0.0.4 (what the node exporter's textfile collector reads)."""
    return prometheus_latest(_registry(run_dir, soak)).decode("utf-8")


def write_metrics_file(run_dir: Path, out_dir: Path | None = None, soak: SoakSummary | None = None) -> Path:
    """``metrics.prom`` beside the report, replaced atomically (``soak``: the run's, where the report read it)."""
    path = (out_dir or run_dir) / METRICS_FILE
    atomic_write_text(path, prometheus_text(run_dir, soak))
    return path
