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
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from bench import sysroot
from bench.check.items import check_items
from bench.exits import EXIT_PASS, UserError
from bench.frame.verdict import decide
from bench.health.config import HEALTH_CHECKS, HealthConfig
from bench.preflight import checks
from bench.preflight.check_base import CheckResult, Context
from bench.preflight.cluster import NodeReport
from bench.profiles import Profile, load_profile
from bench.runtime import env as benv
from bench.slurm import drain, scheduler
from bench.textlines import printable


@dataclass(frozen=True)
class Checked:
    """What the node's checks said within the time limit."""

    results: tuple[CheckResult, ...]
    stuck_in: str | None
    """The check still running when the time limit passed, else None."""
    seconds: float


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


def run_checks(config: HealthConfig, profile: Profile, sleep: Callable[[float], None] = time.sleep) -> Checked:
    """The health subset of the node's checks, in a thread of their own so that a read that hangs (a wedged
    driver's sysfs file) becomes a finding at the time limit instead of a health check slurmd kills.
    ``sleep`` is the error window's wait (``Context``)."""
    root = sysroot.node_root(config.sysfs_root, socket.gethostname())
    ctx = Context(profile, root, (), benv.environ(), error_window_s=config.error_window_s, sleep=sleep)
    selected = [c for c in checks.REGISTRY if c.name in HEALTH_CHECKS]
    results: list[CheckResult] = []
    current: list[str] = []
    started = time.monotonic()

    def work() -> None:
        for check in selected:
            current.append(check.name)
            results.extend(check.answer(ctx))
        current.append("")

    worker = threading.Thread(target=work, name="railbench-health", daemon=True)
    worker.start()
    worker.join(config.time_limit_s)
    stuck = current[-1] if worker.is_alive() and current else None
    return Checked(tuple(results), stuck, time.monotonic() - started)


def findings(node: str, checked: Checked, config: HealthConfig) -> list[CheckResult]:
    """Every failed or warned check, and the time limit's own finding when a check did not finish."""
    found = [r for r in checked.results if r.status in ("fail", "warn")]
    if checked.stuck_in is not None:
        message = (
            f"{checked.stuck_in} did not finish within the {config.time_limit_s:g} s time limit: reading the "
            "node's devices hung"
        )
        found.append(CheckResult("time-limit", "fail", message, None))
    return found


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
    node = node_name(config)
    checked = run_checks(config, profile)
    found = findings(node, checked, config)
    report = NodeReport(node, (*checked.results, *(f for f in found if f.check == "time-limit")), {})
    verdict = decide(check_items([report], []))
    head = f"railbench health {node}:"
    lines = [f"{head} {f.status.upper()} {f.check}: {f.reason}" for f in found]
    if config.drain:
        lines += [f"{head} {action.words}" for action in act(node, found, profile, verdict.word == "fail")]
    counts = {s: sum(r.status == s for r in checked.results) for s in ("fail", "warn", "pass", "skip")}
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    lines.append(f"{head} {verdict.label} ({summary or 'nothing checked'} in {checked.seconds:.1f} s)")
    sys.stdout.write("\n".join(printable(line) for line in lines) + "\n")  # names and tools' words are outside text
    sys.stdout.flush()
    return verdict.exit_status if verdict.word == "fail" else EXIT_PASS


def act(node: str, found: list[CheckResult], profile: Profile, failed: bool) -> list[drain.NodeAction]:
    """Drain a failing node with its first finding's short form; resume a passing node railbench drained."""
    if not failed:
        resumed = drain.resume_if_ours(node)
        return [resumed] if resumed is not None else []
    faults, _ = drain.check_faults(node, (f for f in found if f.check != "time-limit"), profile.actions)
    if any(f.check == "time-limit" for f in found):
        hung = next(f for f in found if f.check == "time-limit")
        faults.append(drain.NodeFault(node, "", hung.reason, "check the node: its drivers and devices"))
    return drain.drain_faulty(faults) if faults else []
