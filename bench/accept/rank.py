"""The rank side of ``railbench accept``: three phases in one set of ranks and one run directory, as a job
of the frame (``bench.frame.job``), which owns run.json, the guard, the verdict and the exit status.

1. check: every node runs the preflight checks (``bench.preflight.checks``); rank 0 gathers them through the
   store (``Run.coord``), compares the nodes and writes ``checks.json``;
2. rails (``bench.rails.rank.rails_test``): ``rails.json`` and rail/pair rows in results.csv;
3. the world sweep (``bench.sweep.rank.world_sweep``): rows in results.csv, the counters as evidence; not
   measured, with the reason, where the rails test found a dead link or node. Whether its calls are captured in
   CUDA graphs is probed only then (``bench.sweep.rank.agree_graph``), and not at all after a dead part;
4. the items judged: every check, collective, rail and node (``accept_items``), from which the frame decides
   the one verdict and writes ``junit.xml``; run.json's ``accept`` block lists them by group.

Every link is known before any world collective. On NCCL the world communicator rides the rails (each GPU's
channels leave through its nearest NIC), so a link whose port is ACTIVE but carries nothing hangs the first
world collective across nodes until IB gives up and torch's watchdog aborts it, and the run would end as a lost
rank before anything named the link. The rails test finds it first, within seconds (its link probe and
bounded group probes, ``bench.rails.measurement.groups``), and every agreement before it goes through the store:
``prepare`` checks only what the store can (the sizes fit every rank's memory), and the CUDA-graph capture probe, an
eager world all-reduce and a replay (``bench.measure.timing.graph_capture_works``), waits for the rails test.
"""

from __future__ import annotations

import dataclasses
import socket
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.accept import slurm
from bench.accept.config import AcceptConfig, accept_plan, validate
from bench.check.items import check_items
from bench.check.node import CROSS_NODE, FABRIC, CheckAnswer, judge_cabling, render, to_json
from bench.frame.decide import Item, decide, said, timed
from bench.frame.job import Job, run_job
from bench.frame.run import Run, setup_of, write_refused_is_infra
from bench.preflight import checks, cluster
from bench.preflight.checks import CheckResult
from bench.preflight.cluster import NodeReport
from bench.preflight.told import told
from bench.profile.actions import Actions
from bench.profile.cluster import Profile
from bench.rails.diagnosis.items import node_items, rail_items
from bench.rails.diagnosis.rails_outcome import RailsOutcome
from bench.rails.measurement import neighbours
from bench.rails.plan.acceptance import Plan
from bench.rails.plan.config import RailsSettings, retargeted
from bench.rails.plan.laps import Laps
from bench.rails.rank import planned_section, rails_before_init, rails_section, rails_test
from bench.rundir.files import atomic_write_json
from bench.rundir.findings import Finding, check_finding
from bench.rundir.rails_records import RailDefect
from bench.rundir.sections import AcceptSection, Judged
from bench.rundir.verdict import Verdict
from bench.runtime import env as benv
from bench.runtime.before_init import Prelude
from bench.runtime.dist import DistContext
from bench.runtime.env import RankInfo
from bench.sweep.config import RunConfig, sized
from bench.sweep.items import GROUP as SWEEP_GROUP
from bench.sweep.rank import agree_graph, agree_sweep, sweep_section, world_sweep


class AcceptJob(Job):
    """``railbench accept``: check, sweep and rails, judged as one."""

    command = "accept"

    def __init__(self, config: AcceptConfig) -> None:
        profile, settings = validate(config, with_history=False, topology=False)  # rank 0 reads it in before_init
        self.sweep: RunConfig = sized(config.sweep_config(config.output.out), profile)
        super().__init__(setup_of(config, settings.oob_ifname), profile)
        self.config = config
        self.settings: RailsSettings = settings
        self.graph = False
        self.laps = Laps()
        self.planned: Plan | None = None
        self.reports: list[NodeReport] = []
        self.outcome: RailsOutcome | None = None

    def before_init(self, prelude: Prelude) -> Path | None:
        """The rails' own before-init step: the same NIC variables on every rank of a node, so that the world
        sweep and the rails phase run on the NICs NCCL picks for each GPU, as ``railbench rails`` does."""
        self.settings, out_dir = rails_before_init(self.settings, self.profile, self.setup.output, prelude)
        return out_dir

    def retarget(self, profile: Profile) -> None:
        super().retarget(profile)
        self.settings = retargeted(self.settings, profile)

    def prepare(self, ctx: DistContext) -> dict[str, object]:
        # The launch and the world's set-up, marked once the world exists; rails adds its groups' set-up to it.
        self.laps.mark("start-up and rail groups")
        neighbours.refuse_short_tables(ctx, self.settings.socket_ifname, self.settings.timeout_s)
        # The plan for this shape (every rank computes the same), cut to --max-minutes when asked.
        self.planned = accept_plan(
            self.sweep, self.profile, self.settings, len(ctx.node_hosts), ctx.info.local_world_size, ctx.backend
        )
        if self.planned is not None:
            self.settings = self.planned.settings
            if self.planned.sweep is not None:
                self.sweep = dataclasses.replace(self.sweep, max_bytes=self.planned.sweep.max_bytes)
            if ctx.info.rank == 0:
                print("\n".join(self.planned.lines()), flush=True)
        # One --confirm for the whole run (as the plan left it): a world collective under its target is measured
        # again as often as a short rail group (bench.sweep.rank.measured_again).
        self.sweep = dataclasses.replace(self.sweep, confirm=self.settings.test.confirm)
        # Store-only here: the graph probe is a world collective, decided after the rails phase (see measure).
        self.graph = agree_sweep(self.sweep, ctx, probe_graph=False)
        sections: dict[str, object] = {
            "sweep": sweep_section(self.sweep, self.graph),
            "rails_test": rails_section(self.settings),
            "plan": planned_section(self.planned, self.laps),
        }
        scheduler = slurm.scheduler_section() if ctx.info.rank == 0 else None  # one sinfo, not one per rank
        if scheduler is not None:
            sections["scheduler"] = scheduler
        return sections

    def measure(self, run: Run) -> list[Item]:
        started = time.monotonic()
        reports = _node_checks(self.profile, run)
        cross: list[CheckResult] = []
        # --topology: the cabling is judged as `check --topology` judges it (the same file fails both)
        topology = self.settings.topology
        cabling = (
            judge_cabling(topology.cabling, topology.rail_hcas, self.profile.rail_names) if topology is not None else []
        )
        if reports is not None:
            cross = cluster.compare_nodes(reports) if len(reports) > 1 else []
            items = check_items(reports, cross, cabling)
            answer = CheckAnswer(self.profile, reports, cross, decide(items), run.ctx.info.world_size, cabling)
            checked = to_json(answer)
            write_refused_is_infra(
                run.out_dir, "checks.json", lambda: atomic_write_json(run.out_dir / "checks.json", checked)
            )
            print(render(answer), flush=True)
        self.laps.mark("check")
        checked_s = time.monotonic() - started
        rails_started = time.monotonic()
        outcome = rails_test(self.settings, run, self.laps, _gpudirect_checks(reports))
        rails_s = time.monotonic() - rails_started
        # Every rank hears from rank 0 whether the world communicator would cross a dead part.
        dead = run.coord.agree(_dead_parts(outcome), lambda posts: posts[0])
        if dead:
            swept = _not_measured(self.sweep.collectives, dead)
            if run.rank0:
                print(sweep_skipped_line(dead), flush=True)
                if run.ctx.backend == "nccl" and self.sweep.graph is not False:
                    print(f"# CUDA graph capture not probed: {_graph_not_probed(dead)}", flush=True)
        else:
            self.graph = agree_graph(self.sweep, run)
            run.update(sweep=sweep_section(self.sweep, self.graph))
            swept = world_sweep(self.sweep, run, self.graph)
        self.laps.mark("world sweep")
        run.update(plan=planned_section(self.planned, self.laps))
        if reports is None or outcome is None:
            return []  # not rank 0
        self.reports, self.outcome = reports, outcome
        phase = Checked(reports, cross, cabling, checked_s, self.profile.actions)
        items = judged_items(phase, swept, outcome, run.ctx.node_hosts, rails_s)
        run.update(accept=accept_summary(items))
        return items

    def after_verdict(self, run: Run, verdict: Verdict) -> dict[str, object]:
        """``--drain``: every node a defect names is drained (``bench.accept.slurm``)."""
        if not self.config.drain:
            return {}
        return {"drain": slurm.drain_section(self.reports, self.outcome, self.profile)}


def run_rank(config: AcceptConfig, info: RankInfo) -> int:
    """One rank of ``railbench accept``; every rank returns the same exit status."""
    return run_job(info, lambda: AcceptJob(config))


def _node_checks(profile: Profile, run: Run) -> list[NodeReport] | None:
    """Every node's preflight report on rank 0 (one per node: its local rank 0 speaks), None elsewhere; gathered
    through ``run.coord`` (on NCCL the store, in O(n)), never a world collective (see the module docstring)."""
    ctx = run.ctx
    report = None
    if ctx.info.local_rank == 0:
        # nccl-ib-retry weighs NCCL's retries against this run's own --timeout, not railbench's default
        results = tuple(
            checks.run_checks(profile, ctx.sysfs_root, (), benv.environ(), step_timeout_s=run.setup.launch.timeout_s)
        )
        report = NodeReport(socket.gethostname(), results, cluster.node_versions(profile, ctx.sysfs_root)).to_json()
    gathered = run.coord.gather(report)
    if gathered is None:
        return None
    return [NodeReport.from_json(doc) for doc in gathered if doc is not None]


def _dead_parts(outcome: RailsOutcome | None) -> str | None:
    """Rank 0: the dead links and nodes the rails test named, in one phrase; None when it named none (or on the
    other ranks, which have no outcome)."""
    if outcome is None:
        return None
    dead = [_where(d) for d in outcome.defects if d.conviction.symptom == "dead"]
    if not dead:
        return None
    more = f" and {len(dead) - 3} more" if len(dead) > 3 else ""
    return ", ".join(dead[:3]) + more


def _where(defect: RailDefect) -> str:
    """``the link node1 rail 1 (mlx5_2:1)``: a dead part as the verdict names it."""
    where = " ".join(
        part
        for part in (
            f"{defect.node}-{defect.peer}" if defect.node and defect.peer else defect.node,
            None if defect.rail is None else f"rail {defect.rail}",
            defect.device and f"({defect.device})",
        )
        if part
    )
    return f"the {defect.kind} {where}"


def _graph_not_probed(dead: str) -> str:
    """Why the CUDA-graph capture probe did not run: it is a world collective, after a dead part."""
    return (
        f"the rails test found {dead} dead, and the probe is a world collective (an eager all-reduce and a "
        "replay) that would hang on it"
    )


def sweep_skipped_line(dead: str) -> str:
    """The terminal's line for a world sweep not measured (run.json's collectives and the report say it too)."""
    return f"# world sweep skipped: {_skipped_because(dead)}"


def _skipped_because(dead: str) -> str:
    return (
        f"the rails test found {dead} dead, and the world communicator crosses every link (a world "
        "collective would hang until IB and torch's watchdog give up); run accept again once it is replaced"
    )


def _not_measured(collectives: Sequence[str], dead: str) -> list[Item]:
    """The world sweep's collectives, each not measured for the dead part(s) the rails test named."""
    reason = f"not measured: {_skipped_because(dead)}"
    return [Item(SWEEP_GROUP, name, "skip", reason) for name in collectives]


def _gpudirect_checks(reports: Sequence[NodeReport] | None) -> dict[str, Sequence[CheckResult]]:
    """The check phase's results as the rails test ties them to its defects (rank 0; empty elsewhere, where
    the rails test does not read them)."""
    return {rep.node: rep.results for rep in reports or ()}


def _failed_checks(
    reports: Sequence[NodeReport], folded: Collection[tuple[str, CheckResult]] = ()
) -> dict[str, list[Finding]]:
    """Each node's failed checks in its line, but those a rails defect tells (it names the node itself)."""
    return {
        rep.node: [
            check_finding(rep.node, r) for r in rep.results if r.status == "fail" and (rep.node, r) not in folded
        ]
        for rep in reports
    }


@dataclass(frozen=True)
class Checked:
    """The check phase's answers (rank 0): each node's, the cross-node comparison, the cabling, and how long."""

    reports: Sequence[NodeReport]
    cross: Sequence[CheckResult]
    cabling: Sequence[CheckResult] = ()
    seconds: float = 0.0
    actions: Actions = field(default_factory=Actions)
    """The profile's ``[actions]``: what a failed check's item says to do (``_acted``)."""


def judged_items(
    checked: Checked, swept: Sequence[Item], outcome: RailsOutcome, hosts: Sequence[str], rails_s: float = 0.0
) -> list[Item]:
    """Every item of the run from its phases' records. One fault, one defect: a link check's answer on a NIC the
    rails test named (``bench.preflight.told``) still fails, as the defect's evidence, and is not said again."""
    reports, cross = checked.reports, checked.cross
    folded = {(t.node, t.result) for t in told(outcome.defects, {r.node: r.results for r in reports}, cross)}
    # check_items makes one item per result, in this order (each node's, then across nodes, then the cabling).
    results = [
        *((report.node, r) for report in reports for r in report.results),
        *((CROSS_NODE, r) for r in cross),
        *((FABRIC, r) for r in checked.cabling),
    ]
    items = check_items(reports, cross, checked.cabling, folded)
    checks = [_acted(i, r, node, checked.actions) for i, (node, r) in zip(items, results, strict=True)]
    return accept_items(
        timed(checks, checked.seconds),
        swept,
        timed(rail_items(outcome), rails_s),
        timed(node_items(hosts, outcome, _failed_checks(reports, folded)), rails_s),
    )


def _acted(item: Item, result: CheckResult, node: str, actions: Actions) -> Item:
    """A failed check said with its action (its own, else the profile's ``[actions.checks]``: the one the check
    table and checks.json carry), as a rails defect says its own (``bench.rundir.finding_words.describe``): the
    terminal's end-of-run ``# FAIL`` line, run.json's items and junit.xml then say what to do, not only what is
    wrong."""
    action = result.action or actions.for_check(result.check, node, result.device)
    if item.state != "fail" or not action:
        return item
    return dataclasses.replace(item, findings=tuple(dataclasses.replace(f, action=action) for f in item.findings))


def accept_items(
    checks: Sequence[Item], swept: Sequence[Item], rails: Sequence[Item], nodes: Sequence[Item]
) -> list[Item]:
    """Every item accept judged, in the order an operator reads them: checks, collectives, rails, nodes."""
    return [*checks, *swept, *rails, *nodes]


_WORST = ("fail", "warn", "pass", "measured", "skip")
"""A group's word from its items' states, the worst first (a skip never hides a pass)."""


def accept_summary(items: Sequence[Item]) -> AcceptSection:
    """run.json's ``accept`` block: each node, rail, collective and node's checks with its item's state (the
    run's own verdict is run.json's ``verdict``, decided once by the frame)."""

    def group(prefix: str) -> dict[str, Judged]:
        return {i.name: Judged(verdict=i.state, reason=said(i)) for i in items if i.group == prefix}

    by_node: dict[str, set[str]] = {}
    for i in items:
        if i.group.startswith("railbench.check."):
            by_node.setdefault(i.group.removeprefix("railbench.check."), set()).add(i.state)
    return AcceptSection(
        nodes=group("railbench.nodes"),
        rails=group("railbench.rails"),
        intra_node=group("railbench.intra_node"),
        collectives=group("railbench.run"),
        checks={node: next(w for w in _WORST if w in states) for node, states in by_node.items()},
    )
