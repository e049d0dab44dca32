"""The nightly trend's table: the headline metrics of trend.csv, as the trend chart draws them.

compare writes every metric of every night into trend.csv; a chart of all of them (66 facets for one
sweep) helps nobody. This keeps what an operator reads: the metrics that raised the alarm tonight first,
then per collective and scope a handful of sizes from compare's ``min_bytes`` up, in numeric order.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from bench.bounded import ascii_digits
from bench.report.data import ChartData
from bench.report.inputs import TREND_COLUMNS
from bench.rundir.results_csv import SCOPES
from bench.units import format_size

TREND_ALARMS = ("regressed", "missing", "failed")


@dataclass(frozen=True)
class TrendMetric:
    """A trend metric key split into its parts (``all_reduce/world/world/1073741824``)."""

    metric: str
    collective: str
    scope: str
    group: str
    bytes: int | None

    @classmethod
    def parse(cls, metric: str) -> TrendMetric:
        parts = metric.split("/")
        if len(parts) >= 4 and ascii_digits(parts[-1]):
            return cls(metric, parts[0], parts[1], "/".join(parts[2:-1]), int(parts[-1]))
        return cls(metric, metric, "", "", None)  # a name compare did not write: shown as it is

    @property
    def panel(self) -> str:
        if self.bytes is None:
            return self.metric
        where = self.scope if self.group in ("", self.scope) else f"{self.scope} {self.group}"
        return f"{self.collective} · {where} · {format_size(self.bytes)}"


def _spread(sizes: list[int], count: int) -> list[int]:
    """At most ``count`` of the sorted ``sizes``, evenly spaced, always with the smallest and the largest."""
    if len(sizes) <= count:
        return sizes
    picks = {round(i * (len(sizes) - 1) / (count - 1)) for i in range(count)}
    return [sizes[i] for i in sorted(picks)]


def headline_trend_metrics(
    trend: pd.DataFrame, min_bytes: int, max_sizes: int = 6, max_panels: int = 20
) -> list[tuple[TrendMetric, bool]]:
    """The metrics the nightly trend shows, in panel order, each with whether it raised the alarm tonight.

    Alarmed metrics (regressed, missing, failed tonight) come first. Then, per collective and scope, at most
    ``max_sizes`` sizes from ``min_bytes`` up (evenly spaced, numerically ordered); for a scope with many
    groups (rails) the weakest group tonight stands for each size; per-pair metrics only when alarmed.
    """
    last = trend.sort_values("run_time").groupby("metric", sort=False).tail(1).set_index("metric")
    parsed = [TrendMetric.parse(str(m)) for m in last.index]
    alarmed = [m for m in parsed if last.at[m.metric, "state"] in TREND_ALARMS]
    calm = [m for m in parsed if m not in alarmed and m.scope != "pair"]
    chosen: list[TrendMetric] = []
    by_family: dict[tuple[str, str], list[TrendMetric]] = {}
    for m in calm:
        by_family.setdefault((m.collective, m.scope), []).append(m)
    scope_order = {s: i for i, s in enumerate(SCOPES)}
    for (_, _), members in sorted(by_family.items(), key=lambda kv: (scope_order.get(kv[0][1], 9), kv[0][0])):
        sized = [m for m in members if m.bytes is not None]
        chosen += [m for m in members if m.bytes is None]
        big = [m for m in sized if m.bytes is not None and m.bytes >= min_bytes]
        if not big and sized:  # a sweep that never reached min_bytes: its largest size still tells the trend
            top = max(m.bytes or 0 for m in sized)
            big = [m for m in sized if m.bytes == top]
        sizes = _spread(sorted({m.bytes or 0 for m in big}), max_sizes)
        for size in sizes:
            at_size = [m for m in big if m.bytes == size]
            weakest = min(at_size, key=lambda m: (float(last.at[m.metric, "busbw_GBps"] or 0), m.group))
            chosen.append(weakest)
    alarmed.sort(key=lambda m: (m.collective, scope_order.get(m.scope, 9), m.group, m.bytes or 0))
    ordered = [(m, True) for m in alarmed] + [(m, False) for m in chosen]
    return ordered[:max_panels]  # compare.json lists every metric; the figure must stay readable


def trend_table(
    trend: pd.DataFrame, max_points: int = 120, *, min_bytes: int = 0, max_sizes: int = 6, max_panels: int = 20
) -> ChartData:
    """The headline metrics' last ``max_points`` nights, oldest first, with a panel title and order.

    Columns: TREND_COLUMNS plus ``panel`` (``all_reduce · world · 1G``, ``▼`` first when it raised the
    alarm), ``panel_order`` and ``alarm``. The band's lower edge is clipped at 0: no busbw is negative.
    """
    if trend.empty:
        return ChartData(pd.DataFrame())
    shown = headline_trend_metrics(trend, min_bytes, max_sizes, max_panels)
    order = {m.metric: (i, m, alarm) for i, (m, alarm) in enumerate(shown)}
    ordered = trend[trend["metric"].isin(order)].sort_values("run_time")
    kept = ordered.groupby("metric", sort=False).tail(max_points).copy()
    left_out = trend["metric"].nunique() - len(order)
    notes = []
    if left_out > 0:
        notes.append(f"{len(order)} headline metrics of {trend['metric'].nunique()} (all in compare.json)")
    if len(kept) < len(ordered):
        notes.append(f"the last {max_points} nights")
    kept["run_time"] = kept["run_time"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    kept["state"] = kept["state"].fillna("").replace("", "unknown")
    kept["band_lo_GBps"] = kept["band_lo_GBps"].clip(lower=0.0)
    kept["panel_order"] = [order[m][0] for m in kept["metric"]]
    kept["alarm"] = [int(order[m][2]) for m in kept["metric"]]  # 0/1: a number in every CSV loader
    kept["panel"] = [("▼ " if order[m][2] else "") + order[m][1].panel for m in kept["metric"]]
    kept = kept.sort_values(["panel_order", "run_time"], kind="stable")
    columns = [*TREND_COLUMNS, "panel", "panel_order", "alarm"]
    return ChartData(kept[columns].reset_index(drop=True), "; ".join(notes))
