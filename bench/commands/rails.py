"""``railbench rails``: every rail on its own and every node pair on every rail; names the broken part.

* Rail groups: local rank k of every node forms rail k's group. all_reduce and all_gather run in every rail
  group at once (the realistic load), optionally also one rail at a time (``--isolation``). Each is
  compared with the rail's line rate.
* Pairs: every node pair exchanges on every rail at once, point-to-point inside the rail groups, in
  round-robin rounds of disjoint pairs (n-1 rounds for n nodes), optionally repeated in a reshuffled order.
* Counters: while each rail runs alone, the byte counters show which device carried it, and that the
  management interface and the excluded devices carried nothing.
* Localisation names the broken link, rail, node or pair (``bench.rails.localise``).

Writes ``rails.json``, rows in ``results.csv`` (scope rail/pair) and ``run.json`` in the run directory,
prints the human table. Runs under any launcher, or starts ``--np N`` local ranks itself. Exit status 0
when every rail and pair met its target, 1 when not, 2 bad input, 3 infrastructure fault.

Settings come from the command line, else the profile's ``[rails_test]`` table, else the defaults below.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from bench.collectives import get_collective
from bench.errors import EXIT_INFRA, UserError
from bench.units import parse_size

RAIL_COLLECTIVES = ("all_reduce", "all_gather")
DEFAULTS: Mapping[str, Any] = {
    "rail_bytes": 256 << 20,
    "pair_bytes": 256 << 20,
    "iters": 10,
    "warmup": 2,
    "repeats": 1,
    "relative_fraction": 0.8,
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
    check: bool = False
    """Verify the rail-group collectives' results element by element."""
    rail_rate_gbps: float | None = None
    """Line rate of a rail in Gb/s; default: the profile's, else the rail HCA's rate from sysfs."""
    relative_fraction: float | None = None
    """A pair is slow below this fraction of its peers' healthy level."""
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
        for name, minimum in (("iters", 1), ("warmup", 0), ("repeats", 1)):
            value = getattr(self, name)
            if value is not None and value < minimum:
                raise UserError(f"--{name} {value} must be at least {minimum}")
        if self.rail_rate_gbps is not None and self.rail_rate_gbps <= 0:
            raise UserError(f"--rail-rate-gbps {self.rail_rate_gbps:g} must be positive, e.g. 400 for NDR")
        if self.relative_fraction is not None and not 0 < self.relative_fraction <= 1:
            raise UserError(f"--relative-fraction {self.relative_fraction:g} must be in (0, 1], e.g. 0.8")
        if self.timeout_s <= 0:
            raise UserError(f"--timeout {self.timeout_s:g} must be positive (seconds)")
        if self.np is not None and self.np < 1:
            raise UserError(f"--np {self.np} must be at least 1")

    def rank_argv(self, out: Path) -> list[str]:
        """The argv of the ranks the parent starts: the same test, minus how to start."""
        argv = ["rails", "--profile", self.profile, "--collectives", ",".join(self.collectives),
                "--seed", str(self.seed), "--backend", self.backend, "--timeout", f"{self.timeout_s:g}",
                "--out", str(out)]  # fmt: skip
        for flag, value in (
            ("--socket-ifname", self.socket_ifname), ("--oob-ifname", self.oob_ifname),
            ("--rail-bytes", self.rail_bytes), ("--pair-bytes", self.pair_bytes), ("--iters", self.iters),
            ("--warmup", self.warmup), ("--repeats", self.repeats), ("--rail-rate-gbps", self.rail_rate_gbps),
            ("--relative-fraction", self.relative_fraction), ("--cluster", self.cluster), ("--history", self.history),
        ):  # fmt: skip
            if value is not None:
                argv += [flag, str(value)]
        argv += [flag for flag, on in (("--isolation", self.isolation), ("--no-pairs", not self.pairs),
                                       ("--check", self.check), ("--no-history", self.no_history)) if on]  # fmt: skip
        return argv


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
    pass_fraction: float
    rail_rate_gbps: float | None
    socket_ifname: str | None
    oob_ifname: str | None
    counter_tolerance_bytes: int
    quiet_devices: tuple[str, ...]
    """The management interface and the profile's excluded devices: they must carry nothing."""
    timeout_s: float


def _profile_table(profile: Any) -> dict[str, Any]:
    raw = getattr(profile, "raw", None) or {}
    table = raw.get("rails_test", {}) if isinstance(raw, Mapping) else {}
    known = {"rail_bytes", "pair_bytes", "iters", "warmup", "repeats", "relative_fraction", "collectives"}
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
        elif key in ("iters", "warmup", "repeats") and isinstance(value, int) and not isinstance(value, bool):
            out[key] = value
        elif key == "collectives" and isinstance(value, list) and all(isinstance(v, str) for v in value):
            out[key] = tuple(value)
        else:
            raise UserError(f"{profile.source}: [rails_test] {key} = {value!r} has the wrong type; fix the profile")
    return out


def resolve(config: RailsConfig, profile: Any) -> RailsSettings:
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
        pass_fraction=profile.pass_fraction,
        rail_rate_gbps=config.rail_rate_gbps or profile.rail_rate_gbps,
        socket_ifname=config.socket_ifname or profile.socket_ifnames,
        oob_ifname=oob,
        counter_tolerance_bytes=profile.counter_tolerance_bytes,
        quiet_devices=tuple(d for d in (oob, *profile.excluded_devices) if d),
        timeout_s=config.timeout_s,
    )


def number(flag: str) -> Callable[[str], float]:
    """An argparse type that reads a number and names the flag when it is not one."""

    def parse(text: str) -> float:
        try:
            return float(text)
        except ValueError:
            raise UserError(f"{flag} {text!r} is not a number") from None

    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    what = parser.add_argument_group("what to test")
    what.add_argument("--collectives", default=",".join(RAIL_COLLECTIVES), help="rail-group collectives")
    what.add_argument("--rail-bytes", type=lambda t: parse_size(t, "--rail-bytes"), help="rail-group message size")
    what.add_argument("--pair-bytes", type=lambda t: parse_size(t, "--pair-bytes"), help="pair message size")
    what.add_argument("-n", "--iters", type=int, help="timed iterations per measurement")
    what.add_argument("-w", "--warmup", type=int, help="untimed iterations before each measurement")
    what.add_argument("--repeats", type=int, help="passes over the pair matrix (reshuffled after the first)")
    what.add_argument("--seed", type=int, default=0, help="seed of the reshuffled repeats")
    what.add_argument("--isolation", action="store_true", help="also time each rail group alone")
    what.add_argument("--no-pairs", action="store_true", help="skip the node x node pair matrix")
    what.add_argument("-c", "--check", action="store_true", help="verify the rail-group results")
    judge = parser.add_argument_group("targets")
    judge.add_argument("--rail-rate-gbps", type=number("--rail-rate-gbps"), help="line rate of one rail")
    judge.add_argument("--relative-fraction", type=number("--relative-fraction"), help="slow below this x peers")
    judge.add_argument("--profile", default="local", help="cluster profile: name or TOML path")
    net = parser.add_argument_group("interfaces and start-up")
    net.add_argument("--socket-ifname", metavar="LIST", help="rail interfaces (NCCL_SOCKET_IFNAME grammar)")
    net.add_argument("--oob-ifname", metavar="IF", help="management interface for the world group")
    net.add_argument("--backend", choices=("auto", "nccl", "gloo"), default="auto")
    net.add_argument("--timeout", type=float, default=300.0, help="seconds per step before exit 3")
    net.add_argument("--np", type=int, help="start N local ranks under mpirun")
    out = parser.add_argument_group("output")
    out.add_argument("--out", type=Path, help="run directory (default reports/runs/<UTC>-<cluster>)")
    out.add_argument("--cluster", help="cluster name for the run directory")
    out.add_argument("--history", type=Path, help="history store (default reports/history.sqlite)")
    out.add_argument("--no-history", action="store_true", help="do not add this run to the history")


def config_from_args(args: argparse.Namespace) -> RailsConfig:
    collectives = tuple(get_collective(c.strip()).name for c in args.collectives.split(",") if c.strip())
    return RailsConfig(
        profile=args.profile, socket_ifname=args.socket_ifname, oob_ifname=args.oob_ifname,
        collectives=collectives, rail_bytes=args.rail_bytes, pair_bytes=args.pair_bytes, iters=args.iters,
        warmup=args.warmup, repeats=args.repeats, seed=args.seed, isolation=args.isolation, pairs=not args.no_pairs,
        check=args.check, rail_rate_gbps=args.rail_rate_gbps, relative_fraction=args.relative_fraction,
        backend=args.backend, timeout_s=args.timeout, np=args.np, out=args.out, cluster=args.cluster,
        history=args.history, no_history=args.no_history,
    )  # fmt: skip


def main(args: argparse.Namespace) -> int:
    return run(config_from_args(args))


def run(config: RailsConfig) -> int:
    """Run the rails test as a rank, or start ``--np`` local ranks and return their verdict."""
    from bench.profiles import load_profile

    settings = resolve(config, load_profile(config.profile))  # bad input fails here, before any rank starts
    from bench.launch import rank_or_local, start_local_ranks
    from bench.rails.worker import run_rank

    # Each rank holds the pair buffers (send, receive) and a rail collective's buffers and check copy.
    per_rank = 3 * max(settings.rail_bytes, settings.pair_bytes)
    return rank_or_local(
        "rails",
        config.np,
        lambda info: run_rank(config, info),
        lambda np: start_local_ranks(np, config.rank_argv, config.out, config.cluster, config.backend, per_rank),
    )


__all__ = ["EXIT_INFRA", "RailsConfig", "RailsSettings", "add_arguments", "main", "resolve", "run"]
