"""What ``railbench rails`` measures: the frozen config, and its settings resolved against the profile.

Settings come from the command line, else the profile's ``[rails_test]`` table, else ``DEFAULTS``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from bench.actions import Actions
from bench.error_limits import ErrorLimits
from bench.errors import UserError
from bench.frame.validate import check_common
from bench.measure.collectives import get_collective
from bench.measure.targets import world_target_gbps
from bench.profiles import Profile, load_profile
from bench.runtime import spec
from bench.units import parse_size

RAIL_COLLECTIVES = ("all_reduce", "all_gather")
DEFAULTS: Mapping[str, Any] = {
    "rail_bytes": 256 << 20,
    "pair_bytes": 256 << 20,
    "iters": 10,
    "warmup": 2,
    "repeats": 1,
    "relative_fraction": 0.8,
    "confirm": 2,
}
"""Used where neither the command line nor the profile's ``[rails_test]`` says otherwise."""


@dataclass(frozen=True)
class RailsConfig:
    """What ``railbench rails`` measures. None means: the profile's ``[rails_test]`` value, else DEFAULTS."""

    profile: str = "local"
    """Cluster profile (name or TOML path): line rate, pass fraction, interfaces, ``[rails_test]``."""
    socket_ifname: str | None = None
    """Rail interfaces in NCCL_SOCKET_IFNAME grammar; local rank k binds the k-th selected one."""
    oob_ifname: str | None = None
    """Management interface for the rendezvous and the world group."""
    collectives: tuple[str, ...] = RAIL_COLLECTIVES
    """Collectives run in the rail groups."""
    rail_bytes: int | None = None
    """Message size of the rail-group collectives."""
    pair_bytes: int | None = None
    """Message size of each pair exchange, per direction."""
    iters: int | None = None
    """Timed iterations per measurement."""
    warmup: int | None = None
    """Untimed iterations before each measurement."""
    repeats: int | None = None
    """Passes over the pair matrix; each repeat after the first reshuffles the order."""
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
    relative_fraction: float | None = None
    """A pair is slow below this fraction of its peers' healthy level."""
    confirm: int | None = None
    """Re-measurements of every suspect pair before a defect is named (0: none)."""
    cell_budget_s: float | None = None
    """Seconds one pair or rail-group measurement may take; default from the line rate (see rails.budget)."""
    backend: Literal["auto", "nccl", "gloo"] = "auto"
    timeout_s: float = 300.0
    """A step that has not finished after this many seconds ends the run with exit 3."""
    np: int | None = None
    """Start this many local ranks under mpirun."""
    out: Path | None = None
    """Run directory; default reports/runs/<UTC time>-<cluster>."""
    cluster: str | None = None
    history: Path | None = None
    """History store to add the run to (default reports/history.sqlite)."""
    no_history: bool = False

    def __post_init__(self) -> None:
        if not self.collectives:
            raise UserError("--collectives is empty: name all_reduce, all_gather or both")
        for name in self.collectives:
            if get_collective(name).name not in RAIL_COLLECTIVES:
                raise UserError(f"rail groups run {' and '.join(RAIL_COLLECTIVES)}, not {name}: pick from those")
        for name in ("rail_bytes", "pair_bytes"):
            value = getattr(self, name)
            if value is not None and value < 4:
                raise UserError(f"--{name.replace('_', '-')} {value} is too small: use at least 4 bytes, e.g. 64M")
        for name, minimum in (("iters", 1), ("warmup", 0), ("repeats", 1), ("confirm", 0)):
            value = getattr(self, name)
            if value is not None and value < minimum:
                raise UserError(f"--{name} {value} must be at least {minimum}")
        if self.rail_rate_gbps is not None and self.rail_rate_gbps <= 0:
            raise UserError(f"--rail-rate-gbps {self.rail_rate_gbps:g} must be positive, e.g. 400 for NDR")
        if self.relative_fraction is not None and not 0 < self.relative_fraction <= 1:
            raise UserError(f"--relative-fraction {self.relative_fraction:g} must be in (0, 1], e.g. 0.8")
        if self.cell_budget_s is not None and self.cell_budget_s <= 0:
            raise UserError(f"--cell-budget {self.cell_budget_s:g} must be positive (seconds), e.g. 30")
        if self.timeout_s <= 0:
            raise UserError(f"--timeout {self.timeout_s:g} must be positive (seconds)")
        if self.np is not None and self.np < 1:
            raise UserError(f"--np {self.np} must be at least 1")

    def rank_argv(self, out: Path) -> list[str]:
        """The argv of the ranks the parent starts: this very config (``bench.runtime.spec``), minus how to
        start, with the run directory the parent chose."""
        return spec.rank_argv("rails", replace(self, out=out, np=None))


@dataclass(frozen=True)
class RailsSettings:
    """A RailsConfig with every None resolved against the profile."""

    collectives: tuple[str, ...]
    rail_bytes: int
    pair_bytes: int
    iters: int
    warmup: int
    repeats: int
    seed: int
    isolation: bool
    pairs: bool
    check: bool
    relative_fraction: float
    confirm: int
    cell_budget_s: float | None
    pass_fraction: float
    rail_rate_gbps: float | None
    socket_ifname: str | None
    oob_ifname: str | None
    counter_tolerance_bytes: int
    quiet_devices: tuple[str, ...]
    """The management interface and the profile's excluded devices: they must carry nothing."""
    timeout_s: float
    intra_node: bool | None = False
    """As asked; None: on with NCCL (``bench.rails.intranode.wanted``)."""
    local_pair_target_gbps: float | None = None
    """The profile's single-node sendrecv target (NVLink), judged on GPUs only."""
    errors: ErrorLimits = dataclasses.field(default_factory=ErrorLimits)
    """The profile's ``[errors]``: which counters convict a link, and whether an ``errors`` defect fails."""
    actions: Actions = dataclasses.field(default_factory=Actions)
    """The profile's ``[actions]``: what a technician does about each defect kind."""


def _profile_table(profile: Profile) -> dict[str, Any]:
    raw = getattr(profile, "raw", None) or {}
    table = raw.get("rails_test", {}) if isinstance(raw, Mapping) else {}
    known = {"rail_bytes", "pair_bytes", "iters", "warmup", "repeats", "relative_fraction", "collectives", "confirm"}
    unknown = sorted(set(table) - known)
    if unknown:
        raise UserError(
            f"{profile.source}: unknown [rails_test] key {unknown[0]!r}; known keys: {', '.join(sorted(known))}"
        )
    out: dict[str, Any] = {}
    for key, value in table.items():
        if key in ("rail_bytes", "pair_bytes"):
            out[key] = parse_size(str(value), f"[rails_test] {key}")
        elif key == "relative_fraction" and isinstance(value, int | float) and not isinstance(value, bool):
            out[key] = float(value)
        elif (
            key in ("iters", "warmup", "repeats", "confirm") and isinstance(value, int) and not isinstance(value, bool)
        ):
            out[key] = value
        elif key == "collectives" and isinstance(value, list) and all(isinstance(v, str) for v in value):
            out[key] = tuple(value)
        else:
            raise UserError(f"{profile.source}: [rails_test] {key} = {value!r} has the wrong type; fix the profile")
    return out


def resolve(config: RailsConfig, profile: Profile) -> RailsSettings:
    """Command line first, then the profile's ``[rails_test]``, then DEFAULTS."""
    table = _profile_table(profile)

    def pick(name: str) -> Any:
        value = getattr(config, name)
        return value if value is not None else table.get(name, DEFAULTS[name])

    collectives = config.collectives if config.collectives != RAIL_COLLECTIVES else table.get("collectives")
    checked = dataclasses.replace(config, collectives=tuple(collectives or RAIL_COLLECTIVES))
    oob = config.oob_ifname or profile.oob_ifname
    return RailsSettings(
        collectives=checked.collectives,
        rail_bytes=pick("rail_bytes"),
        pair_bytes=pick("pair_bytes"),
        iters=pick("iters"),
        warmup=pick("warmup"),
        repeats=pick("repeats"),
        seed=config.seed,
        isolation=config.isolation,
        pairs=config.pairs,
        check=config.check,
        relative_fraction=pick("relative_fraction"),
        confirm=pick("confirm"),
        cell_budget_s=config.cell_budget_s,
        pass_fraction=profile.pass_fraction,
        rail_rate_gbps=config.rail_rate_gbps or profile.rail_rate_gbps,
        socket_ifname=config.socket_ifname or profile.socket_ifnames,
        oob_ifname=oob,
        counter_tolerance_bytes=profile.counter_tolerance_bytes,
        quiet_devices=tuple(d for d in (oob, *profile.excluded_devices) if d),
        timeout_s=config.timeout_s,
        intra_node=config.intra_node,
        local_pair_target_gbps=world_target_gbps(profile, "sendrecv", 1),
        errors=profile.errors,
        actions=profile.actions,
    )


def validate(config: RailsConfig) -> tuple[Profile, RailsSettings]:
    """The profile, the resolved settings and where the run goes, checked in the parent before any rank
    starts and on every rank before it joins the process group."""
    profile = load_profile(config.profile)
    settings = resolve(config, profile)
    check_common(backend=config.backend, out=config.out, history=config.history, no_history=config.no_history)
    return profile, settings
