"""The rank side of ``railbench rails`` (and of the rails part of ``railbench accept``).

``rails_phase`` runs on every rank inside an existing world process group: it makes the rail groups, runs
the rail-group collectives (all rails at once, then one rail at a time inside counter windows), the
round-robin pair matrix, gathers everything to rank 0, and rank 0 localises and builds the outcome.
``RailsJob`` is the standalone command: a job of the frame (``bench.frame.job``), which owns the process
group, the run directory, run.json, the verdict and the exit status.
"""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.exits import UserError
from bench.fabric.hca import select_hcas
from bench.fabric.sysfs import Sysfs, ib_ports, net_devices
from bench.frame.job import Job, run_job
from bench.frame.run import Launch, Run, write_refused_is_infra
from bench.frame.verdict import Item
from bench.measure.collectives import get_collective
from bench.measure.timing import Budget, group_max, measure
from bench.netaddr import interface_ipv4
from bench.profiles import Profile
from bench.rails import evidence, intranode, judge, output, plan, records, windows
from bench.rails.budget import cell_budget, chunks_per_message
from bench.rails.config import RailsConfig, RailsSettings, validate
from bench.rails.corroborate import corroborate
from bench.rails.items import rail_items
from bench.rails.laps import Laps, compared
from bench.rails.layout import RailLayout, interface_for_rail, rail_layout
from bench.rails.live import LiveRails
from bench.rails.measure import PairTime, broadcast_object, gather_objects, make_rail_groups, p2p_wait
from bench.rails.pairs import PairRunner
from bench.rundir.files import proposed_run_dir
from bench.runtime import env as benv
from bench.runtime.before_init import Prelude, PreludeStep, agree_all_ok, pin_rail, rail_pin, run_directory
from bench.runtime.dist import DistContext
from bench.runtime.env import RankInfo
from bench.runtime.watchdog import Watchdog

CONNECT_S = 5.0
"""Seconds a rail group's members get to connect before the group counts as not formed (a dead link)."""


def _my_interface(settings: RailsSettings, layout: RailLayout, rank: int) -> str | None:
    """The interface this rank's rail binds (socket rails), after every rank agrees the choice is valid."""
    problem, ifname = None, None
    if settings.socket_ifname:
        node, rail = layout.where(rank)
        available = [d.name for d in net_devices(Sysfs(Path("/sys")))]
        try:
            ifname = interface_for_rail(settings.socket_ifname, available, rail, layout.nodes[node])
        except UserError as exc:
            problem = str(exc)
    problems = [p for p in gather_objects(problem) if p]
    if problems:
        raise UserError(problems[0])
    return ifname


def rail_prelude(settings: RailsSettings, profile: Profile, proposal: Callable[[], Path]) -> PreludeStep:
    """The rails command's before-init step: the run directory, and on NCCL this rank's rail pinned.

    NCCL reads ``NCCL_SOCKET_IFNAME``/``NCCL_IB_HCA`` once, at the first communicator, so local rank k is
    kept on rail k's interface or HCA before the world exists; the world communicator of a rails run then
    rides rail k too, which is what a rail-optimised fabric does anyway (GPU k reaches NIC k).
    """

    def step(prelude: Prelude) -> Path:
        out_dir = run_directory(prelude, proposal)
        if prelude.reads_nccl_env:
            pin_rail(prelude, _rail_pin(settings, profile, prelude))
        return out_dir

    return step


def _rail_pin(settings: RailsSettings, profile: Profile, prelude: Prelude) -> dict[str, str]:
    rail = prelude.info.local_rank
    sysfs = Sysfs(Path("/sys"))
    problem, ifnames, hcas = None, [], []
    if settings.socket_ifname:
        try:
            ifnames = [
                interface_for_rail(
                    settings.socket_ifname, [d.name for d in net_devices(sysfs)], rail, socket.gethostname()
                )
            ]
        except UserError as exc:
            problem = str(exc)
    else:
        active = [p.name for p in ib_ports(sysfs) if p.state == "ACTIVE"]
        wanted = benv.get("NCCL_IB_HCA") or profile.recommended_env.get("NCCL_IB_HCA")
        hcas = select_hcas(wanted, active)
    agree_all_ok(prelude, "rail_pin", problem)
    return rail_pin(0 if ifnames else rail, socket_ifname=settings.socket_ifname, ifnames=ifnames, hcas=hcas)


def _rail_result(coll: str, mode: records.Mode, rail: int, nnodes: int, res: Any) -> records.RailResult:
    return records.RailResult(
        rail,
        coll,
        mode,
        nnodes,
        res.nbytes,
        res.count,
        res.iters,
        res.time_us,
        res.time_us_min,
        res.time_us_max,
        res.wrong,
    )


def _measure_rail(
    settings: RailsSettings,
    ctx: DistContext,
    coll: str,
    group: Any,
    n: int,
    *,
    iters: int,
    warmup: int,
    rate_Gbps: float | None,
) -> Any:
    """One collective in this rank's rail group, within a cell budget from ``rate_Gbps`` (the line rate, or
    the fastest rail's busbw); where no rate is known yet every rail is measured at once (``rate_Gbps``
    None) and the budget comes from the fastest rail's probe, agreed over the world."""
    import torch
    import torch.distributed as dist

    group_rank = dist.get_group_rank(group, ctx.info.rank)
    collective = get_collective(coll)
    # Every rank sends about busbw-factor x the message per call, the pair budget's "wire bytes".
    wire = int(settings.rail_bytes * max(1.0, collective.busbw_factor(n)))
    chunks = chunks_per_message(settings.rail_bytes)
    budget: Budget
    if rate_Gbps is not None or settings.cell_budget_s is not None:
        budget = cell_budget(wire, warmup + iters, rate_Gbps, settings.cell_budget_s)
    else:
        # Every rail at once and no rate known: the fastest rail's probe sets every rail's budget, so a
        # rail that fell to 1% costs a few of the fastest rail's cells, not a hundred.
        def budget(probe_s: float) -> float:
            fastest = -group_max(-probe_s, None, ctx.device)
            rate = wire / chunks * 8 / fastest / 1e9 if fastest > 0 else None
            return cell_budget(wire, warmup + iters, rate)

    return measure(
        collective,
        settings.rail_bytes,
        group_rank,
        n,
        group,
        dtype=torch.float32,
        elsize=4,
        device=ctx.device,
        iters=iters,
        warmup=warmup,
        check=settings.check,
        budget_s=budget,
        chunks=chunks,
    )


def _ib_rates(local_rank: int) -> dict[str, float] | None:
    """IB port -> line rate from sysfs, read by one rank per node."""
    if local_rank != 0:
        return None

    return {p.name: p.rate_gbps for p in ib_ports(Sysfs(Path("/sys"))) if p.rate_gbps}


def rails_phase(
    settings: RailsSettings,
    ctx: DistContext,
    watchdog: Watchdog,
    live: LiveRails | None = None,
    laps: Laps | None = None,
) -> records.RailsOutcome | None:
    """Every rail and every pair; returns the outcome on rank 0, None elsewhere. ``live`` (rank 0) writes the
    rail groups' results and each pair round down as soon as they are gathered; ``laps`` marks the end of each
    phase of the plan (``bench.rails.plan``)."""
    import torch.distributed as dist

    layout = rail_layout(ctx.hosts)
    rank, local_rank = ctx.info.rank, ctx.info.local_rank
    n = len(layout.nodes)
    if n < 2:
        reason = f"1 node ({layout.nodes[0]}): a rail group needs local rank k of at least 2 nodes"
        return records.RailsOutcome(skipped=reason, nodes=layout.nodes, rails=layout.rails) if rank == 0 else None
    laps = laps or Laps()
    node, rail = layout.where(rank)
    my_ifname = _my_interface(settings, layout, rank)
    # One rank per node reads its counters at every window's edge (bench.rails.windows).
    counts = windows.NodeCounters(local_rank == 0)
    watchdog.enter("creating the rail groups")
    dist.barrier()  # every member starts connecting at once: a late one must not read as a dead link
    # A member that waits for a peer that cannot connect gives up after about five of its group's timeouts
    # (gloo retries), so at most a sixth of the step's time lets every rank learn within the step what broke;
    # CONNECT_S keeps a dead link from costing minutes where connecting takes well under a second.
    op_timeout_s = 0.8 * settings.timeout_s
    groups, problem = make_rail_groups(
        layout,
        my_ifname if ctx.backend == "gloo" else None,
        max(1.0, min(CONNECT_S, settings.timeout_s / 6)),
        op_timeout_s,
    )
    group = groups[rail]
    address = interface_ipv4(my_ifname) if my_ifname else None
    counts.close("forming the rail groups")
    laps.mark("start-up and rail groups")
    reports = gather_objects(
        (evidence.GroupFailure(layout.nodes[node], rail, address, my_ifname, problem), counts.windows, counts.whole())
    )
    formed = [failure for failure, _, _ in reports]
    watchdog.leave()
    if any(f.problem for f in formed):
        # A rail whose members cannot even connect: name the dead link; measuring the rest waits for a fix.
        if rank != 0:
            return None
        dead = evidence.dead_links(formed, layout.nodes, settings.rail_rate_gbps)
        return records.RailsOutcome(
            None,
            layout.nodes,
            layout.rails,
            defects=tuple(dead),
            counters={f.node: whole for f, _, whole in reports if whole is not None},
            error_windows=windows.join({f.node: mine for f, mine, whole in reports if whole is not None}),
        )

    mine: list[records.RailResult] = []
    fastest = 0.0
    for coll in settings.collectives:
        watchdog.enter(f"{coll} in every rail group at once")
        res = _measure_rail(
            settings,
            ctx,
            coll,
            group,
            n,
            iters=settings.iters,
            warmup=settings.warmup,
            rate_Gbps=settings.rail_rate_gbps,
        )
        watchdog.leave()
        result = _rail_result(coll, "concurrent", rail, n, res)
        fastest = max(fastest, result.busbw_Gbps)
        if node == 0:
            mine.append(result)
    # The fastest rail group's busbw, the same on every rank: where no line rate is known, the budgets of
    # the rails measured alone and of the pairs start from it.
    sent = gather_objects((fastest, mine))
    start = max(f for f, _ in sent)
    if live is not None:
        live.add_rails([r for _, results in sent for r in results])
    known = settings.rail_rate_gbps or (start if start > 0 else None)

    # One rail at a time inside a counter window: which device carried it, and what stayed quiet. A window
    # closes after every rank's last measurement (the gather above, then each rail's closing barrier), and the
    # next measurement starts only after the next barrier, when every node has read its counters.
    counts.close("every rail group at once")
    laps.mark("rail groups, every rail at once")
    alone: list[dict[str, int] | None] = []
    for k in range(layout.rails):
        watchdog.enter(f"rail {k} alone")
        dist.barrier()
        if rail == k and settings.isolation:
            for coll in settings.collectives:
                res = _measure_rail(
                    settings, ctx, coll, group, n, iters=settings.iters, warmup=settings.warmup, rate_Gbps=known
                )
                if node == 0:
                    mine.append(_rail_result(coll, "isolated", rail, n, res))
        elif rail == k:
            # Only to see which device carries the rail: one call is plenty of bytes.
            _measure_rail(settings, ctx, settings.collectives[0], group, n, iters=1, warmup=0, rate_Gbps=known)
        dist.barrier()
        alone.append(counts.close(f"rail {k} alone", (k,)))
        watchdog.leave()
    laps.mark("each rail alone (counter windows)")

    times: list[PairTime] = []
    runner = None
    if settings.pairs:
        keep = live.add_pairs if live is not None else None
        runner = PairRunner(settings, layout, rank, group, ctx.device, start, p2p_wait(group, op_timeout_s), keep)
        times = runner.matrix(watchdog.enter, watchdog.leave)
        counts.close("pair matrix")
        laps.mark("pair matrix")

    watchdog.enter("gathering the rails results")
    gathered = gather_objects(
        {
            "host": ctx.hosts[rank],
            "results": mine,
            "times": times,
            "windows": alone,
            "whole": counts.whole(),
            "error_windows": counts.windows,
            "ifname": my_ifname,
            "rail": rail,
            "rates": _ib_rates(local_rank),
        }
    )
    watchdog.leave()
    if runner is not None and settings.confirm:
        # Every suspect is measured again, in its own round and beside the same round's other suspects,
        # before anything is named.
        found = judge.suspect_cells(settings, layout, gathered) if rank == 0 else None
        again = runner.confirm(broadcast_object(found), watchdog.enter, watchdog.leave)
        counts.close("re-measurements")
        watchdog.enter("gathering the re-measurements")
        for g, (extra, read) in zip(gathered, gather_objects((again, counts.windows[-1:])), strict=True):
            g["times"] = g["times"] + extra
            g["error_windows"] = g["error_windows"] + read
        watchdog.leave()
        laps.mark("confirmation")
    if rank != 0:
        return None
    return dataclasses.replace(judge.outcome(settings, layout, gathered), process_groups=1 + len(groups))


def guarded_rails_phase(
    settings: RailsSettings, run: Run, laps: Laps | None = None
) -> tuple[records.RailsOutcome | None, LiveRails | None]:
    """``rails_phase`` (and the intra-node matrix) under the frame's guard: a hang, a lost rank, Ctrl-C or
    SIGTERM is recorded in run.json and raised on (exit 3, or 130/143), after what was measured is written.
    Returns the outcome and the live writer on rank 0, (None, None) elsewhere."""
    ctx = run.ctx
    live = None
    if run.rank0:
        layout = rail_layout(ctx.hosts)
        live = LiveRails(run, layout.nodes, layout.rails, settings.rail_rate_gbps, settings.iters)
    with run.guarded() as watchdog:
        outcome = rails_phase(settings, ctx, watchdog, live, laps)
        if intranode.wanted(settings, ctx.backend):
            outcome = intranode.attach(outcome, intranode.intra_node_phase(settings, ctx, watchdog, live))
            if laps is not None:
                laps.mark("intra-node pairs")
        # The fabric testifies: each defect with its devices' error counters and what to do about it.
        return (None if outcome is None else corroborate(outcome, settings.errors, settings.actions)), live


def rails_test(settings: RailsSettings, run: Run, laps: Laps | None = None) -> records.RailsOutcome | None:
    """The rails test on every rank; on rank 0 its outcome, written (rails.json, results.csv rows) and
    printed. ``rails`` and ``accept`` both run it (``laps``: the run's phase clock)."""
    outcome, live = guarded_rails_phase(settings, run, laps)
    if outcome is None or live is None:
        return None
    write_refused_is_infra(
        run.out_dir, "rails.json", lambda: output.write_outputs(outcome, run.out_dir, live, settings.iters)
    )
    output.print_outcome(outcome, settings)
    run.update(rails_skipped=outcome.skipped)
    return outcome


# --- the standalone command ------------------------------------------------------------------------------


class RailsJob(Job):
    """``railbench rails``: every rail and every pair, judged per rail (``bench.rails.items``)."""

    command = "rails"

    def __init__(self, config: RailsConfig) -> None:
        profile, settings = validate(config, with_history=False)
        launch = Launch(
            config.backend,
            config.timeout_s,
            settings.oob_ifname,
            config.out,
            config.cluster,
            config.history,
            config.no_history,
        )
        super().__init__(launch, profile)
        self.settings = settings
        self.laps = Laps()
        self.planned: plan.Plan | None = None

    def before_init(self, prelude: Prelude) -> Path | None:
        launch = self.launch
        return rail_prelude(self.settings, self.profile, lambda: proposed_run_dir(launch.out, launch.cluster))(prelude)

    def prepare(self, ctx: DistContext) -> dict[str, Any]:
        # The plan for this shape (every rank computes the same), cut to --max-minutes when asked.
        layout = rail_layout(ctx.hosts)
        intra = intranode.wanted(self.settings, ctx.backend)
        self.planned = plan.for_run(len(layout.nodes), layout.rails, self.settings, intra=intra)
        if self.planned is not None:
            self.settings = self.planned.settings
            if ctx.info.rank == 0:
                print("\n".join(self.planned.lines()), flush=True)
        return {"rails_test": rails_section(self.settings), "plan": planned_section(self.planned, self.laps)}

    def measure(self, run: Run) -> list[Item]:
        outcome = rails_test(self.settings, run, self.laps)
        run.update(plan=planned_section(self.planned, self.laps))
        return rail_items(outcome) if outcome is not None else []


def run_rank(config: RailsConfig, info: RankInfo) -> int:
    """One rank of the standalone ``railbench rails``; every rank returns the same exit status."""
    return run_job(info, lambda: RailsJob(config))


def rails_section(settings: RailsSettings) -> dict[str, Any]:
    """run.json's ``rails_test``: the rails settings as resolved from flags, profile and defaults."""
    return {
        "collectives": list(settings.collectives),
        "rail_bytes": settings.rail_bytes,
        "pair_bytes": settings.pair_bytes,
        "iters": settings.iters,
        "warmup": settings.warmup,
        "repeats": settings.repeats,
        "seed": settings.seed,
        "isolation": settings.isolation,
        "pairs": settings.pairs,
        "intra_node": settings.intra_node,
        "relative_fraction": settings.relative_fraction,
        "pass_fraction": settings.pass_fraction,
        "socket_ifname": settings.socket_ifname,
        "confirm": settings.confirm,
        "cell_budget_s": settings.cell_budget_s,
        "topology": settings.topology.cabling.source if settings.topology is not None else None,
        "max_minutes": settings.max_minutes,
        "oob_ifname": settings.oob_ifname,
        "host": socket.gethostname(),
    }


def planned_section(planned: plan.Plan | None, laps: Laps) -> dict[str, Any] | None:
    """run.json's ``plan``: the projection beside what each phase has taken so far (``bench.rails.laps``)."""
    return compared(planned.as_dict() if planned is not None else None, laps.seconds)
