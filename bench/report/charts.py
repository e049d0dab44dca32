"""Chart functions: each takes one aggregated table from ``bench.report.data`` and returns an Altair chart.

They are pure: the same frame gives the same spec, nothing is read or written. ``data`` lets the caller
point the chart at a CSV by ``url`` (as the vendor docs' charts do); without it the frame is inlined, which
is handy in a notebook. Everything a chart needs to know (targets, tick values, node order) comes from the
frame, so a chart drawn from a CSV url and one drawn from inline values are identical.
"""

from __future__ import annotations

import math
from collections import Counter
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


def _field(measure: str, unit: Unit) -> str:
    return f"{measure}_{'GBps' if unit == 'GB/s' else 'Gbps'}"


def _value_format(unit: Unit) -> str:
    # Four significant digits: 3,172 Gb/s on a 1CC and 0.287 Gb/s on a shaped CPU link both read right.
    return ",.4~r"


def _title(title: str, subtitle: str | None) -> alt.TitleParams:
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
    busbw, target = _field("busbw", unit), _field("target", unit)
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
    return alt.layer(*layers).properties(width=BAR_WIDTH, height=360, title=_title(title, subtitle))


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
    busbw, target = _field("busbw", unit), _field("target", unit)
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
    value = f"format(datum.{busbw}, '{_value_format(unit)}')"
    label = f"datum.{busbw} == 0 && datum.status == 'fail' ? '0 (dead)' : {value}"
    fits = f"datum.{busbw} >= 0.15 * datum.longest"
    return (
        alt.layer(*layers, data=data if data is not None else table)
        .transform_joinaggregate(longest=f"max({busbw})")
        .transform_calculate(inside=f"{fits} ? {label} : ''", outside=f"{fits} ? '' : {label}")
        .properties(width=BAR_WIDTH, height=alt.Step(22 if len(table) <= 24 else 14), title=_title(title, subtitle))
    )


MARK_COLORS = {"dead": "#e45756", "slow": "#111111", "transient": "#7b3294"}
"""Outline of a marked heat-map cell: red where a dead part left it unmeasured (drawn at 0), black where a
defect convicts it or it is below the line, purple where it was slow once and normal when re-measured."""
CHART_WIDTH = 1000
"""The widest a figure may be: the report's column is 1100 px on a 1280 px screen."""


MIN_CELL_PX = 3
"""The smallest cell a matrix is drawn with: a 64 x 64 panel of 3 px cells is 192 px, four to a row."""
LABEL_PX = 110
"""Room left of the first panel for a matrix's row labels (node names, ``GPU 7``)."""
LABEL_SPACING_PX = 12
"""Rows of a large matrix are labelled this far apart at least, so the labels never overlap."""


def heatmap_layout(table: pd.DataFrame, max_cell: int = 28) -> tuple[int, int, bool]:
    """(cell size in px, panels per row, whether every row is labelled) for a matrix of this many rows.

    A panel stays about 230 px square from 8 to 64 rows, and the panels wrap so the figure fits CHART_WIDTH.
    The rows are as few as fit (the cells may shrink to three quarters of their size, never below
    ``MIN_CELL_PX``) and as full as the panel count allows: 8 rails make 2 rows of 4, never 3 rows of 3 with
    an empty ninth panel, and one more row buys a grid with no empty place (16 nodes: 4 x 4); 7 rails make 4
    and 3. A matrix whose cells are under ``LABEL_SPACING_PX`` labels some of its rows (``heatmap_labels``).
    """
    count = int(max(table["row_index"].max(), table["col_index"].max())) + 1 if len(table) else 1
    preferred = max(4, min(max_cell, 230 // max(count, 1)))
    panels = int(table["panel"].nunique()) if len(table) else 1

    def cell_for(columns: int) -> int:
        fits = ((CHART_WIDTH - LABEL_PX) // columns - 24) // count
        return min(preferred, fits)

    floor = max(MIN_CELL_PX, preferred * 3 // 4)
    fitting = [c for c in range(1, panels + 1) if cell_for(c) >= floor] or [1]
    rows = -(-panels // max(fitting))
    columns = -(-panels // rows)  # as few rows as fit, each as full as the panel count allows
    # An empty place still draws its axis: a grid with none is worth one more row (16 nodes: 4 x 4, not 6 + 6 + 4)
    full = [c for c in fitting if panels % c == 0 and panels // c <= rows + 1]
    if panels % columns and full:
        columns = max(full)
    cell = max(MIN_CELL_PX, cell_for(columns))
    # every row labelled only where the labels cannot overlap: a unit of 32 nodes has 6 px rows
    return cell, columns, cell >= LABEL_SPACING_PX


def heatmap_labels(table: pd.DataFrame, cell: int) -> list[str] | None:
    """The row and column labels a matrix too large to label every row shows (None: label them all).

    Rows at least ``LABEL_SPACING_PX`` apart, and always the rows the marked cells point at: a part whose whole
    row and column is marked (a bad HCA, a slow GPU) is named on both axes, as are both ends of a few marked
    pairs; a stride label that would crowd a named one is left out.
    """
    count = int(max(table["row_index"].max(), table["col_index"].max())) + 1 if len(table) else 1
    if cell >= LABEL_SPACING_PX:
        return None
    names = dict(zip(table["row_index"], table["row"], strict=True)) | dict(
        zip(table["col_index"], table["col"], strict=True)
    )
    named: set[int] = set()
    for _, panel in table[table["mark"].fillna("") != ""].groupby("panel", sort=False):
        hits = Counter(int(i) for i in panel["row_index"]) + Counter(int(i) for i in panel["col_index"])
        most = max(hits.values())
        # in each panel: a few marked pairs, both ends of each; a marked row and column, the part it crosses at
        named |= {i for i, n in hits.items() if len(panel) <= 16 or n * 2 >= most}
    step = max(1, -(-LABEL_SPACING_PX // cell))
    stride = {i for i in range(0, count, step) if all(abs(i - j) >= step for j in named)}
    return [str(names[i]) for i in sorted(stride | named) if i in names]


def heatmap_chart(
    table: pd.DataFrame,
    *,
    data: alt.UrlData | None = None,
    unit: Unit = "Gb/s",
    title: str = "Node × node bus bandwidth per rail",
    subtitle: str | None = None,
    min_efficiency: float = 0.9,
    row_title: str = "node",
    col_title: str = "peer",
    max_cell: int = 28,
    symmetric: bool = True,
) -> alt.FacetChart:
    """A matrix per panel (``bench.report.matrices``): the node x node pairs of each rail, or the GPU x GPU
    pairs of each node. Colour is the fraction of the line rate (busbw where nothing sets one); marked cells
    are outlined, black when slow, purple when transient. A bad HCA shows as a red, outlined row and column.

    ``symmetric``: the table holds one triangle and the chart mirrors it (a fold turns each cell into itself
    and its transpose), so the pair matrix's CSV is half the size.
    """
    busbw = _field("busbw", unit)
    cell, columns, labelled = heatmap_layout(table, max_cell)
    axis = _heatmap_axis(labelled, None if labelled else heatmap_labels(table, cell))
    rect = (
        _heatmap_cells(table, data, unit, symmetric=symmetric)
        .mark_rect()
        .encode(
            x=alt.X("x:N", sort=alt.EncodingSortField(field="x_index", op="min"), title=col_title, axis=axis),
            y=alt.Y("y:N", sort=alt.EncodingSortField(field="y_index", op="min"), title=row_title, axis=axis),
            color=_heatmap_color(table, busbw, unit, min_efficiency),
            tooltip=_heatmap_tooltip(table, busbw, unit, row_title, col_title),
            **_mark_outline(table),
        )
        .properties(width=alt.Step(cell), height=alt.Step(cell))
    )
    return rect.facet(
        facet=alt.Facet("panel:N", title=None, sort=alt.SortField("panel_order")),
        columns=columns,
        spacing=16,
        title=_title(title, subtitle),
    )


def _heatmap_color(table: pd.DataFrame, busbw: str, unit: Unit, min_efficiency: float) -> alt.Color:
    """The fraction of the line rate where the table has one, else busbw."""
    if table["efficiency"].notna().any():
        return alt.Color(
            "efficiency:Q",
            scale=alt.Scale(scheme="redyellowgreen", domain=[max(0.0, min_efficiency - 0.4), 1.0], clamp=True),
            legend=alt.Legend(title="of line rate", format=".0%"),
        )
    return alt.Color(f"{busbw}:Q", scale=alt.Scale(scheme="viridis"), legend=alt.Legend(title=unit))


def _heatmap_axis(labelled: bool, shown: list[str] | None) -> alt.Axis:
    """Every row labelled (or none), or the rows :func:`heatmap_labels` chose (``shown``)."""
    if shown is None:
        return alt.Axis(labels=labelled, ticks=False, labelLimit=100)
    # a large matrix names some rows (and its marked ones), small, so a marked node can be found
    return alt.Axis(values=shown, ticks=False, labelLimit=LABEL_PX - 10, labelFontSize=9, labelOverlap=False)


def _mark_outline(table: pd.DataFrame) -> dict[str, object]:
    """The stroke encodings that outline the marked cells, in the colours of the marks present (none: {})."""
    present = [m for m in MARK_COLORS if m in set(table["mark"])] if len(table) else []
    if not present:
        return {}
    # a condition, so unmarked cells get no outline (and no legend entry) at all
    marked = " || ".join(f"datum.mark == '{m}'" for m in MARK_COLORS)
    stroke = alt.Stroke(
        "mark:N",
        scale=alt.Scale(domain=present, range=[MARK_COLORS[m] for m in present]),
        legend=alt.Legend(title="marked"),
    )
    return {
        "stroke": alt.condition(marked, stroke, alt.value(None)),
        "strokeWidth": alt.condition(marked, alt.value(1.5), alt.value(0)),
    }


def _heatmap_tooltip(table: pd.DataFrame, busbw: str, unit: Unit, row_title: str, col_title: str) -> list[alt.Tooltip]:
    tooltip = [
        alt.Tooltip("panel:N", title="where"),
        alt.Tooltip("y:N", title=row_title),
        alt.Tooltip("x:N", title=col_title),
        alt.Tooltip("detail:N", title="detail"),
        alt.Tooltip(f"{busbw}:Q", title=f"busbw ({unit})", format=_value_format(unit)),
        alt.Tooltip("efficiency:Q", title="of line rate", format=".1%"),
        alt.Tooltip("mark:N", title="marked"),
    ]
    if "pairs" in table.columns:
        tooltip.append(alt.Tooltip("pairs:Q", title="pairs in cell"))
    return tooltip


def _heatmap_cells(table: pd.DataFrame, data: alt.UrlData | None, unit: Unit, *, symmetric: bool) -> alt.Chart:
    """The cells' source with their x and y (a triangle mirrored where ``symmetric``), in ``unit``."""
    base = alt.Chart(data if data is not None else table)
    if symmetric:
        base = base.transform_fold(["row", "col"], as_=["side", "name"]).transform_calculate(
            y="datum.side == 'row' ? datum.row : datum.col",
            x="datum.side == 'row' ? datum.col : datum.row",
            y_index="datum.side == 'row' ? datum.row_index : datum.col_index",
            x_index="datum.side == 'row' ? datum.col_index : datum.row_index",
        )
    else:
        base = base.transform_calculate(
            y="datum.row", x="datum.col", y_index="datum.row_index", x_index="datum.col_index"
        )
    if unit == "GB/s":
        base = base.transform_calculate(busbw_GBps="datum.busbw_Gbps / 8")
    return base


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
        .properties(title=_title(title, subtitle))
    )
