"""The heat map of a pair matrix (the rail matrix, a node's GPU matrix): one panel per rail or node, wrapped to
the report's width, each cell coloured by its busbw against the target and outlined where a verdict marks it.

Pure like ``bench.report.charts``: the same frame gives the same spec. The table comes from
``bench.report.matrices``.
"""

from __future__ import annotations

from collections import Counter

import altair as alt
import pandas as pd

from bench.report.charts import Unit, chart_title, field_name, value_format

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
    busbw = field_name("busbw", unit)
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
        title=chart_title(title, subtitle),
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
        alt.Tooltip(f"{busbw}:Q", title=f"busbw ({unit})", format=value_format(unit)),
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
