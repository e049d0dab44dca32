"""Chart functions: schema-valid Vega-Lite v5, JSON round trips, and the encodings each chart promises."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import altair as alt
import pandas as pd
import pytest

from bench.report import charts, data, heatmap, matrices, trend
from bench.report.inputs import RunInputs, load_inputs
from bench.report.theme import STATUS_COLORS, THEME_NAME, spec_dict
from tests.support.report_data import write_run_dir
from tests.support.report_schema import declared_version, validate


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> RunInputs:
    return load_inputs(write_run_dir(tmp_path_factory.mktemp("run") / "run"))


@pytest.fixture(scope="module")
def tables(inputs: RunInputs) -> dict[str, pd.DataFrame]:
    assert inputs.rails is not None and inputs.trend is not None
    pairs, _ = data.pair_measurements(inputs)
    return {
        "sweep": data.sweep_table(inputs.results).frame,
        "rails": data.rail_bars_table(inputs.rails, 0.9).frame,
        "heat": matrices.pair_matrix_table(pairs, list(inputs.run.hosts), 0.9, rails=inputs.rails).frame,
        "gpus": matrices.gpu_matrix_table(inputs.rails.intra_node, 0.9).frame,
        "trend": trend.trend_table(inputs.trend).frame,
        "far": _far_below_target(data.sweep_table(inputs.results).frame),
    }


def _far_below_target(sweep: pd.DataFrame) -> pd.DataFrame:
    """A CPU run judged against a 1CC's targets: 0.1% of the target, which would lie flat at zero."""
    far = sweep.copy()
    for column in ("busbw_GBps", "busbw_Gbps", "algbw_GBps"):
        far[column] = far[column] / 1000.0
    return far


def _far_bars(rails: pd.DataFrame) -> pd.DataFrame:
    far = rails.copy()
    far["busbw_Gbps"], far["busbw_GBps"] = far["busbw_Gbps"] / 1000.0, far["busbw_GBps"] / 1000.0
    return far


def all_charts(tables: dict[str, pd.DataFrame], url: bool) -> dict[str, alt.TopLevelMixin]:
    def src(name: str, dates: tuple[str, ...] = ()) -> alt.UrlData | None:
        return charts.csv_data(f"charts/{name}.csv", tables[name], dates) if url else None

    return {
        "sweep": charts.busbw_vs_size_chart(tables["sweep"], data=src("sweep")),
        "sweep-Gbps": charts.busbw_vs_size_chart(tables["sweep"], data=src("sweep"), unit="Gb/s"),
        "rails": charts.bars_chart(tables["rails"], data=src("rails"), title="Weakest node per rail"),
        "heat": heatmap.heatmap_chart(tables["heat"], data=src("heat")),
        "gpus": heatmap.heatmap_chart(
            tables["gpus"], data=src("gpus"), row_title="sending GPU", max_cell=18, symmetric=False
        ),
        "heat-GBps": heatmap.heatmap_chart(tables["heat"], data=src("heat"), unit="GB/s"),
        "far": charts.busbw_vs_size_chart(tables["far"], data=src("far")),
        "far-bars": charts.bars_chart(_far_bars(tables["rails"]), data=src("rails")),
        "trend": charts.trend_chart(tables["trend"], data=src("trend", ("run_time",))),
    }


def layers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    inner = spec.get("spec", spec)
    return inner.get("layer", [inner])


def data_sources(node: Any) -> list[dict[str, Any]]:
    """Every ``data`` object anywhere in a spec."""
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        if isinstance(node.get("data"), dict):
            found.append(node["data"])
        for value in node.values():
            found += data_sources(value)
    elif isinstance(node, list):
        for value in node:
            found += data_sources(value)
    return found


def mark(layer: dict[str, Any]) -> str:
    m = layer["mark"]
    return m if isinstance(m, str) else m["type"]


@pytest.mark.slow
@pytest.mark.parametrize("url", [True, False], ids=["url-data", "inline-data"])
def test_every_chart_is_valid_vega_lite_v5_and_round_trips(tables: dict[str, pd.DataFrame], url: bool) -> None:
    for name, chart in all_charts(tables, url).items():
        spec = spec_dict(chart)
        assert declared_version(spec).startswith("v5."), name
        validate(spec)
        assert json.loads(json.dumps(spec)) == spec, name
        with alt.theme.enable(THEME_NAME):
            assert type(chart).from_dict(spec).to_dict() == spec, name  # altair reads back what it wrote
            assert json.loads(chart.to_json()) == spec, name


@pytest.mark.slow
def test_url_charts_load_one_csv_at_the_top_level(tables: dict[str, pd.DataFrame]) -> None:
    # mkdocs-charts-plugin rewrites data.url (and spec.data.url) only: nested urls would break in docs
    for name, chart in all_charts(tables, url=True).items():
        spec = spec_dict(chart)
        text = json.dumps(spec)
        assert text.count('"url"') == 1, name
        assert spec["data"]["url"].startswith("charts/") and spec["data"]["format"]["type"] == "csv", name
        assert "datasets" not in spec and list(data_sources(spec)) == [spec["data"]], name


def test_busbw_vs_size_axes_target_and_tooltip(tables: dict[str, pd.DataFrame]) -> None:
    spec = spec_dict(charts.busbw_vs_size_chart(tables["sweep"]))
    line = layers(spec)[0]
    x, y = line["encoding"]["x"], line["encoding"]["y"]
    assert x["scale"] == {"type": "log", "base": 2}
    assert x["axis"]["values"][0] == 1024 and x["axis"]["values"][-1] == 1 << 30
    assert all(v & (v - 1) == 0 for v in x["axis"]["values"])  # powers of two
    assert all(s in x["axis"]["labelExpr"] for s in ("'K'", "'M'", "'G'"))
    assert y["field"] == "busbw_GBps" and "GB/s" in y["title"]
    assert line["encoding"]["color"]["field"] == "collective"
    tooltip = {t["field"] for t in line["encoding"]["tooltip"]}
    assert {"time_us", "algbw_GBps", "busbw_GBps", "efficiency"} <= tooltip
    rules = [layer for layer in layers(spec) if mark(layer) == "rule"]
    assert len(rules) == 1 and rules[0]["encoding"]["y"]["field"] == "target_GBps"
    gbps = spec_dict(charts.busbw_vs_size_chart(tables["sweep"], unit="Gb/s"))
    assert layers(gbps)[0]["encoding"]["y"]["field"] == "busbw_Gbps"
    assert "Gb/s" in layers(gbps)[0]["encoding"]["y"]["title"]


def test_bars_follow_the_resnet_style(tables: dict[str, pd.DataFrame]) -> None:
    spec = spec_dict(charts.bars_chart(tables["rails"], title="rails"))
    assert spec["width"] == 800
    bar_layer, rule, rule_label, inside, outside = layers(spec)
    assert [mark(x) for x in (bar_layer, rule, rule_label, inside, outside)] == ["bar", "rule", "text", "text", "text"]
    bar = bar_layer["encoding"]
    assert bar["x"]["field"] == "busbw_Gbps" and bar["y"]["field"] == "label"
    assert bar["y"]["sort"] == {"field": "busbw_Gbps", "op": "sum", "order": "descending"}
    # value labels: one field inside long bars, one outside short ones, computed at the top level so every
    # layer shares the bars' data source (Vega-Lite drops a sort across different sources)
    assert inside["encoding"]["text"]["field"] == "inside" and outside["encoding"]["text"]["field"] == "outside"
    assert inside["encoding"]["y"]["sort"] == bar["y"]["sort"] == outside["encoding"]["y"]["sort"]
    assert all("transform" not in layer and "data" not in layer for layer in layers(spec))
    calculated = {t.get("as") for t in spec["transform"]}
    assert {"inside", "outside"} <= calculated
    assert rule_label["encoding"]["text"] == {"value": "target 400 Gb/s"}
    colors = dict(zip(bar["color"]["scale"]["domain"], bar["color"]["scale"]["range"], strict=True))
    assert colors == {"pass": STATUS_COLORS["pass"], "fail": STATUS_COLORS["fail"]}
    assert rule["encoding"]["x"] == {"aggregate": "max", "field": "target_Gbps", "type": "quantitative"}


def test_bars_with_different_targets_mark_each_bars_own_target(tables: dict[str, pd.DataFrame]) -> None:
    mixed = tables["rails"].copy()
    mixed.loc[0, ["target_Gbps", "target_GBps"]] = [200.0, 25.0]
    spec = spec_dict(charts.bars_chart(mixed))
    assert "tick" in {mark(layer) for layer in layers(spec)}
    assert "rule" not in {mark(layer) for layer in layers(spec)}


def test_heatmap_has_a_panel_per_rail_and_outlines_marked_cells(tables: dict[str, pd.DataFrame]) -> None:
    spec = spec_dict(heatmap.heatmap_chart(tables["heat"]))
    assert spec["facet"]["field"] == "panel" and spec["facet"]["sort"] == {"field": "panel_order"}
    assert spec["columns"] == 8  # 4 nodes: 8 panels of 84 px, one full row within the page
    rect = spec["spec"]
    assert mark(rect) == "rect"
    assert rect["encoding"]["x"]["field"] == "x" and rect["encoding"]["y"]["field"] == "y"
    assert rect["transform"][0]["fold"] == ["row", "col"]  # the table holds one triangle; the chart mirrors it
    assert rect["encoding"]["color"]["field"] == "efficiency"
    stroke = rect["encoding"]["stroke"]
    assert stroke["condition"]["field"] == "mark" and stroke["condition"]["scale"]["domain"] == ["slow"]
    assert stroke["value"] is None  # an unmarked cell has no outline


def test_heatmaps_fit_the_page_from_4_to_64_rows_and_leave_no_empty_panel(tables: dict[str, pd.DataFrame]) -> None:
    for count, panels in ((4, 8), (8, 64), (64, 8), (8, 16), (64, 6), (8, 4), (32, 8)):
        frame = pd.DataFrame(
            {"row_index": [0] * panels, "col_index": count - 1, "panel": [f"p{i}" for i in range(panels)]}
        )
        cell, columns, labelled = heatmap.heatmap_layout(frame)
        width = heatmap.LABEL_PX + columns * (cell * count + 24)
        assert width <= heatmap.CHART_WIDTH + 24, (count, cell, columns)
        # every row labelled where its labels cannot overlap: not a 32-node unit's 6 px rows, nor 64 rows
        assert labelled == (cell >= heatmap.LABEL_SPACING_PX) == (count <= 8) and heatmap.MIN_CELL_PX <= cell <= 28
        assert panels % columns == 0, (count, panels, columns)  # every row full: no empty panel with its axes
    seven = pd.DataFrame({"row_index": [0] * 7, "col_index": 63, "panel": [f"p{i}" for i in range(7)]})
    assert heatmap.heatmap_layout(seven)[1] == 4  # 7 rails: 4 and 3, not 7 rows of 1


def test_a_target_far_above_the_data_stays_off_the_axis(tables: dict[str, pd.DataFrame]) -> None:
    spec = spec_dict(charts.busbw_vs_size_chart(tables["far"]))
    line = layers(spec)[0]
    top = line["encoding"]["y"]["scale"]["domain"][1]
    assert top == pytest.approx(tables["far"]["busbw_GBps"].max())  # the axis runs to the data, not to 400
    notes = [layer["encoding"]["text"]["value"] for layer in layers(spec) if mark(layer) == "text"]
    assert any("target 50, 400 GB/s is off this scale" in note for note in notes), notes
    assert "rule" not in {mark(layer) for layer in layers(spec)}
    near = spec_dict(charts.busbw_vs_size_chart(tables["sweep"]))
    assert "scale" not in layers(near)[0]["encoding"]["y"]  # in reach: the axis widens to show the target rule
    assert "rule" in {mark(layer) for layer in layers(near)}
    bars = spec_dict(charts.bars_chart(_far_bars(tables["rails"])))
    assert "rule" not in {mark(layer) for layer in layers(bars)}
    assert layers(bars)[0]["encoding"]["x"]["scale"]["domain"][1] < 1


def test_trend_draws_band_baseline_and_states(tables: dict[str, pd.DataFrame]) -> None:
    spec = spec_dict(charts.trend_chart(tables["trend"]))
    assert spec["facet"]["field"] == "panel_unit" and spec["columns"] == 4  # small panels, wrapped
    assert spec["facet"]["sort"] == {"field": "panel_order"}  # alarmed first, then sizes in numeric order
    assert spec["resolve"]["scale"]["y"] == "independent"
    by_mark = {mark(layer): layer for layer in layers(spec)}
    # trend.csv is GB/s; a rail's or a pair's panel is drawn in Gb/s, as its other outputs say it
    assert by_mark["area"]["encoding"]["y2"]["field"] == "band_hi_shown"
    calculated = {t["as"]: t["calculate"] for t in spec["transform"]}
    assert calculated["panel_unit"] == "datum.panel + ' · ' + datum.rate_unit"  # each panel says its unit
    assert calculated["busbw_shown"] == "datum.busbw_GBps * datum.rate_factor"
    assert "['rail', 'pair', 'local-pair']" in calculated["rate_factor"] and calculated["rate_factor"].endswith(
        "? 8 : 1"
    )
    assert by_mark["point"]["encoding"]["color"]["field"] == "state"
    domain = by_mark["point"]["encoding"]["color"]["scale"]["domain"]
    assert domain == ["ok", "regressed"]


def test_csv_data_declares_how_to_parse_each_column(tables: dict[str, pd.DataFrame]) -> None:
    source = charts.csv_data("charts/trend.csv", tables["trend"], ("run_time",)).to_dict()
    assert source["format"]["parse"]["run_time"] == "date"
    assert source["format"]["parse"]["busbw_GBps"] == "number"
    assert "metric" not in source["format"]["parse"]


@pytest.mark.parametrize(
    ("lo", "hi", "expected"),
    [
        (1024, 1 << 30, [1 << e for e in range(10, 31, 2)]),
        (8, 8, [8]),
        (8, 16 << 30, [1 << e for e in range(3, 35, 3)]),
        (0, 10, []),
    ],
)
def test_size_ticks(lo: int, hi: int, expected: list[int]) -> None:
    assert charts.size_ticks(lo, hi) == expected


def test_the_theme_is_not_left_enabled(tables: dict[str, pd.DataFrame]) -> None:
    spec_dict(charts.bars_chart(tables["rails"]))
    assert alt.theme.active != THEME_NAME


def test_a_spec_declaring_another_version_is_not_validated_against_v5(tmp_path: Path) -> None:
    spec = {"$schema": "https://vega.github.io/schema/vega-lite/v6.1.0.json", "mark": "bar"}
    with pytest.raises(AssertionError, match=r"no local Vega-Lite schema for v6\.1\.0"):
        validate(spec)
