"""The rank side of ``railbench rails`` (and of the rails part of ``railbench accept``).

``rails_phase`` runs on every rank inside an existing world process group: it makes the rail groups, runs
the rail-group collectives (all rails at once, then one rail at a time inside counter windows), the
round-robin pair matrix, gathers everything to rank 0, and rank 0 localises and builds the outcome.
``run_rank`` is the standalone command around it: process group, run directory, run.json, exit status.
"""

from __future__ import annotations

import dataclasses
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.errors import EXIT_FAIL, EXIT_INFRA, EXIT_PASS, UserError
from bench.fabric.hca import select_hcas
from bench.fabric.sysfs import Sysfs, ib_ports, net_devices
from bench.frame.finish import finish_run
from bench.frame.guard import EndRecorder, guarded
from bench.frame.record import RunRecord, base_metadata, iso_utc
from bench.measure.collectives import get_collective
from bench.measure.timing import Budget, group_max, measure
from bench.netaddr import interface_ipv4
from bench.profiles import Profile
from bench.rails import evidence, intranode, judge, output, records, windows
from bench.rails.budget import cell_budget, chunks_per_message
from bench.rails.config import RailsConfig, RailsSettings, validate
from bench.rails.corroborate import corroborate
from bench.rails.layout import RailLayout, interface_for_rail, rail_layout
from bench.rails.measure import PairTime, broadcast_object, gather_objects, make_rail_groups, p2p_wait
from bench.rails.pairs import PairRunner
from bench.rundir.files import ResultsWriter, default_cluster_name, default_run_dir, proposed_run_dir
from bench.runtime import env as benv
from bench.runtime.before_init import Prelude, PreludeStep, agree_all_ok, pin_rail, rail_pin, run_directory
from bench.runtime.dist import DistContext, agree_on_exit_status, broadcast_str, quiet_usage_exit, run_as_rank
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


def rails_phase(settings: RailsSettings, ctx: DistContext, watchdog: Watchdog) -> records.RailsOutcome | None:
    """Every rail and every pair; returns the outcome on rank 0, None elsewhere."""
    import torch.distributed as dist

    layout = rail_layout(ctx.hosts)
    rank, local_rank = ctx.info.rank, ctx.info.local_rank
    n = len(layout.nodes)
    if n < 2:
        reason = f"1 node ({layout.nodes[0]}): a rail group needs local rank k of at least 2 nodes"
        return records.RailsOutcome(skipped=reason, nodes=layout.nodes, rails=layout.rails) if rank == 0 else None
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
    start = max(gather_objects(fastest))
    known = settings.rail_rate_gbps or (start if start > 0 else None)

    # One rail at a time inside a counter window: which device carried it, and what stayed quiet. A window
    # closes after every rank's last measurement (the gather above, then each rail's closing barrier), and the
    # next measurement starts only after the next barrier, when every node has read its counters.
    counts.close("every rail group at once")
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

    times: list[PairTime] = []
    runner = None
    if settings.pairs:
        runner = PairRunner(settings, layout, rank, group, ctx.device, start, p2p_wait(group, op_timeout_s))
        times = runner.matrix(watchdog.enter, watchdog.leave)
        counts.close("pair matrix")

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
    if rank != 0:
        return None
    return dataclasses.replace(judge.outcome(settings, layout, gathered), process_groups=1 + len(groups))


def guarded_rails_phase(
    settings: RailsSettings, ctx: DistContext, record_end: EndRecorder
) -> records.RailsOutcome | None:
    """``rails_phase`` (and the intra-node matrix) under ``bench.frame.guard``: a hang, a lost rank, Ctrl-C
    or SIGTERM is recorded through ``record_end`` and raised on (exit 3, or 130/143)."""
    with guarded(ctx, settings.timeout_s, record_end) as watchdog:
        outcome = rails_phase(settings, ctx, watchdog)
        if intranode.wanted(settings, ctx.backend):
            outcome = intranode.attach(outcome, intranode.intra_node_phase(settings, ctx, watchdog))
        # The fabric testifies: each defect with its devices' error counters and what to do about it.
        return None if outcome is None else corroborate(outcome, settings.errors, settings.actions)


# --- the standalone command ------------------------------------------------------------------------------


def run_rank(config: RailsConfig, info: RankInfo) -> int:
    """One rank of the standalone ``railbench rails``; every rank returns the same exit status."""
    try:
        profile, settings = validate(config)
    except UserError:
        if info.rank != 0:
            return quiet_usage_exit()
        raise
    return run_as_rank(
        info,
        config.backend,
        config.timeout_s,
        settings.oob_ifname,
        lambda ctx: _standalone(config, settings, profile, ctx),
        before_init=rail_prelude(settings, profile, lambda: proposed_run_dir(config.out, config.cluster)),
    )


def _standalone(config: RailsConfig, settings: RailsSettings, profile: Profile, ctx: DistContext) -> int:
    rank = ctx.info.rank
    cluster = config.cluster or default_cluster_name(ctx.hosts[0])
    out_dir = ctx.out_dir or Path(
        broadcast_str(ctx.store, "out_dir", str(config.out or default_run_dir(cluster)), rank, 60.0)
    )
    record, writer = None, None
    if rank == 0:
        out_dir.mkdir(parents=True, exist_ok=True)
        record = RunRecord(out_dir, metadata(ctx, cluster, profile, settings, "rails"))
        writer = ResultsWriter(out_dir / "results.csv")

    def record_end(status: str, exit_status: int, failure: dict[str, Any] | None) -> None:
        if record is not None:
            extra = {"failure": failure} if failure else {}
            record.update(
                status=status,
                verdict="error" if status == "failed" else None,
                exit_status=exit_status,
                finished_utc=iso_utc(),
                **extra,
            )

    outcome = guarded_rails_phase(settings, ctx, record_end)
    status = EXIT_PASS
    if outcome is not None and record is not None:
        output.write_outputs(outcome, out_dir, writer, settings.iters)
        output.print_outcome(outcome, settings)
        status = EXIT_FAIL if outcome.failed else EXIT_PASS
        measured = not outcome.skipped or (outcome.intra_node is not None and not outcome.intra_node.skipped)
        verdict = "skip" if not measured else ("fail" if outcome.failed else "pass")
        record.update(
            status="complete",
            verdict=None if verdict == "skip" else verdict,
            exit_status=status,
            finished_utc=iso_utc(),
            rails_skipped=outcome.skipped,
        )
        if finish_run(out_dir, profile, history=config.history, no_history=config.no_history):
            status = status or EXIT_INFRA  # a FAIL verdict keeps exit 1
            record.update(exit_status=status, finish="failed")
        print(f"# run directory: {out_dir}", flush=True)
        sys.stdout.flush()
    return agree_on_exit_status(ctx, status)


def metadata(ctx: DistContext, cluster: str, profile: Profile, settings: RailsSettings, command: str) -> dict[str, Any]:
    """run.json for a rails or accept run, in the keys every railbench command writes."""
    return {
        **base_metadata(ctx, cluster, profile, command),
        "rails_test": {
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
            "oob_ifname": settings.oob_ifname,
            "host": socket.gethostname(),
        },
    }
