"""What ``railbench rails`` measures: the frozen config, and its settings resolved against the profile.

Settings come from the command line, else the profile's ``[rails_test]`` table, else ``DEFAULTS``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from bench.exits import UserError
from bench.fabric.cabling_plan import rail_order
from bench.fabric.topology_file import load_cabling
from bench.flagged import fallbacks
from bench.frame.config_parts import Launch, Output
from bench.frame.validate import check_common
from bench.measure.collectives import get_collective
from bench.measure.targets import world_target_gbps
from bench.profile.cluster import Profile, profile_for
from bench.profile.rails_table import RAIL_COLLECTIVES, RailsTestTable
from bench.rails.plan.capacity import leaf_capacity
from bench.rails.plan.fabric_map import Topology
from bench.rails.plan.model import PlanModel
from bench.rails.plan.schedule import Units
from bench.runtime import spec

DEFAULTS: Mapping[str, int | float] = fallbacks(RailsTestTable)
"""Used where neither the command line nor the profile's ``[rails_test]`` says otherwise: each field's
default, declared on the table's field (``bench.profile.rails_table.RailsTestTable``)."""


@dataclass(frozen=True)
class RailsConfig:
    """What ``railbench rails`` measures. None, and a ``[rails_test]`` field its table does not give, means: the
    profile's value, else DEFAULTS."""

    profile: str = "local"
    """Cluster profile (name or TOML path): line rate, pass fraction, interfaces, ``[rails_test]``."""
    socket_ifname: str | None = None
    """Rail interfaces in NCCL_SOCKET_IFNAME grammar; local rank k binds the k-th selected one."""
    oob_ifname: str | None = None
    """Management interface for the rendezvous and the world group."""
    collectives: tuple[str, ...] = RAIL_COLLECTIVES
    """Collectives run in the rail groups."""
    rails_test: RailsTestTable = field(default_factory=RailsTestTable)
    """The command line's own ``[rails_test]`` (message sizes, iterations, repeats, the relative cut,
    confirmation): each value it gives wins over the profile's table (:func:`resolve`). It never gives
    ``collectives``: the config's own ``collectives`` holds the flag's."""
    seed: int = 0
    """Seed of the reshuffled repeats (every rank computes the same schedule from it)."""
    isolation: bool = False
    """Also time each rail group alone, one rail at a time."""
    pairs: bool = True
    """Run the pairwise node x node matrix."""
    intra_node: bool | None = False
    """Run the intra-node pair matrix (every pair of local ranks on each node); None: on with NCCL (GPUs)."""
    check: bool = False
    """Verify the rail-group collectives' results element by element."""
    rail_rate_gbps: float | None = None
    """Line rate of a rail in Gb/s; default: the profile's, else the rail HCA's rate from sysfs."""
    cell_budget_s: float | None = None
    """Seconds one pair or rail-group measurement may take; default from the line rate (see rails.budget)."""
    topology: Path | None = None
    """The fabric's cabling (ibnetdiscover output or a cabling TOML): localisation then names cables, leaves,
    uplinks and spines (``bench.rails.diagnosis.switches``). A path every rank can read, as a profile path is."""
    full_matrix: bool = False
    """Pair every two nodes even where the cabling gives units (``--full-matrix``); else the unit schedule
    (:func:`matrix_units`, ``bench.rails.plan.schedule.unit_rounds``)."""
    plan: bool = False
    """Print the plan (``bench.rails.plan.acceptance``) for the cluster's shape and its projected wall time; run
    nothing."""
    nodes: int | None = None
    """The number of nodes to plan for (``--plan`` before the cluster exists); default: the launch's."""
    max_minutes: float | None = None
    """Fit the run into this many minutes (fewer repeats, smaller messages, ... as ``bench.rails.plan.acceptance``
    cuts)."""
    launch: Launch = field(default_factory=Launch)
    """How the ranks start: backend, step timeout, ``--np``, ``--sysfs-root`` (``bench.frame.config_parts``)."""
    output: Output = field(default_factory=Output)
    """Where the run goes: run directory, cluster name, history (``bench.frame.config_parts``)."""

    def __post_init__(self) -> None:
        if not self.collectives:
            raise UserError("--collectives is empty: name all_reduce, all_gather or both")
        for name in self.collectives:
            if get_collective(name).name not in RAIL_COLLECTIVES:
                raise UserError(f"rail groups run {' and '.join(RAIL_COLLECTIVES)}, not {name}: pick from those")
        asked = self.rails_test
        for name, size in (("rail_bytes", asked.rail_bytes), ("pair_bytes", asked.pair_bytes)):
            if size < 4:
                raise UserError(f"--{name.replace('_', '-')} {size} is too small: use at least 4 bytes, e.g. 64M")
        counts = (("iters", asked.iters, 1), ("warmup", asked.warmup, 0), ("repeats", asked.repeats, 1))
        for name, count, minimum in (*counts, ("confirm", asked.confirm, 0)):
            if count < minimum:
                raise UserError(f"--{name} {count} must be at least {minimum}")
        if self.rail_rate_gbps is not None and not (0 < self.rail_rate_gbps < math.inf):
            raise UserError(f"--rail-rate-gbps {self.rail_rate_gbps:g} must be positive, e.g. 400 for NDR")
        fraction = asked.relative_fraction
        if not 0 < fraction <= 1:
            raise UserError(f"--relative-fraction {fraction:g} must be in (0, 1], e.g. 0.8")
        if self.cell_budget_s is not None and not (0 < self.cell_budget_s < math.inf):
            raise UserError(f"--cell-budget {self.cell_budget_s:g} must be positive (seconds), e.g. 30")
        check_plan_flags(self.nodes, self.max_minutes)

    def rank_argv(self, out: Path) -> list[str]:
        """The argv of the ranks the parent starts: this very config (``bench.runtime.spec``), minus how to
        start, with the run directory the parent chose."""
        ranks = replace(self, launch=replace(self.launch, np=None), output=replace(self.output, out=out))
        return spec.rank_argv("rails", ranks)


@dataclass(frozen=True)
class RailsSettings:
    """A RailsConfig with every None resolved against the profile."""

    config: RailsConfig
    """As asked: the phases to run (``isolation``, ``pairs``, ``intra_node``, ``check``), the seed, the cell
    budget, ``--max-minutes`` and the launch. Its fields that the profile can give are read resolved, below."""
    profile: Profile
    """The profile the settings were resolved against: the pass fraction, the counter tolerance, ``[errors]``
    (which counters convict a link) and ``[actions]`` (what a technician does about each defect kind); as it
    judges the run's GPUs once :func:`retargeted`."""
    test: RailsTestTable
    """``[rails_test]`` resolved (the command line's values over the profile's over railbench's own), its
    ``collectives`` the command line's where given; ``bench.rails.plan.acceptance`` cuts it to fit ``--max-minutes``."""
    rail_rate_gbps: float | None
    socket_ifname: str | None
    oob_ifname: str | None
    quiet_devices: tuple[str, ...]
    """The management interface and the profile's excluded devices: they must carry nothing."""
    local_pair_target_gbps: float | None = None
    """The profile's single-node sendrecv target (NVLink), judged on GPUs only."""
    topology: Topology | None = None
    """The fabric's cabling and the HCA of each rail (``--topology``), read and checked before any rank starts
    where the process reads it: the parent, and rank 0, the judge and its only reader (:func:`with_topology`).
    None on the other ranks; ``config.topology`` says whether one was given."""
    plan_model: PlanModel | None = None
    """Rates and fixed costs of the plan (the profile's ``[plan]``); None where no rail rate is known."""

    @property
    def timeout_s(self) -> float:
        """The step timeout (``--timeout``), declared once on :class:`~bench.frame.config_parts.Launch`."""
        return self.config.launch.timeout_s


def resolve(config: RailsConfig, profile: Profile, *, topology: bool = True) -> RailsSettings:
    """Command line first, then the profile's ``[rails_test]``, then DEFAULTS. ``topology``: read
    ``--topology`` here (a rank leaves it to :func:`with_topology`)."""
    filled = config.rails_test.over(profile.rails_test)
    collectives = config.collectives if config.collectives != RAIL_COLLECTIVES else filled.collectives
    # Made again only to be checked: the profile's collectives are refused as the flag's would be.
    checked = dataclasses.replace(config, collectives=tuple(collectives or RAIL_COLLECTIVES))
    oob = config.oob_ifname or profile.oob_ifname
    return RailsSettings(
        config=config,
        profile=profile,
        test=dataclasses.replace(filled, collectives=checked.collectives),
        rail_rate_gbps=config.rail_rate_gbps or profile.rail_rate_gbps,
        socket_ifname=config.socket_ifname or profile.socket_ifnames,
        oob_ifname=oob,
        quiet_devices=tuple(d for d in (oob, *profile.excluded_devices) if d),
        local_pair_target_gbps=world_target_gbps(profile, "sendrecv", 1),
        topology=read_topology(config.topology, profile) if topology else None,
        plan_model=_plan_model(config, profile),
    )


def retargeted(settings: RailsSettings, profile: Profile) -> RailsSettings:
    """``settings`` with what they took from the profile's targets taken again from ``profile`` as it judges the
    run's GPUs (``Profile.for_gpus``): the intra-node pairs' NVLink figure and the plan's rates. A B200 node's
    pairs are never held to an H100 figure, and a GPU of no known generation has none (judged against its
    node's other pairs only)."""
    model = PlanModel.for_profile(profile, settings.rail_rate_gbps) or settings.plan_model
    target = world_target_gbps(profile, "sendrecv", 1)
    return dataclasses.replace(settings, profile=profile, local_pair_target_gbps=target, plan_model=model)


def _plan_model(config: RailsConfig, profile: Profile) -> PlanModel | None:
    model = PlanModel.for_profile(profile, config.rail_rate_gbps or profile.rail_rate_gbps)
    if model is None and (config.plan or config.max_minutes is not None):
        raise UserError(
            f"{profile.source} gives no rail rate to plan with: pass --rail-rate-gbps, or set [rails] rate_gbps "
            "or [plan] rate_gbps in the profile"
        )
    return model


def check_plan_flags(nodes: int | None, max_minutes: float | None) -> None:
    """``--nodes`` and ``--max-minutes``, checked where the config is made."""
    if nodes is not None and not 2 <= nodes <= 100_000:
        raise UserError(f"--nodes {nodes} must be between 2 and 100000: the rails test pairs nodes")
    if max_minutes is not None and not 0 < max_minutes <= 100_000:
        raise UserError(f"--max-minutes {max_minutes:g} must be a positive number of minutes, e.g. 30")


def read_topology(path: Path | None, profile: Profile) -> Topology | None:
    """The cabling in ``path`` with its rail order (the file's, the profile's rail names, or name order)."""
    if path is None:
        return None
    cabling = load_cabling(path)
    return Topology(cabling, rail_order(cabling, profile.rail_names, profile.excluded_hcas))


def validate(config: RailsConfig, *, with_history: bool = True, topology: bool = True) -> tuple[Profile, RailsSettings]:
    """The profile, the resolved settings and where the run goes, checked in the parent before any rank
    starts and on every rank before it joins the process group. ``topology``: read ``--topology`` too (the
    parent; a rank reads it in :func:`with_topology`, rank 0 alone)."""
    profile = profile_for(config.profile, config.launch.profile_read)
    settings = resolve(config, profile, topology=topology)
    check_common(config.launch, config.output, with_history=with_history)
    return profile, settings


def with_topology(settings: RailsSettings, refuse: Callable[[Callable[[], str]], None]) -> RailsSettings:
    """``settings`` with ``--topology`` read by rank 0 alone: the judge, on rank 0, is its only reader, so the
    other ranks neither parse an ibnetdiscover dump of the whole fabric nor need the file on their node. A file
    rank 0 cannot read is refused by every rank alike through ``refuse``
    (``bench.runtime.before_init.refuse_together``): one line and exit 2 under any launcher."""
    path = settings.config.topology
    if path is None:
        return settings
    read: list[Topology] = []

    def on_rank0() -> str:
        try:
            topology = read_topology(path, settings.profile)
        except UserError as exc:
            return str(exc)
        if topology is not None:
            read.append(topology)
        return ""

    refuse(on_rank0)
    return dataclasses.replace(settings, topology=read[0]) if read else settings  # read on rank 0 only


def matrix_units(settings: RailsSettings, nodes: Sequence[str]) -> Units | None:
    """Each of the run's ``nodes``' unit, and how many of a unit may cross at once, as the pair schedule reads
    them (``bench.rails.plan.schedule.schedule``): None where the full matrix runs (``--full-matrix``, no
    ``--topology``, or a fabric without rails). Where ``settings.topology`` is read (the parent, rank 0); the
    other ranks get rank 0's answer (``bench.rails.measurement.steps.pair_runner``). A node the cabling does not
    hold is -1 (full matrix)."""
    topology = settings.topology
    if settings.config.full_matrix or topology is None or not topology.fabric.rail_optimised:
        return None
    capacity = leaf_capacity(topology.cabling, tuple(topology.fabric.leaves.values()))
    finite = capacity[np.isfinite(capacity)]
    crossing = math.floor(float(finite.min()) + 1e-9) if len(finite) else None
    return Units(tuple(topology.fabric.unit_of.get(node, -1) for node in nodes), crossing)


def planned_units(settings: RailsSettings, nodes: int) -> Units | None:
    """:func:`matrix_units` for a plan of ``nodes`` nodes whose names are not known yet: the cabling's hosts,
    unit after unit, the first ``nodes`` of them; None where the cabling holds fewer (the rest are unplaced)."""
    topology = settings.topology
    if settings.config.full_matrix or topology is None or not topology.fabric.rail_optimised:
        return None
    hosts = [host for unit in topology.fabric.units for host in unit]
    return matrix_units(settings, hosts[:nodes]) if len(hosts) >= nodes else None
