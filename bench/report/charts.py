"""Chart functions: each takes one aggregated table from ``bench.report.data`` and returns an Altair chart.

They are pure: the same frame gives the same spec, nothing is read or written. ``data`` lets the caller
point the chart at a CSV by ``url`` (as the vendor docs' charts do); without it the frame is inlined, which
is handy in a notebook. Everything a chart needs to know (targets, tick values, node order) comes from the
frame, so a chart drawn from a CSV url and one drawn from inline values are identical.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import altair as alt
import pandas as pd
from pandas.api.types import is_numeric_dtype

from bench.report.theme import STATUS_COLORS, TARGET_COLOR

Unit = Literal["GB/s", "Gb/s"]
UNIT_HELP: dict[str, str] = {"GB/s": "GB/s = 1e9 bytes/s", "Gb/s": "Gb/s = 1e9 bits/s"}
BAR_WIDTH = 800  # the vendor docs' ResNet-50 chart is 800 px wide; ours line up with it on the same page
# Vega expression: 1024 -> 1K, 1048576 -> 1M, 1073741824 -> 1G (powers of 1024, as nccl-tests' -b/-e)
SIZE_LABEL_EXPR = (
    "datum.value >= 1099511627776 ? format(datum.value / 1099511627776, '~g') + 'T'"
    " : datum.value >= 1073741824 ? format(datum.value / 1073741824, '~g') + 'G'"
    " : datum.value >= 1048576 ? format(datum.value / 1048576, '~g') + 'M'"
    " : datum.value >= 1024 ? format(datum.value / 1024, '~g') + 'K'"
    " : format(datum.value, '~g')"
)
# Every state compare writes into trend.csv has a colour of its own: the earlier nights ("baseline") are the
# quiet grey, tonight's point stands out in its state's colour (an "unchanged" night is blue, not grey).
_TREND_STATE_COLORS = {
    "baseline": "#9d9d9d",
    "unchanged": "#4c78a8",
    "ok": "#4c78a8",
    "improved": "#54a24b",
    "regressed": "#e45756",
    "failed": "#b279a2",
    "new": "#f58518",
    "missing": "#b279a2",
}
_OTHER_STATE_COLOR = "#72b7b2"


def csv_data(url: str, frame: pd.DataFrame, dates: Sequence[str] = ()) -> alt.UrlData:
    """CSV data by ``url`` with an explicit parse, so numbers are numbers in every Vega loader."""
    parse = {str(c): "number" for c in frame.columns if is_numeric_dtype(frame[c]) and c not in dates}
    parse.update({c: "date" for c in dates})
    return alt.UrlData(url=url, format=alt.CsvDataFormat(type="csv", parse=parse))


def field_name(measure: str, unit: Unit) -> str:
    return f"{measure}_{'GBps' if unit == 'GB/s' else 'Gbps'}"


def value_format(unit: Unit) -> str:
    # Four significant digits: 3,172 Gb/s on a 1CC and 0.287 Gb/s on a shaped CPU link both read right.
    return ",.4~r"


def chart_title(title: str, subtitle: str | None) -> alt.TitleParams:
    return alt.TitleParams(text=title, subtitle=subtitle) if subtitle else alt.TitleParams(text=title)


OFF_SCALE = 5.0
"""A target above this many times the best value stays off the axis, and a note at the top says where it is:
on an axis that runs to a 480 GB/s target, 0.5 GB/s of data would lie flat at zero."""


def value_scale(values: pd.Series, targets: Sequence[float]) -> tuple[alt.Scale | None, list[float]]:
    """The bandwidth axis for ``values`` and their ``targets``: (None to let the targets widen it, []) when
    every target is within OFF_SCALE of the data, else (a scale from 0 to the data and the targets in
    reach, the targets left off)."""
    best = float(values.max()) if len(values) and values.notna().any() else 0.0
    off = sorted(t for t in targets if best > 0 and t > OFF_SCALE * best)
    if not off:
        return None, []
    reach = max([best, *(t for t in targets if t not in off)])
    return alt.Scale(domain=[0, reach], nice=True), off


def _off_scale_note(off: Sequence[float], best: float, unit: Unit) -> str:
    said = ", ".join(f"{t:,.4g}" for t in off)
    return f"target {said} {unit} is off this scale (the best here is {best / off[0]:.1%} of it)"


def size_ticks(min_bytes: float, max_bytes: float, max_ticks: int = 12) -> list[int]:
    """Powers of two spanning the sweep, every 2nd/4th/... one so that at most ``max_ticks`` are labelled."""
    if not (min_bytes > 0 and max_bytes >= min_bytes):
        return []
    lo, hi = math.floor(math.log2(min_bytes)), math.ceil(math.log2(max_bytes))
    stride = max(1, math.ceil((hi - lo + 1) / max_ticks))
    return [2**e for e in range(lo, hi + 1) if (e - lo) % stride == 0]


def busbw_vs_size_chart(
    table: pd.DataFrame,
    *,
    data: alt.UrlData | None = None,
    unit: Unit = "GB/s",
    title: str = "Bus bandwidth vs message size",
    subtitle: str | None = None,
) -> alt.LayerChart:
    """One line per collective over a log-2 size axis, the target as a dashed rule, nccl-tests tooltips."""
    busbw, target = field_name("busbw", unit), field_name("target", unit)
    base = alt.Chart(data if data is not None else table)
    x = alt.X(
        "bytes:Q",
        scale=alt.Scale(type="log", base=2),
        axis=alt.Axis(values=size_ticks(table["bytes"].min(), table["bytes"].max()), labelExpr=SIZE_LABEL_EXPR),
        title="message size (bytes, log2 scale)",
    )
    scale, off = value_scale(table[busbw], [float(t) for t in table[target].dropna().unique()])
    y_title = f"bus bandwidth ({UNIT_HELP[unit]})"
    lines = base.mark_line(point=True).encode(
        x=x,
        y=alt.Y(f"{busbw}:Q", title=y_title, scale=scale) if scale is not None else alt.Y(f"{busbw}:Q", title=y_title),
        color=alt.Color("collective:N", title="collective"),
        tooltip=[
            alt.Tooltip("collective:N"),
            alt.Tooltip("size:N", title="size"),
            alt.Tooltip("time_us:Q", title="time (µs)", format=",.1f"),
            alt.Tooltip("algbw_GBps:Q", title="algbw (GB/s)", format=",.2f"),
            alt.Tooltip("busbw_GBps:Q", title="busbw (GB/s)", format=",.2f"),
            alt.Tooltip("busbw_Gbps:Q", title="busbw (Gb/s)", format=",.1f"),
            alt.Tooltip("efficiency:Q", title="of target", format=".1%"),
            *(
                [alt.Tooltip("in_place_busbw_GBps:Q", title="in-place busbw (GB/s)", format=",.2f")]
                if "in_place_busbw_GBps" in table
                else []
            ),
        ],
    )
    layers: list[alt.Chart] = [lines]
    if table[target].notna().any() and len(off) < table[target].nunique():
        # one rule per distinct target in reach of the data, however many collectives share it
        reach = f" && datum.{target} < {off[0]}" if off else ""
        targets = base.transform_filter(f"isValid(datum.{target}){reach}").transform_aggregate(
            groupby=["target_Gbps", "target_GBps"], n="count()"
        )
        label = "'target ' + format(datum.target_Gbps, ',') + ' Gb/s = ' + format(datum.target_GBps, ',') + ' GB/s'"
        layers.append(targets.mark_rule(color=TARGET_COLOR, strokeDash=[6, 4]).encode(y=f"{target}:Q"))
        layers.append(
            targets.transform_calculate(label=label)
            .mark_text(align="right", baseline="bottom", dy=-4, color=TARGET_COLOR)
            .encode(y=f"{target}:Q", x=alt.value(BAR_WIDTH), text="label:N")
        )
    if off:
        note = _off_scale_note(off, float(table[busbw].max()), unit)
        layers.append(
            base.transform_aggregate(n="count()")
            .mark_text(align="right", baseline="top", dy=2, color=TARGET_COLOR)
            .encode(x=alt.value(BAR_WIDTH), y=alt.value(0), text=alt.value(f"▲ {note}"))
        )
    return alt.layer(*layers).properties(width=BAR_WIDTH, height=360, title=chart_title(title, subtitle))


def bars_chart(
    table: pd.DataFrame,
    *,
    data: alt.UrlData | None = None,
    unit: Unit = "Gb/s",
    title: str = "Bus bandwidth",
    subtitle: str | None = None,
    min_efficiency: float = 0.9,
) -> alt.LayerChart:
    """Horizontal bars sorted descending with value labels, a target rule and failures in red (ResNet-50 style).

    Every layer draws from the one top-level source (transforms included): Vega-Lite can only keep the
    descending sort when the bars and their labels share a data source.
    """
    busbw, target = field_name("busbw", unit), field_name("target", unit)
    order = alt.EncodingSortField(field=busbw, op="sum", order="descending")
    base = alt.Chart()
    y = alt.Y("label:N", sort=order, title=None)
    targets = table[target].dropna().unique()
    scale, off = value_scale(table[busbw], [float(t) for t in targets])
    x_title = f"bus bandwidth ({UNIT_HELP[unit]})"
    x = alt.X(f"{busbw}:Q", title=x_title, scale=scale) if scale is not None else alt.X(f"{busbw}:Q", title=x_title)
    present = [s for s in STATUS_COLORS if s in set(table["status"])] or ["pass"]
    bars = base.mark_bar().encode(
        y=y,
        x=x,
        color=alt.Color(
            "status:N",
            scale=alt.Scale(domain=present, range=[STATUS_COLORS[s] for s in present]),
            legend=alt.Legend(title=f"fail < {min_efficiency:.0%} of target", orient="bottom"),
        ),
        tooltip=[
            alt.Tooltip("label:N", title="what"),
            alt.Tooltip("detail:N", title="detail"),
            alt.Tooltip("busbw_Gbps:Q", title="busbw (Gb/s)", format=",.1f"),
            alt.Tooltip("busbw_GBps:Q", title="busbw (GB/s)", format=",.2f"),
            alt.Tooltip("target_Gbps:Q", title="target (Gb/s)", format=",.0f"),
            alt.Tooltip("efficiency:Q", title="of target", format=".1%"),
            alt.Tooltip("status:N"),
        ],
    )
    layers: list[alt.Chart] = [bars]
    if off:
        # every layer shares the one source, so the note is one mark by aggregating to a single datum
        note = _off_scale_note(off, float(table[busbw].max()), unit)
        layers.append(
            base.mark_text(align="right", baseline="bottom", dy=-3, color=TARGET_COLOR).encode(
                x=alt.value(BAR_WIDTH), y=alt.value(0), text=alt.value(f"{note} →"), detail="count():Q"
            )
        )
    if len(targets) == 1 and not off:
        rule = base.mark_rule(color=TARGET_COLOR, strokeDash=[6, 4], strokeWidth=2).encode(x=f"max({target}):Q")
        rule_label = base.mark_text(align="center", baseline="bottom", dy=-3, color=TARGET_COLOR).encode(
            x=f"max({target}):Q", y=alt.value(0), text=alt.value(f"target {targets[0]:,.4g} {unit}")
        )
        layers += [rule, rule_label]
    elif len(targets) > 1:
        # bars with different targets (mixed link rates): mark each bar's own target (clipped when off scale)
        layers.append(base.mark_tick(color=TARGET_COLOR, thickness=2, clip=True).encode(y=y, x=f"{target}:Q"))
    # Value labels sit inside the bar end (white) so they never collide with the target rule just past it;
    # a bar too short to hold its label gets it outside. Two label fields, not two filtered sources.
    layers.append(
        base.mark_text(align="right", baseline="middle", dx=-4, color="white").encode(y=y, x=x, text="inside:N")
    )
    layers.append(base.mark_text(align="left", baseline="middle", dx=3).encode(y=y, x=x, text="outside:N"))
    # A failing bar at 0 moved nothing (a dead link: ``bench.report.data``): its bar has no length to be red in,
    # so its label says dead.
    value = f"format(datum.{busbw}, '{value_format(unit)}')"
    label = f"datum.{busbw} == 0 && datum.status == 'fail' ? '0 (dead)' : {value}"
    fits = f"datum.{busbw} >= 0.15 * datum.longest"
    return (
        alt.layer(*layers, data=data if data is not None else table)
        .transform_joinaggregate(longest=f"max({busbw})")
        .transform_calculate(inside=f"{fits} ? {label} : ''", outside=f"{fits} ? '' : {label}")
        .properties(
            width=BAR_WIDTH, height=alt.Step(22 if len(table) <= 24 else 14), title=chart_title(title, subtitle)
        )
    )


def time_format(table: pd.DataFrame) -> str:
    """The trend's x labels: the day (``11-23``) when every run fell on a day of its own, the day and the time
    (``11-23 14:05``) when several runs share a day, so no two ticks read the same."""
    if not len(table):
        return "%m-%d"
    times = pd.to_datetime(table["run_time"], utc=True, errors="coerce").dropna().drop_duplicates()
    return "%m-%d %H:%M" if times.dt.date.duplicated().any() else "%m-%d"


_LINK_METRIC = "indexof(['rail', 'pair', 'local-pair'], split(datum.metric, '/')[1]) >= 0"
"""A trend metric (``collective/scope/group/bytes``) of a link's scope: its rate is said in Gb/s."""
_TREND_RATES = ("busbw", "baseline", "band_lo", "band_hi")


def trend_chart(
    table: pd.DataFrame,
    *,
    data: alt.UrlData | None = None,
    title: str = "Nightly bus bandwidth",
    subtitle: str | None = None,
    columns: int = 4,
) -> alt.FacetChart:
    """busbw per night for each headline metric over its baseline (dashed) and noise band (shaded).

    One small panel per metric, ``columns`` to a row, in ``panel_order`` (alarmed metrics first, their line
    in red), so the figure stays a few panels tall whatever the history length or the number of metrics.
    trend.csv is in GB/s; a rail's or a pair's panel is drawn in Gb/s, the unit its rails lines, tables and
    charts give it (``docs/design.md``, "Units and formulas"); each panel's title ends with its unit.
    """
    states = [s for s in dict.fromkeys(table["state"].astype(str))] if len(table) else ["ok"]
    base = alt.Chart()
    x = alt.X("run_time:T", title=None, axis=alt.Axis(format=time_format(table), labelOverlap=True, tickCount=4))
    band = base.mark_area(opacity=0.25, color="#9ecae9").encode(
        x=x,
        y=alt.Y("band_lo_shown:Q", title="busbw", scale=alt.Scale(zero=False)),
        y2="band_hi_shown:Q",
    )
    baseline = base.mark_line(color="#555555", strokeDash=[4, 3], strokeWidth=1).encode(x=x, y="baseline_shown:Q")
    # a value condition, not a scale: no second legend, and red only where the metric raised the alarm
    line = base.mark_line().encode(
        x=x, y="busbw_shown:Q", color=alt.condition("datum.alarm == 1", alt.value("#e45756"), alt.value("#4c78a8"))
    )
    points = base.mark_point(filled=True, size=35).encode(
        x=x,
        y="busbw_shown:Q",
        color=alt.Color(
            "state:N",
            scale=alt.Scale(domain=states, range=[_TREND_STATE_COLORS.get(s, _OTHER_STATE_COLOR) for s in states]),
            legend=alt.Legend(title="state", orient="right"),
        ),
        tooltip=[
            alt.Tooltip("run_time:T", title="night", format="%Y-%m-%d %H:%M"),
            alt.Tooltip("metric:N"),
            alt.Tooltip("busbw_shown:Q", title="busbw", format=",.2f"),
            alt.Tooltip("baseline_shown:Q", title="baseline", format=",.2f"),
            alt.Tooltip("band_lo_shown:Q", title="band low", format=",.2f"),
            alt.Tooltip("band_hi_shown:Q", title="band high", format=",.2f"),
            alt.Tooltip("rate_unit:N", title="unit"),
            alt.Tooltip("state:N"),
        ],
    )
    layered = alt.layer(band, baseline, line, points, data=data if data is not None else table)
    return (
        layered.properties(width=220, height=80)
        .facet(
            facet=alt.Facet(
                "panel_unit:N",
                title=None,
                sort=alt.SortField("panel_order"),
                header=alt.Header(labelFontSize=11, labelLimit=280),  # a pair's name, its size and its unit
            ),
            columns=columns,
            spacing=8,
        )
        .resolve_scale(y="independent")
        .transform_calculate(rate_factor=f"({_LINK_METRIC}) ? 8 : 1")
        .transform_calculate(rate_unit=f"({_LINK_METRIC}) ? 'Gb/s' : 'GB/s'")
        .transform_calculate(panel_unit="datum.panel + ' · ' + datum.rate_unit")
        .transform_calculate(**{f"{c}_shown": f"datum.{c}_GBps * datum.rate_factor" for c in _TREND_RATES})
        .properties(title=chart_title(title, subtitle))
    )
