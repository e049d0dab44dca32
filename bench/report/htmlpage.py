"""report.html: the certificate (``bench.report.page.Summary``) through a Jinja2 template with autoescaping.

Vega, Vega-Lite, vega-embed and every chart's data are inlined, so the page opens with no network. Every
string from the cluster is escaped by the template; the inlined JSON is made safe inside ``<script>`` by
``script_json``. Each chart's Vega view lands in ``window.railbenchViews`` so a reader (or a test) can
inspect every mark.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import jinja2
from markupsafe import Markup

from bench.jsondoc import JSONValue
from bench.report import certificate as cert
from bench.report.bundle import cache_dir
from bench.report.markdown import alone_rows, window_rows
from bench.report.page import DEFECT_HEADERS, ChartEntry, Section, Summary, defect_rows
from bench.report.traffic import IDLE, Window


def script_json(obj: object) -> str:
    """JSON safe inside a <script> element: no '</script>', '<!--' or line separators can end it early."""
    text = json.dumps(obj, ensure_ascii=False)
    for raw, escaped in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(raw, escaped)
    return text


_CSS = """
body { font-family: Helvetica Neue, Helvetica, Arial, sans-serif; margin: 1.2rem auto; max-width: 1100px;
       color: #222; padding: 0 1rem; }
h1 { font-size: 1.5rem; margin: 0 0 0.2rem; } h2 { font-size: 1.25rem; margin-top: 2rem; }
h3 { font-size: 1.05rem; } h2.sum { font-size: 1.05rem; margin: 0.8rem 0 0.3rem; }
table { border-collapse: collapse; margin: 0.5rem 0 1rem; font-size: 0.9rem; max-width: 100%; }
th, td { border: 1px solid #ddd; padding: 0.25rem 0.6rem; text-align: left; vertical-align: top;
         overflow-wrap: break-word; }
th { background: #f5f5f5; }
.headline { color: #444; margin: 0 0 0.4rem; }
.numbers { color: #444; margin: 0 0 0.4rem; }
.summary table { margin: 0.2rem 0 0.6rem; } .summary td, .summary th { padding: 0.2rem 0.5rem; }
td.defects-finding { max-width: 26rem; } td.defects-action { max-width: 22rem; }
td.defects-node { min-width: 9rem; } td.defects-kind, td.defects-rail { white-space: nowrap; }
.facts-grid { display: grid; grid-template-columns: 1fr 1fr; gap: 1rem; }
.facts-grid table { width: 100%; margin: 0; }
nav.evidence { font-size: 0.9rem; color: #555; margin: 0.6rem 0; }
.status-pass { color: #2e7d32; font-weight: 600; } .status-fail { color: #c62828; font-weight: 600; }
.verdict { display: inline-block; padding: 0.1rem 0.6rem; border-radius: 4px; color: #fff; background: #666;
           vertical-align: middle; }
.verdict-pass { background: #2e7d32; } .verdict-fail, .verdict-regressed { background: #c62828; }
.verdict-measured { background: #546e7a; }
.reasons-fail li, .reasons-regressed li { color: #c62828; } .reasons-measured li, .reasons-pass li { color: #546e7a; }
.ok { color: #2e7d32; font-weight: 600; } .sentence { font-size: 1rem; }
.status-warn { color: #ef6c00; font-weight: 600; } .status-skip, .status-none { color: #777; }
.status-regressed, .status-missing, .status-failed { color: #c62828; font-weight: 600; }
.status-improved { color: #2e7d32; }
td.role-idle { background: #fff3e0; } td.odd { background: #ffebee; font-weight: 600; }
.chart { margin: 1.5rem 0; } .vega { overflow-x: auto; } .links { font-size: 0.85rem; color: #555; }
.chart-error { color: #c62828; font-family: monospace; white-space: pre-wrap; }
details summary { cursor: pointer; font-weight: 600; margin: 0.8rem 0 0.3rem; }
blockquote { color: #555; border-left: 3px solid #ccc; margin-left: 0; padding-left: 1rem; }
"""

# Each chart's outcome lands in data-rendered ("true" or "error") so a reader, or a test, can tell a blank
# div from a chart that failed; the failure is also logged as a console error.
_EMBED_SCRIPT = """
window.railbenchViews = {};  // chart name -> Vega view, so a reader (or a test) can inspect every mark
for (const node of document.querySelectorAll("script[data-chart]")) {
  const name = node.dataset.chart;
  const target = document.getElementById("vis-" + name);
  vegaEmbed(target, JSON.parse(node.textContent), {renderer: "svg", actions: false})
    .then((result) => { window.railbenchViews[name] = result.view; target.dataset.rendered = "true"; })
    .catch((err) => {
      target.dataset.rendered = "error";
      const message = document.createElement("p");
      message.className = "chart-error";
      message.textContent = "chart " + name + " failed: " + err;
      target.appendChild(message);
      console.error("railbench: chart " + name + " failed: " + err);
    });
}
"""


_TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ summary.title }}</title>
<style>{{ css }}</style>
<script>{{ bundle }}</script>
</head><body>
<header id="verdict">
<h1>{{ summary.title }} <span class="verdict verdict-{{ summary.verdict | lower }}">{{ summary.verdict }}</span></h1>
<p class="headline">{{ summary.headline }}</p>
{% if summary.numbers %}<p class="numbers"><b>Numbers:</b> {{ summary.numbers }}</p>{% endif %}
</header>
<section id="summary" class="summary">
{% if summary.defects %}<h2 class="sum">Defects ({{ summary.defects | length }})</h2>
{{ table(defect_headers, defect_rows[:shown], None, "defects") }}
{% if defect_rows | length > shown %}<details><summary>{{ defect_rows | length - shown }} more defects</summary>
{{ table(defect_headers, defect_rows[shown:], None, "defects") }}</details>{% endif %}
{% elif summary.verdict == "PASS" %}<p class="ok">No defect: every target was met.</p>{% endif %}
{% if summary.reasons %}<h2 class="sum">{{ reasons_title }}</h2>
<ul class="reasons reasons-{{ summary.verdict | lower }}">
{% for r in summary.reasons %}<li>{{ r }}</li>{% endfor %}</ul>
{% endif %}
{% if summary.warnings %}<p>{{ warnings }} (not failing): see <a href="#section-rails">Rails</a>.</p>{% endif %}
<div class="facts-grid">
{% if summary.tested %}{{ table(("tested", "what"), summary.tested, None, "tested") }}{% endif %}
{% if summary.targets %}{{ table(("against", "target"), summary.targets, None, "targets") }}{% endif %}
</div>
<nav class="evidence">Evidence: {% for section in summary.sections %}{% if not loop.first %} · {% endif %}
<a href="#section-{{ section.id }}">{{ section.title }}</a>{% endfor %}</nav>
</section>
{% for part in parts %}{% set section = part.section %}
<section class="part" id="section-{{ section.id }}"><h2>{{ section.title }}</h2>
{% for sentence in section.sentences %}<p class="sentence">{{ sentence }}</p>{% endfor %}
{% if section.grid %}{% set grid = section.grid %}
<table class="grid"><thead><tr><th>nodes</th>{% for c in grid.columns %}<th>{{ c }}</th>{% endfor %}</tr></thead>
<tbody>{% for label, members, cells in part.grid_rows %}<tr>
<th title="{{ members | join(', ') }}">{{ label }}</th>{% for status in cells %}
{% set why = grid.reasons.get((members[0], grid.columns[loop.index0]), '') %}
<td class="status-{{ status or 'none' }}" title="{{ why }}">{{ status or "—" }}</td>
{% endfor %}</tr>{% endfor %}</tbody></table>
{% set groups = part.grid_reasons %}
{% if groups %}<ul class="footnotes">{% for g in groups %}<li><span class="status-{{ g.status }}">{{ g.status }}</span>
{{ g.checks | join(", ") }} on <span title="{{ g.nodes | join(', ') }}">{{ g.where }}</span>: {{ g.reason }}</li>
{% endfor %}</ul>{% endif %}
{% endif %}
{% if section.traffic %}{% for window, headers, rows in part.windows %}
<h3>{{ window.name | capitalize }} ({{ window.source }})</h3>{{ table(headers, rows, None, "traffic", 1) }}
{% endfor %}{% if part.alone %}{% set headers, rows = part.alone %}
<h3>Each rail alone (rails.json)</h3>{{ table(headers, rows, None, "traffic") }}{% endif %}
{% endif %}
{% if section.environment %}{% set env = section.environment %}
{% if env.rows %}<table class="environment">
<thead><tr><th>nodes</th>{% for h in env.headers[1:] %}<th>{{ h }}</th>{% endfor %}</tr></thead>
<tbody>{% for label, members, values in part.environment_rows %}<tr>
<th title="{{ members | join(', ') }}">{{ label }}</th>{% for v in values %}
<td class="{{ 'odd' if (members[0], env.headers[loop.index]) in env.odd else '' }}">{{ v }}</td>
{% endfor %}</tr>{% endfor %}
</tbody></table>{% endif %}
{% if env.variables %}{{ table(("NCCL variable", "value"), env.variables) }}{% endif %}
{% endif %}
{% for pair in part.charts %}{{ chart(pair) }}{% endfor %}
{% for t in section.tables %}{% if t.long %}<details><summary>{{ t.title }} ({{ t.rows | length }} rows)</summary>
{{ table(t.headers, t.rows, t.status_column) }}</details>
{% else %}<h3>{{ t.title }}</h3>{{ table(t.headers, t.rows, t.status_column) }}{% endif %}{% endfor %}
</section>
{% endfor %}
{% for note in summary.notes %}<blockquote>{{ note }}</blockquote>{% endfor %}
{% if rest %}<section class="part" id="section-charts"><h2>Charts</h2>
{% for c in rest %}{{ chart(c) }}{% endfor %}</section>{% endif %}
<script>{{ embed }}</script>
</body></html>
"""

_TABLE = """<table{% if css_class %} class="{{ css_class }}"{% endif %}><thead><tr>
{% for h in headers %}<th>{{ h }}</th>{% endfor %}</tr></thead><tbody>
{% for row in rows %}<tr{% if role_column is not none and row[role_column] == idle %} class="idle"{% endif %}>
{% for cell in row %}{% set word = cell.split(" ")[0] %}
{% set styled = loop.index0 == status_column and word in styled_words %}
{% set column = headers[loop.index0].split(" ")[0] | lower %}
{% set cls = "status-" ~ word if styled else (css_class ~ "-" ~ column if css_class == "defects" else "") %}
{% if role_column is not none and row[role_column] == idle %}{% set cls = "role-idle" %}{% endif %}
<td{% if cls %} class="{{ cls }}"{% endif %}>{{ cell }}</td>
{% endfor %}</tr>{% endfor %}</tbody></table>"""

_CHART = """<section class="chart" id="chart-{{ entry.name }}"><h3>{{ entry.title }}</h3>
<div class="vega" id="vis-{{ entry.name }}"></div>
<p class="links">{% for label, path in entry.links %}{% if not loop.first %} · {% endif %}
<a href="{{ path }}">{{ label }}</a>{% endfor %}</p>
<script type="application/json" data-chart="{{ entry.name }}">{{ spec }}</script>
</section>"""

_STYLED = ("pass", "fail", "regressed", "missing", "failed", "improved")


@functools.cache
def _jinja() -> jinja2.Environment:
    """The page's templates, compiled once per user rather than once per report: Jinja's compiler costs about
    0.4 s of CPU on these, more than drawing a small run's tables; the compiled code is kept beside the Vega
    bundle (``bench.report.bundle.cache_dir``; keyed by each template's checksum, replaced atomically)."""
    folder = cache_dir()
    cache = None
    if folder is not None:
        try:
            (folder / "jinja").mkdir(parents=True, exist_ok=True)
            cache = jinja2.FileSystemBytecodeCache(str(folder / "jinja"))
        except OSError:
            pass  # no cache: compiled for each report, as before
    return jinja2.Environment(
        loader=jinja2.DictLoader({"page": _TEMPLATE, "table": _TABLE, "chart": _CHART}),
        bytecode_cache=cache,
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


SUMMARY_DEFECTS = 8
"""Defects shown in the summary before the rest fold away: the summary stays on one screen."""

Chart = tuple[ChartEntry, Mapping[str, JSONValue]]
"""A chart's entry and its spec with the data inlined."""
HeadedRows = tuple[tuple[str, ...], tuple[tuple[str, ...], ...]]
"""A table's headers and rows, as ``bench.report.markdown`` lays a traffic window out for both pages."""
NodeRows = list[tuple[str, tuple[str, ...], tuple[str, ...]]]
"""Rows merged across nodes: (the nodes in few words, every node, the cells)."""


@dataclass(frozen=True)
class DrawnSection:
    """A section with what the page draws from it, laid out here once rather than by the template: its grid
    and environment rows merged across nodes, its traffic windows as tables, the charts it holds."""

    section: Section
    grid_rows: NodeRows
    grid_reasons: list[cert.ReasonGroup]
    windows: tuple[tuple[Window, tuple[str, ...], tuple[tuple[str, ...], ...]], ...]
    """Each counter window with its headers and rows."""
    alone: HeadedRows | None
    """The rails-alone table, where rails.json measured each rail alone."""
    environment_rows: NodeRows
    charts: tuple[Chart, ...]
    """The charts whose first holder is this section, in the order they were given."""

    @classmethod
    def of(cls, section: Section, charts: Sequence[Chart]) -> DrawnSection:
        grid, traffic, env = section.grid, section.traffic, section.environment
        return cls(
            section=section,
            grid_rows=cert.grid_groups(grid, section.hosts) if grid else [],
            grid_reasons=cert.grid_reasons(grid, section.hosts) if grid else [],
            windows=tuple((w, *window_rows(w)) for w in traffic.windows) if traffic else (),
            alone=alone_rows(traffic) if traffic and traffic.alone else None,
            environment_rows=cert.environment_groups(env, section.hosts) if env else [],
            charts=tuple(charts),
        )


def render_html(summary: Summary, charts: Sequence[Chart], bundle: str) -> str:
    """report.html with Vega, Vega-Lite, vega-embed and every chart's data inlined: it opens with no network.

    ``charts`` pairs each entry with its spec whose data is inlined (not the url spec of report.md).
    """
    inline = {entry.name: (entry, spec) for entry, spec in charts}
    owner = {}
    for name in inline:
        owner[name] = next((sec.id for sec in summary.sections if sec.holds(name)), None)
    parts = [
        DrawnSection.of(sec, [pair for name, pair in inline.items() if owner[name] == sec.id])
        for sec in summary.sections
    ]
    table_template = _jinja().get_template("table")
    chart_template = _jinja().get_template("chart")

    def table(
        headers: Sequence[str],
        rows: Sequence[Sequence[str]],
        status_column: int | None = None,
        css_class: str = "",
        role_column: int | None = None,
    ) -> Markup:
        return Markup(
            table_template.render(
                headers=headers,
                rows=rows,
                status_column=status_column,
                styled_words=_STYLED,
                css_class=css_class,
                role_column=role_column,
                idle=IDLE,
            )
        )

    def chart(pair: Chart) -> Markup:
        entry, spec = pair
        return Markup(chart_template.render(entry=entry, spec=Markup(script_json(spec))))

    page = (
        _jinja()
        .get_template("page")
        .render(
            summary=summary,
            css=Markup(_CSS),
            # the bundle is ours (vl-convert's), but keep any '</script' in it from closing the element
            bundle=Markup(bundle.replace("</script", "<\\/script")),
            embed=Markup(_EMBED_SCRIPT),
            table=table,
            chart=chart,
            parts=parts,
            rest=[pair for name, pair in inline.items() if owner[name] is None],
            defect_headers=DEFECT_HEADERS,
            defect_rows=defect_rows(summary),
            shown=SUMMARY_DEFECTS,
            reasons_title={"FAIL": "Other failures", "REGRESSED": "Regressed"}.get(summary.verdict, "Note"),
            warnings=cert.plural(summary.warnings, "warning"),
        )
    )
    return page if page.endswith("\n") else page + "\n"
