"""``railbench health``: the scheduler's health check of one node (docs/slurm.md, "The health check").

A fast, node-local subset of ``check`` (:data:`~bench.health.config.HEALTH_CHECKS`), bounded in time, that
prints one line per finding and a verdict line, for Slurm's ``HealthCheckProgram``, a ``Prolog`` or an
``Epilog``. With ``--drain`` it acts on the node's state as the drain policy says (``bench.slurm.drain``):
a failing node is drained with a short reason naming the part and the action; a passing node that railbench
drained is resumed; a node someone else drained is left as it is.

Exit status, as Slurm reads it: 0 the node is healthy (warnings and checks that do not apply included), 1 a
check failed (a prolog's non-zero status makes Slurm requeue the job and drain the node, which railbench has
then already drained with its own reason), 2 bad input. What Slurm answered to a drain or a resume is said
on its own line and does not change the status: the status is the node's health. torch is never imported.
"""

from __future__ import annotations

import socket
import sys
import time
from collections.abc import Callable

from bench import sysroot
from bench.check.items import check_items
from bench.exits import EXIT_PASS, UserError
from bench.fabric import devinfo
from bench.frame.decide import decide
from bench.health.config import HEALTH_CHECKS, HealthConfig
from bench.preflight import checks
from bench.preflight.check_base import CheckResult, Context
from bench.preflight.cluster import NodeReport
from bench.preflight.deadline import TIME_LIMIT_CHECK, Bounded, run_within
from bench.profile.cluster import Profile, load_profile
from bench.rundir.findings import hung_finding
from bench.runtime import env as benv
from bench.slurm import drain, scheduler
from bench.textlines import printable


def node_name(config: HealthConfig) -> str:
    """The node's name in Slurm: ``--node``, else slurmd's ``SLURMD_NODENAME``, else this host's short name."""
    return named_node(config)[0]


def named_node(config: HealthConfig) -> tuple[str, str]:
    """(the node's name in Slurm, where it came from): see :func:`node_name`."""
    if config.node:
        return config.node, "--node"
    slurm = benv.slurm_node_name()
    if slurm:
        return slurm, "SLURMD_NODENAME"
    return socket.gethostname().split(".")[0], "this host's name"


def run_checks(config: HealthConfig, profile: Profile, sleep: Callable[[float], None] = time.sleep) -> Bounded:
    """The health subset of the node's checks within the time limit (``bench.preflight.deadline``), so a read
    that hangs becomes a finding at the limit instead of a health check slurmd kills. ``sleep`` is the error
    window's wait (``Context``)."""
    root = sysroot.node_root(config.sysfs_root, socket.gethostname())
    ctx = Context(
        profile,
        root,
        (),
        benv.environ(),
        error_window_s=config.error_window_s,
        kernel_log=config.kernel_log,
        nvidia_smi=config.nvidia_smi,
        node=node_name(config),
        sleep=sleep,
        ibv_devinfo=config.ibv_devinfo,
    )
    selected = [c for c in checks.REGISTRY if c.name in HEALTH_CHECKS]
    return run_within(ctx, selected, config.time_limit_s)


def findings(checked: Bounded) -> list[CheckResult]:
    """Every failed or warned check, and the time limit's own finding when a check did not finish."""
    return [r for r in checked.answers if r.status in ("fail", "warn")]


def run(config: HealthConfig) -> int:
    """Check this node, say each finding, act on Slurm with ``--drain``; 0 healthy, 1 a check failed."""
    profile = load_profile(config.profile)
    problem = sysroot.problem(config.sysfs_root, socket.gethostname())
    if problem is not None:
        raise UserError(problem)
    if config.drain:
        scheduler.require("--drain")
        scheduler.check_node_name(*named_node(config))  # it goes into sinfo and scontrol: refused before a check
    window = profile.errors.window_s if config.error_window_s is None else config.error_window_s
    if window >= config.time_limit_s:
        raise UserError(
            f"the error counters' idle window ({window:g} s, [errors] window_s of profile {profile.name}) does not "
            f"fit in --time-limit {config.time_limit_s:g} s: pass a shorter --error-window or a longer --time-limit"
        )
    if config.ibv_devinfo is not None:
        devinfo.read_file(config.ibv_devinfo)  # another tool's output is one line and exit 2, before any check
    node = node_name(config)
    checked = run_checks(config, profile)
    found = findings(checked)
    report = NodeReport(node, tuple(checked.answers), {})
    verdict = decide(check_items([report], []))
    head = f"railbench health {node}:"
    lines = [f"{head} {f.status.upper()} {f.check}: {f.reason}{_action_clause(f, node, profile)}" for f in found]
    if config.drain:
        lines += [f"{head} {action.words}" for action in act(node, found, profile, verdict.word == "fail", checked)]
    counts = {s: sum(r.status == s for r in checked.results) for s in ("fail", "warn", "pass", "skip")}
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    lines.append(f"{head} {verdict.label} ({summary or 'nothing checked'} in {checked.seconds:.1f} s)")
    sys.stdout.write("\n".join(printable(line) for line in lines) + "\n")  # names and tools' words are outside text
    sys.stdout.flush()
    return verdict.exit_status if verdict.word == "fail" else EXIT_PASS


def _action_clause(result: CheckResult, node: str, profile: Profile) -> str:
    """``; action: ...`` for a failure or warning (the check's own words, else the profile's ``[actions]``), so
    the line says what to do without ``--drain`` too; nothing when no action is known."""
    action = result.action or profile.actions.for_check(result.check, node, result.device)
    return f"; action: {action}" if action else ""


def unjudged(reason: str, results: tuple[CheckResult, ...]) -> str | None:
    """Why a node railbench drained with ``reason`` cannot be resumed on ``results``: the check the reason names
    gave no judgement this time (every answer a skip, or no answer), or the part it names was measured across
    nodes, which no check of one node measures; None when it was judged, or the reason names no check of the health
    subset."""
    if drain.drained_for_measured(reason):
        return (
            "its part was measured across nodes (railbench rails/accept), which no check of one node measures; "
            "resume it by hand once the action is done"
        )
    check = drain.drained_for(reason, HEALTH_CHECKS)
    if check is None:
        return None
    mine = [r for r in results if r.check == check]
    if any(r.status != "skip" for r in mine):
        return None
    why = mine[0].reason if mine else "it did not run"
    return f"{check}, which it was drained for, was not judged this time ({why}); check the node by hand"


def act(
    node: str, found: list[CheckResult], profile: Profile, failed: bool, checked: Bounded
) -> list[drain.NodeAction]:
    """Drain a failing node with its first finding's short form; resume a passing node railbench drained,
    unless the check it drained for was not judged this time (``checked``: every check's answer)."""
    if not failed:
        resumed = drain.resume_if_ours(node, lambda reason: unjudged(reason, checked.results))
        return [resumed] if resumed is not None else []
    faults, _ = drain.check_faults(node, (f for f in found if f.check != TIME_LIMIT_CHECK), profile.actions)
    hung = checked.finding
    if hung is not None:
        said = "check the node: its drivers and devices"
        faults.append(drain.NodeFault(node, hung_finding(node, hung, said, checked.stuck_in)))
    return drain.drain_faulty(faults) if faults else []
