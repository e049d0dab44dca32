"""report.md: the certificate (``bench.report.page.Summary``) as Markdown, charts as ```vegalite fences that
mkdocs-charts-plugin draws.

Every string from the cluster (hostnames, devices, reasons, the cluster name) is escaped: HTML and
Markdown's own specials, so a hostile hostname is text, never markup; spec fences cannot be closed early.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Mapping, Sequence

from bench.jsondoc import JSONValue
from bench.report import certificate as cert
from bench.report.page import DEFECT_HEADERS, ChartEntry, Section, Summary, defect_rows
from bench.report.traffic import TrafficProof, Window

# The characters that can start markup inside a table cell or heading (links need '[', so '(' is safe).
_MD_SPECIALS = re.compile(r"([\\`*_\[\]#|])")


def md_text(text: str) -> str:
    """A cluster-derived string as inert Markdown: HTML-escaped, Markdown specials backslash-escaped."""
    # quote=False: an entity such as &#x27; would have its "#" escaped below and show up broken
    return _MD_SPECIALS.sub(r"\\\1", html.escape(str(text), quote=False)).replace("\n", " ")


def fence_json(spec: Mapping[str, JSONValue]) -> str:
    """A spec as the body of a ```vegalite fence, with the same meaning as ``json.dumps(spec)``.

    Backticks become \\u0060 so no string can close the fence, and '<' / '&' become \\u003c / \\u0026 so
    the page holds no markup from the cluster even where a renderer forgets to escape a fence. These
    characters only occur inside JSON strings, where the escapes decode to the same text.
    """
    text = json.dumps(spec, indent=2, ensure_ascii=False)
    return text.replace("`", "\\u0060").replace("<", "\\u003c").replace("&", "\\u0026")


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(md_text(h) for h in headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(md_text(c) for c in row) + " |" for row in rows]
    return lines


def _per_node(least: tuple[str, int], most: tuple[str, int]) -> str:
    if least == most or cert.human_bytes(least[1]) == cert.human_bytes(most[1]):
        return f"{cert.human_bytes(most[1])} on each"
    return f"{cert.human_bytes(least[1])} ({least[0]}) – {cert.human_bytes(most[1])} ({most[0]})"


def window_rows(window: Window) -> tuple[tuple[str, ...], tuple[tuple[str, ...], ...]]:
    """A counter window as (headers, rows): a row per device, the other devices summed."""

    def bytes_or(value: int | None) -> str:
        return cert.human_bytes(value) if value is not None else "—"

    rows: tuple[tuple[str, ...], ...]
    if window.split:
        headers: tuple[str, ...] = ("device", "role", "tx", "rx", "per node (tx + rx): least – most")
        rows = tuple(
            (r.device, r.role, bytes_or(r.tx), bytes_or(r.rx), _per_node(r.least, r.most)) for r in window.rows
        )
    else:
        headers = ("device", "role", "tx + rx", "per node: least – most")
        rows = tuple((r.device, r.role, cert.human_bytes(r.total), _per_node(r.least, r.most)) for r in window.rows)
    return headers, rows


def alone_rows(traffic: TrafficProof) -> tuple[tuple[str, ...], tuple[tuple[str, ...], ...]]:
    headers = ("rail", "its NIC", "on its NIC", "least on one node", "other rails' NICs", "idle devices", "the rest")
    rows = tuple(
        (
            str(a.rail),
            a.devices or "—",
            cert.human_bytes(a.own),
            f"{cert.human_bytes(a.own_least[1])} ({a.own_least[0]})",
            cert.human_bytes(a.other_rails),
            cert.human_bytes(a.idle),
            cert.human_bytes(a.rest),
        )
        for a in traffic.alone
    )
    return headers, rows


def _env_cells(env: cert.Environment, hosts: Sequence[str]) -> list[tuple[str, ...]]:
    rows = []
    for label, members, values in cert.environment_groups(env, hosts):
        marked = [
            f"{v} (odd)" if (members[0], key) in env.odd else v for key, v in zip(env.headers[1:], values, strict=True)
        ]
        rows.append((label, *marked))
    return rows


def _summary_lines(summary: Summary) -> list[str]:
    lines = [
        f"# {md_text(summary.title)}",
        "",
        f"**Verdict: {md_text(summary.verdict)}** · {md_text(summary.headline)}",
        "",
    ]
    if summary.numbers:
        lines += [f"**Numbers:** {md_text(summary.numbers)}", ""]
    if summary.defects:
        lines += [f"### Defects ({len(summary.defects)})", "", *_table(DEFECT_HEADERS, defect_rows(summary)), ""]
    if summary.reasons:
        title = {"FAIL": "Other failures", "REGRESSED": "Regressed"}.get(summary.verdict, "Note")
        lines += [f"### {title}", "", *(f"- {md_text(r)}" for r in summary.reasons), ""]
    if summary.warnings:
        lines += [f"{cert.plural(summary.warnings, 'warning')} (not failing): see Rails.", ""]
    if summary.tested:
        lines += [*_table(("tested", "what"), summary.tested), ""]
    if summary.targets:
        lines += [*_table(("against", "target"), summary.targets), ""]
    return lines


def _grid_lines(section: Section) -> list[str]:
    """The section's checks grid, node groups as rows, and the reasons under it."""
    if section.grid is None:
        return []
    groups = cert.grid_groups(section.grid, section.hosts)
    grid_rows = [(label, *(c or "—" for c in cells)) for label, _, cells in groups]
    lines = [*_table(("nodes", *section.grid.columns), grid_rows), ""]
    lines += [f"- {md_text(g.text())}" for g in cert.grid_reasons(section.grid, section.hosts)]
    lines.append("")
    return lines


def _traffic_lines(section: Section) -> list[str]:
    """Each counter window's traffic, then each rail alone."""
    if section.traffic is None:
        return []
    lines: list[str] = []
    for window in section.traffic.windows:
        headers, table_rows = window_rows(window)
        lines += [
            f"### {md_text(window.name.capitalize())} ({md_text(window.source)})",
            "",
            *_table(headers, table_rows),
            "",
        ]
    if section.traffic.alone:
        headers, table_rows = alone_rows(section.traffic)
        lines += ["### Each rail alone (rails.json)", "", *_table(headers, table_rows), ""]
    return lines


def _environment_lines(section: Section) -> list[str]:
    """The nodes' environment, then the NCCL variables."""
    env = section.environment
    if env is None:
        return []
    lines: list[str] = []
    if env.rows:
        lines += [*_table(("nodes", *env.headers[1:]), _env_cells(env, section.hosts)), ""]
    if env.variables:
        lines += [*_table(("NCCL variable", "value"), env.variables), ""]
    return lines


def _section_lines(section: Section, charts: Sequence[ChartEntry], placed: set[str]) -> list[str]:
    lines = [f"## {md_text(section.title)}", ""]
    lines += [md_text(sentence) + "\n" for sentence in section.sentences]
    lines += _grid_lines(section) + _traffic_lines(section) + _environment_lines(section)
    for chart in charts:  # charts before the long tables
        if section.holds(chart.name) and chart.name not in placed:
            lines += _chart_lines(chart)
            placed.add(chart.name)
    for table in section.tables:
        lines += [f"### {md_text(table.title)}", "", *_table(table.headers, table.rows), ""]
    return lines


def _chart_lines(chart: ChartEntry) -> list[str]:
    links = " · ".join(f"[{md_text(label)}]({path})" for label, path in chart.links)
    return [f"### {md_text(chart.title)}", "", "```vegalite", fence_json(chart.spec), "```", "", links, ""]


def render_markdown(summary: Summary, charts: Sequence[ChartEntry]) -> str:
    """report.md: the summary on top (verdict, defects, other failures, what was tested, targets), then each
    step's evidence with its charts as ```vegalite fences (mkdocs-charts-plugin)."""
    placed: set[str] = set()
    lines = _summary_lines(summary)
    for section in summary.sections:
        lines += _section_lines(section, charts, placed)
    for note in summary.notes:
        lines += [f"> {md_text(note)}", ""]
    rest = [c for c in charts if c.name not in placed]
    if rest:
        lines += ["## Charts", ""]
        for chart in rest:
            lines += _chart_lines(chart)
    return "\n".join(lines).rstrip() + "\n"
