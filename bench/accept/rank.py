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

import dataclasses
import socket
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bench.accept.config import AcceptConfig, accept_plan, validate
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
from bench.rails.laps import Laps, compared
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


def _node_checks(profile: Profile, ctx: DistContext) -> list[NodeReport] | None:
    """Every node's preflight report on rank 0 (one per node: its local rank 0 speaks), None elsewhere."""
    report = None
    if ctx.info.local_rank == 0:
        results = tuple(checks.run_checks(profile, Path("/sys"), (), benv.environ()))
        report = NodeReport(socket.gethostname(), results, cluster.node_versions(profile, Path("/sys"))).to_json()
    gathered = gather_objects(report)
    if ctx.info.rank != 0:
        return None
    return [NodeReport.from_json(doc) for doc in gathered if doc is not None]


def _accept(config: AcceptConfig, settings: RailsSettings, profile: Profile, ctx: DistContext) -> int:
    rank = ctx.info.rank
    cluster_name = config.cluster or default_cluster_name(ctx.hosts[0])
    out_dir = ctx.out_dir or Path(
        broadcast_str(ctx.store, "out_dir", str(config.out or default_run_dir(cluster_name)), rank, 60.0)
    )
    started = iso_utc()
    laps = Laps()
    laps.mark("start-up and rail groups")  # the launch; rails adds its groups' set-up to it
    planned = accept_plan(config, profile, settings, len(ctx.node_hosts), ctx.info.local_world_size)
    sweep_config = config.sweep_config(out_dir)
    if planned is not None:  # cut to --max-minutes when asked; every rank computes the same plan
        settings = planned.settings
        if planned.sweep is not None:
            sweep_config = dataclasses.replace(sweep_config, max_bytes=planned.sweep.max_bytes)
        if rank == 0:
            print("\n".join(planned.lines()), flush=True)

    reports = _node_checks(profile, ctx)
    cross: list[CheckResult] = []
    if reports is not None:
        cross = cluster.compare_nodes(reports) if len(reports) > 1 else []
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out_dir / "checks.json", to_json(profile, reports, cross, ctx.info.world_size))
        print(render(profile, reports, cross, ctx.info.world_size), flush=True)

    laps.mark("check")
    world_sweep(sweep_config, ctx, finish=False)  # run.json and results.csv; history and report come last
    laps.mark("world sweep")

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

    outcome = rails_rank.guarded_rails_phase(settings, ctx, record_end, laps, planned)

    status = EXIT_PASS
    if rank == 0 and outcome is not None and reports is not None:
        writer = ResultsWriter(out_dir / "results.csv")
        writer.rows = [dict(row) for row in read_results_rows(out_dir)]
        output.write_outputs(outcome, out_dir, writer, settings.iters)
        output.print_outcome(outcome, settings)
        run_file = RunFile.load(out_dir)
        meta = run_file.record.to_json()
        cases = (
            check_cases(reports, cross)
            + sweep_cases(writer.rows, meta, profile)
            + rail_cases(outcome)
            + node_cases(list(ctx.node_hosts), reports, outcome)
        )
        verdict = overall(cases)
        if verdict == "pass" and not targets_judged(writer.rows, outcome):
            verdict = "measured"  # nothing had a target: PASS would claim a judgement never made
        status = EXIT_PASS if verdict in ("pass", "measured") else EXIT_FAIL
        _write_junit(out_dir, cases)
        run_file.update(
            command="accept",
            started_utc=started,
            finished_utc=iso_utc(),
            status="complete",
            verdict=verdict,
            exit_status=status,
            accept=accept_summary(cases),
            plan=compared(planned.as_dict() if planned is not None else None, outcome.phase_s),
            rails_test=rails_rank.metadata(ctx, cluster_name, profile, settings, "accept")["rails_test"],
        )
        if finish_run(out_dir, profile, history=sweep_config.history, no_history=sweep_config.no_history):
            status = status or EXIT_INFRA  # a FAIL verdict keeps exit 1
            run_file.update(exit_status=status, finish="failed")
        laps.mark("finish")
        run_file.update(plan=compared(planned.as_dict() if planned is not None else None, laps.seconds))
        failed = [c for c in cases if c.status in ("fail", "error")]
        for case in failed:
            print(f"# FAIL {case.classname} {case.name}: {case.message}")
        print(f"# accept verdict: {verdict.upper()} ({len(cases)} testcases, {len(failed)} failed)", flush=True)
        print(f"# junit: {out_dir / 'junit.xml'}", flush=True)
    return agree_on_exit_status(ctx, status, "accept/exit_status")


def _write_junit(out_dir: Path, cases: Sequence[Case]) -> None:
    write_junit(out_dir / "junit.xml", "railbench.accept", cases, hostname=socket.gethostname())


# --- verdicts (pure) ---------------------------------------------------------------------------------------


def check_cases(reports: Sequence[NodeReport], cross: Sequence[CheckResult]) -> list[Case]:
    """One testcase per check result on each node, and per cross-node comparison."""
    cases = []
    for report in reports:
        for r in report.results:
            name = r.check if not r.device else f"{r.check} {r.device}"
            cases.append(_check_case(f"railbench.check.{report.node}", name, r))
    for r in cross:
        cases.append(_check_case("railbench.check.cluster", r.check, r))
    return cases


def _check_case(classname: str, name: str, r: CheckResult) -> Case:
    # JUnit has no warning state: a warning passes, and says so where CI shows a case's output.
    details = f"WARN {r.reason}" if r.status == "warn" else ""
    message = r.reason if r.status in ("fail", "skip") else ""
    return Case(classname, name, _JUNIT_STATUS[r.status], message, details)


def _number(value: Any) -> float | None:
    if value in (None, ""):
        return None
    return float(value)


def sweep_cases(rows: Sequence[Mapping[str, Any]], meta: Mapping[str, Any], profile: Profile) -> list[Case]:
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
        cases.append(Case("railbench.run", collective, "fail" if result == "fail" else "pass", message, details))
    counter_failures = [f["message"] for f in meta.get("findings") or [] if f.get("severity") == "fail"]
    cases.append(
        Case(
            "railbench.run",
            "counters",
            "fail" if counter_failures else "pass",
            "; ".join(counter_failures),
            "\n".join(f"{h}: {d}" for h, d in (meta.get("counters") or {}).items()),
        )
    )
    return cases


def rail_cases(outcome: RailsOutcome) -> list[Case]:
    """One testcase per rail: its rail groups against the line rate, its pairs, its counters."""
    if outcome.skipped:
        return [Case("railbench.rails", "rails", "skip", outcome.skipped)]
    cases = []
    for rail in range(outcome.rails):
        reasons = outcome.rail_reasons(rail)
        lines = [f"{r.collective} ({r.mode}): {r.busbw_Gbps:.4g} Gb/s" for r in outcome.rail_results if r.rail == rail]
        lines += [f"{node}: {dev}" for rd in outcome.devices if rd.rail == rail for node, dev in rd.device.items()]
        # JUnit has no warning state: a warned link passes, and says so where CI shows the case's output.
        lines += [f"WARN {describe(d)}" for d in outcome.warnings if d.rail == rail]
        cases.append(
            Case("railbench.rails", f"rail{rail}", "fail" if reasons else "pass", "; ".join(reasons), "\n".join(lines))
        )
    return cases


def node_cases(nodes: Sequence[str], reports: Sequence[NodeReport], outcome: RailsOutcome) -> list[Case]:
    """One testcase per node: its checks and every rails defect or counter finding that names it."""
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
