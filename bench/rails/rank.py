"""The rank side of ``railbench rails`` (and of the rails part of ``railbench accept``).

``rails_phase`` runs on every rank inside an existing world process group: it makes the rail groups, runs
the rail-group collectives (all rails at once, then one rail at a time inside counter windows), the
round-robin pair matrix, gathers everything to rank 0, and rank 0 localises and builds the outcome.
``RailsJob`` is the standalone command: a job of the frame (``bench.frame.job``), which owns the process
group, the run directory, run.json, the verdict and the exit status.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bench import codec
from bench.exits import UserError
from bench.fabric.rail_nics import rail_nic
from bench.fabric.sysfs import Sysfs, ib_ports, net_devices
from bench.frame.config_parts import Output
from bench.frame.decide import Item, timed
from bench.frame.job import Job, run_job
from bench.frame.run import Run, setup_of, write_refused_is_infra
from bench.jsondoc import JSONObject
from bench.measure import device as device_ops
from bench.profile.cluster import Profile
from bench.rails import output
from bench.rails.diagnosis import judge, rails_outcome
from bench.rails.diagnosis.causes import Reports
from bench.rails.diagnosis.corroborate import corroborate
from bench.rails.diagnosis.items import local_cause_items, rail_items
from bench.rails.diagnosis.matrix import PairTime
from bench.rails.live_output import LiveRails
from bench.rails.measurement import bootstrap_nic, intranode, local_causes, neighbours, steps, windows
from bench.rails.measurement.groups import RailGroups, form_rail_groups
from bench.rails.plan import acceptance
from bench.rails.plan.config import RailsConfig, RailsSettings, retargeted, validate, with_topology
from bench.rails.plan.laps import Laps, compared
from bench.rails.plan.layout import RailLayout, interface_for_rail, rail_layout
from bench.rundir.files import proposed_run_dir
from bench.rundir.railsdoc import RailsDoc
from bench.rundir.sections import RailsTestSettings
from bench.runtime import env as benv
from bench.runtime.before_init import Prelude, PreludeStep, refuse_together, run_directory, shared_nic_environment
from bench.runtime.coord import Coord, coordinator
from bench.runtime.dist import DistContext, gpu_bus_id, torch_timeout_s
from bench.runtime.env import RankInfo
from bench.runtime.watchdog import Watchdog

if TYPE_CHECKING:
    pass


def _my_interface(settings: RailsSettings, layout: RailLayout, rank: int, coord: Coord, sysfs: Sysfs) -> str | None:
    """The interface this rank's rail binds (socket rails), after every rank agrees the choice is valid."""
    problem, ifname = None, None
    if settings.socket_ifname:
        node, rail = layout.where(rank)
        available = [d.name for d in net_devices(sysfs)]
        try:
            ifname = interface_for_rail(settings.socket_ifname, available, rail, layout.nodes[node])
        except UserError as exc:
            problem = str(exc)
    first = coord.agree(problem, lambda posted: next((p for p in posted if p), None))
    if first:
        raise UserError(first)
    return ifname


def rails_before_init(
    settings: RailsSettings, profile: Profile, output: Output, prelude: Prelude
) -> tuple[RailsSettings, Path | None]:
    """What ``rails`` and ``accept`` do before the first communicator: ``--topology`` read by rank 0 alone
    (``bench.rails.plan.config.with_topology``), then :func:`rail_prelude`. Returns the settings with the topology
    (rank 0) and the agreed run directory."""
    settings = with_topology(settings, lambda on_rank0: refuse_together(prelude, "topology", on_rank0))
    out_dir = rail_prelude(settings, profile, lambda: proposed_run_dir(output.out, output.cluster))(prelude)
    return settings, out_dir


def rail_prelude(settings: RailsSettings, profile: Profile, proposal: Callable[[], Path]) -> PreludeStep:
    """The before-init step of ``rails`` and ``accept``: the run directory, and on NCCL its NIC variables.

    No rank gets a NIC of its own: NCCL reads ``NCCL_IB_HCA``/``NCCL_SOCKET_IFNAME`` once per process and merges
    the NIC lists of a node's ranks in every communicator, so they must be the same on every rank of a node
    (``bench.runtime.before_init.nic_disagreement``). Every rank gets the profile's values where the user set
    none (and on socket rails the rail interface list; on IB rails the management interface for NCCL's own
    sockets, never loopback for a job across hosts, ``bench.rails.measurement.bootstrap_nic``), and NCCL's own topology
    takes each GPU to its nearest NIC (``bench.fabric.rail_nics``); the counters prove which NIC carried each
    rail (``bench.rails.diagnosis.evidence``).
    """
    defaults = {
        "NCCL_IB_HCA": profile.recommended_env.get("NCCL_IB_HCA"),
        "NCCL_SOCKET_IFNAME": settings.socket_ifname or profile.recommended_env.get("NCCL_SOCKET_IFNAME"),
    }

    def step(prelude: Prelude) -> Path:
        out_dir = run_directory(prelude, proposal)
        nics = dict(defaults)
        if profile.uses_ib_verbs and prelude.reads_nccl_env and not nics["NCCL_SOCKET_IFNAME"]:
            # NCCL's bootstrap and IB handshakes off the rails (bench.rails.measurement.bootstrap_nic).
            nics["NCCL_SOCKET_IFNAME"] = bootstrap_nic.on_management(prelude, settings.oob_ifname)
        shared_nic_environment(prelude, nics)
        return out_dir

    return step


def _my_nic(ctx: DistContext, my_ifname: str | None) -> rails_outcome.ExpectedNic:
    """The NIC this rank's rail should leave through on its node: the interface it binds (socket rails), else the
    NIC nearest its GPU among those NCCL_IB_HCA selects (``bench.fabric.rail_nics``); unknown on a CPU."""
    if my_ifname:
        return rails_outcome.ExpectedNic(my_ifname)
    if not device_ops.is_cuda(ctx.device):
        return rails_outcome.ExpectedNic(None)
    bus = gpu_bus_id(int(ctx.device.index))
    found = rail_nic(Sysfs(ctx.sysfs_root), bus, benv.get("NCCL_IB_HCA"))
    return rails_outcome.ExpectedNic(found.nic, found.state, found.distance, bus, found.shared)


def _ib_rates(local_rank: int, sysfs: Sysfs) -> dict[str, float] | None:
    """IB port -> line rate from sysfs, read by one rank per node."""
    if local_rank != 0:
        return None
    return {p.name: p.rate_gbps for p in ib_ports(sysfs) if p.rate_gbps}


@dataclass(frozen=True)
class Seated:
    """The rails test once its rail groups are formed: this rank's seat, the groups, and its rail's NIC."""

    seat: steps.Seat
    formed: RailGroups
    ifname: str | None
    """The interface this rank's rail binds (socket rails)."""
    nic: rails_outcome.ExpectedNic


def take_seats(
    settings: RailsSettings,
    ctx: DistContext,
    watchdog: Watchdog,
    coord: Coord,
    on_nic: Callable[[rails_outcome.ExpectedNic], None] | None = None,
) -> Seated:
    """Every rank: its rail's interface agreed, its NIC, the rail groups formed from their live members, and this
    node's counters opened (read by one rank per node at every window's edge, ``bench.rails.measurement.windows``);
    the first counter window closes when the groups are formed."""
    layout = rail_layout(ctx.hosts)
    my_ifname = _my_interface(settings, layout, ctx.info.rank, coord, Sysfs(ctx.sysfs_root))
    my_nic = _my_nic(ctx, my_ifname)
    if on_nic is not None:
        on_nic(my_nic)
    counts = windows.NodeCounters(ctx.info.local_rank == 0, ctx.sysfs_root)
    formed = form_rail_groups(ctx, layout, my_ifname, settings.timeout_s, coord, watchdog.enter, watchdog.leave)
    seat = steps.Seat.taken(layout, ctx.info.rank, formed, coord, counts)
    counts.close("forming the rail groups")
    return Seated(seat, formed, my_ifname, my_nic)


def rank_report(
    seated: Seated,
    ctx: DistContext,
    results: list[rails_outcome.RailResult],
    times: list[PairTime],
    alone: list[dict[str, int] | None],
) -> judge.RankReport:
    """What this rank sends rank 0 for its judgement (``bench.rails.diagnosis.judge.outcome``)."""
    counts = seated.seat.counts
    return {
        "host": ctx.hosts[ctx.info.rank],
        "results": results,
        "times": times,
        "windows": alone,
        "whole": counts.whole(),
        "error_windows": counts.windows,
        "ifname": seated.ifname,
        "nic": seated.nic,
        "rail": seated.seat.rail,
        "rates": _ib_rates(ctx.info.local_rank, Sysfs(ctx.sysfs_root)),
    }


def rails_phase(
    settings: RailsSettings,
    ctx: DistContext,
    watchdog: Watchdog,
    live: LiveRails | None = None,
    coord: Coord | None = None,
    laps: Laps | None = None,
    on_nic: Callable[[rails_outcome.ExpectedNic], None] | None = None,
) -> rails_outcome.RailsOutcome | None:
    """Every rail and every pair; returns the outcome on rank 0, None elsewhere. ``live`` (rank 0) writes the
    rail groups' results and each pair round down as soon as they are gathered; ``laps`` marks the end of each
    phase of the plan (``bench.rails.plan.acceptance``); ``on_nic`` hears this rank's NIC as soon as it is known (the
    post-mortem of a link that dies mid-measurement names it, ``bench.frame.postmortem``).

    Rail groups are formed from their live members (``bench.rails.measurement.groups``): a rank whose link is dead, or
    whose rail has no group, measures nothing on its rail but keeps in step with the world (its barriers,
    gathers and the budget's agreement), and every pair with a dead end is left out, reported dead. Every
    agreement goes through ``coord`` (``bench.runtime.coord``: on NCCL the store, never the world communicator,
    which rides the rails under test).
    """
    layout = rail_layout(ctx.hosts)
    rank = ctx.info.rank
    if len(layout.nodes) < 2:
        reason = f"1 node ({layout.nodes[0]}): a rail group needs local rank k of at least 2 nodes"
        written = RailsDoc(skipped=reason, nodes=layout.nodes)
        return rails_outcome.RailsOutcome(written, rails=layout.rails) if rank == 0 else None
    laps = laps or Laps()
    coord = coord or world_coord(ctx, settings.timeout_s)
    seated = take_seats(settings, ctx, watchdog, coord, on_nic)
    seat, counts, formed = seated.seat, seated.seat.counts, seated.formed
    laps.mark("start-up and rail groups")

    at_once = steps.every_rail_at_once(settings, ctx, seat, watchdog, live)
    known = settings.rail_rate_gbps or (at_once.fastest_Gbps if at_once.fastest_Gbps > 0 else None)
    counts.close("every rail group at once")
    laps.mark("rail groups, every rail at once")
    isolated, alone = steps.each_rail_alone(settings, ctx, seat, watchdog, known)
    laps.mark("each rail alone (counter windows)")

    times: list[PairTime] = []
    runner = None
    if settings.config.pairs:
        runner = steps.pair_runner(settings, ctx, seat, at_once.fastest_Gbps, live)
        times = runner.matrix(watchdog.enter, watchdog.leave)
        counts.close("pair matrix")
        laps.mark("pair matrix")

    watchdog.enter("gathering the rails results")
    gathered = coord.gather(rank_report(seated, ctx, at_once.mine + isolated, times, alone))  # rank 0 judges
    watchdog.leave()
    if runner is not None and settings.test.confirm:
        steps.confirm_suspects(settings, seat, runner, gathered, watchdog)
        laps.mark("confirmation")
    if steps.rails_again(settings, ctx, seat, gathered, watchdog, known):
        laps.mark("rail groups again")
    if gathered is None:
        return None
    # the world's process group and one per rail group formed
    return judge.outcome(settings, layout, gathered, formed.membership, formed.reports, 1 + formed.made)


def world_coord(ctx: DistContext, timeout_s: float) -> Coord:
    """How the world agrees during a rails test (``bench.runtime.coord``): past the watchdog, like torch's own."""
    return coordinator(ctx.backend, ctx.store, ctx.info.rank, ctx.info.world_size, torch_timeout_s(timeout_s))


def _nic_heard(run: Run, nic: rails_outcome.ExpectedNic) -> None:
    run.nic = nic.device


def guarded_rails_phase(
    settings: RailsSettings, run: Run, laps: Laps | None = None, node_checks: Reports | None = None
) -> tuple[rails_outcome.RailsOutcome | None, LiveRails | None]:
    """``rails_phase`` (and the intra-node matrix) under the frame's guard: a hang, a lost rank, Ctrl-C or
    SIGTERM is recorded in run.json and raised on (exit 3, or 130/143), after what was measured is written.
    Returns the outcome and the live writer on rank 0, (None, None) elsewhere.

    ``node_checks`` (rank 0): every node's GPUDirect checks where the caller has them (``accept``'s check
    phase); None: every node reads its own now (``bench.rails.measurement.local_causes``)."""
    ctx = run.ctx
    live = None
    if run.rank0:
        layout = rail_layout(ctx.hosts)
        live = LiveRails(run, layout.nodes, layout.rails, settings.rail_rate_gbps, settings.test.iters)
    coord = world_coord(ctx, settings.timeout_s)
    with run.guarded() as watchdog:
        outcome = rails_phase(settings, ctx, watchdog, live, coord, laps, on_nic=lambda nic: _nic_heard(run, nic))
        if intranode.wanted(settings, ctx.backend):
            outcome = intranode.attach(outcome, intranode.intra_node_phase(settings, ctx, watchdog, live, coord))
            if laps is not None:
                laps.mark("intra-node pairs")
        if node_checks is None:
            watchdog.enter("reading every node's GPUDirect path")
            node_checks = local_causes.gather(run.profile, ctx, coord, run.out_dir)
            watchdog.leave()
        if outcome is None:
            return None, live
        # The conviction: each part named becomes a defect once, with its devices' error counters, each node's
        # own GPUDirect path where it explains it, and the one action decided from them.
        return corroborate(outcome, settings.profile.errors, settings.profile.actions, node_checks), live


def rails_test(
    settings: RailsSettings, run: Run, laps: Laps | None = None, node_checks: Reports | None = None
) -> rails_outcome.RailsOutcome | None:
    """The rails test on every rank; on rank 0 its outcome, written (rails.json, results.csv rows) and
    printed. ``rails`` and ``accept`` both run it (``laps``: the run's phase clock; ``node_checks``: see
    :func:`guarded_rails_phase`)."""
    outcome, live = guarded_rails_phase(settings, run, laps, node_checks)
    if outcome is None or live is None:
        return None
    units = settings.topology.fabric.units if settings.topology is not None else ()
    pass_fraction = settings.profile.pass_fraction
    write_refused_is_infra(
        run.out_dir,
        "rails.json",
        lambda: output.write_outputs(outcome, run.out_dir, live, settings.test.iters, pass_fraction, units),
    )
    output.print_outcome(outcome, settings)
    run.update(rails_skipped=outcome.written.skipped)
    return outcome


# --- the standalone command ------------------------------------------------------------------------------


class RailStepsJob(Job):
    """A job that runs the rails test's steps with its settings (``rails``, ``soak``): rank 0 reads the topology
    and settles the run directory before init, and a profile learnt at start-up retargets the settings too."""

    settings: RailsSettings

    def before_init(self, prelude: Prelude) -> Path | None:
        self.settings, out_dir = rails_before_init(self.settings, self.profile, self.setup.output, prelude)
        return out_dir

    def retarget(self, profile: Profile) -> None:
        super().retarget(profile)
        self.settings = retargeted(self.settings, profile)


class RailsJob(RailStepsJob):
    """``railbench rails``: every rail and every pair, judged per rail (``bench.rails.diagnosis.items``)."""

    command = "rails"

    def __init__(self, config: RailsConfig) -> None:
        profile, settings = validate(config, with_history=False, topology=False)  # rank 0 reads it in before_init
        super().__init__(setup_of(config, settings.oob_ifname), profile)
        self.settings = settings
        self.laps = Laps()
        self.planned: acceptance.Plan | None = None

    def prepare(self, ctx: DistContext) -> dict[str, object]:
        neighbours.refuse_short_tables(ctx, self.settings.socket_ifname, self.settings.timeout_s)
        # The plan for this shape (every rank computes the same), cut to --max-minutes when asked.
        layout = rail_layout(ctx.hosts)
        intra = intranode.wanted(self.settings, ctx.backend)
        self.planned = acceptance.for_run(len(layout.nodes), layout.rails, self.settings, intra=intra)
        if self.planned is not None:
            self.settings = self.planned.settings
            if ctx.info.rank == 0:
                print("\n".join(self.planned.lines()), flush=True)
        return {"rails_test": rails_section(self.settings), "plan": planned_section(self.planned, self.laps)}

    def measure(self, run: Run) -> list[Item]:
        started = time.monotonic()
        outcome = rails_test(self.settings, run, self.laps)
        run.update(plan=planned_section(self.planned, self.laps))
        if outcome is None:
            return []
        return timed([*rail_items(outcome), *local_cause_items(outcome)], time.monotonic() - started)


def run_rank(config: RailsConfig, info: RankInfo) -> int:
    """One rank of the standalone ``railbench rails``; every rank returns the same exit status."""
    return run_job(info, lambda: RailsJob(config))


def rails_section(settings: RailsSettings) -> RailsTestSettings:
    """run.json's ``rails_test``: the rails settings as resolved from flags, profile and defaults, each field of
    the section taken by its name from the resolved ``[rails_test]``, then the settings, then the flags."""
    return codec.projected(
        RailsTestSettings,
        settings.test,
        settings,
        settings.config,
        where="run.json: rails_test.",
        pass_fraction=settings.profile.pass_fraction,
        topology=settings.topology.cabling.source if settings.topology is not None else None,  # rank 0's
        host=socket.gethostname(),
    )


def planned_section(planned: acceptance.Plan | None, laps: Laps) -> JSONObject | None:
    """run.json's ``plan``: the projection beside what each phase has taken so far (``bench.rails.plan.laps``)."""
    return compared(planned, laps.seconds)
