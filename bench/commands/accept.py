"""``railbench accept --profile P``: the one command for a new cluster.

``check`` on every node, the world sweep (``run``), then ``rails``, in one set of ranks and one run
directory; a verdict per node and per rail; ``junit.xml`` with one testcase per check, collective, rail and
node; ``run.json`` with the overall verdict. Exit status 0 only when everything met its target, 1 when
something did not, 2 bad input, 3 infrastructure fault.

Runs under any launcher (mpirun/srun/torchrun on every node), or starts ``--np N`` local ranks itself.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace

from bench.accept.config import AcceptConfig, accept_plan, validate
from bench.accept.rank import run_rank
from bench.commands import flags
from bench.commands import rails as rails_cmd
from bench.frame.config_parts import carrying
from bench.frame.launch_job import JobKind, Sized, launch
from bench.measure.collectives import get_collective
from bench.profile.cluster import Profile
from bench.rails.plan.config import RailsConfig, RailsSettings
from bench.runtime.launch import local_ranks_use_gpus
from bench.sweep.config import RunConfig, cpu_sized, sized


def add_arguments(parser: argparse.ArgumentParser) -> None:
    flags.add_profile(parser, default=None)
    sweep = parser.add_argument_group("world sweep (railbench run)")
    flags.add_sweep(sweep)
    flags.add_collectives(sweep, default=RunConfig.collectives, help="world collectives")
    flags.add_check(sweep, default=True, what="every result of the world sweep")
    rails = parser.add_argument_group("rails (railbench rails)")
    flags.add_interfaces(rails, rails=True)
    flags.add_rails(rails, intra_node=None, intra_node_text="on with NCCL (GPUs), off on gloo")
    flags.add_rails_targets(rails)
    flags.add_plan(parser.add_argument_group("plan"))
    start = parser.add_argument_group("start-up and output")
    flags.add_launch(start)
    flags.add_output(start)
    flags.add_drain(start, what="every node a defect names, the rest left alone")
    flags.add_spec_argument(parser)


def config_from_args(args: argparse.Namespace) -> AcceptConfig:
    names = flags.collectives(args, empty="--collectives is empty: name at least one, e.g. all_reduce")
    sweep = RunConfig(
        collectives=tuple(get_collective(c).name for c in names),
        **flags.sweep_fields(args),
        check=args.check,
        profile=args.profile,
    )
    rails_test = flags.rails_test(args, iterations=False)
    rails = RailsConfig(profile=args.profile, rails_test=rails_test, **flags.rails_fields(args))
    return AcceptConfig(
        profile=args.profile,
        sweep=sweep,
        rails=rails,
        launch=flags.launch_part(args),
        output=flags.output_part(args),
        drain=args.drain,
    )


def main(args: argparse.Namespace) -> int:
    return run(flags.config_or_spec(args, AcceptConfig, config_from_args))


def _sized(config: AcceptConfig, validated: tuple[Profile, RailsSettings], np: int | None) -> Sized[AcceptConfig]:
    profile, _ = validated  # the profile validate loaded: the parent loads it once
    assert np is not None  # accept has no per-node form
    if local_ranks_use_gpus(config.launch.backend):
        sweep = sized(config.sweep, profile)
    else:
        sweep, note = cpu_sized(config.sweep, profile, np)
        if note:
            print(f"railbench: note: {note}", file=sys.stderr)
    # the sweep's largest size dominates: send and receive buffers; the ranks sweep what was chosen and said here
    ranks = replace(config, sweep=sweep, launch=carrying(config.launch, profile))  # they parse what was read here
    return Sized(ranks, 2 * (sweep.max_bytes or 0))


ACCEPT: JobKind[AcceptConfig, tuple[Profile, RailsSettings]] = JobKind("accept", run_rank, validate, _sized)


def run(config: AcceptConfig) -> int:
    """Accept the cluster as a rank, or start ``--np`` local ranks and return their verdict."""
    if config.rails.plan:
        profile, settings = validate(replace(config, launch=rails_cmd.planning(config.launch)))
        nodes, ranks = rails_cmd.plan_shape(config.rails, profile)
        backend, planned_on = rails_cmd.plan_backend(config.launch.backend, profile, settings)
        adjust, note = rails_cmd.plan_history(profile, config.output)
        sweep = sized(config.sweep, profile)
        found = accept_plan(sweep, profile, settings, nodes, ranks, backend, adjust)
        return rails_cmd.print_plan(found, planned_on, note)
    return launch(ACCEPT, config)
