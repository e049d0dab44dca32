"""The top of the certificate, the part that must fit one screen at any cluster size: the defects with where
they are and what to do, the failures that name no part, what was tested, and against which targets.

* ``defects``: every broken part once, from the files that name them (failed preflight checks, the rails
  test's defects, the intra-node matrix's, a hang or a lost rank), each a finding (``bench.rundir.findings``)
  whose row ``bench.rundir.finding_words`` renders from its fields, so a defect kind added later needs no
  change here; a check's failure that a rails defect tells (``bench.preflight.told``: the port of a link the
  rails test named) is that defect's evidence, in its row, not a row of its own (one fault, one defect);
* ``other_failures``: the failures no defect says (a rail group below its line rate, a collective below
  target), each once, picked by the findings run.json's items carry and rails.json's records, never by their
  words;
* ``tested`` and ``targets``: one line per step of the run and per target it was held to.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from bench.codec import present
from bench.preflight.told import ACROSS, Told, told
from bench.profile.actions import Actions
from bench.profile.cluster import Profile
from bench.report.certificate import Grid, grid_tally, plural
from bench.report.inputs import RunInputs
from bench.rundir.checksjson import CheckResult
from bench.rundir.comparedoc import CompareDoc
from bench.rundir.finding_words import DefectRow, row, sentences
from bench.rundir.findings import Finding, Seen, check_finding, failure_finding, gpu_finding, rail_finding
from bench.rundir.judged_by import JudgedBy
from bench.rundir.pair_cells import PairCells
from bench.rundir.railsdoc import IntraNode, RailsDoc
from bench.rundir.runjson import RunDoc
from bench.rundir.sections import ItemEntry, RailsTestSettings
from bench.units import format_size

DEFAULT = Actions()
"""The default actions, for a checks.json written before it carried its own."""


_WHERE = {"all nodes": ACROSS}
"""The grid's row of the cross-node answers, as ``bench.preflight.told`` names it."""
SAID_BY_RAILS = frozenset({"rails", "intra-node", "run"})
"""The steps whose findings the certificate says from their own records: the rails test's and the intra-node
matrix's (the defects' rows, rails.json's ``below_target`` and ``counter_findings``) and the run's failure.
The preflight's are said by the checks' rows where checks.json gives the grid."""


def _said_elsewhere(item: ItemEntry, grid: Grid | None) -> bool:
    """Whether a failed item is said by rows or records of the certificate: it repeats other items (a node's
    line), or every finding it carries is one the certificate says from its step's own records."""
    said = SAID_BY_RAILS | ({"preflight"} if grid is not None else set())
    return item.repeats or (bool(item.findings) and all(f.step in said for f in item.findings))


def _told(inputs: RunInputs) -> list[Told]:
    """The failing check answers a rails defect tells (``bench.preflight.told``), from checks.json and rails.json."""
    checks, rails = inputs.checks, inputs.rails
    if checks is None or rails is None:
        return []
    return told(rails.defects, {str(n.node): n.results for n in checks.nodes if n.node}, checks.cross_node)


def _told_key(node: str, check: str, status: str, reason: str, device: str) -> tuple[str, str, str, str, str]:
    return (_WHERE.get(node, node), check, status, reason, device)


def findings(inputs: RunInputs, grid: Grid | None) -> tuple[Finding, ...]:
    """Every part the run convicted, once: the run's failure, failed checks, rails defects, GPU defects.

    Warnings (a link whose error counters rose while its bandwidth held) and transients are not defects:
    the rails section lists them. A failed check a rails defect tells is that defect's evidence (``seen``).
    """
    found: list[Finding] = []
    failure = inputs.run.failure
    if failure and failure.message:
        found.append(failure_finding(failure))
    folded = _told(inputs)
    keys = {_told_key(t.node, t.result.check, t.result.status, t.result.reason, t.result.device or "") for t in folded}
    for answer in grid.answers if grid is not None else ():
        told_key = _told_key(answer.node, answer.check, answer.status, answer.reason, answer.device)
        if answer.status != "fail" or told_key in keys:
            continue
        result = CheckResult(answer.check, "fail", answer.reason, answer.device or None, answer.action or None)
        # checks.json says what to do; one written before it did gets the default action of its check
        default = DEFAULT.for_check(answer.check, answer.node, answer.device or None)
        found.append(check_finding(answer.node, result, default))
    rails = inputs.rails or RailsDoc()
    for d in rails.defects:
        if d.severity != "warn" and d.conviction.symptom != "transient":
            found.append(rail_finding(d, [Seen(t.node, t.result) for t in folded if t.defect == d]))
    for g in rails.intra_node.localisation.defects if rails.intra_node is not None else ():
        if g.severity != "warn":
            found.append(gpu_finding(g))
    return tuple(found)


def defects(inputs: RunInputs, grid: Grid | None) -> tuple[DefectRow, ...]:
    """The certificate's defects table: one row per finding (:func:`findings`), each part once."""
    return tuple(dict.fromkeys(row(f) for f in findings(inputs, grid)))


def other_failures(inputs: RunInputs, grid: Grid | None, reasons: Sequence[str]) -> tuple[str, ...]:
    """The failures no defect row says, each once: rails.json's rail groups below their target and its counter
    findings, then each failed item of run.json that no finding says (a collective below target or with wrong
    elements, the byte counters, a node's GPUDirect path in ``rails``, the checks where checks.json is absent),
    by the findings it carries, never by its words. A run.json written before it kept its items: its reasons that are no
    finding's sentence (``reasons``: the verdict's)."""
    rails = inputs.rails or RailsDoc()
    out = [*rails.below_target, *rails.counter_findings]
    items = present(inputs.run.items)
    if items is None:
        said = set(sentences(findings(inputs, grid)))
        out += [r for r in reasons if r not in said]
        return tuple(dict.fromkeys(out))
    for item in items:
        if item.state == "fail" and not _said_elsewhere(item, grid):
            out.append(item.reason or f"{item.group.removeprefix('railbench.')} {item.name}: {item.state}")
    return tuple(dict.fromkeys(out))


def _sizes(frame: pd.DataFrame) -> str:
    sized = sorted(int(b) for b in frame["bytes"].unique() if b > 0)
    if not sized:
        return "0 B"
    if len(sized) == 1:
        return format_size(sized[0])
    return f"{format_size(sized[0])} to {format_size(sized[-1])} ({len(sized)} sizes)"


def _rails_tested(rails: RailsDoc) -> tuple[str, str] | None:
    """The rails step's line: skipped, or its rails, rail groups and node pairs; None when it measured nothing."""
    if rails.skipped:
        return ("rails", f"skipped: {rails.skipped}")
    measured = rails.measurements
    cells = rails.pair_cells if isinstance(rails.pair_cells, PairCells) else PairCells()
    if not measured and not cells.rows:
        return None
    rail_ids = sorted({m.rail for m in measured} | set(cells.rail))
    groups = sorted({str(m.collective) for m in measured if m.kind == "rail"})
    pairs = len({(m.rail, *sorted((str(m.node), str(m.peer)))) for m in measured if m.kind == "pair"})
    if cells.rows:  # format 3's columns: each unordered pair on a rail once, as one number
        node, peer, width = np.asarray(cells.node), np.asarray(cells.peer), len(rails.nodes)
        keys = (np.asarray(cells.rail) * width + np.minimum(node, peer)) * width + np.maximum(node, peer)
        pairs += len(np.unique(keys))
    per_rail = pairs // max(1, len(rail_ids))
    what = [f"{plural(len(rail_ids), 'rail')}"]
    if groups:
        what.append(f"rail groups ({', '.join(groups)})")
    if pairs:
        what.append(f"{per_rail:,} node pairs per rail")
    return ("rails", ": ".join([what[0], " and ".join(what[1:])]) if len(what) > 1 else what[0])


def _intra_tested(intra: IntraNode | None) -> tuple[str, str] | None:
    """The intra-node step's line: skipped, or its GPU pairs on how many nodes; None when it did not run."""
    if intra is None:
        return None
    if intra.skipped:
        return ("intra-node", f"skipped: {intra.skipped}")
    if not intra.measurements:
        return None
    local = intra.local_ranks
    if local is not None and local > 1:
        pairs_text = f"{local * (local - 1) // 2} GPU pairs, both directions,"
    else:
        pairs_text = "local pairs"
    where = f"on each of {len(intra.nodes)} nodes" if len(intra.nodes) > 1 else "on 1 node"
    return ("intra-node", f"{pairs_text} {where}")


def _sweep_skipped(run: RunDoc) -> list[tuple[str, str]]:
    """accept's world sweep when it measured nothing: each collective's reason as run.json's ``accept`` holds it
    (a dead part the rails test found: the world communicator would cross it)."""
    accept = present(run.accept)
    judged = present(accept.collectives) if accept is not None else None
    skipped: dict[str, list[str]] = {}
    for name, said in (judged or {}).items():
        if said.verdict == "skip" and said.reason:
            skipped.setdefault(said.reason, []).append(name)
    return [("world sweep", f"{', '.join(names)} {reason}") for reason, names in skipped.items()]


def tested(inputs: RunInputs, grid: Grid | None, compare: CompareDoc | None) -> tuple[tuple[str, str], ...]:
    """One line per step of the run: what it measured, on how much of the cluster."""
    lines: list[tuple[str, str]] = []
    if grid is not None:
        lines.append(("preflight", grid_tally(grid)))
    results = inputs.results
    world = results[results["scope"] == "world"] if len(results) else results
    if len(world):
        collectives = ", ".join(dict.fromkeys(world["collective"]))
        lines.append(("world sweep", f"{collectives}; {_sizes(world)}"))
    else:
        lines += _sweep_skipped(inputs.run)
    rails = inputs.rails or RailsDoc()
    lines += [line for line in (_rails_tested(rails), _intra_tested(rails.intra_node)) if line is not None]
    if inputs.soak is not None:
        soak = inputs.soak
        world = ", ".join(dict.fromkeys(f"{c.collective} at {format_size(c.bytes)}" for c in soak.collectives))
        said = [f"{plural(soak.windows, 'window')} over {_duration(soak.elapsed_s)}", plural(soak.links, "link")]
        lines.append(("soak", "; ".join([*said, *([world] if world else [])])))
    if compare is not None:
        runs = len(compare.baseline.runs) if compare.baseline else 0
        lines.append(("compare", f"against {plural(runs, 'earlier run')} of this cluster"))
    return tuple(lines)


def _gbps(value: float) -> str:
    return f"{value:,.4g} Gb/s ({value / 8:,.4g} GB/s)"


def _gpu_targets(recorded: JudgedBy | None) -> list[tuple[str, str]]:
    """The GPU generation whose figures judged the run, as run.json recorded it (never today's profile), or why
    none did."""
    if recorded is not None and recorded.gpu_generation:
        gpus = ", ".join(recorded.gpu_models) or "its GPUs"
        return [("GPU targets", f"{recorded.gpu_generation} figures for {gpus} (from {recorded.targets_source})")]
    if recorded is not None and recorded.targets_note:
        return [("GPU targets", f"none: {recorded.targets_note}")]
    return []


def _collective_targets(results: pd.DataFrame) -> list[tuple[str, str]]:
    """The world's and the single node's collectives with a target, grouped by target."""
    lines = []
    for scope, label in (("world", "world collectives"), ("node", "single node")):
        rows = results[(results["scope"] == scope) & (results["target_Gbps"] > 0)] if len(results) else results
        if len(rows):
            per = rows.groupby("target_Gbps", sort=False)["collective"].agg(lambda c: ", ".join(dict.fromkeys(c)))
            said = "; ".join(f"{names}: {_gbps(float(t))} busbw" for t, names in per.items())
            lines.append((label, said))
    return lines


def _rails_by_rate(rails: RailsDoc) -> dict[float, list[int]]:
    """Line rate -> the rails at it, for the rails whose line rate is known."""
    by_rate: dict[float, list[int]] = {}
    for r in rails.rails:
        if r.line_rate_Gbps:
            by_rate.setdefault(float(r.line_rate_Gbps), []).append(r.rail)
    return by_rate


def _line_rates(by_rate: dict[float, list[int]]) -> str:
    """The rails' line rate: one figure, or one per group of rails, never two numbers under one heading with no
    rails to them."""
    if len(by_rate) == 1:
        (rate,) = by_rate
        return f"{rate:,.4g} Gb/s line rate per rail"
    said = "; ".join(f"rail {', '.join(map(str, sorted(k)))}: {r:,.4g} Gb/s" for r, k in sorted(by_rate.items()))
    return f"line rate per rail: {said}"


def _intra_target(target: float | None) -> str:
    if target is not None and target > 0:
        return f"{_gbps(float(target))} per GPU pair"
    return "no target (not GPUs): measured, and judged against the node's other pairs"


def targets(inputs: RunInputs, profile: Profile | None) -> tuple[tuple[str, str], ...]:
    """One line per target the run was held to, and the pass line; a step with none says so."""
    lines = _gpu_targets(present(inputs.run.judged_by))
    collectives = _collective_targets(inputs.results)
    lines += collectives
    judged = bool(collectives)  # whether any target or line rate applies: only then is there a pass line
    rails = inputs.rails or RailsDoc()
    by_rate = _rails_by_rate(rails)
    if by_rate:
        judged = True
        source = _rate_source(set(by_rate), present(inputs.run.rails_test), profile)
        lines.append(("rails", f"{_line_rates(by_rate)} ({source})"))
    elif rails.measurements or (isinstance(rails.pair_cells, PairCells) and rails.pair_cells.rows):
        lines.append(("rails", "no line rate known: parts are judged against their peers only"))
    intra = rails.intra_node
    if intra is not None and intra.measurements:
        target = intra.target_Gbps
        judged = judged or (target is not None and target > 0)
        lines.append(("intra-node", _intra_target(target)))
    fraction = present(inputs.run.rails_test.pass_fraction) if inputs.run.rails_test else None
    if fraction is None and profile is not None:
        fraction = profile.pass_fraction
    if judged and fraction is not None:
        small = f"; sizes below {format_size(profile.judge_min_bytes)} are measured, not judged" if profile else ""
        lines.append(("pass line", f"{fraction:.0%} of the target{small}"))
    if profile is not None and profile.excluded_devices:
        lines.append(("idle devices", f"{', '.join(profile.excluded_devices)} must carry no traffic"))
    if not lines:
        lines.append(("targets", "none apply to this run: it was measured, not judged"))
    return tuple(lines)


def _rate_source(rates: set[float], test: RailsTestSettings | None, profile: Profile | None) -> str:
    """Where the rails' line rate came from: the one the run was given (``--rail-rate-gbps``, or the profile's),
    else each HCA's own rate from sysfs. A run recorded before ``rails_test`` kept the rate is judged by the
    profile's alone."""
    given = present(test.rail_rate_gbps) if test is not None else None
    profiled = profile.rail_rate_gbps if profile is not None else None
    if given is not None and rates == {float(given)}:
        return "the profile's rail rate" if given == profiled else "given with --rail-rate-gbps"
    return "the profile's rail rate" if profiled is not None and rates == {profiled} else "from sysfs"


def headline(run: RunDoc) -> str:
    """``accept on 64 nodes × 8 ranks (512), profile lambda-1cc, 19 min 9 s from railbench accept's start to the
    report (18 min 34 s from the world's set-up to the verdict), finished 2026-11-20 23:01 UTC``."""
    nnodes, nranks = run.nnodes, run.nranks
    words = [run.command or "run"]
    if nnodes and nranks:
        per = f" × {nranks // nnodes} ranks" if nranks % nnodes == 0 and nnodes > 1 else ""
        words[0] += f" on {plural(nnodes, 'node')}{per} ({plural(nranks, 'rank')})"
    if run.profile:
        words.append(f"profile {run.profile}")
    started, finished = run.started_utc, run.finished_utc
    if finished is not None:
        took = (pd.Timestamp(finished) - pd.Timestamp(started)).total_seconds()
        if took >= 0:
            words.append(_times(run, took))
        words.append(f"finished {finished[:16].replace('T', ' ')} UTC")
    else:
        words.append(f"started {started[:16].replace('T', ' ')} UTC")
    return ", ".join(words)


def _times(run: RunDoc, verdict_s: float) -> str:
    """How long the user waited, as far as run.json knows it, and what that time runs from; beside it the ranks'
    time (``started_utc`` to ``finished_utc``: the world's set-up to the verdict), which alone was the headline
    and left out the launch and the report (issue 43: a 10 s accept said 0 s). A run railbench launched records
    its launcher's start (``launched_utc``): the whole wait runs from there; else rails and accept time their
    phases from rank 0's process start (``bench.rails.plan.laps``); every run times its finish step (``finish_s``).
    The words say where the time starts."""
    finish_s = present(run.finish_s)
    plan = present(run.plan)
    from_start = present(plan.measured_s) if plan is not None else None
    launched = present(run.launched_utc)
    ranks = f"{_duration(verdict_s)} from the world's set-up to the verdict"
    if launched is not None and finish_s is not None and run.finished_utc is not None:
        waited = (pd.Timestamp(run.finished_utc) - pd.Timestamp(launched)).total_seconds() + float(finish_s)
        if waited >= verdict_s:
            return f"{_duration(waited)} from railbench {run.command or 'run'}'s start to the report ({ranks})"
    if from_start is not None and finish_s is not None:
        return f"{_duration(float(from_start) + float(finish_s))} from rank 0's start to the report ({ranks})"
    if finish_s is not None:
        return f"{_duration(verdict_s + float(finish_s))} from the world's set-up to the report"
    return ranks


def _duration(seconds: float) -> str:
    whole = round(seconds)
    return f"{whole // 60} min {whole % 60} s" if whole >= 60 else f"{whole} s"
