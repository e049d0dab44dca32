"""The rank side of ``railbench check``: preflight of this node (and, under mpirun/srun, of every node)
against a profile.

Exit status: 0 pass (warnings allowed) or skip (nothing could be checked, said as SKIP, never PASS), 1 any
check failed, 2 bad input. Under an MPI-family launcher every
rank checks its node and rank 0 gathers the reports with mpi4py, compares them, names the odd nodes and
prints the verdict; every rank exits with rank 0's status. torch is never imported (GPUs come from sysfs
unless CUDA is already usable, see ``bench.fabric.topology``).
"""

from __future__ import annotations

import dataclasses
import json
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from bench import codec, sysroot
from bench.check.config import INPUT_CHECK, MPI_LAUNCHERS, CheckConfig
from bench.check.items import check_items
from bench.exits import EXIT_PASS, EXIT_USAGE, UserError
from bench.fabric import cabling_plan, devinfo
from bench.fabric.cabling import Cabling
from bench.fabric.topology_file import load_cabling
from bench.frame.decide import decide
from bench.jsondoc import JSONObject
from bench.nccllogs import nccl_evidence, nccl_log
from bench.preflight import checks, cluster
from bench.profile.actions import Actions
from bench.profile.cluster import Profile, load_profile
from bench.rundir.docversion import CHECKS_FORMAT_VERSION
from bench.rundir.verdict import Verdict
from bench.runtime import env as benv


def _mpi_world() -> int:
    """The number of ranks when an MPI-family launcher started several, else 0."""
    rank = benv.discover_launched_rank()
    return rank.world_size if rank is not None and rank.world_size > 1 and rank.launcher in MPI_LAUNCHERS else 0


def local_report(config: CheckConfig, profile: Profile) -> cluster.NodeReport:
    """This node's checks and versions."""
    problem = sysroot.problem(config.sysfs_root, socket.gethostname())
    if problem is not None:
        raise UserError(problem)
    root = sysroot.node_root(config.sysfs_root, socket.gethostname())
    for path in config.nccl_logs:
        if not path.is_file():
            raise UserError(f"--nccl-log {path} is not a file: give an NCCL_DEBUG=INFO log")
    if config.kernel_log is not None and not config.kernel_log.is_file():
        raise UserError(f"--kernel-log {config.kernel_log} is not a file: give a kernel log (kern.log, journalctl -k)")
    for path in config.nvidia_smi:
        if not path.is_file():
            raise UserError(f"--nvidia-smi {path} is not a file: give nvidia-smi -q -x or nvidia-smi nvlink -s output")
    if config.ibv_devinfo is not None:
        devinfo.read_file(config.ibv_devinfo)  # another tool's output is one line and exit 2, before any check
    logs = [nccl_log.parse_file(p) for p in config.nccl_logs]
    label = cluster.node_label(root)
    results = checks.run_checks(
        profile,
        root,
        logs,
        benv.environ(),
        error_window_s=config.error_window_s,
        kernel_log=config.kernel_log,
        nvidia_smi=config.nvidia_smi,
        node=label,
        ibv_devinfo=config.ibv_devinfo,
    )
    return cluster.NodeReport(
        label,
        tuple(results),
        cluster.node_versions(profile, root),
        nccl_evidence.evidence(logs, profile) if logs else None,
    )


def _status(result: checks.CheckResult) -> str:
    return result.status.upper()


def _table(
    results: Sequence[checks.CheckResult], actions: Actions, node: str, only_problems: bool = False
) -> list[str]:
    """One line per result; under a failure or warning, what to do about it: the check's own action, else the
    profile's ``[actions]`` sentence (the same one checks.json and the certificate carry)."""
    lines = []
    for r in results:
        if only_problems and r.status not in ("fail", "warn"):
            continue
        lines.append(f"  {_status(r):<5} {r.check:<19} {r.reason}")
        action = r.action or actions.for_check(r.check, node, r.device) if r.status in ("fail", "warn") else None
        if action:
            lines.append(f"  {'':<5} {'':<19} action: {action}")
    return lines


def _not_judged(everything: Sequence[checks.CheckResult], nodes: int) -> list[str]:
    """Every check that skipped, once, with why (its first reason, and on how many nodes when several)."""
    lines = []
    for check in dict.fromkeys(r.check for r in everything if r.status == "skip"):
        skips = [r for r in everything if r.check == check and r.status == "skip"]
        where = f" (on {len(skips)} of {nodes} nodes)" if nodes > 1 else ""
        lines.append(f"  {'SKIP':<5} {check:<19} {skips[0].reason}{where}")
    return lines


def _summary(results: list[checks.CheckResult]) -> str:
    counts = {s: sum(r.status == s for r in results) for s in ("fail", "warn", "pass", "skip")}
    return ", ".join(f"{n} {s}" for s, n in counts.items() if n)


def _versions(report: cluster.NodeReport) -> str:
    return ", ".join(f"{k} {report.versions.get(k) or 'unknown'}" for k in cluster.VERSION_KEYS)


def cabling_results(config: CheckConfig, profile: Profile) -> list[checks.CheckResult]:
    """``--topology``: the cabling against the rail-optimised plan, one line per departure (a pass line when
    there is none). Read before any node is checked, so a bad file is exit 2 before anything runs."""
    if config.topology is None:
        return []
    cabling = load_cabling(config.topology)
    rail_hcas = cabling_plan.rail_order(cabling, profile.rail_names, profile.excluded_hcas)
    return judge_cabling(cabling, rail_hcas, profile.rail_names)


def judge_cabling(cabling: Cabling, rail_hcas: Sequence[str], profile_rails: Sequence[str]) -> list[checks.CheckResult]:
    """The cabling against the rail-optimised plan with rails in ``rail_hcas`` order: one ``cabling`` fail per
    departure, or one pass, and a warning when the rails were read by position (HCAs not named as the profile's
    ``profile_rails``). ``check --topology`` and ``accept --topology`` judge a file by this one rule."""
    fabric, found = cabling_plan.check(cabling, rail_hcas)
    shape = cabling_plan.summary(fabric, len(fabric.unit_of))
    guessed = cabling_plan.by_position(fabric, profile_rails)
    said = [checks.CheckResult("cabling", "warn", guessed)] if guessed else []
    if not found:
        plan = "the rail-optimised plan says" if fabric.rail_optimised else "a fat tree: no link below its peers"
        return [checks.CheckResult("cabling", "pass", f"{shape}: cabled as {plan}"), *said]
    # unnamed adapters are not judged (a warning); every other finding is a departure (a failure)
    return [
        *(
            checks.CheckResult(
                "cabling", "warn" if f.kind == "unnamed" else "fail", f.line, f.node_port or f.switch_port
            )
            for f in found
        ),
        *said,
    ]


@dataclass(frozen=True)
class CheckAnswer:
    """What ``check`` (and ``accept``'s check phase) answers: each node's report, the cross-node comparison,
    the fabric's cabling, and the verdict the frame decided from them; printed as text or as checks.json."""

    profile: Profile
    reports: Sequence[cluster.NodeReport]
    cross: Sequence[checks.CheckResult]
    verdict: Verdict
    nranks: int = 1
    """The ranks the reports were gathered from (1: this node alone)."""
    cabling: Sequence[checks.CheckResult] = ()


def render(answer: CheckAnswer) -> str:
    """The text answer: one table for a single node; problems per node plus cross-node lines for many; the
    fabric's cabling (``--topology``); the verdict the frame decided (``bench.frame.decide``)."""
    profile, reports, cross, verdict = answer.profile, answer.reports, list(answer.cross), answer.verdict
    nranks, cabling = answer.nranks, answer.cabling
    everything = [r for rep in reports for r in rep.results] + cross + list(cabling)
    lines = []
    gathered = f" (gathered from {nranks} ranks)" if nranks > 1 else ""
    actions = profile.actions
    if len(reports) == 1:
        lines.append(f"railbench check: profile {profile.name} on {reports[0].node}{gathered}")
        lines.extend(_table(reports[0].results, actions, reports[0].node))
        lines.append(f"versions: {_versions(reports[0])}")
    else:
        lines.append(f"railbench check: profile {profile.name} on {len(reports)} nodes{gathered}")
        for report in reports:
            lines.append(f"node {report.node}: {report.verdict.upper()} ({_summary(list(report.results))})")
            lines.extend(_table(report.results, actions, report.node, only_problems=True))
        lines.append("across nodes:")
        lines.extend(_table(cross, actions, CROSS_NODE))
    if cabling:
        lines.append("fabric cabling:")
        lines.extend(_table(cabling, actions, FABRIC))
    skipped = list(dict.fromkeys(r.check for r in everything if r.status == "skip"))
    if skipped and verdict.word == "pass":
        # PASS is about what was judged: say by name what was not, so no one reads it as covered.
        if len(reports) == 1:
            lines.append(f"not judged (SKIP above, each with why): {', '.join(skipped)}")
        else:  # the node tables list problems only: the skips are said here, each with why
            lines.append(f"not judged: {', '.join(skipped)}")
            lines.extend(_not_judged(everything, len(reports)))
    lines.append(f"verdict: {verdict.label} ({_summary(everything)})")
    if verdict.word == "skip":
        lines.append("  SKIP is not a pass: no check applied here (each one's reason is above)")
    return "\n".join(lines)


def to_json(answer: CheckAnswer) -> JSONObject:
    """The JSON document ``--json`` prints (also what ``accept`` stores as checks.json)."""
    profile, reports, cross, verdict = answer.profile, answer.reports, answer.cross, answer.verdict
    nranks, cabling = answer.nranks, answer.cabling
    actions = profile.actions
    nodes = []
    for rep in reports:
        doc = rep.to_json()
        doc["results"] = [_result_json(r, rep.node, actions) for r in rep.results]
        nodes.append(doc)
    out: JSONObject = {
        "format_version": CHECKS_FORMAT_VERSION,  # first: readers decide from it how to read the rest
        "profile": profile.name,
        "nranks": nranks,
        "verdict": verdict.word,
        "reasons": list(verdict.reasons),
        "nodes": nodes,
        "cross_node": [_result_json(r, CROSS_NODE, actions) for r in cross],
    }
    if cabling:
        out["cabling"] = [_result_json(r, FABRIC, actions) for r in cabling]
    return out


CROSS_NODE = "all nodes"
"""Where checks.json's cross-node comparisons are said to be (the report's grid row of the same name)."""
FABRIC = "fabric"
"""Where the cabling's departures are said to be: the fabric's, not a node's."""


def _result_json(result: checks.CheckResult, node: str, actions: Actions) -> JSONObject:
    """One check result as checks.json keeps it: a failure or warning with what to do about it, from the
    profile's ``[actions]`` (``bench.profile.actions``), so the certificate names the action the run was judged with."""
    if result.status in ("fail", "warn") and not result.action:
        # a check that words its own action (the GPUDirect path's, with the PCI address) keeps it
        action = actions.for_check(result.check, node, result.device)
        if action:
            result = dataclasses.replace(result, action=action)
    return codec.fields_json(result)


def run(config: CheckConfig) -> int:
    """Check this node (and every node under an MPI launcher); print the verdict; 0 pass, 1 fail."""
    profile = load_profile(config.profile)  # the same file on every rank: fails everywhere or nowhere
    cabling = cabling_results(config, profile)  # likewise the same topology file
    nranks = _mpi_world() if config.gather == "auto" else 0
    gathered = nranks > 1
    try:
        report = local_report(config, profile)
    except UserError as exc:
        if not gathered:
            raise
        bad = checks.CheckResult(INPUT_CHECK, "fail", str(exc))
        root = sysroot.node_root(config.sysfs_root, socket.gethostname())
        report = cluster.NodeReport(cluster.node_label(root), (bad,), {})
    if gathered:
        reports = cluster.gather_reports(report)
        if reports is None:  # not rank 0: rank 0 prints and decides
            return cluster.broadcast_status(EXIT_PASS)
    else:
        reports = [report]
    # A node that could not be checked (bad input) has no answers to compare.
    comparable = [rep for rep in reports if not any(r.check == INPUT_CHECK for r in rep.results)]
    cross = cluster.compare_nodes(comparable) if len(comparable) > 1 else []
    everything = [r for rep in reports for r in rep.results] + cross + cabling
    verdict = decide(check_items(reports, cross, cabling))
    status = verdict.exit_status
    if any(r.check == INPUT_CHECK for r in everything):
        status = EXIT_USAGE
    answer = CheckAnswer(profile, reports, cross, verdict, max(nranks, 1), cabling)
    if config.json:
        sys.stdout.write(json.dumps(to_json(answer), indent=2) + "\n")
    else:
        sys.stdout.write(render(answer) + "\n")
    sys.stdout.flush()
    return cluster.broadcast_status(status) if gathered else status
