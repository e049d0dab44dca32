"""report.html: the certificate (``bench.report.page.Summary``) through a Jinja2 template with autoescaping.

Vega, Vega-Lite, vega-embed and every chart's data are inlined, so the page opens with no network. Every
string from the cluster is escaped by the template; the inlined JSON is made safe inside ``<script>`` by
``script_json``. Each chart's Vega view lands in ``window.railbenchViews`` so a reader (or a test) can
inspect every mark.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import jinja2
from markupsafe import Markup

from bench.report import certificate as cert
from bench.report.page import ChartEntry, Summary, grid_footnotes


def script_json(obj: Any) -> str:
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
body { font-family: Helvetica Neue, Helvetica, Arial, sans-serif; margin: 2rem auto; max-width: 1100px;
       color: #222; padding: 0 1rem; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.25rem; margin-top: 2rem; } h3 { font-size: 1.05rem; }
table { border-collapse: collapse; margin: 0.5rem 0 1rem; font-size: 0.9rem; }
th, td { border: 1px solid #ddd; padding: 0.25rem 0.6rem; text-align: left; vertical-align: top; }
th { background: #f5f5f5; }
.status-pass { color: #2e7d32; font-weight: 600; } .status-fail { color: #c62828; font-weight: 600; }
.verdict { display: inline-block; padding: 0.1rem 0.6rem; border-radius: 4px; color: #fff; background: #666; }
.verdict-pass { background: #2e7d32; } .verdict-fail, .verdict-regressed { background: #c62828; }
.verdict-measured, .verdict-skip { background: #546e7a; } .verdict-error { background: #6a1b9a; }
.reasons li { color: #c62828; }
.reasons-pass li, .reasons-measured li, .reasons-skip li { color: #37474f; }
.sentence { font-size: 1rem; }
.status-warn { color: #ef6c00; font-weight: 600; } .status-skip, .status-none { color: #777; }
.status-regressed, .status-missing, .status-failed { color: #c62828; font-weight: 600; }
.status-improved { color: #2e7d32; }
th.idle, td.idle { background: #fff3e0; } td.odd { background: #ffebee; font-weight: 600; }
.chart { margin: 1.5rem 0; } .links { font-size: 0.85rem; color: #555; }
.chart-error { color: #c62828; font-family: monospace; white-space: pre-wrap; }
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
{% if summary.reasons %}<ul class="reasons reasons-{{ summary.verdict | lower }}">
{% for r in summary.reasons %}<li>{{ r }}</li>{% endfor %}</ul>{% endif %}
</header>
{{ table(("fact", "value"), summary.facts) }}
{% for section in summary.sections %}
<section class="part" id="section-{{ section.id }}"><h2>{{ section.title }}</h2>
{% for sentence in section.sentences %}<p class="sentence">{{ sentence }}</p>{% endfor %}
{% if section.grid %}{% set grid = section.grid %}
<table class="grid"><thead><tr><th>node</th>{% for c in grid.columns %}<th>{{ c }}</th>{% endfor %}</tr></thead>
<tbody>{% for node, cells in grid.rows %}<tr><th>{{ node }}</th>{% for status in cells %}
{% set why = grid.reasons.get((node, grid.columns[loop.index0]), '') %}
<td class="status-{{ status or 'none' }}" title="{{ why }}">{{ status or "—" }}</td>
{% endfor %}</tr>{% endfor %}</tbody></table>
{% if footnotes(grid) %}<ul class="footnotes">{% for n in footnotes(grid) %}<li>{{ n }}</li>{% endfor %}</ul>{% endif %}
{% endif %}
{% if section.traffic %}{% set t = section.traffic %}
<table class="traffic"><thead><tr><th>node</th>{% for d in t.devices %}
<th class="{{ 'idle' if d in t.idle else '' }}">{{ d }}{% if d in t.idle %} (must stay idle){% endif %}</th>
{% endfor %}</tr></thead><tbody>{% for node in t.nodes %}<tr><th>{{ node }}</th>{% for d in t.devices %}
<td class="{{ 'idle' if d in t.idle else '' }}">{{ human((node, d)) }}</td>{% endfor %}</tr>{% endfor %}</tbody></table>
{% endif %}
{% if section.environment %}{% set env = section.environment %}
{% if env.rows %}<table class="environment">
<thead><tr>{% for h in env.headers %}<th>{{ h }}</th>{% endfor %}</tr></thead>
<tbody>{% for row in env.rows %}<tr><th>{{ row[0] }}</th>{% for v in row[1:] %}
<td class="{{ 'odd' if (row[0], env.headers[loop.index]) in env.odd else '' }}">{{ v }}</td>
{% endfor %}</tr>{% endfor %}
</tbody></table>{% endif %}
{% if env.variables %}{{ table(("NCCL variable", "value"), env.variables) }}{% endif %}
{% endif %}
{% for t in section.tables %}<h3>{{ t.title }}</h3>{{ table(t.headers, t.rows, t.status_column) }}{% endfor %}
{% for name, pair in charts.items() %}{% if owner[name] == section.id %}{{ chart(pair) }}{% endif %}
{% endfor %}
</section>
{% endfor %}
{% for note in summary.notes %}<blockquote>{{ note }}</blockquote>{% endfor %}
{% if rest %}<section class="part" id="section-charts"><h2>Charts</h2>
{% for c in rest %}{{ chart(c) }}{% endfor %}</section>{% endif %}
<script>{{ embed }}</script>
</body></html>
"""

_TABLE = """<table><thead><tr>{% for h in headers %}<th>{{ h }}</th>{% endfor %}</tr></thead><tbody>
{% for row in rows %}<tr>{% for cell in row %}{% set word = cell.split(" ")[0] %}
{% set styled = loop.index0 == status_column and word in styled_words %}
<td{% if styled %} class="status-{{ word }}"{% endif %}>{{ cell }}</td>
{% endfor %}</tr>{% endfor %}</tbody></table>"""

_CHART = """<section class="chart" id="chart-{{ entry.name }}"><h3>{{ entry.title }}</h3>
<div class="vega" id="vis-{{ entry.name }}"></div>
<p class="links">{% for label, path in entry.links %}{% if not loop.first %} · {% endif %}
<a href="{{ path }}">{{ label }}</a>{% endfor %}</p>
<script type="application/json" data-chart="{{ entry.name }}">{{ spec }}</script>
</section>"""

_STYLED = ("pass", "fail", "regressed", "missing", "failed", "improved")
_JINJA = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def render_html(summary: Summary, charts: Sequence[tuple[ChartEntry, Mapping[str, Any]]], bundle: str) -> str:
    """report.html with Vega, Vega-Lite, vega-embed and every chart's data inlined: it opens with no network.

    ``charts`` pairs each entry with its spec whose data is inlined (not the url spec of report.md).
    """
    inline = {entry.name: (entry, spec) for entry, spec in charts}
    owner = {}
    for name in inline:
        owner[name] = next((sec.id for sec in summary.sections if sec.holds(name)), None)
    table_template = _JINJA.from_string(_TABLE)
    chart_template = _JINJA.from_string(_CHART)

    def table(headers: Sequence[str], rows: Sequence[Sequence[str]], status_column: int | None = None) -> Markup:
        return Markup(
            table_template.render(headers=headers, rows=rows, status_column=status_column, styled_words=_STYLED)
        )

    def chart(pair: tuple[ChartEntry, Mapping[str, Any]]) -> Markup:
        entry, spec = pair
        return Markup(chart_template.render(entry=entry, spec=Markup(script_json(spec))))

    def human(key: tuple[str, str]) -> str:
        traffic = next(s.traffic for s in summary.sections if s.traffic is not None)
        return cert.human_bytes(traffic.bytes[key]) if traffic and key in traffic.bytes else "—"

    page = _JINJA.from_string(_TEMPLATE).render(
        summary=summary,
        css=Markup(_CSS),
        # the bundle is ours (vl-convert's), but keep any '</script' in it from closing the element
        bundle=Markup(bundle.replace("</script", "<\\/script")),
        embed=Markup(_EMBED_SCRIPT),
        table=table,
        chart=chart,
        charts=inline,
        owner=owner,
        rest=[pair for name, pair in inline.items() if owner[name] is None],
        footnotes=grid_footnotes,
        human=human,
    )
    return page if page.endswith("\n") else page + "\n"
