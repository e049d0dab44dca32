"""What ``railbench accept`` runs: the sweep and rails configs plus the settings they share."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from bench.errors import UserError
from bench.frame.validate import check_common
from bench.profiles import Profile, load_profile
from bench.rails.config import RailsConfig, RailsSettings, resolve
from bench.runtime import spec
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
    backend: Literal["auto", "nccl", "gloo"] = "auto"
    timeout_s: float = 300.0
    """A step that has not finished after this many seconds ends the run with exit 3."""
    np: int | None = None
    """Start this many local ranks under mpirun."""
    out: Path | None = None
    """Run directory; default reports/runs/<UTC time>-<cluster>."""
    cluster: str | None = None

    def __post_init__(self) -> None:
        if self.np is not None and self.np < 1:
            raise UserError(f"--np {self.np} must be at least 1")
        if self.timeout_s <= 0:
            raise UserError(f"--timeout {self.timeout_s:g} must be positive (seconds)")

    def sweep_config(self, out: Path) -> RunConfig:
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
        )

    def rank_argv(self, out: Path) -> list[str]:
        """The argv of the ranks the parent starts: this very config (``bench.runtime.spec``), minus how to
        start, with the run directory the parent chose."""
        # --profile is required on accept's command line; the spec carries the same value and wins.
        return [*spec.rank_argv("accept", replace(self, out=out, np=None)), "--profile", self.profile]


def validate(config: AcceptConfig) -> tuple[Profile, RailsSettings]:
    """The profile, the rails settings and where the run goes, checked in the parent before any rank starts
    and on every rank before it joins the process group."""
    profile = load_profile(config.profile)
    settings = resolve(config.rails_config(Path(".")), profile)
    check_common(
        backend=config.backend, out=config.out, history=config.sweep.history, no_history=config.sweep.no_history
    )
    return profile, settings
