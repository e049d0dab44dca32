"""The rank side of ``railbench accept``, and its verdicts: per node, per rail, and overall.

One set of ranks, one process group, one run directory:

1. check: every node runs the preflight checks (``bench.fabric.checks``); rank 0 gathers them, compares
   the nodes and writes ``checks.json``;
2. the world sweep (``railbench run``'s sweep), which writes ``run.json``, ``results.csv`` and the report;
3. rails (``bench.rails.rank.rails_phase``): ``rails.json`` and rail/pair rows appended to results.csv;
4. the verdicts: ``junit.xml`` with one testcase per check, collective, rail and node, and ``run.json``
   turned into the accept record (``command`` accept, the overall verdict, per-node and per-rail verdicts).

The verdict functions at the bottom are pure: they take what the phases produced and return JUnit cases.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.accept.config import AcceptConfig, validate
from bench.check.node import render, to_json
from bench.errors import EXIT_FAIL, EXIT_INFRA, EXIT_PASS, UserError
from bench.fabric import checks, cluster
from bench.fabric.checks import CheckResult
from bench.fabric.cluster import NodeReport
from bench.frame.finish import finish_run
from bench.frame.record import iso_utc
from bench.measure.targets import judge_min_bytes
from bench.profiles import Profile
from bench.rails import output
from bench.rails import rank as rails_rank
from bench.rails.config import RailsSettings
from bench.rails.defects import describe
from bench.rails.measure import gather_objects
from bench.rails.records import RailsOutcome
from bench.rundir.files import (
    ResultsWriter,
    atomic_write_json,
    default_cluster_name,
    default_run_dir,
    proposed_run_dir,
    read_results_rows,
)
from bench.rundir.junit import Case, Status, write_junit
from bench.rundir.runjson import RunFile
from bench.runtime import env as benv
from bench.runtime.before_init import run_directory
from bench.runtime.dist import DistContext, agree_on_exit_status, broadcast_str, quiet_usage_exit, run_as_rank
from bench.runtime.env import RankInfo
from bench.sweep.rank import sweep as world_sweep
from bench.sweep.rank import verdict
from bench.units import format_size

_JUNIT_STATUS: Mapping[str, Status] = {"pass": "pass", "warn": "pass", "fail": "fail", "skip": "skip"}


def run_rank(config: AcceptConfig, info: RankInfo) -> int:
    """One rank of ``railbench accept``; every rank returns the same exit status."""
    try:
        profile, settings = validate(config)
    except UserError:
        if info.rank != 0:
            return quiet_usage_exit()
        raise
    # No rail pin here: accept's world sweep measures what NCCL chooses by itself.
    return run_as_rank(
        info,
        config.backend,
        config.timeout_s,
        settings.oob_ifname,
        lambda ctx: _accept(config, settings, profile, ctx),
        before_init=lambda prelude: run_directory(prelude, lambda: proposed_run_dir(config.out, config.cluster)),
    )


@dataclass(frozen=True)
class StepTimes:
    """Wall times of accept's steps in seconds, for JUnit: a testcase carries the time of the step that
    judged it, the suite the wall time of the whole command."""

    checks: Mapping[str, Sequence[float]] = field(default_factory=dict)
    """Node -> one time per result of its checks, in ``NodeReport.results`` order."""
    cross_node: float = 0.0
    """Comparing the nodes' answers."""
    sweep: Mapping[str, float] = field(default_factory=dict)
    """Collective -> its sizes' wall time in the world sweep."""
    rails: float = 0.0
    """The rails phase: rail groups and the pair matrix run on every rail at once, so each rail's case
    (and each node's, which the same measurements judge) was under test for all of it."""

    @property
    def counters(self) -> float:
        """The byte and error counters are read around the whole world sweep: their case covers it."""
        return sum(self.sweep.values())

    def node_checks(self, node: str) -> float:
        return sum(self.checks.get(node, ()))


def _node_checks(profile: Profile, ctx: DistContext) -> tuple[list[NodeReport], dict[str, list[float]]] | None:
    """Every node's preflight report and each result's time on rank 0 (one per node: its local rank 0
    speaks), None elsewhere."""
    answer = None
    if ctx.info.local_rank == 0:
        timed = checks.timed_checks(profile, Path("/sys"), benv.environ())
        results = tuple(result for result, _ in timed)
        report = NodeReport(socket.gethostname(), results, cluster.node_versions(profile, Path("/sys"))).to_json()
        answer = {"report": report, "seconds": [seconds for _, seconds in timed]}
    gathered = gather_objects(answer)
    if ctx.info.rank != 0:
        return None
    reports = [NodeReport.from_json(doc["report"]) for doc in gathered if doc is not None]
    seconds = {doc["report"]["node"]: list(doc["seconds"]) for doc in gathered if doc is not None}
    return reports, seconds


def _accept(config: AcceptConfig, settings: RailsSettings, profile: Profile, ctx: DistContext) -> int:
    rank = ctx.info.rank
    cluster_name = config.cluster or default_cluster_name(ctx.hosts[0])
    out_dir = ctx.out_dir or Path(
        broadcast_str(ctx.store, "out_dir", str(config.out or default_run_dir(cluster_name)), rank, 60.0)
    )
    started = iso_utc()
    clock_started = time.monotonic()

    checked = _node_checks(profile, ctx)
    reports = checked[0] if checked is not None else None
    cross: list[CheckResult] = []
    cross_s = 0.0
    if reports is not None:
        cross_started = time.monotonic()
        cross = cluster.compare_nodes(reports) if len(reports) > 1 else []
        cross_s = time.monotonic() - cross_started
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out_dir / "checks.json", to_json(profile, reports, cross, ctx.info.world_size))
        print(render(profile, reports, cross, ctx.info.world_size), flush=True)

    sweep_config = config.sweep_config(out_dir)
    sweep_s: dict[str, float] = {}
    # run.json and results.csv; history and report come last
    world_sweep(sweep_config, ctx, finish=False, seconds=sweep_s)

    def record_end(status: str, exit_status: int, failure: dict[str, Any] | None) -> None:
        if rank == 0:
            extra = {"failure": failure} if failure else {}
            RunFile.load(out_dir).update(
                command="accept",
                status=status,
                verdict="error" if status == "failed" else None,
                exit_status=exit_status,
                finished_utc=iso_utc(),
                **extra,
            )

    rails_started = time.monotonic()
    outcome = rails_rank.guarded_rails_phase(settings, ctx, record_end)
    times = StepTimes(checked[1] if checked is not None else {}, cross_s, sweep_s, time.monotonic() - rails_started)

    status = EXIT_PASS
    if rank == 0 and outcome is not None and reports is not None:
        writer = ResultsWriter(out_dir / "results.csv")
        writer.rows = [dict(row) for row in read_results_rows(out_dir)]
        output.write_outputs(outcome, out_dir, writer, settings.iters)
        output.print_outcome(outcome, settings)
        run_file = RunFile.load(out_dir)
        meta = run_file.record.to_json()
        cases = (
            check_cases(reports, cross, times)
            + sweep_cases(writer.rows, meta, profile, times)
            + rail_cases(outcome, times)
            + node_cases(list(ctx.node_hosts), reports, outcome, times)
        )
        verdict = overall(cases)
        if verdict == "pass" and not targets_judged(writer.rows, outcome):
            verdict = "measured"  # nothing had a target: PASS would claim a judgement never made
        status = EXIT_PASS if verdict in ("pass", "measured") else EXIT_FAIL
        _write_junit(out_dir, cases, time.monotonic() - clock_started)
        run_file.update(
            command="accept",
            started_utc=started,
            finished_utc=iso_utc(),
            status="complete",
            verdict=verdict,
            exit_status=status,
            accept=accept_summary(cases),
            rails_test=rails_rank.metadata(ctx, cluster_name, profile, settings, "accept")["rails_test"],
        )
        if finish_run(out_dir, profile, history=sweep_config.history, no_history=sweep_config.no_history):
            status = status or EXIT_INFRA  # a FAIL verdict keeps exit 1
            run_file.update(exit_status=status, finish="failed")
        failed = [c for c in cases if c.status in ("fail", "error")]
        for case in failed:
            print(f"# FAIL {case.classname} {case.name}: {case.message}")
        print(f"# accept verdict: {verdict.upper()} ({len(cases)} testcases, {len(failed)} failed)", flush=True)
        print(f"# junit: {out_dir / 'junit.xml'}", flush=True)
    return agree_on_exit_status(ctx, status, "accept/exit_status")


def _write_junit(out_dir: Path, cases: Sequence[Case], wall_s: float) -> None:
    write_junit(out_dir / "junit.xml", "railbench.accept", cases, hostname=socket.gethostname(), time_s=wall_s)


# --- verdicts (pure) ---------------------------------------------------------------------------------------


def check_cases(
    reports: Sequence[NodeReport], cross: Sequence[CheckResult], times: StepTimes = StepTimes()
) -> list[Case]:
    """One testcase per check result on each node, and per cross-node comparison."""
    cases = []
    for report in reports:
        seconds = list(times.checks.get(report.node, ()))
        for i, r in enumerate(report.results):
            name = r.check if not r.device else f"{r.check} {r.device}"
            took = seconds[i] if i < len(seconds) else 0.0
            cases.append(_check_case(f"railbench.check.{report.node}", name, r, took))
    for r in cross:
        cases.append(_check_case("railbench.check.cluster", r.check, r, times.cross_node / max(1, len(cross))))
    return cases


def _check_case(classname: str, name: str, r: CheckResult, time_s: float = 0.0) -> Case:
    # JUnit has no warning state: a warning passes, and says so where CI shows a case's output.
    details = f"WARN {r.reason}" if r.status == "warn" else ""
    message = r.reason if r.status in ("fail", "skip") else ""
    return Case(classname, name, _JUNIT_STATUS[r.status], message, details, time_s)


def _number(value: Any) -> float | None:
    if value in (None, ""):
        return None
    return float(value)


def sweep_cases(
    rows: Sequence[Mapping[str, Any]], meta: Mapping[str, Any], profile: Profile, times: StepTimes = StepTimes()
) -> list[Case]:
    """One testcase per world collective (judged as ``railbench run`` judges it), and one for its counters."""
    world = [r for r in rows if r.get("scope") == "world"]
    cases = []
    for collective in dict.fromkeys(r["collective"] for r in world):
        mine = [
            {
                **r,
                "bytes": int(r["bytes"]),
                "wrong": int(_number(r.get("wrong")) or 0),
                "efficiency": _number(r.get("efficiency")),
                "busbw_Gbps": _number(r.get("busbw_Gbps")) or 0.0,
                "target_Gbps": _number(r.get("target_Gbps")),
            }
            for r in world
            if r["collective"] == collective
        ]
        result, reasons = verdict(mine, judge_min_bytes(profile), profile.pass_fraction)
        details = "\n".join(f"{format_size(r['bytes'])}: busbw {r['busbw_Gbps']:.4g} Gb/s" for r in mine)
        message = "; ".join(reasons[:3]) + (f" and {len(reasons) - 3} more" if len(reasons) > 3 else "")
        status: Status = "fail" if result == "fail" else "pass"
        cases.append(Case("railbench.run", collective, status, message, details, times.sweep.get(collective, 0.0)))
    findings = [f for f in meta.get("findings") or [] if isinstance(f, Mapping)]
    counter_failures = [str(f.get("message")) for f in findings if f.get("severity") == "fail"]
    cases.append(
        Case(
            "railbench.run",
            "counters",
            "fail" if counter_failures else "pass",
            "; ".join(counter_failures),
            counters_text(meta.get("counters"), findings),
            times.counters,
        )
    )
    return cases


def counters_text(counters: object, findings: Sequence[Mapping[str, Any]] = ()) -> str:
    """The counters testcase's output: what the counters found, then one line per node and device with the
    bytes it sent and received over the sweep and any error counter that rose."""
    lines = [f"{str(f.get('severity', '')).upper()} {f.get('message')}" for f in findings]
    if not isinstance(counters, Mapping):
        return "\n".join([*lines, "no counters were read"])
    for node, devices in counters.items():
        if not isinstance(devices, Mapping):
            continue
        lines.append(f"{node}:")
        for device, entry in devices.items():
            if not isinstance(entry, Mapping):
                continue
            said = f"  {device}: tx {format_bytes(entry.get('tx_bytes'))}, rx {format_bytes(entry.get('rx_bytes'))}"
            flags = [flag for flag in ("wrapped", "saturated") if entry.get(flag)]
            errors = entry.get("errors")
            risen = [f"{name} +{count:,}" for name, count in (errors or {}).items() if isinstance(count, int) and count]
            risen += [f"{name} saturated" for name in entry.get("errors_saturated") or ()]
            risen += [f"{name} cleared" for name in entry.get("errors_reset") or ()]
            lines.append(said + "".join(f", {word}" for word in flags + risen))
    return "\n".join(lines)


def format_bytes(value: object) -> str:
    """``0 B``, ``870 B``, ``2.33 GB`` (decimal units, as the counters count)."""
    if not isinstance(value, int) or isinstance(value, bool):
        return "?"
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if value >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value} B"


def rail_cases(outcome: RailsOutcome, times: StepTimes = StepTimes()) -> list[Case]:
    """One testcase per rail: its rail groups against the line rate, its pairs, its counters."""
    if outcome.skipped:
        return [Case("railbench.rails", "rails", "skip", outcome.skipped, "", times.rails)]
    cases = []
    for rail in range(outcome.rails):
        reasons = outcome.rail_reasons(rail)
        lines = [f"{r.collective} ({r.mode}): {r.busbw_Gbps:.4g} Gb/s" for r in outcome.rail_results if r.rail == rail]
        lines += [f"{node}: {dev}" for rd in outcome.devices if rd.rail == rail for node, dev in rd.device.items()]
        # JUnit has no warning state: a warned link passes, and says so where CI shows the case's output.
        lines += [f"WARN {describe(d)}" for d in outcome.warnings if d.rail == rail]
        status: Status = "fail" if reasons else "pass"
        cases.append(Case("railbench.rails", f"rail{rail}", status, "; ".join(reasons), "\n".join(lines), times.rails))
    return cases


def node_cases(
    nodes: Sequence[str], reports: Sequence[NodeReport], outcome: RailsOutcome, times: StepTimes = StepTimes()
) -> list[Case]:
    """One testcase per node: its checks and every rails defect or counter finding that names it (its time:
    its own checks and the rails phase, the steps that judge it)."""
    by_node = {report.node: report for report in reports}
    cases = []
    for node in nodes:
        report = by_node.get(node)
        reasons = [f"{r.check}: {r.reason}" for r in (report.results if report else ()) if r.status == "fail"]
        reasons += outcome.node_reasons(node)
        warned = [f"WARN {describe(d)}" for d in outcome.warnings if d.node == node]
        cases.append(
            Case(
                "railbench.nodes",
                node,
                "fail" if reasons else "pass",
                "; ".join(reasons),
                "\n".join([*reasons, *warned]),
                times.node_checks(node) + times.rails,
            )
        )
    return cases


def targets_judged(rows: Sequence[Mapping[str, Any]], outcome: RailsOutcome) -> bool:
    """Whether any sweep row had a target, any rail measurement an expected rate, or local pairs a target."""
    if any((_number(r.get("target_Gbps")) or 0) > 0 for r in rows):
        return True
    if outcome.intra_node is not None and outcome.intra_node.target_Gbps:
        return True
    return any((rate or 0) > 0 for rate in outcome.expected.values())


def overall(cases: Sequence[Case]) -> str:
    """``error`` if a case errored, ``fail`` if one failed, else ``pass`` (skips count for nothing)."""
    statuses = {c.status for c in cases}
    if "error" in statuses:
        return "error"
    return "fail" if "fail" in statuses else "pass"


def accept_summary(cases: Sequence[Case]) -> dict[str, Any]:
    """run.json's ``accept`` block: the verdict of every node, rail, collective and check group."""

    def group(prefix: str) -> dict[str, dict[str, str]]:
        return {c.name: {"verdict": c.status, "reason": c.message} for c in cases if c.classname == prefix}

    checks: dict[str, str] = {}
    for c in cases:
        if c.classname.startswith("railbench.check."):
            node = c.classname.removeprefix("railbench.check.")
            checks[node] = "fail" if c.status == "fail" or checks.get(node) == "fail" else checks.get(node, "pass")
    return {
        "verdict": overall(cases),
        "nodes": group("railbench.nodes"),
        "rails": group("railbench.rails"),
        "collectives": group("railbench.run"),
        "checks": checks,
    }
