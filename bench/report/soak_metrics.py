"""A soak's metrics for Prometheus (``bench.report.openmetrics`` yields them beside the run's own).

Gauges only, as the rest of the exposition (a Prometheus text parser must read the OpenMetrics rendering too),
units in the names, every series labelled with its ``cluster``:

* ``railbench_soak_windows``, ``railbench_soak_elapsed_seconds``, ``railbench_soak_planned_seconds``;
* ``railbench_soak_link_errors``: every link error counter's rises over the soak, summed (0 for a clean soak:
  the gate's "zero error accumulation" is a value, not an absent series), and ``railbench_soak_link_flaps``;
  both absent where no window read a link's counters (no port known: a CPU soak);
* ``railbench_soak_port_errors{node, rail, device, counter}``: the same per port and counter that rose;
* ``railbench_soak_window_port_errors{node, rail, device, counter, window}``: the rise in each window where it
  rose (a counter that never rose has no series: a clean 1,000-window soak of 512 links adds none);
* ``railbench_soak_window_link_flaps{node, rail, device, window}``: the flaps in each window where a link flapped;
* ``railbench_soak_busbw_bytes_per_second{collective, size_bytes}``: each world collective's median over the
  windows;
* ``railbench_soak_part_duty_ratio{part, kind, symptom}``: each named part's share of its windows.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric

from bench.history.soak_runs import SoakSummary

PORT = ["cluster", "node", "rail", "device"]


def _gauge(name: str, doc: str, labels: list[str], unit: str = "") -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=labels, unit=unit)


def _totals(cluster: str, soak: SoakSummary) -> Iterator[Metric]:
    said: list[tuple[str, str, float, str]] = [
        ("railbench_soak_windows", "Windows the soak finished and kept", soak.windows, ""),
        ("railbench_soak_elapsed", "Seconds of soak, over every start", soak.elapsed_s, "seconds"),
    ]
    if soak.counters_read:  # counters no window read have no value: absent, never 0
        said += [
            ("railbench_soak_link_errors", "Link error counters' rises over the soak, summed", soak.errors, ""),
            ("railbench_soak_link_flaps", "Link-down events over the soak", soak.flaps, ""),
        ]
    for name, doc, value, unit in said:
        gauge = _gauge(name, doc, ["cluster"], unit)
        gauge.add_metric([cluster], float(value))
        yield gauge
    if soak.planned_s is not None:
        planned = _gauge("railbench_soak_planned", "The soak's planned duration", ["cluster"], "seconds")
        planned.add_metric([cluster], soak.planned_s)
        yield planned
    ports = _gauge("railbench_soak_port_errors", "A port's error counter rises over the soak", [*PORT, "counter"])
    for r in soak.rises:
        ports.add_metric([cluster, r.node, str(r.rail), r.device or "", r.counter], float(r.total))
    yield ports
    busbw = _gauge(
        "railbench_soak_busbw",
        "A world collective's median busbw over the soak's windows",
        ["cluster", "collective", "size_bytes"],
        "bytes_per_second",
    )
    for c in soak.collectives:
        busbw.add_metric([cluster, c.collective, str(c.bytes)], float(f"{c.median_busbw_GBps * 1e9:.12g}"))
    yield busbw
    duty = _gauge(
        "railbench_soak_part_duty",
        "The share of its windows a named part was named in",
        ["cluster", "part", "kind", "symptom"],
        "ratio",
    )
    for n in soak.named:
        if n.duty is None:
            continue  # a trend names a fall, not a share of windows
        duty.add_metric([cluster, n.part.where or n.part.kind, n.part.kind, n.symptom], n.duty)
    yield duty


def soak_metrics(cluster: str, soak: SoakSummary) -> Iterator[Metric]:
    """The soak's gauges (see the module docstring)."""
    yield from _totals(cluster, soak)
    rises = _gauge(
        "railbench_soak_window_port_errors", "A port's error counter rise in one window", [*PORT, "counter", "window"]
    )
    flaps = _gauge("railbench_soak_window_link_flaps", "A link's down events in one window", [*PORT, "window"])
    for r in soak.window_rises:
        port = [cluster, r.node, str(r.rail), r.device or ""]
        if r.counter == "flaps":
            flaps.add_metric([*port, str(r.window)], float(r.rise))
        else:
            rises.add_metric([*port, r.counter, str(r.window)], float(r.rise))
    yield from (rises, flaps)
