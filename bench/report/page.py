"""The report page: a certificate an operator can hand over, rendered as Markdown and as HTML.

``summarize`` turns the run's inputs into plain data: the verdict word and its named reasons on top, the
run's facts, then the sections in this order, each present when its data is (``bench.report.certificate``):
preflight checks (node x check grid), traffic proof (bytes per device per node), world sweep (chart and
per-size table), rails (bars, pair matrix, named defects), compare (flagged metrics and the trend), and the
environment (versions per node, NCCL variables). ``render_markdown`` here and ``bench.report.htmlpage``'s
``render_html`` only lay them out.

Every string that comes from the cluster (hostnames, device names, reasons, the cluster name) is escaped on
the way out: the HTML page is a Jinja2 template with autoescaping, and report.md escapes HTML and
Markdown's own specials, so a hostile hostname is text, never markup.
"""

from __future__ import annotations

import html
import json
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from bench.jsondoc import table as json_table
from bench.report import certificate as cert
from bench.report.data import results_summary
from bench.report.inputs import RunInputs
from bench.report.verdict import read_compare, run_verdict
from bench.rundir.runjson import RunDoc
from bench.rundir.verdict import Verdict

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
class Section:
    """One part of the certificate: sentences, tables, a grid, and the charts (by name) that belong to it."""

    id: str
    title: str
    sentences: tuple[str, ...] = ()
    tables: tuple[TextTable, ...] = ()
    grid: cert.Grid | None = None
    traffic: cert.TrafficProof | None = None
    environment: cert.Environment | None = None
    charts: tuple[str, ...] = ()
    """Chart names (``busbw-vs-size``, ``rails``) or name prefixes ending in ``-`` (``rail-``) drawn here."""

    def holds(self, chart: str) -> bool:
        return any(chart == c or (c.endswith("-") and chart.startswith(c)) for c in self.charts)


PAGE_CHARTS: tuple[str, ...] = ("busbw-vs-size", "node-", "rails", "nodes", "rail-", "pairs", "trend")
"""Charts in page order (names or prefixes), as the sections below place them."""


def chart_rank(name: str) -> int:
    """A chart's place on the page (unknown charts last)."""
    for i, c in enumerate(PAGE_CHARTS):
        if name == c or (c.endswith("-") and name.startswith(c)):
            return i
    return len(PAGE_CHARTS)


@dataclass(frozen=True)
class Summary:
    title: str
    verdict: str
    """The verdict record's word as shown: PASS, FAIL, MEASURED, REGRESSED, SKIP or ERROR."""
    facts: tuple[tuple[str, str], ...]
    tables: tuple[TextTable, ...]
    """Every table of every section, in page order (for callers that only want the tables)."""
    notes: tuple[str, ...]
    reasons: tuple[str, ...] = ()
    sections: tuple[Section, ...] = ()


def _fmt(value: Any, spec: str = ",.1f", empty: str = "—") -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return empty
    return empty if pd.isna(number) else format(number, spec)


def _results_table(inputs: RunInputs, min_efficiency: float) -> TextTable | None:
    items = inputs.run.get("items") or []
    judged = {
        str(i.get("name")): str(i.get("state"))
        for i in items
        if isinstance(i, Mapping) and i.get("group") == "railbench.run" and isinstance(i.get("state"), str)
    }
    summary = results_summary(inputs.results, min_efficiency, judged)
    if not len(summary):
        return None
    rows = tuple(
        (
            r.scope,
            r.collective,
            str(r.groups),
            r.size,
            f"{_fmt(r.worst_GBps, ',.2f')} ({r.worst_group})",
            _fmt(r.median_GBps, ",.2f"),
            _fmt(r.target_Gbps / 8.0, ",.4g"),
            _fmt(r.worst_efficiency, ".1%"),
            r.verdict,
        )
        for r in summary.itertuples()
    )
    headers = (
        "scope",
        "collective",
        "groups",
        "size",
        "worst busbw GB/s (group)",
        "median GB/s",
        "target GB/s",
        "worst of target",
        "verdict",
    )
    return TextTable(f"Results at the largest size (fail below {min_efficiency:.0%} of target)", headers, rows, 8)


def _error_counts(errors: Any) -> str:
    """``mlx5_4:1 symbol_error +1,204, link_downed +2`` per device of a defect; ``none rose`` or ``not read``."""
    if not isinstance(errors, list):
        return "not read"
    said = []
    for e in errors:
        if not isinstance(e, Mapping):
            continue
        counts = e.get("errors")
        counts = counts if isinstance(counts, Mapping) else {}
        parts = [f"{name} +{count:,}" for name, count in counts.items() if isinstance(count, int) and count]
        parts += [f"{name} saturated" for name in e.get("errors_saturated") or () if isinstance(name, str)]
        if parts:
            said.append(f"{e.get('node')} {e.get('device')}: {', '.join(parts)}")
    return "; ".join(said) or "none rose"


def _rails_section(inputs: RunInputs) -> Section | None:
    defects = (inputs.rails or {}).get("defects") or []
    has_rail_rows = bool(len(inputs.results)) and bool((inputs.results["scope"].isin(["rail", "pair"])).any())
    if inputs.rails is None and not has_rail_rows:
        return None
    tables = []
    sentences = []
    if defects:
        rows = tuple(
            (
                str(d.get("kind", "")) + (" (warning)" if d.get("severity") == "warn" else ""),
                str(d.get("node", "")),
                str(d.get("rail", "")),
                str(d.get("device", "")),
                _fmt(d.get("measured_Gbps"), ",.3g"),
                _fmt(d.get("expected_Gbps"), ",.4g"),
                _error_counts(d.get("errors")),
                str(d.get("action") or "—"),
                str(d.get("evidence", "")),
            )
            for d in defects
            if isinstance(d, dict)
        )
        headers = (
            "kind",
            "node",
            "rail",
            "HCA",
            "measured Gb/s",
            "expected Gb/s",
            "error counters",
            "action",
            "evidence",
        )
        tables.append(TextTable("Defects named by the rails test", headers, rows))
    elif (inputs.rails or {}).get("skipped"):
        sentences.append(f"The rails test was skipped: {inputs.rails.get('skipped') if inputs.rails else ''}.")
    else:
        sentences.append("The rails test named no defect.")
    return Section("rails", "Rails", tuple(sentences), tuple(tables), charts=("rails", "nodes", "rail-", "pairs"))


def summarize(inputs: RunInputs, min_efficiency: float, notes: Sequence[str] = ()) -> Summary:
    """The certificate's content (see the module docstring)."""
    run = inputs.run
    compare = read_compare(inputs.run_dir)
    grid = cert.checks_grid(inputs.checks)
    # The verdict the frame wrote in run.json, with its reasons (each failed check and defect said once).
    verdict: Verdict = run_verdict(RunDoc.from_json(run))
    sections: list[Section] = []
    if grid is not None:
        tally = Counter(c for _, cells in grid.rows for c in cells if c)
        counted = ", ".join(
            f"{tally[s]} {word}"
            for s, word in (("pass", "passed"), ("warn", "warned"), ("fail", "failed"), ("skip", "skipped"))
            if tally[s]
        )
        checked = f"{counted} on {cert.plural(len(grid.rows), 'node')} (a skipped check did not apply here)."
        sections.append(Section("checks", "Preflight checks", (checked,), grid=grid))
    traffic = cert.traffic_proof(run)
    if traffic is not None:
        sections.append(
            Section("traffic", "Traffic proof (hardware byte counters)", traffic.sentences, traffic=traffic)
        )
    sweep = cert.sweep_rows(inputs.results)
    results = _results_table(inputs, min_efficiency)
    if sweep or results is not None:
        sweep_tables = [t for t in (results,) if t is not None]
        if sweep:
            sweep_tables.append(TextTable("Per size (world)", cert.SWEEP_HEADERS, sweep))
        sections.append(Section("sweep", "World sweep", (), tuple(sweep_tables), charts=("busbw-vs-size", "node-")))
    rails = _rails_section(inputs)
    if rails is not None:
        sections.append(rails)
    flagged = cert.compare_rows(compare)
    if compare is not None:
        summary = json_table(compare, "summary")
        counts = ", ".join(f"{summary.get(s, 0)} {s}" for s in ("regressed", "missing", "failed", "improved"))
        baseline = json_table(compare, "baseline")
        runs = len(baseline.get("runs") or [])
        said: list[str] = [f"Against {cert.plural(runs, 'earlier run')}: {counts}."]
        changes = [c.get("text") for c in compare.get("changes_since_baseline") or [] if isinstance(c, Mapping)]
        if changes:
            said.append(f"Changed since the baseline: {'; '.join(str(c) for c in changes)}.")
        rose = [r.get("text") for r in compare.get("rail_errors") or [] if isinstance(r, Mapping)]
        if rose:
            said.append(f"Error counters rose: {'; '.join(str(r) for r in rose)}.")
        flagged_tables = (TextTable("Flagged metrics", cert.COMPARE_HEADERS, flagged, 1),) if flagged else ()
        sections.append(
            Section("compare", "Compare with the recent past", tuple(said), flagged_tables, charts=("trend",))
        )
    env = cert.environment(inputs)
    if env is not None:
        sections.append(Section("environment", "Environment", (cert.versions_sentence(env),), environment=env))
    facts = (("verdict", verdict.label), *cert.facts(run))
    tables = tuple(t for section in sections for t in section.tables)
    title = f"railbench report: {run.get('cluster') or 'cluster'}"
    return Summary(title, verdict.label, facts, tables, tuple(notes), verdict.reasons, tuple(sections))


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


def _grid_cells(grid: cert.Grid) -> list[tuple[str, ...]]:
    return [(node, *(c or "—" for c in cells)) for node, cells in grid.rows]


def grid_footnotes(grid: cert.Grid) -> list[str]:
    """The reason of every cell that is not a plain pass."""
    out = []
    for node, cells in grid.rows:
        for column, status in zip(grid.columns, cells, strict=True):
            if status not in ("pass", "") and (node, column) in grid.reasons:
                out.append(f"{node} · {column} ({status}): {grid.reasons[(node, column)]}")
    return out


def _traffic_cells(traffic: cert.TrafficProof) -> tuple[list[str], list[tuple[str, ...]]]:
    headers = ["node", *(f"{d} (must stay idle)" if d in traffic.idle else d for d in traffic.devices)]
    rows = [
        (
            node,
            *(
                cert.human_bytes(traffic.bytes[(node, d)]) if (node, d) in traffic.bytes else "—"
                for d in traffic.devices
            ),
        )
        for node in traffic.nodes
    ]
    return headers, rows


def _env_cells(env: cert.Environment) -> list[tuple[str, ...]]:
    rows = []
    for row in env.rows:
        node = row[0]
        marked = [
            f"{v} (odd)" if (node, key) in env.odd else v for key, v in zip(env.headers[1:], row[1:], strict=True)
        ]
        rows.append((node, *marked))
    return rows


def render_markdown(summary: Summary, charts: Sequence[ChartEntry]) -> str:
    """report.md: the verdict and its reasons, the facts, then each section with its charts as ```vegalite
    fences (mkdocs-charts-plugin)."""
    placed: set[str] = set()
    lines = [f"# {md_text(summary.title)}", "", f"**Verdict: {md_text(summary.verdict)}**", ""]
    lines += [f"- {md_text(r)}" for r in summary.reasons]
    if summary.reasons:
        lines.append("")
    lines += [*_md_table(("fact", "value"), [(k, v) for k, v in summary.facts]), ""]

    def chart_lines(chart: ChartEntry) -> list[str]:
        links = " · ".join(f"[{md_text(label)}]({path})" for label, path in chart.links)
        return [f"### {md_text(chart.title)}", "", "```vegalite", fence_json(chart.spec), "```", "", links, ""]

    for section in summary.sections:
        lines += [f"## {md_text(section.title)}", ""]
        lines += [md_text(sentence) for sentence in section.sentences]
        if section.sentences:
            lines.append("")
        if section.grid is not None:
            lines += [*_md_table(("node", *section.grid.columns), _grid_cells(section.grid)), ""]
            lines += [f"- {md_text(n)}" for n in grid_footnotes(section.grid)]
            lines.append("")
        if section.traffic is not None:
            headers, rows = _traffic_cells(section.traffic)
            lines += [*_md_table(headers, rows), ""]
        if section.environment is not None:
            env = section.environment
            if env.rows:
                lines += [*_md_table(env.headers, _env_cells(env)), ""]
            if env.variables:
                lines += [*_md_table(("NCCL variable", "value"), env.variables), ""]
        for table in section.tables:
            lines += [f"### {md_text(table.title)}", "", *_md_table(table.headers, table.rows), ""]
        for chart in charts:
            if section.holds(chart.name) and chart.name not in placed:
                lines += chart_lines(chart)
                placed.add(chart.name)
    for note in summary.notes:
        lines += [f"> {md_text(note)}", ""]
    rest = [c for c in charts if c.name not in placed]
    if rest:
        lines += ["## Charts", ""]
        for chart in rest:
            lines += chart_lines(chart)
    return "\n".join(lines).rstrip() + "\n"
