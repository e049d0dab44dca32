"""The soak's charts (``bench.report.soak`` makes their tables): a timeline per named part and the world
collectives over the windows. Pure like ``bench.report.charts``: the same frame gives the same spec, and the
spec reads its CSV by ``url`` when ``data`` is given.

A part's timeline is two panels over the same window axis: its busbw in Gb/s (one line per link, or the median
and the slowest of many), the windows it was named in marked in the failure colour; below, its error counters'
rises and its flaps per window as bars, so a flap once an hour and a counter that climbs under heat read at a
glance against the rate.
"""

from __future__ import annotations

import altair as alt
import pandas as pd

from bench.report.charts import value_scale
from bench.report.theme import STATUS_COLORS, TARGET_COLOR

FLAP_COLOR = "#f58518"
"""Flaps in the theme's second category colour; error rises in the failure red."""
WIDTH = 800


MAX_TICKS = 20


def window_ticks(last: int) -> list[int]:
    """Whole windows from 0 to ``last`` at a step of 1, 2 or 5 times a power of ten, at most :data:`MAX_TICKS`: a
    window has no half, and a renderer left to choose puts ticks at 0.5 and prints them as 0 and 1 (vl-convert
    draws ``tickMinStep`` as if it were not there)."""
    steps = (m * 10**e for e in range(12) for m in (1, 2, 5))
    step = next(k for k in steps if last // k < MAX_TICKS)
    return list(range(0, last + 1, step))


def _x(table: pd.DataFrame) -> alt.X:
    last = max(int(table["window_last"].max()) if len(table) else 0, 1)
    axis = alt.Axis(format="d", values=window_ticks(last))
    return alt.X("window:Q", title="window", axis=axis, scale=alt.Scale(domain=[0, last], nice=False))


def part_timeline_chart(
    table: pd.DataFrame, *, data: alt.UrlData | None = None, title: str = "", subtitle: str | None = None
) -> alt.VConcatChart:
    """busbw per window with the named windows marked, over error rises and flaps per window."""
    x = _x(table)
    windows = [
        alt.Tooltip("window:Q", title="window"),
        alt.Tooltip("window_last:Q", title="to window"),
    ]
    base = alt.Chart()
    line = base.mark_line(point=alt.OverlayMarkDef(size=12)).encode(
        x=x,
        y=alt.Y("busbw_Gbps:Q", title="busbw (Gb/s = 1e9 bits/s)", scale=alt.Scale(zero=False)),
        color=alt.Color("series:N", title="link"),
        tooltip=[*windows, alt.Tooltip("series:N"), alt.Tooltip("busbw_Gbps:Q", title="busbw (Gb/s)", format=",.4~r")],
    )
    named = (
        base.mark_point(shape="diamond", size=90, filled=True, color=STATUS_COLORS["fail"])
        .encode(
            x=x,
            y="busbw_Gbps:Q",
            tooltip=[
                *windows,
                alt.Tooltip("series:N"),
                alt.Tooltip("busbw_Gbps:Q", title="busbw (Gb/s)", format=",.4~r"),
            ],
        )
        .transform_filter("datum.named == 1 && isValid(datum.busbw_Gbps) && isFinite(datum.busbw_Gbps)")
    )
    rate = alt.layer(line, named).properties(width=WIDTH, height=180)
    counts = (
        base.transform_filter("datum.series_rank == 0")
        .transform_fold(["errors", "flaps"], as_=["counter", "count"])
        .mark_bar()
        .encode(
            x=x,
            y=alt.Y("count:Q", title="rises per window", scale=alt.Scale(domainMin=0, nice=True)),
            color=alt.Color(
                "counter:N",
                title="counter",
                scale=alt.Scale(domain=["errors", "flaps"], range=[STATUS_COLORS["fail"], FLAP_COLOR]),
            ),
            tooltip=[*windows, alt.Tooltip("counter:N"), alt.Tooltip("count:Q", title="rises", format=",d")],
        )
        .properties(width=WIDTH, height=90)
    )
    chart = alt.vconcat(rate, counts, data=data if data is not None else table, spacing=6)
    return chart.resolve_scale(color="independent").properties(
        title=alt.TitleParams(text=title, subtitle=subtitle) if subtitle else alt.TitleParams(text=title)
    )


def world_timeline_chart(
    table: pd.DataFrame,
    *,
    data: alt.UrlData | None = None,
    title: str = "World collectives over the soak",
    subtitle: str | None = None,
) -> alt.LayerChart:
    """Each world collective's busbw (GB/s, as nccl-tests says it) per window, one line per collective and size,
    its target a dashed rule (one far above the data stays off the axis, as on the sweep's chart)."""
    targets = [float(t) for t in table["target_GBps"].dropna().unique()] if len(table) else []
    scale, off = value_scale(table["busbw_GBps"], targets)
    y_title = "busbw (GB/s = 1e9 bytes/s)"
    y = alt.Y("busbw_GBps:Q", title=y_title, scale=scale if scale is not None else alt.Scale(zero=False))
    base = alt.Chart()
    lines = base.mark_line(point=alt.OverlayMarkDef(size=12)).encode(
        x=_x(table),
        y=y,
        color=alt.Color("collective:N", title="collective"),
        tooltip=[
            alt.Tooltip("window:Q"),
            alt.Tooltip("window_last:Q", title="to window"),
            alt.Tooltip("collective:N"),
            alt.Tooltip("busbw_GBps:Q", title="busbw (GB/s)", format=",.2f"),
            alt.Tooltip("target_GBps:Q", title="target (GB/s)", format=",.2f"),
        ],
    )
    layers: list[alt.Chart] = [lines]
    if len(off) < len(targets):
        reach = f" && datum.target_GBps < {off[0]}" if off else ""
        rule = (
            base.transform_filter(f"isValid(datum.target_GBps){reach}")
            .transform_aggregate(target_GBps="max(target_GBps)", groupby=["collective"])
            .mark_rule(strokeDash=[6, 4], color=TARGET_COLOR)
            .encode(
                y="target_GBps:Q",
                tooltip=[alt.Tooltip("collective:N"), alt.Tooltip("target_GBps:Q", title="target (GB/s)")],
            )
        )
        layers.append(rule)
    note = f"target {', '.join(f'{t:,.4g}' for t in off)} GB/s is off this scale" if off else None
    shown = " · ".join(w for w in (subtitle, note) if w)
    chart = alt.layer(*layers, data=data if data is not None else table).properties(width=WIDTH, height=200)
    return chart.properties(title=alt.TitleParams(text=title, subtitle=shown) if shown else alt.TitleParams(text=title))
