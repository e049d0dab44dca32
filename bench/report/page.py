"""The report page: a summary (verdicts, targets, measured values) rendered as Markdown and as HTML.

``summarize`` turns the run's inputs into plain string tables; ``render_markdown`` and ``render_html`` only
lay them out. Every string that comes from the cluster (hostnames, device names, reasons, the cluster name)
is escaped on the way out: HTML-escaped in both pages, and Markdown's own specials escaped in report.md, so
a hostile hostname is text, never markup.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from bench.report.data import results_summary
from bench.report.inputs import RunInputs

# The characters that can start markup inside a table cell or heading (links need '[', so '(' is safe).
_MD_SPECIALS = re.compile(r"([\\`*_\[\]#|])")


@dataclass(frozen=True)
class TextTable:
    """A titled table of strings; ``status_column`` names the column whose cells get pass/fail styling."""

    title: str
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    status_column: int | None = None


@dataclass(frozen=True)
class ChartEntry:
    """One chart as the page shows it: its spec (with ``url`` data for Markdown) and the side files."""

    name: str
    title: str
    spec: Mapping[str, Any]
    links: tuple[tuple[str, str], ...]  # (label, relative path)


@dataclass(frozen=True)
class Summary:
    title: str
    verdict: str
    facts: tuple[tuple[str, str], ...]
    tables: tuple[TextTable, ...]
    notes: tuple[str, ...]


def _fmt(value: Any, spec: str = ",.1f", empty: str = "—") -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return empty
    return empty if pd.isna(number) else format(number, spec)


def summarize(inputs: RunInputs, min_efficiency: float, notes: Sequence[str] = ()) -> Summary:
    """The page's text: run facts, checks, per-(scope, collective) results and the rails' named defects."""
    run = inputs.run
    checks = inputs.checks or {}
    verdict = str(run.get("verdict") or checks.get("verdict") or "none")
    versions = run.get("versions") or {}
    facts = [
        ("verdict", verdict.upper()),
        ("cluster", str(run.get("cluster", ""))),
        ("command", str(run.get("command", ""))),
        ("profile", str(run.get("profile", ""))),
        ("status", str(run.get("status", ""))),
        ("started (UTC)", str(run.get("started_utc", ""))),
        ("finished (UTC)", str(run.get("finished_utc", ""))),
        ("nodes / ranks", f"{run.get('nnodes', '?')} / {run.get('nranks', '?')}"),
        ("launcher / backend", f"{run.get('launcher', '?')} / {run.get('backend', '?')}"),
        ("versions", ", ".join(f"{k} {v}" for k, v in versions.items() if v)),
        ("NCCL_IB_HCA", str((run.get("env") or {}).get("NCCL_IB_HCA", "(unset)"))),
    ]
    tables = []
    if checks.get("checks"):
        rows = tuple(
            (str(c.get("name", "")), str(c.get("status", "")), str(c.get("reason", "")))
            for c in checks["checks"]
            if isinstance(c, dict)
        )
        tables.append(TextTable("Checks", ("check", "status", "reason"), rows, status_column=1))
    summary = results_summary(inputs.results, min_efficiency)
    if len(summary):
        rows = tuple(
            (
                r.scope, r.collective, str(r.groups), r.size, f"{_fmt(r.worst_GBps, ',.2f')} ({r.worst_group})",
                _fmt(r.median_GBps, ",.2f"), _fmt(r.worst_GBps * 8.0), _fmt(r.target_Gbps, ",.0f"),
                _fmt(r.worst_efficiency, ".1%"), r.verdict,
            )
            for r in summary.itertuples()
        )  # fmt: skip
        headers = (
            "scope", "collective", "groups", "size", "worst busbw GB/s (group)", "median GB/s", "worst Gb/s",
            "target Gb/s", "worst of target", "verdict",
        )  # fmt: skip
        tables.append(TextTable(f"Results (fail below {min_efficiency:.0%} of target)", headers, rows, 9))
    defects = (inputs.rails or {}).get("defects") or []
    if defects:
        rows = tuple(
            (
                str(d.get("kind", "")), str(d.get("node", "")), str(d.get("rail", "")), str(d.get("device", "")),
                _fmt(d.get("measured_Gbps")), _fmt(d.get("expected_Gbps"), ",.0f"), str(d.get("evidence", "")),
            )
            for d in defects
            if isinstance(d, dict)
        )  # fmt: skip
        headers = ("kind", "node", "rail", "HCA", "measured Gb/s", "expected Gb/s", "evidence")
        tables.append(TextTable("Defects named by the rails test", headers, rows))
    title = f"railbench report: {run.get('cluster', 'cluster')}"
    return Summary(title, verdict, tuple(facts), tuple(tables), tuple(notes))


# ------------------------------------------------------------------------------------------- Markdown


def md_text(text: str) -> str:
    """A cluster-derived string as inert Markdown: HTML-escaped, Markdown specials backslash-escaped."""
    # quote=False: an entity such as &#x27; would have its "#" escaped below and show up broken
    return _MD_SPECIALS.sub(r"\\\1", html.escape(str(text), quote=False)).replace("\n", " ")


def fence_json(spec: Mapping[str, Any]) -> str:
    """A spec as the body of a ```vegalite fence, with the same meaning as ``json.dumps(spec)``.

    Backticks become \\u0060 so no string can close the fence, and '<' / '&' become \\u003c / \\u0026 so
    the page holds no markup from the cluster even where a renderer forgets to escape a fence. These
    characters only occur inside JSON strings, where the escapes decode to the same text.
    """
    text = json.dumps(spec, indent=2, ensure_ascii=False)
    return text.replace("`", "\\u0060").replace("<", "\\u003c").replace("&", "\\u0026")


def _md_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(md_text(h) for h in headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(md_text(c) for c in row) + " |" for row in rows]
    return lines


def render_markdown(summary: Summary, charts: Sequence[ChartEntry]) -> str:
    """report.md: summary tables, then each chart as a ```vegalite fence (mkdocs-charts-plugin)."""
    lines = [f"# {md_text(summary.title)}", ""]
    lines += [*_md_table(("", ""), [(k, v) for k, v in summary.facts]), ""]
    for table in summary.tables:
        lines += [f"## {md_text(table.title)}", "", *_md_table(table.headers, table.rows), ""]
    for note in summary.notes:
        lines += [f"> {md_text(note)}", ""]
    if charts:
        lines += ["## Charts", ""]
    for chart in charts:
        links = " · ".join(f"[{md_text(label)}]({path})" for label, path in chart.links)
        lines += [f"### {md_text(chart.title)}", "", "```vegalite", fence_json(chart.spec), "```", "", links, ""]
    return "\n".join(lines).rstrip() + "\n"


# ----------------------------------------------------------------------------------------------- HTML


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
.verdict-pass { background: #2e7d32; } .verdict-fail, .verdict-error { background: #c62828; }
.chart { margin: 1.5rem 0; } .links { font-size: 0.85rem; color: #555; }
.chart-error { color: #c62828; font-family: monospace; white-space: pre-wrap; }
blockquote { color: #555; border-left: 3px solid #ccc; margin-left: 0; padding-left: 1rem; }
"""

# Each chart's outcome lands in data-rendered ("true" or "error") so a reader, or a test, can tell a blank
# div from a chart that failed; the failure is also logged as a console error.
_EMBED_SCRIPT = """
for (const node of document.querySelectorAll("script[data-chart]")) {
  const name = node.dataset.chart;
  const target = document.getElementById("vis-" + name);
  vegaEmbed(target, JSON.parse(node.textContent), {renderer: "svg", actions: false})
    .then(() => { target.dataset.rendered = "true"; })
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


def _html_table(table: TextTable) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in table.headers)
    body = []
    for row in table.rows:
        cells = []
        for i, cell in enumerate(row):
            word = cell.split(" ")[0]
            css = f' class="status-{word}"' if i == table.status_column and word in ("pass", "fail") else ""
            cells.append(f"<td{css}>{html.escape(cell)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def render_html(summary: Summary, charts: Sequence[tuple[ChartEntry, Mapping[str, Any]]], bundle: str) -> str:
    """report.html with Vega, Vega-Lite, vega-embed and every chart's data inlined: it opens with no network.

    ``charts`` pairs each entry with its spec whose data is inlined (not the url spec of report.md).
    """
    esc = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(summary.title)}</title>",
        f"<style>{_CSS}</style>",
        # the bundle is ours (vl-convert's), but keep any '</script' in it from closing the element
        "<script>" + bundle.replace("</script", "<\\/script") + "</script>",
        "</head><body>",
        f"<h1>{esc(summary.title)} "
        f'<span class="verdict verdict-{esc(summary.verdict.lower())}">{esc(summary.verdict.upper())}</span></h1>',
        _html_table(TextTable("run", ("", ""), summary.facts)),
    ]
    for table in summary.tables:
        parts += [f"<h2>{esc(table.title)}</h2>", _html_table(table)]
    parts += [f"<blockquote>{esc(note)}</blockquote>" for note in summary.notes]
    if charts:
        parts.append("<h2>Charts</h2>")
    for entry, inline_spec in charts:
        links = " · ".join(f'<a href="{esc(path)}">{esc(label)}</a>' for label, path in entry.links)
        parts += [
            f'<section class="chart" id="chart-{esc(entry.name)}"><h3>{esc(entry.title)}</h3>',
            f'<div class="vega" id="vis-{esc(entry.name)}"></div>',
            f'<p class="links">{links}</p>',
            f'<script type="application/json" data-chart="{esc(entry.name)}">{script_json(inline_spec)}</script>',
            "</section>",
        ]
    parts += [f"<script>{_EMBED_SCRIPT}</script>", "</body></html>"]
    return "\n".join(parts) + "\n"
