"""``railbench rails``: every rail on its own and every node pair on every rail; names the broken part.

* Rail groups: local rank k of every node forms rail k's group. all_reduce and all_gather run in every rail
  group at once (the realistic load), optionally also one rail at a time (``--isolation``). Each is
  compared with the rail's line rate.
* Pairs: every node pair exchanges on every rail at once, point-to-point inside the rail groups, in
  round-robin rounds of disjoint pairs (n-1 rounds for n nodes), optionally repeated in a reshuffled order.
* Intra-node (``--intra-node``): every pair of local ranks on each node (NVLink on GPUs, loopback on CPU),
  round-robin inside one group per node; names a slow GPU or GPU pair (``bench.rails.gpu_pairs``).
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
import sys
from collections.abc import Callable
from pathlib import Path

from bench.commands.flags import add_spec_argument, config_or_spec
from bench.exits import EXIT_INFRA, UserError
from bench.measure.collectives import get_collective
from bench.profiles import Profile
from bench.rails import plan
from bench.rails.config import RAIL_COLLECTIVES, RailsConfig, RailsSettings, resolve, validate
from bench.rails.plan import Plan
from bench.rails.rank import run_rank
from bench.runtime import env as benv
from bench.runtime.launch import rank_or_local, start_local_ranks
from bench.units import parse_size


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
    what.add_argument("--intra-node", action="store_true", help="also pair every two local ranks of each node")
    what.add_argument("-c", "--check", action="store_true", help="verify the rail-group results")
    judge = parser.add_argument_group("targets")
    judge.add_argument("--rail-rate-gbps", type=number("--rail-rate-gbps"), help="line rate of one rail")
    judge.add_argument("--relative-fraction", type=number("--relative-fraction"), help="slow below this x peers")
    judge.add_argument("--profile", default="local", help="cluster profile: name or TOML path")
    add_diagnosis_flags(judge)
    add_plan_flags(parser.add_argument_group("plan"))
    net = parser.add_argument_group("interfaces and start-up")
    net.add_argument("--socket-ifname", metavar="LIST", help="rail interfaces (NCCL_SOCKET_IFNAME grammar)")
    net.add_argument("--oob-ifname", metavar="IF", help="management interface for the world group")
    net.add_argument("--backend", choices=("auto", "nccl", "gloo"), default="auto", help="nccl on GPUs, gloo on CPU")
    net.add_argument("--timeout", type=float, default=300.0, help="seconds per step before exit 3")
    net.add_argument("--np", type=int, help="start N local ranks under mpirun")
    out = parser.add_argument_group("output")
    out.add_argument("--out", type=Path, help="run directory (default reports/runs/<UTC>-<cluster>)")
    out.add_argument("--cluster", help="cluster name for the run directory")
    out.add_argument("--history", type=Path, help="history store (default reports/history.sqlite)")
    out.add_argument("--no-history", action="store_true", help="do not add this run to the history")
    add_spec_argument(parser)


def add_diagnosis_flags(group: argparse._ArgumentGroup) -> None:
    """--confirm, --cell-budget and --topology, shared by rails and accept."""
    group.add_argument("--confirm", type=int, metavar="N", help="re-measure each suspect pair N times (0: off)")
    group.add_argument(
        "--cell-budget", type=number("--cell-budget"), metavar="SECONDS", help="time budget of one pair or rail cell"
    )
    group.add_argument(
        "--topology",
        type=Path,
        metavar="FILE",
        help="the fabric's cabling (ibnetdiscover output or a cabling .toml): name cables, leaves, uplinks, spines",
    )


def add_plan_flags(group: argparse._ArgumentGroup) -> None:
    """--plan, --nodes and --max-minutes, shared by rails and accept."""
    group.add_argument("--plan", action="store_true", help="print the plan and its projected wall time; run nothing")
    group.add_argument("--nodes", type=int, metavar="N", help="plan for N nodes (default: the launch's)")
    group.add_argument(
        "--max-minutes",
        type=number("--max-minutes"),
        metavar="M",
        help="fit the run into M minutes: fewer repeats, smaller messages (the plan says what was cut)",
    )


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


def print_plan(plan: Plan | None) -> int:
    """Print the plan on the first rank (every rank of a launch computes it; one prints); exit 0."""
    launched = benv.discover_launched_rank()
    if plan is not None and (launched is None or launched.rank == 0):
        sys.stdout.write("\n".join(plan.lines()) + "\n")
        sys.stdout.flush()
    return 0


def config_from_args(args: argparse.Namespace) -> RailsConfig:
    collectives = tuple(get_collective(c.strip()).name for c in args.collectives.split(",") if c.strip())
    return RailsConfig(
        profile=args.profile,
        socket_ifname=args.socket_ifname,
        oob_ifname=args.oob_ifname,
        collectives=collectives,
        rail_bytes=args.rail_bytes,
        pair_bytes=args.pair_bytes,
        iters=args.iters,
        warmup=args.warmup,
        repeats=args.repeats,
        seed=args.seed,
        isolation=args.isolation,
        pairs=not args.no_pairs,
        intra_node=args.intra_node,
        check=args.check,
        rail_rate_gbps=args.rail_rate_gbps,
        relative_fraction=args.relative_fraction,
        backend=args.backend,
        timeout_s=args.timeout,
        np=args.np,
        out=args.out,
        cluster=args.cluster,
        history=args.history,
        no_history=args.no_history,
        confirm=args.confirm,
        cell_budget_s=args.cell_budget,
        topology=args.topology,
        plan=args.plan,
        nodes=args.nodes,
        max_minutes=args.max_minutes,
    )


def main(args: argparse.Namespace) -> int:
    return run(config_or_spec(args, RailsConfig, config_from_args))


def run(config: RailsConfig) -> int:
    """Run the rails test as a rank, or start ``--np`` local ranks and return their verdict."""

    def start_local(np: int) -> int:
        _, settings = validate(config)
        # Each rank holds the pair buffers (send, receive) and a rail collective's buffers and check copy.
        per_rank = 3 * max(settings.rail_bytes, settings.pair_bytes)
        return start_local_ranks(np, config.rank_argv, config.out, config.cluster, config.backend, per_rank)

    if config.plan:
        profile, settings = validate(config)
        nodes, ranks = plan_shape(config, profile)
        intra = plan.intra_planned(settings, bool(profile.gpus_per_node))
        return print_plan(plan.for_run(nodes, ranks, settings, intra=intra))
    return rank_or_local("rails", config.np, lambda info: run_rank(config, info), start_local, lambda: validate(config))


__all__ = ["EXIT_INFRA", "RailsConfig", "RailsSettings", "add_arguments", "main", "resolve", "run"]
