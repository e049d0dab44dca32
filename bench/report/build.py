"""``write_report``: a run directory in, charts and pages out.

Output (in ``out_dir``, the run directory by default):

* ``charts/<name>.vl.json`` + ``charts/<name>.csv``: each spec loads its CSV by a relative ``url``
  (``charts/<name>.csv``, relative to the folder that holds report.md), as the vendor docs' charts do;
* ``charts/<name>.png`` and ``.svg`` through vl-convert, for slides and tickets;
* ``report.md``: summary tables and the charts as ```vegalite fences for mkdocs-charts-plugin;
* ``report.html``: self-contained, with Vega, Vega-Lite, vega-embed and the data inlined;
* ``metrics.prom``: the headline metrics and the verdict for the node exporter's textfile collector
  (``bench.report.openmetrics``).

Every file is replaced atomically (``bench.rundir.atomic_write_*``), charts first and the pages last, so a
reader never sees a page that points at a chart not yet written, nor half of an old file.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import altair as alt
import pandas as pd
import vl_convert

from bench.bounded import file_kind
from bench.codec import present
from bench.exits import UserError
from bench.history.soak_runs import windows_of
from bench.jsondoc import JSONObject, JSONValue
from bench.report import (
    UnitChoice,
    charts,
    data,
    heatmap,
    htmlpage,
    markdown,
    matrices,
    page,
    soak,
    soak_charts,
    trend,
)
from bench.report.bundle import vega_bundle
from bench.report.inputs import RunInputs, load_inputs
from bench.report.openmetrics import write_metrics_file
from bench.report.theme import spec_dict, vl_convert_version
from bench.rundir.comparedoc import read_compare_json
from bench.rundir.files import (
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    check_output_folder,
    check_replaceable,
)
from bench.rundir.runjson import RunDoc

CHART_SUFFIXES = (".vl.json", ".csv", ".png", ".svg")
DEFAULT_EFFICIENCY = 0.9
"""The pass line of a run that recorded none (written before ``judged_by``, or imported): RDMA certification's 90%."""


@dataclass(frozen=True)
class ReportOptions:
    """How the report is drawn. Thresholds here only colour charts; the run's own verdict is never changed."""

    unit: UnitChoice = "auto"
    """Bandwidth unit on the charts; "auto" is GB/s for collectives (as nccl-tests) and Gb/s for rails."""
    images: bool = True
    """Write PNG and SVG of every chart (vl-convert)."""
    url_prefix: str = "charts/"
    """Prefix of each spec's CSV url: the charts folder as seen from the docs root (mkdocs-charts-plugin
    resolves urls from there). Set it when report.md does not sit at the docs root, e.g. "runs/n42/charts/"."""
    min_efficiency: float | None = None
    """A bar below this fraction of its target is coloured as a failure; None: the pass fraction the run was
    judged by (run.json ``judged_by``), so a re-drawn report draws the line its verdict used, else
    :data:`DEFAULT_EFFICIENCY`."""
    max_bars: int = 64
    """At most this many bars per chart: the slowest ones, so a 512-node run stays readable and small."""
    max_nodes: int = 64
    """Above this many nodes the pair matrix groups nodes into blocks that show their worst pair."""
    max_gpu_panels: int = 16
    """At most this many nodes' GPU x GPU matrices: those with a marked cell first, then the weakest."""
    png_scale: float = 2.0
    """PNG pixel density (2 = sharp on slides)."""

    def efficiency(self, run: RunDoc) -> float:
        """The fraction of target under which a bar fails, for ``run``."""
        if self.min_efficiency is not None:
            return self.min_efficiency
        return run.judged_by.pass_fraction if run.judged_by else DEFAULT_EFFICIENCY

    def __post_init__(self) -> None:
        if self.min_efficiency is not None and not 0.0 < self.min_efficiency <= 1.5:
            raise ValueError(f"min_efficiency {self.min_efficiency} must be in (0, 1.5]")
        if self.max_bars < 1 or self.max_nodes < 2:
            raise ValueError("max_bars must be >= 1 and max_nodes >= 2")
        if self.url_prefix and not self.url_prefix.endswith("/"):
            raise ValueError(f"url_prefix {self.url_prefix!r} must end with '/'")


@dataclass(frozen=True)
class ChartFiles:
    """The files of one chart."""

    name: str
    title: str
    spec: Path
    csv: Path
    png: Path | None
    svg: Path | None


@dataclass(frozen=True)
class ReportPaths:
    """What ``write_report`` wrote."""

    out_dir: Path
    report_md: Path
    report_html: Path
    charts: tuple[ChartFiles, ...] = field(default_factory=tuple)


@dataclass(frozen=True, eq=False)
class ChartPlan:
    """One chart to draw: its table and the pure function that draws it from a data source."""

    name: str
    title: str
    table: data.ChartData
    draw: Callable[..., alt.TopLevelMixin]
    """A chart function with its table bound; called with ``data=`` (the CSV url) and ``subtitle=``."""
    dates: tuple[str, ...] = ()


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"


def _unit(options: ReportOptions, natural: charts.Unit) -> charts.Unit:
    return natural if options.unit == "auto" else options.unit


def plan_charts(inputs: RunInputs, options: ReportOptions) -> tuple[list[ChartPlan], list[str]]:
    """The charts this run's inputs support, in page order, and notes for the page.

    A chart whose input is absent is left out.
    """
    eff, notes = options.efficiency(inputs.run), []
    if inputs.results.empty:
        notes.append("results.csv holds no measurements yet: the run stopped before its first result")
    pairs, unparsed = data.pair_measurements(inputs)
    if unparsed:
        notes.append(f"{unparsed} pair groups in results.csv name no known pair of hosts and are not charted")
    plans = [
        *_sweep_plans(inputs, options),
        *_bar_plans(inputs, options, eff),
        *_pair_plans(inputs, options, eff, pairs),
        *_gpu_plans(inputs, options, eff),
        *_trend_plans(inputs),
        *_soak_plans(inputs),
    ]
    plans.sort(key=lambda plan: page.chart_rank(plan.name))  # the order the certificate shows them in
    return plans, notes


def _sweep_plans(inputs: RunInputs, options: ReportOptions) -> list[ChartPlan]:
    """The world's busbw against message size."""
    sweep = data.sweep_table(inputs.results)
    if not len(sweep.frame):
        return []
    unit = _unit(options, "GB/s")
    draw = partial(charts.busbw_vs_size_chart, sweep.frame, unit=unit)
    return [ChartPlan("busbw-vs-size", "Bus bandwidth vs message size (world)", sweep, draw)]


def _bar_plans(inputs: RunInputs, options: ReportOptions, eff: float) -> list[ChartPlan]:
    """The weakest node per rail and rail per node, then each rail group's and single node's collective."""
    bar_sources: list[tuple[str, str, data.ChartData, charts.Unit]] = []
    if inputs.rails is not None:
        bar_sources.append(("rails", "Weakest node per rail", data.rail_bars_table(inputs.rails, eff), "Gb/s"))
        nodes = data.node_bars_table(inputs.rails, eff, options.max_bars)
        bar_sources.append(("nodes", "Weakest rail per node", nodes, "Gb/s"))
    scopes: tuple[tuple[str, charts.Unit, str], ...] = (
        ("rail", "Gb/s", "Rail groups"),
        ("node", "GB/s", "Single-node"),
    )
    for scope, natural, words in scopes:
        scoped = inputs.results[inputs.results["scope"] == scope]
        for collective in dict.fromkeys(scoped["collective"]):
            table = data.group_bars_table(inputs.results, scope, collective, eff, options.max_bars)
            bar_sources.append((f"{scope}-{_slug(collective)}", f"{words}: {collective}", table, natural))
    return [
        ChartPlan(
            name,
            title,
            table,
            partial(charts.bars_chart, table.frame, unit=_unit(options, natural), title=title, min_efficiency=eff),
        )
        for name, title, table, natural in bar_sources
        if len(table.frame)
    ]


def _pair_plans(inputs: RunInputs, options: ReportOptions, eff: float, pairs: pd.DataFrame) -> list[ChartPlan]:
    """The node x node matrix of pair busbw, one per rail."""
    hosts = list(inputs.run.hosts)
    heat = matrices.pair_matrix_table(pairs, hosts, eff, options.max_nodes, inputs.rails)
    if not len(heat.frame):
        return []
    unit = _unit(options, "Gb/s")
    rows, columns = heat.axes
    draw = partial(heatmap.heatmap_chart, heat.frame, unit=unit, min_efficiency=eff, row_title=rows, col_title=columns)
    plans = [ChartPlan("pairs", "Node × node pairs: a matrix per rail", heat, draw)]
    # drawn by groups of nodes (many nodes): each group that holds a named part, node by node
    for label, table in matrices.unit_drilldowns(pairs, hosts, eff, options.max_nodes, inputs.rails):
        where = f"{label[:1].upper()}{label[1:]}"
        title = f"{where}: node × node bus bandwidth per rail"
        drawn = partial(heatmap.heatmap_chart, table.frame, unit=unit, min_efficiency=eff, title=title)
        plans.append(ChartPlan(f"pairs-{_slug(label.split(' (')[0])}", f"{where}, node by node", table, drawn))
    return plans


def _gpu_plans(inputs: RunInputs, options: ReportOptions, eff: float) -> list[ChartPlan]:
    """The GPU x GPU matrix of each node's intra-node pairs."""
    intra = inputs.rails.intra_node if inputs.rails is not None else None
    gpus = matrices.gpu_matrix_table(intra, eff, options.max_gpu_panels)
    if not len(gpus.frame):
        return []
    title = "GPU × GPU pairs: a matrix per node (row sends, column receives)"
    draw = partial(
        heatmap.heatmap_chart,
        gpus.frame,
        unit=_unit(options, "Gb/s"),
        title="GPU × GPU bus bandwidth per node",
        min_efficiency=eff,
        row_title="sending GPU",
        col_title="receiving GPU",
        max_cell=18 if gpus.frame["panel"].nunique() > 4 else 32,  # a few nodes: bigger cells
        symmetric=False,  # each direction of a GPU pair has its own cell
    )
    return [ChartPlan("gpus", title, gpus, draw)]


def _trend_plans(inputs: RunInputs) -> list[ChartPlan]:
    """The nightly trend against the baseline, where the run has one."""
    if inputs.trend is None:
        return []
    nightly = trend.trend_table(inputs.trend, min_bytes=_trend_min_bytes(inputs))
    if not len(nightly.frame):
        return []
    draw = partial(charts.trend_chart, nightly.frame)
    return [ChartPlan("trend", "Nightly trend against the baseline", nightly, draw, dates=("run_time",))]


def _soak_plans(inputs: RunInputs) -> list[ChartPlan]:
    """A soak's world collectives over its windows, and a timeline per part it named (``bench.report.soak``)."""
    if inputs.soak is None:
        return []
    plans = []
    world = soak.world_table(inputs.soak)
    if len(world.frame):
        draw_world = partial(soak_charts.world_timeline_chart, world.frame)
        plans.append(ChartPlan("soak-world", "World collectives over the soak", world, draw_world))
    # the second and last pass over the windows (the first summed them up), only where a part was named
    named_parts = inputs.soak.named
    for named, table in soak.part_tables(windows_of(inputs.run_dir) if named_parts else iter(()), named_parts):
        title = soak.timeline_title(named)
        draw = partial(soak_charts.part_timeline_chart, table.frame, title=title)
        plans.append(ChartPlan(soak.chart_name(named.part, {p.name for p in plans}), title, table, draw))
    return plans


def _trend_min_bytes(inputs: RunInputs) -> int:
    """The smallest size compare judged (its ``min_bytes``), so the trend shows what the verdict is about."""
    compare = read_compare_json(inputs.run_dir)
    value = present(compare.settings.min_bytes) if compare and compare.settings else None
    return value if value is not None and value > 0 else 1 << 20


def csv_text(frame: pd.DataFrame) -> str:
    """A chart table as CSV; 6 significant digits are plenty for a chart and keep files small."""
    return frame.to_csv(index=False, float_format="%.6g", lineterminator="\n")


def inline_data(spec: Mapping[str, JSONValue], csv_body: str) -> JSONObject:
    """The spec with its top-level CSV ``url`` replaced by the same CSV inlined (same parse, same chart)."""
    out = dict(spec)
    data = out["data"]
    source: JSONObject = dict(data) if isinstance(data, Mapping) else {}  # a spec with url data: a mapping
    source.pop("url")
    source["values"] = csv_body
    out["data"] = source
    return out


def _count(value: object, word: str) -> str:
    """``1 node``, ``16 nodes``, ``? nodes`` when run.json does not say."""
    return f"{value} {word}" if value == 1 else f"{value if isinstance(value, int) else '?'} {word}s"


def _subtitle(inputs: RunInputs, note: str) -> str:
    run = inputs.run
    words = [run.cluster, f"{_count(run.nnodes, 'node')}, {_count(run.nranks, 'rank')}", run.started_utc, note]
    return " · ".join(w for w in words if w)


def _write_images(
    svg_path: Path, png_path: Path, inline_spec: Mapping[str, JSONValue], vl_version: str, scale: float
) -> None:
    """SVG through vl-convert, and the PNG rasterised from that SVG (the same pixels, one Vega run)."""
    # allowed_base_urls=[]: the data is inline, so vl-convert must never fetch anything
    svg = vl_convert.vegalite_to_svg(dict(inline_spec), vl_version=vl_version, allowed_base_urls=[])
    atomic_write_text(svg_path, svg)
    atomic_write_bytes(png_path, vl_convert.svg_to_png(svg, scale=scale))


def write_report(run_dir: Path, *, out_dir: Path | None = None, options: ReportOptions | None = None) -> ReportPaths:
    """Read ``run_dir`` and write charts, report.md and report.html into ``out_dir`` (default: ``run_dir``)."""
    options = options or ReportOptions()
    run_dir = Path(run_dir)
    out_dir = Path(out_dir) if out_dir is not None else run_dir
    charts_dir = out_dir / "charts"
    vl_version = vl_convert_version()
    written, entries, inline_specs = [], [], []
    inputs = load_inputs(run_dir)  # first: bad input fails fast, before any work is started
    check_report_folder(out_dir)
    # vl-convert releases the GIL: the JS bundle and the images are made while pandas aggregates and Altair
    # builds specs.
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="railbench-report") as pool:
        bundle = pool.submit(vega_bundle, vl_version)
        plans, notes = plan_charts(inputs, options)
        images = []
        for plan in plans:
            body = csv_text(plan.table.frame)
            url = f"{options.url_prefix}{plan.name}.csv"
            source = charts.csv_data(url, plan.table.frame, plan.dates)
            # Not validated again here: every chart function's spec is checked against the Vega-Lite schema by
            # the tests (tests/test_report_charts.py); jsonschema over each spec cost a report about 0.6 s of CPU.
            spec = spec_dict(plan.draw(data=source, subtitle=_subtitle(inputs, plan.table.note)), validate=False)
            files = ChartFiles(
                plan.name,
                plan.title,
                charts_dir / f"{plan.name}.vl.json",
                charts_dir / f"{plan.name}.csv",
                charts_dir / f"{plan.name}.png" if options.images else None,
                charts_dir / f"{plan.name}.svg" if options.images else None,
            )
            atomic_write_text(files.csv, body)
            atomic_write_json(files.spec, spec)
            inline = inline_data(spec, body)
            links = [("spec", f"charts/{plan.name}.vl.json"), ("data", f"charts/{plan.name}.csv")]
            if files.svg is not None and files.png is not None:
                images.append(pool.submit(_write_images, files.svg, files.png, inline, vl_version, options.png_scale))
                links += [("PNG", f"charts/{plan.name}.png"), ("SVG", f"charts/{plan.name}.svg")]
            entry = page.ChartEntry(plan.name, plan.title, spec, tuple(links))
            written.append(files)
            entries.append(entry)
            inline_specs.append((entry, inline))
        summary = page.summarize(inputs, options.efficiency(inputs.run), notes)
        for image in images:
            image.result()  # re-raises a conversion error here, before any page is replaced
        report_md = out_dir / "report.md"
        report_html = out_dir / "report.html"
        atomic_write_text(report_md, markdown.render_markdown(summary, entries))
        atomic_write_text(report_html, htmlpage.render_html(summary, inline_specs, bundle.result()))
    write_metrics_file(run_dir, out_dir, inputs.soak)
    fresh = {p.name for f in written for p in (f.spec, f.csv, f.png, f.svg) if p is not None}
    _remove_stale_charts(charts_dir, fresh)
    return ReportPaths(out_dir, report_md, report_html, tuple(written))


def check_report_folder(out_dir: Path) -> None:
    """UserError before any chart is drawn unless the report can be written into ``out_dir`` without following
    a link inside it. A run directory is input (CI artifacts, a tarball from another site): a ``charts``
    symlink in it would have the report replace, and its clean-up remove, files elsewhere. ``out_dir`` itself
    is the user's own choice and may be a link."""
    check_output_folder(out_dir, f"the report folder {out_dir}")
    charts_dir = out_dir / "charts"
    try:
        mode = os.lstat(charts_dir).st_mode
    except FileNotFoundError:
        mode = None
    except OSError as exc:
        raise UserError(f"{charts_dir} cannot be checked ({exc.strerror or exc}): give another --out") from None
    if mode is not None and stat.S_ISLNK(mode):
        raise UserError(
            f"{charts_dir} is a symlink: railbench never writes through a link in a run directory; remove it, "
            "or draw the report elsewhere with --out DIR"
        )
    if mode is not None and not stat.S_ISDIR(mode):
        raise UserError(f"{charts_dir} is a {file_kind(mode)}, not a folder: remove it, or give --out DIR")
    for name in ("report.md", "report.html", "metrics.prom"):
        check_replaceable(out_dir / name)


def _remove_stale_charts(charts_dir: Path, fresh: set[str]) -> None:
    """Drop chart files this report did not write: charts no longer drawn, or old images after --no-images."""
    if not charts_dir.is_dir():
        return
    for path in charts_dir.iterdir():
        if path.is_file() and path.name.endswith(CHART_SUFFIXES) and path.name not in fresh:
            path.unlink()
