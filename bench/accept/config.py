"""What ``railbench accept`` runs: the sweep and rails configs plus the settings they share."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from bench.backends import ResolvedBackend
from bench.frame.config_parts import Launch, Output
from bench.frame.validate import check_common
from bench.profile.cluster import Profile, profile_for
from bench.rails.plan import acceptance, phases
from bench.rails.plan.acceptance import Plan
from bench.rails.plan.config import RailsConfig, RailsSettings, resolve
from bench.runtime import spec
from bench.slurm import scheduler
from bench.sweep.config import RunConfig


@dataclass(frozen=True)
class AcceptConfig:
    """The three phases' settings; the shared ones (profile, backend, timeout, output) live here once."""

    profile: str
    """Cluster profile (name or TOML path): targets, thresholds, interfaces."""
    sweep: RunConfig
    """The world sweep (its profile, backend, timeout and output are taken from this config)."""
    rails: RailsConfig
    """The rails test (likewise)."""
    launch: Launch = field(default_factory=Launch)
    """How the ranks start: backend, step timeout, ``--np``, ``--sysfs-root`` (``bench.frame.config_parts``)."""
    output: Output = field(default_factory=Output)
    """Where the run goes: run directory, cluster name, history (``bench.frame.config_parts``)."""
    drain: bool = False
    """Drain in Slurm every node a defect names (``bench.slurm.drain``); the rest are left alone."""

    def sweep_config(self, out: Path | None) -> RunConfig:
        """The world sweep as the ranks run it, inside the accept run directory."""

        return replace(
            self.sweep,
            profile=self.profile,
            launch=replace(self.launch, np=None),
            output=replace(self.output, out=out),
            oob_ifname=self.rails.oob_ifname or self.sweep.oob_ifname,
            progress="off",
        )

    def rails_config(self, out: Path) -> RailsConfig:
        return replace(
            self.rails, profile=self.profile, launch=replace(self.launch, np=None), output=replace(self.output, out=out)
        )

    def ranks(self, out: Path) -> AcceptConfig:
        """This config as its ranks get it: nothing left to start, the run directory the parent chose."""
        return replace(self, launch=replace(self.launch, np=None), output=replace(self.output, out=out))

    def rank_argv(self, out: Path) -> list[str]:
        """The argv of the ranks the parent starts: this very config (``bench.runtime.spec``), minus how to
        start, with the run directory the parent chose."""
        # --profile is required on accept's command line; the spec carries the same value and wins.
        return [*spec.rank_argv("accept", self.ranks(out)), "--profile", self.profile]


def validate(
    config: AcceptConfig, *, with_history: bool = True, topology: bool = True
) -> tuple[Profile, RailsSettings]:
    """The profile, the rails settings and where the run goes, checked in the parent before any rank starts
    and on every rank before it joins the process group. ``topology``: read ``--topology`` too (the parent; a
    rank reads it in ``bench.rails.plan.config.with_topology``, rank 0 alone)."""
    profile = profile_for(config.profile, config.launch.profile_read)
    settings = resolve(config.rails_config(Path(".")), profile, topology=topology)
    check_common(config.launch, config.output, with_history=with_history)
    if config.drain:
        scheduler.require("--drain")
    return profile, settings


def accept_plan(
    sweep: RunConfig,
    profile: Profile,
    settings: RailsSettings,
    nodes: int,
    ranks: int,
    backend: ResolvedBackend,
    adjust: acceptance.Adjust | None = None,
) -> Plan | None:
    """The plan of an accept run on ``nodes`` x ``ranks`` on ``backend``: check, the world sweep (``sweep``, its
    -e already sized), then rails (``bench.rails.plan.acceptance``), fitted into ``--max-minutes`` when given;
    ``adjust``: what the cluster's own runs measured (``bench.rails.plan.learn``)."""
    planned_sweep = phases.Sweep(
        sweep.sizes, sweep.collectives, sweep.iters, sweep.warmup, sweep.check, sweep.sizes[-1], profile.judge_min_bytes
    )
    intra = acceptance.intra_planned(settings, backend)
    return acceptance.for_run(
        nodes, ranks, settings, intra=intra, sweep=planned_sweep, check_window_s=profile.errors.window_s, adjust=adjust
    )
