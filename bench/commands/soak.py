"""``railbench soak``: the burn-in before sign-off: windows of the rails test and a world collective for hours,
judged over the windows: error counters that accumulate, a part that fails now and then named with its duty cycle,
a trend with its slope (docs/design.md, "Soak").

Each window runs every rail group at once, a rotating slice of the pair matrix (every pair covered every K
windows, K in run.json's ``soak``), a world collective at the rails test's message size, and reads every node's
error counters and GPU state at its edges; one line of ``windows.jsonl`` keeps it. Ctrl-C, SIGTERM or a lost node
keeps every finished window and the verdict on them; ``--resume RUN_DIR`` goes on until the first start's deadline.

The rails test's settings come from the same flags and profile table as ``railbench rails``. Exit status 0 when
every gate passed, 1 when one failed, 2 bad input, 3 infrastructure fault, 130/143 interrupted.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from bench.commands import flags
from bench.commands.rails import config_from_args as rails_config
from bench.exits import UserError
from bench.frame.config_parts import carrying
from bench.frame.launch_job import JobKind, Sized, launch
from bench.profile.cluster import Profile
from bench.profile.rails_table import RAIL_COLLECTIVES
from bench.rails.plan.config import RailsConfig, RailsSettings
from bench.soak.config import DEFAULT_WINDOW_S, SoakConfig, parse_until, validate_soak
from bench.soak.rank import run_rank


def add_arguments(parser: argparse.ArgumentParser) -> None:
    soak = parser.add_argument_group("how long")
    soak.add_argument("--hours", type=flags.number("--hours"), metavar="H", help="soak for H hours (e.g. 24)")
    soak.add_argument(
        "--until", metavar="TIME", help="soak until this time: 2026-11-27T09:00 (ISO 8601) or 18:30 (today, local)"
    )
    flags.said(
        soak.add_argument(
            "--window-s", type=flags.number("--window-s"), metavar="SECONDS", help="length of one window"
        ),
        f"{DEFAULT_WINDOW_S:g}",
    )
    soak.add_argument(
        "--resume", type=Path, metavar="RUN_DIR", help="continue a stopped soak in its run directory until its deadline"
    )
    flags.add_drain(soak, what="every node the soak convicts, the rest left alone")
    what = parser.add_argument_group("what each window runs")
    flags.add_collectives(
        what,
        default=RAIL_COLLECTIVES,
        help="rail-group and world collectives",
        default_text=flags.rail_collectives_text(),
    )
    flags.add_rails_test(what, "rail_bytes", "pair_bytes", "repeats")
    what.add_argument("--seed", type=int, default=0, metavar="N", help="seed of the reshuffled repeats")
    what.add_argument("--isolation", action="store_true", help="also time each rail group alone, every window")
    what.add_argument("--no-pairs", action="store_true", help="skip the node x node pair rounds")
    flags.add_rails_iterations(what)
    flags.add_check(what, default=RailsConfig.check, what="the collectives' results")
    flags.add_rails_job_tail(parser, profile=RailsConfig.profile)
    # The rails test's plan and its intra-node matrix are not the soak's: a window is the rails round alone. Its
    # rotation covers the full matrix's rounds (bench.soak.rank): a soak has the hours to meet every pair.
    parser.set_defaults(plan=False, nodes=None, max_minutes=None, intra_node=False, full_matrix=True)


def config_from_args(args: argparse.Namespace) -> SoakConfig:
    rails = rails_config(args)  # the rails test's flags, read as `railbench rails` reads them
    if args.resume is not None:
        if args.out is not None:
            raise UserError("--resume writes into the soak's own run directory: drop --out")
        rails = replace(rails, output=replace(rails.output, out=args.resume))
    until = parse_until(args.until) if args.until is not None else None
    window = args.window_s if args.window_s is not None else DEFAULT_WINDOW_S
    return SoakConfig(rails, args.hours, until, window, resume=args.resume is not None, drain=args.drain)


def main(args: argparse.Namespace) -> int:
    return run(flags.config_or_spec(args, SoakConfig, config_from_args))


def _sized(config: SoakConfig, validated: tuple[Profile, RailsSettings], np: int | None) -> Sized[SoakConfig]:
    profile, settings = validated
    ranks = replace(config, rails=replace(config.rails, launch=carrying(config.rails.launch, profile)))
    # As the rails test's ranks: the pair buffers (send, receive) and a collective's buffers and check copy.
    return Sized(ranks, 3 * max(settings.test.rail_bytes, settings.test.pair_bytes))


SOAK: JobKind[SoakConfig, tuple[Profile, RailsSettings]] = JobKind("soak", run_rank, validate_soak, _sized)


def run(config: SoakConfig) -> int:
    """Run the soak as a rank, or start ``--np`` local ranks and return their verdict."""
    return launch(SOAK, config)


__all__ = ["SoakConfig", "add_arguments", "main", "run"]
