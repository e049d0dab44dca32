"""``railbench rails``: every rail on its own and every node pair on every rail; names the broken part.

* Rail groups: local rank k of every node forms rail k's group. all_reduce and all_gather run in every rail
  group at once (the realistic load), optionally also one rail at a time (``--isolation``). Each is
  compared with the rail's line rate.
* Pairs: every node pair exchanges on every rail at once, point-to-point inside the rail groups, in
  round-robin rounds of disjoint pairs (n-1 rounds for n nodes), optionally repeated in a reshuffled order.
* Intra-node (``--intra-node``): every pair of local ranks on each node (NVLink on GPUs, loopback on CPU),
  round-robin inside one group per node; names a slow GPU or GPU pair (``bench.rails.diagnosis.gpu_pairs``).
* Counters: while each rail runs alone, the byte counters show which device carried it, and that the
  management interface and the excluded devices carried nothing.
* Localisation names the broken link, rail, node or pair (``bench.rails.diagnosis.localise``).

Writes ``rails.json``, rows in ``results.csv`` (scope rail/pair) and ``run.json`` in the run directory,
prints the human table. Runs under any launcher, or starts ``--np N`` local ranks itself. Exit status 0
when every rail and pair met its target, 1 when not, 2 bad input, 3 infrastructure fault.

Settings come from the command line, else the profile's ``[rails_test]`` table, else the defaults below.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace

from bench.backends import Backend, ResolvedBackend
from bench.commands import flags
from bench.exits import EXIT_INFRA, UserError
from bench.frame.config_parts import Launch, Output, carrying
from bench.frame.launch_job import JobKind, Sized, launch
from bench.history.store import default_history_path, history_for
from bench.measure.collectives import get_collective
from bench.profile.cluster import Profile
from bench.profile.rails_table import RAIL_COLLECTIVES
from bench.rails.plan import acceptance as plan
from bench.rails.plan import learn
from bench.rails.plan.acceptance import Plan
from bench.rails.plan.config import RailsConfig, RailsSettings, resolve, validate
from bench.rails.rank import run_rank
from bench.runtime import env as benv
from bench.runtime.launch import local_ranks_use_gpus


def add_arguments(parser: argparse.ArgumentParser) -> None:
    what = parser.add_argument_group("what to test")
    flags.add_collectives(
        what, default=RAIL_COLLECTIVES, help="rail-group collectives", default_text=flags.rail_collectives_text()
    )
    flags.add_rails(what, intra_node=RailsConfig.intra_node, intra_node_text="off")
    flags.add_rails_iterations(what)
    flags.add_check(what, default=RailsConfig.check, what="the rail-group results")
    flags.add_rails_job_tail(parser, profile=RailsConfig.profile)
    flags.add_plan(parser.add_argument_group("plan"))


def plan_shape(config: RailsConfig, profile: Profile) -> tuple[int, int]:
    """(nodes, ranks per node) to plan for: ``--nodes`` with the profile's GPUs per node, else the launch's."""
    launched = benv.discover_launched_rank()
    nodes = config.nodes or (launched.nnodes if launched is not None else None)
    ranks = launched.local_world_size if launched is not None else (profile.gpus_per_node or profile.rail_count)
    if not nodes or nodes < 2:
        raise UserError("--plan needs two nodes or more: pass --nodes N, or run it under the cluster's launcher")
    if not ranks:
        raise UserError(f"{profile.source} does not say how many GPUs a node has: set gpus_per_node, or launch it")
    return nodes, ranks


def plan_backend(requested: Backend, profile: Profile, settings: RailsSettings) -> tuple[ResolvedBackend, str | None]:
    """The backend the run will use, as its ranks resolve it (``bench.runtime.dist.resolve_backend``): as asked,
    else NCCL where this node has GPUs and gloo where it has none (under a launch this node is one of the run's);
    with the line that says so when ``auto`` planned gloo for a profile of GPU nodes and that dropped the
    intra-node pairs (``bench.rails.plan.acceptance.intra_planned``)."""
    if requested != "auto":
        return requested, None
    if local_ranks_use_gpus(requested):
        return "nccl", None
    if not profile.gpus_per_node or settings.config.intra_node is not None:
        return "gloo", None
    return "gloo", (
        f"planned on gloo: no GPU on this node, so the run has no intra-node pairs; --backend nccl plans the run on "
        f"{profile.name}'s GPU nodes"
    )


def planning(launch: Launch) -> Launch:
    """``launch`` as the plan validates it: the plan starts nothing on this node, so ``--backend nccl`` plans a
    GPU cluster's run from a node without GPUs (a login node) and is checked where the run starts."""
    return replace(launch, backend="auto")


def print_plan(plan: Plan | None, *notes: str | None) -> int:
    """Print the plan on the first rank (every rank of a launch computes it; one prints); exit 0. ``notes``: the
    backend it was planned on when that is not the profile's, why the history was not read when it could not be."""
    launched = benv.discover_launched_rank()
    if plan is not None and (launched is None or launched.rank == 0):
        sys.stdout.write("\n".join([*plan.lines(), *(f"# {note}" for note in notes if note)]) + "\n")
        sys.stdout.flush()
    return 0


def plan_history(profile: Profile, output: Output) -> tuple[plan.Adjust | None, str | None]:
    """What the cluster's own runs say to the plan (``bench.rails.plan.learn``): from ``--history``, else the
    history the run would be added to; nothing under ``--no-history``, nor on a rank other than the first of a
    launch (only it prints, and one reader of the history is enough)."""
    launched = benv.discover_launched_rank()
    if output.no_history or (launched is not None and launched.rank != 0):
        return None, None
    path = output.history or (history_for(output.out) if output.out is not None else default_history_path())
    return learn.from_history(path, profile.name, output.cluster)


def config_from_args(args: argparse.Namespace) -> RailsConfig:
    names = flags.collectives(args, empty="--collectives is empty: name all_reduce, all_gather or both")
    return RailsConfig(
        profile=args.profile,
        collectives=tuple(get_collective(c).name for c in names),
        rails_test=flags.rails_test(args, iterations=True),
        check=args.check,
        **flags.rails_fields(args),
        launch=flags.launch_part(args),
        output=flags.output_part(args),
    )


def main(args: argparse.Namespace) -> int:
    return run(flags.config_or_spec(args, RailsConfig, config_from_args))


def _sized(config: RailsConfig, validated: tuple[Profile, RailsSettings], np: int | None) -> Sized[RailsConfig]:
    profile, settings = validated
    ranks = replace(config, launch=carrying(config.launch, profile))  # the ranks parse what was read here
    # Each rank holds the pair buffers (send, receive) and a rail collective's buffers and check copy.
    return Sized(ranks, 3 * max(settings.test.rail_bytes, settings.test.pair_bytes))


RAILS: JobKind[RailsConfig, tuple[Profile, RailsSettings]] = JobKind("rails", run_rank, validate, _sized)


def run(config: RailsConfig) -> int:
    """Run the rails test as a rank, or start ``--np`` local ranks and return their verdict."""
    if config.plan:
        profile, settings = validate(replace(config, launch=planning(config.launch)))
        nodes, ranks = plan_shape(config, profile)
        backend, planned_on = plan_backend(config.launch.backend, profile, settings)
        intra = plan.intra_planned(settings, backend)
        adjust, note = plan_history(profile, config.output)
        return print_plan(plan.for_run(nodes, ranks, settings, intra=intra, adjust=adjust), planned_on, note)
    return launch(RAILS, config)


__all__ = ["EXIT_INFRA", "RailsConfig", "RailsSettings", "add_arguments", "main", "resolve", "run"]
