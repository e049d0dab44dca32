"""What ``railbench accept`` runs: the sweep and rails configs plus the settings they share."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from bench import sysroot
from bench.exits import UserError
from bench.frame.validate import check_common
from bench.profiles import Profile, load_profile
from bench.rails import plan
from bench.rails.config import RailsConfig, RailsSettings, resolve
from bench.rails.plan import Plan
from bench.runtime import spec
from bench.runtime.deadlines import DEFAULT_TIMEOUT_S, check_timeout
from bench.slurm import scheduler
from bench.sweep.config import RunConfig, sized


@dataclass(frozen=True)
class AcceptConfig:
    """The three phases' settings; the shared ones (profile, backend, timeout, output) live here once."""

    profile: str
    """Cluster profile (name or TOML path): targets, thresholds, interfaces."""
    sweep: RunConfig
    """The world sweep (its profile, backend, timeout and output are taken from this config)."""
    rails: RailsConfig
    """The rails test (likewise)."""
    backend: Literal["auto", "nccl", "gloo"] = "auto"
    timeout_s: float = DEFAULT_TIMEOUT_S
    """A step that has not finished after this many seconds ends the run with exit 3."""
    np: int | None = None
    """Start this many local ranks under mpirun."""
    sysfs_root: Path = sysroot.LIVE
    """Stands in for each node's /sys; ``{host}`` becomes the node's host name (``bench.sysroot``)."""
    out: Path | None = None
    """Run directory; default reports/runs/<UTC time>-<cluster>."""
    cluster: str | None = None
    drain: bool = False
    """Drain in Slurm every node a defect names (``bench.slurm.drain``); the rest are left alone."""

    def __post_init__(self) -> None:
        if self.np is not None and self.np < 1:
            raise UserError(f"--np {self.np} must be at least 1")
        check_timeout(self.timeout_s)

    def sweep_config(self, out: Path | None) -> RunConfig:
        """The world sweep as the ranks run it, inside the accept run directory."""

        return replace(
            self.sweep,
            profile=self.profile,
            backend=self.backend,
            timeout_s=self.timeout_s,
            out=out,
            cluster=self.cluster,
            oob_ifname=self.rails.oob_ifname or self.sweep.oob_ifname,
            np=None,
            sysfs_root=self.sysfs_root,
            progress="off",
        )

    def rails_config(self, out: Path) -> RailsConfig:
        return replace(
            self.rails,
            profile=self.profile,
            backend=self.backend,
            timeout_s=self.timeout_s,
            out=out,
            cluster=self.cluster,
            np=None,
            sysfs_root=self.sysfs_root,
        )

    def rank_argv(self, out: Path) -> list[str]:
        """The argv of the ranks the parent starts: this very config (``bench.runtime.spec``), minus how to
        start, with the run directory the parent chose."""
        # --profile is required on accept's command line; the spec carries the same value and wins.
        return [*spec.rank_argv("accept", replace(self, out=out, np=None)), "--profile", self.profile]


def validate(config: AcceptConfig, *, with_history: bool = True) -> tuple[Profile, RailsSettings]:
    """The profile, the rails settings and where the run goes, checked in the parent before any rank starts
    and on every rank before it joins the process group."""
    profile = load_profile(config.profile)
    settings = resolve(config.rails_config(Path(".")), profile)
    check_common(
        backend=config.backend,
        out=config.out,
        history=config.sweep.history,
        no_history=config.sweep.no_history,
        cluster=config.cluster,
        with_history=with_history,
    )
    if config.drain:
        scheduler.require("--drain")
    return profile, settings


def accept_plan(
    config: AcceptConfig,
    profile: Profile,
    settings: RailsSettings,
    nodes: int,
    ranks: int,
    adjust: plan.Adjust | None = None,
) -> Plan | None:
    """The plan of an accept run on ``nodes`` x ``ranks``: check, the world sweep, then rails (``bench.rails.plan``),
    fitted into ``--max-minutes`` when given; ``adjust``: what the cluster's own runs measured
    (``bench.rails.plan_learn``)."""
    sweep = sized(config.sweep, profile)
    planned_sweep = plan.Sweep(sweep.sizes, sweep.collectives, sweep.iters, sweep.warmup, sweep.check, sweep.sizes[-1])
    intra = plan.intra_planned(settings, bool(profile.gpus_per_node))
    return plan.for_run(
        nodes, ranks, settings, intra=intra, sweep=planned_sweep, check_window_s=profile.errors.window_s, adjust=adjust
    )
