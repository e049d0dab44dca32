"""The report page: a certificate an operator can hand over, as plain data that Markdown and HTML lay out.

``summarize`` turns the run's inputs into a ``Summary``. Its top fits one screen at any cluster size
(``bench.report.summary``): the verdict word, the defects with node, rail, NIC and action (each said once),
the failures no defect says, what was tested and against which targets. The evidence follows, one
section per step of the run, charts before long tables: preflight checks (identical nodes merged, every
reason said once), traffic proof (``bench.report.traffic``), world sweep, rails (with the node x node
matrix of every rail), intra-node (the GPU x GPU matrix of every node), compare, environment, and the
run's facts. ``bench.report.markdown`` and ``bench.report.htmlpage`` only lay it out.

The verdict word is the run's own (``bench.report.badge`` reads it); nothing here judges a measurement.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import pandas as pd

from bench.codec import present
from bench.exits import UserError
from bench.profile.cluster import Profile, load_profile
from bench.report import certificate as cert
from bench.report import scheduler
from bench.report import soak as soak_words
from bench.report import summary as top
from bench.report.badge import run_verdict
from bench.report.data import results_summary
from bench.report.inputs import RunInputs
from bench.report.sweep_table import SWEEP_HEADERS, sweep_rows
from bench.report.traffic import TrafficProof, traffic_proof
from bench.rundir.comparedoc import CompareDoc, read_compare_json
from bench.rundir.finding_words import DefectRow
from bench.rundir.numbers import numbers_of
from bench.rundir.railsdoc import DefectErrors, IntraNode, RailDefect, RailsDoc
from bench.rundir.runjson import RunDoc

LONG_TABLE = 24
"""A table longer than this many rows is folded away in report.html (its rows stay in report.md)."""


@dataclass(frozen=True)
class TextTable:
    """A titled table of strings; ``status_column`` names the column whose cells get pass/fail styling."""

    title: str
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    status_column: int | None = None

    @property
    def long(self) -> bool:
        return len(self.rows) > LONG_TABLE


@dataclass(frozen=True)
class ChartEntry:
    """One chart as the page shows it: its spec (with ``url`` data for Markdown) and the side files."""

    name: str
    title: str
    spec: Mapping[str, Any]
    links: tuple[tuple[str, str], ...]  # (label, relative path)


@dataclass(frozen=True)
class Section:
    """One step's evidence: sentences, charts (by name), then tables; a grid or traffic proof where it has one."""

    id: str
    title: str
    sentences: tuple[str, ...] = ()
    tables: tuple[TextTable, ...] = ()
    grid: cert.Grid | None = None
    traffic: TrafficProof | None = None
    environment: cert.Environment | None = None
    charts: tuple[str, ...] = ()
    """Chart names (``busbw-vs-size``, ``rails``) or name prefixes ending in ``-`` (``rail-``) drawn here."""
    hosts: tuple[str, ...] = ()
    """The run's nodes in launch order, to say groups of them in few words."""

    def holds(self, chart: str) -> bool:
        return any(chart == c or (c.endswith("-") and chart.startswith(c)) for c in self.charts)


PAGE_CHARTS: tuple[str, ...] = (
    "soak-world",
    "soak-",
    "busbw-vs-size",
    "node-",
    "rails",
    "nodes",
    "rail-",
    "pairs",
    "pairs-",
    "gpus",
    "trend",
)
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
    """PASS, MEASURED, FAIL or REGRESSED (``bench.report.badge``)."""
    facts: tuple[tuple[str, str], ...]
    tables: tuple[TextTable, ...]
    """Every table of every section, in page order (for callers that only want the tables)."""
    notes: tuple[str, ...]
    reasons: tuple[str, ...] = ()
    """The verdict's reasons that no defect says (a FAIL), the regressed metrics, or why nothing was judged."""
    sections: tuple[Section, ...] = ()
    headline: str = ""
    numbers: str = ""
    """What the numbers are of, in one line (``bench.rundir.numbers``): the backend, the devices, the path."""
    defects: tuple[DefectRow, ...] = ()
    tested: tuple[tuple[str, str], ...] = ()
    targets: tuple[tuple[str, str], ...] = ()
    warnings: int = 0
    """Parts that warned without failing (listed in the rails section)."""


def _fmt(value: float | None, spec: str = ",.1f", empty: str = "—") -> str:
    if value is None:
        return empty
    number = float(value)
    return empty if pd.isna(number) else format(number, spec)


def _results_table(
    inputs: RunInputs, min_efficiency: float, scopes: Sequence[str], unit: Literal["GB/s", "Gb/s"] = "GB/s"
) -> TextTable | None:
    """``scopes`` at their largest sizes in ``unit``: GB/s for collectives, Gb/s for rails and pairs, as every
    other output says them (``docs/design.md``, "Units and formulas")."""
    judged = {i.name: i.state for i in inputs.run.items or () if i.group == "railbench.run"}
    summary = results_summary(inputs.results, min_efficiency, judged)
    summary = summary[summary["scope"].isin(scopes)] if len(summary) else summary
    if not len(summary):
        return None
    scale = 8.0 if unit == "Gb/s" else 1.0
    rows = tuple(
        (
            r.scope,
            r.collective,
            str(r.groups),
            r.size,
            f"{_fmt(r.worst_GBps * scale, ',.2f')} ({r.worst_group})",
            _fmt(r.median_GBps * scale, ",.2f"),
            _fmt(r.target_Gbps / 8.0 * scale, ",.4g"),
            _fmt(r.worst_efficiency, ".1%"),
            r.verdict,
        )
        for r in summary.itertuples()
    )
    headers = (
        "scope",
        "collective",
        "groups",
        "largest size",
        f"worst busbw {unit} (group)",
        f"median {unit}",
        f"target {unit}",
        "worst of target",
        "verdict",
    )
    # each line is at its own largest size (rail groups at 16G, pairs at 64M): one heading never claims one
    sizes = {r.size for r in summary.itertuples()}
    title = "At the largest size" if len(sizes) == 1 else "Each at its own largest size"
    return TextTable(f"{title} (fail below {min_efficiency:.0%} of target)", headers, rows, 8)


def _error_counts(errors: tuple[DefectErrors, ...] | None) -> str:
    """``mlx5_4:1 symbol_error +1,204, link_downed +2`` per device of a defect; ``none rose`` or ``not read``."""
    if errors is None:
        return "not read"
    said = []
    for e in errors:
        parts = [f"{name} +{count:,}" for name, count in e.errors.items() if count]
        parts += [f"{name} saturated" for name in e.errors_saturated]
        if parts:
            said.append(f"{e.node} {e.device}: {', '.join(parts)}")
    return "; ".join(said) or "none rose"


def _evidence_rows(defects: Sequence[RailDefect]) -> tuple[tuple[str, ...], ...]:
    """What convicts each defect (its samples, counters and pairs); its finding and action are said on top."""
    rows = []
    for d in defects:
        where = " ".join(
            str(p) for p in (d.node, d.peer, f"rail {d.rail}" if d.rail is not None else "", d.device) if p
        )

        def said(count: int | None) -> str:
            return "?" if count is None else str(count)

        pairs = f"{said(d.conviction.slow_pairs)}/{said(d.conviction.pairs)} pairs"
        samples = f"{pairs}, {said(d.conviction.slow_samples)}/{said(d.conviction.samples)} samples"
        cells = list(d.conviction.evidence)
        shown = ", ".join(cells[:4]) + (f" and {len(cells) - 4} more" if len(cells) > 4 else "")
        kind = d.kind + (" (warning)" if d.severity == "warn" else "")
        rows.append((kind, where, samples, _error_counts(d.errors), shown or "—"))
    return tuple(rows)


def _unjudged(run: RunDoc) -> str:
    """Rail rows without rails.json: the ranks measured pairs but the judge never ran (a link that died
    mid-measurement, a lost rank, a hang, Ctrl-C), so the rows clear no part, and "named no defect" would say
    the opposite of the verdict above."""
    failure = present(run.failure)
    ended = f" (the run ended early: {failure.kind}, said in the summary above)" if failure else ""
    return f"The rails test ended before it judged its pairs{ended}: the rows below were measured and clear no part."


def _rails_section(inputs: RunInputs, min_efficiency: float, hosts: tuple[str, ...]) -> Section | None:
    rails = inputs.rails or RailsDoc()
    has_rows = bool(len(inputs.results)) and bool(inputs.results["scope"].isin(["rail", "pair"]).any())
    if inputs.rails is None and not has_rows:
        return None
    defects = rails.defects
    failing = [d for d in defects if d.severity != "warn"]
    warned = [d for d in defects if d.severity == "warn"]
    sentences: list[str] = []
    if rails.skipped:
        sentences.append(f"The rails test was skipped: {rails.skipped}.")
    elif failing:
        sentences.append(f"{cert.plural(len(failing), 'defect')} named (in the summary above); the evidence is below.")
    elif inputs.rails is None:
        sentences.append(_unjudged(inputs.run))
    else:
        sentences.append("The rails test named no defect.")
    if rails.too_noisy:
        sentences.append(f"The pair matrix was {rails.too_noisy}: no part was named from it.")
    if rails.fabric_capacity:
        # Each of its sentences says its own subject (the taper's, the load's): said as they were written.
        sentences.append(f"{rails.fabric_capacity[:1].upper()}{rails.fabric_capacity[1:]}.")
    transients = rails.transients
    if transients:
        said = "; ".join(f"{t.node}-{t.peer} rail {t.rail}" for t in transients[:6]) + (
            f" and {len(transients) - 6} more" if len(transients) > 6 else ""
        )
        sentences.append(
            f"{cert.plural(len(transients), 'pair')} slow once and normal when re-measured (transient, not a "
            f"fault; outlined in purple): {said}."
        )
    sentences += [f"Warning: {d.line}" for d in warned if d.line]
    tables = []
    results = _results_table(inputs, min_efficiency, ("rail", "pair"), "Gb/s")
    if results is not None:
        tables.append(results)
    if defects:
        headers = ("kind", "where", "slow", "error counters", "slow pairs")
        tables.append(TextTable("Evidence for each defect", headers, _evidence_rows(defects)))
    return Section(
        "rails",
        "Rails",
        tuple(sentences),
        tuple(tables),
        charts=("rails", "nodes", "rail-", "pairs", "pairs-"),
        hosts=hosts,
    )


def _intra_section(inputs: RunInputs, min_efficiency: float) -> Section | None:
    found = inputs.rails.intra_node if inputs.rails is not None else None
    has_rows = bool(len(inputs.results)) and bool((inputs.results["scope"] == "local-pair").any())
    if found is None and not has_rows:
        return None
    intra = found or IntraNode()
    judged = intra.localisation
    sentences: list[str] = []
    if intra.skipped:
        sentences.append(f"The intra-node matrix was skipped: {intra.skipped}.")
    if judged.too_noisy:
        sentences.append(f"{judged.too_noisy[0].upper()}{judged.too_noisy[1:]}: no GPU was named.")
    level = judged.level_Gbps
    if level is not None and not judged.too_noisy:
        sentences.append(f"Healthy local pairs run at about {level:,.4g} Gb/s ({level / 8:,.4g} GB/s).")
    named = judged.defects
    if intra.measurements and not intra.skipped and not (judged.too_noisy and not named):
        sentences.append(
            f"{cert.plural(len(named), 'GPU defect')} named (in the summary above)."
            if named
            else "The intra-node matrix named no defect."
        )
    if judged.transients:
        said = "; ".join(f"{t.node}-{t.peer}" for t in judged.transients[:6]) + (
            f" and {len(judged.transients) - 6} more" if len(judged.transients) > 6 else ""
        )
        sentences.append(
            f"{cert.plural(len(judged.transients), 'local pair')} slow once and normal when re-measured (transient, "
            f"not a fault): {said}."
        )
    results = _results_table(inputs, min_efficiency, ("local-pair",), "Gb/s")
    return Section("intra", "Intra-node (GPU × GPU)", tuple(sentences), (results,) if results else (), charts=("gpus",))


def _checks_section(grid: cert.Grid, hosts: tuple[str, ...]) -> Section:
    checked = f"{cert.grid_tally(grid)}. A skipped check did not apply here."
    return Section("checks", "Preflight checks", (checked,), grid=grid, hosts=hosts)


def _compare_section(compare: CompareDoc) -> Section:
    counts = ", ".join(f"{compare.summary.get(s, 0)} {s}" for s in ("regressed", "missing", "failed", "improved"))
    runs = len(compare.baseline.runs) if compare.baseline else 0
    said: list[str] = [f"Against {cert.plural(runs, 'earlier run')}: {counts}."]
    changes = [c.text for c in compare.changes_since_baseline]
    if changes:
        said.append(f"Changed since the baseline: {'; '.join(changes)}.")
    rose = [r.text for r in compare.rail_errors]
    if rose:
        said.append(f"Error counters rose: {'; '.join(rose)}.")
    flagged = cert.compare_rows(compare)
    tables = (TextTable("Flagged metrics", cert.COMPARE_HEADERS, flagged, 1),) if flagged else ()
    return Section("compare", "Compare with the recent past", tuple(said), tables, charts=("trend",))


def _profile(run: RunDoc) -> Profile | None:
    name = run.profile
    if not name:
        return None
    try:
        return load_profile(name)
    except UserError:
        return None  # a profile file that has gone since the run: the page shows what the files say


def _slurm_section(run: RunDoc) -> Section | None:
    """What Slurm said of the run, and the nodes ``--drain`` acted on; None outside Slurm."""
    slurm = scheduler.sentences(run)
    if not slurm:
        return None
    drained = scheduler.drain_rows(run)
    table = (TextTable("Nodes --drain acted on", scheduler.DRAIN_HEADERS, drained),) if drained else ()
    return Section("slurm", "Slurm", slurm, table)


def _traffic_section(traffic: TrafficProof) -> Section:
    return Section("traffic", "Traffic proof (hardware byte counters)", traffic.sentences, traffic=traffic)


def _sweep_section(inputs: RunInputs, min_efficiency: float) -> Section | None:
    """The world sweep's results and its per-size table; None when the run swept nothing."""
    sweep = sweep_rows(inputs.results)
    results = _results_table(inputs, min_efficiency, ("world", "node"))
    if not sweep and results is None:
        return None
    sweep_tables = [t for t in (results,) if t is not None]
    if sweep:
        sweep_tables.append(TextTable("Per size (world)", SWEEP_HEADERS, sweep))
    return Section("sweep", "World sweep", (), tuple(sweep_tables), charts=("busbw-vs-size", "node-"))


def _soak_section(inputs: RunInputs) -> Section | None:
    """A soak's windows, duration, errors accumulated, parts named and gates (``bench.report.soak``)."""
    if inputs.soak is None:
        return None
    said = soak_words.sentences(inputs.soak, soak_words.gate_rows(inputs.run))
    tables = tuple(TextTable(*t) for t in soak_words.tables(inputs.soak, inputs.run))
    return Section("soak", "Soak", said, tables, charts=("soak-world", "soak-"))


def _environment_section(inputs: RunInputs, hosts: tuple[str, ...]) -> Section | None:
    env = cert.environment(inputs)
    if env is None:
        return None
    return Section("environment", "Environment", (cert.versions_sentence(env),), environment=env, hosts=hosts)


def summarize(inputs: RunInputs, min_efficiency: float, notes: Sequence[str] = ()) -> Summary:
    """The certificate's content (see the module docstring)."""
    run = inputs.run
    hosts = tuple(run.hosts)
    compare = read_compare_json(inputs.run_dir)
    profile = _profile(run)
    grid = cert.checks_grid(inputs.checks)
    # The verdict the frame wrote in run.json, with its reasons (``bench.frame.decide``): never re-judged here.
    verdict = run_verdict(run)
    found = top.defects(inputs, grid)
    reasons = verdict.reasons
    if verdict.word == "fail":
        reasons = top.other_failures(inputs, grid, verdict.reasons)
    traffic = traffic_proof(run, inputs.rails, profile, present(run.judged_by))
    measured = (
        _slurm_section(run),
        _checks_section(grid, hosts) if grid is not None else None,
        _traffic_section(traffic) if traffic is not None else None,
        _soak_section(inputs),
        _sweep_section(inputs, min_efficiency),
        _rails_section(inputs, min_efficiency, hosts),
        _intra_section(inputs, min_efficiency),
        _compare_section(compare) if compare is not None else None,
        _environment_section(inputs, hosts),
    )
    sections = [section for section in measured if section is not None]
    facts = (("verdict", verdict.label), *cert.facts(run))
    sections.append(Section("about", "About this run", tables=(TextTable("Facts", ("fact", "value"), facts),)))
    warned = sum(1 for d in inputs.rails.defects if d.severity == "warn") if inputs.rails is not None else 0
    return Summary(
        title=f"railbench report: {run.cluster or 'cluster'}",
        verdict=verdict.label,
        facts=facts,
        tables=tuple(t for section in sections for t in section.tables),
        notes=tuple(notes),
        reasons=tuple(reasons),
        sections=tuple(sections),
        headline=top.headline(run),
        numbers=numbers_of(run),
        defects=found,
        tested=top.tested(inputs, grid, compare),
        targets=top.targets(inputs, profile),
        warnings=warned,
    )


DEFECT_HEADERS = ("kind", "node", "rail", "NIC / GPU", "finding", "action")


def defect_rows(summary: Summary) -> tuple[tuple[str, ...], ...]:
    """The summary's defects as table rows (an empty cell is a dash)."""
    return tuple(
        tuple(cell or "—" for cell in (d.kind, d.node, d.rail, d.part, d.finding, d.action)) for d in summary.defects
    )
