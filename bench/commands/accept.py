"""``railbench accept --profile P``: the one command for a new cluster.

``check`` on every node, the world sweep (``run``), then ``rails``, in one set of ranks and one run
directory; a verdict per node and per rail; ``junit.xml`` with one testcase per check, collective, rail and
node; ``run.json`` with the overall verdict. Exit status 0 only when everything met its target, 1 when
something did not, 2 bad input, 3 infrastructure fault.

Runs under any launcher (mpirun/srun/torchrun on every node), or starts ``--np N`` local ranks itself.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.accept.config import AcceptConfig, accept_plan, validate
from bench.accept.rank import run_rank
from bench.commands import rails as rails_cmd
from bench.commands.flags import Given, add_spec_argument, config_or_spec, refuse_two_step_rules
from bench.exits import UserError
from bench.measure.collectives import get_collective
from bench.rails.config import RailsConfig
from bench.runtime.launch import rank_or_local, start_local_ranks
from bench.sweep.config import RunConfig
from bench.units import parse_size


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", required=True, metavar="NAME|PATH", help="cluster profile (e.g. lambda-1cc)")
    sweep = parser.add_argument_group("world sweep (railbench run)")
    sweep.add_argument(
        "-b",
        "--min-bytes",
        type=lambda t: parse_size(t, "--min-bytes"),
        default=RunConfig.min_bytes,
        help="first message size",
    )
    sweep.add_argument(
        "-e",
        "--max-bytes",
        type=lambda t: parse_size(t, "--max-bytes"),
        default=RunConfig.max_bytes,
        help="last message size (inclusive)",
    )
    sweep.add_argument(
        "-f", "--step-factor", type=int, default=RunConfig.step_factor, action=Given, help="multiply the size by this"
    )
    sweep.add_argument(
        "-i", "--step-bytes", type=lambda t: parse_size(t, "--step-bytes"), default=None, help="add this instead of -f"
    )
    sweep.add_argument("-n", "--iters", type=int, default=RunConfig.iters, help="timed iterations per size")
    sweep.add_argument("-w", "--warmup", type=int, default=RunConfig.warmup, help="untimed iterations per size")
    sweep.add_argument("--collectives", default=",".join(RunConfig.collectives), help="world collectives")
    sweep.add_argument("--no-check", action="store_true", help="do not verify results (checked by default)")
    rails = parser.add_argument_group("rails (railbench rails)")
    rails.add_argument("--socket-ifname", metavar="LIST", help="rail interfaces (NCCL_SOCKET_IFNAME grammar)")
    rails.add_argument("--oob-ifname", metavar="IF", help="management interface for the world group")
    rails.add_argument("--rail-bytes", type=lambda t: parse_size(t, "--rail-bytes"), help="rail-group message size")
    rails.add_argument("--pair-bytes", type=lambda t: parse_size(t, "--pair-bytes"), help="pair message size")
    rails.add_argument("--repeats", type=int, help="passes over the pair matrix")
    rails.add_argument("--seed", type=int, default=0, help="seed of the reshuffled repeats")
    rails.add_argument("--isolation", action="store_true", help="also time each rail group alone")
    rails.add_argument("--no-pairs", action="store_true", help="skip the node x node pair matrix")
    rails.add_argument(
        "--intra-node", action=argparse.BooleanOptionalAction, help="pair every two local ranks (default: on GPUs)"
    )
    rails.add_argument("--rail-rate-gbps", type=rails_cmd.number("--rail-rate-gbps"), help="line rate of one rail")
    rails.add_argument(
        "--relative-fraction", type=rails_cmd.number("--relative-fraction"), help="a pair is slow below this x peers"
    )
    rails_cmd.add_diagnosis_flags(rails)
    rails_cmd.add_plan_flags(parser.add_argument_group("plan"))
    start = parser.add_argument_group("start-up and output")
    start.add_argument("--backend", choices=("auto", "nccl", "gloo"), default="auto", help="nccl on GPUs, gloo on CPU")
    start.add_argument("--timeout", type=float, default=300.0, help="seconds per step before exit 3")
    start.add_argument("--np", type=int, help="start N local ranks under mpirun")
    start.add_argument("--out", type=Path, help="run directory (default reports/runs/<UTC>-<cluster>)")
    start.add_argument("--cluster", help="cluster name for the run directory and history")
    start.add_argument("--history", type=Path, help="history store (default reports/history.sqlite)")
    start.add_argument("--no-history", action="store_true", help="do not add this run to the history")
    add_spec_argument(parser)


def config_from_args(args: argparse.Namespace) -> AcceptConfig:
    refuse_two_step_rules(args)
    collectives = tuple(get_collective(c.strip()).name for c in args.collectives.split(",") if c.strip())
    if not collectives:
        raise UserError("--collectives is empty: name at least one, e.g. all_reduce")
    sweep = RunConfig(
        collectives=collectives,
        min_bytes=args.min_bytes,
        max_bytes=args.max_bytes,
        step_factor=args.step_factor,
        step_bytes=args.step_bytes,
        iters=args.iters,
        warmup=args.warmup,
        check=not args.no_check,
        history=args.history,
        no_history=args.no_history,
        profile=args.profile,
    )
    rails = RailsConfig(
        profile=args.profile,
        socket_ifname=args.socket_ifname,
        oob_ifname=args.oob_ifname,
        rail_bytes=args.rail_bytes,
        pair_bytes=args.pair_bytes,
        repeats=args.repeats,
        seed=args.seed,
        isolation=args.isolation,
        pairs=not args.no_pairs,
        intra_node=args.intra_node,
        rail_rate_gbps=args.rail_rate_gbps,
        relative_fraction=args.relative_fraction,
        confirm=args.confirm,
        cell_budget_s=args.cell_budget,
        topology=args.topology,
        plan=args.plan,
        nodes=args.nodes,
        max_minutes=args.max_minutes,
    )
    return AcceptConfig(
        profile=args.profile,
        sweep=sweep,
        rails=rails,
        backend=args.backend,
        timeout_s=args.timeout,
        np=args.np,
        out=args.out,
        cluster=args.cluster,
    )


def main(args: argparse.Namespace) -> int:
    return run(config_or_spec(args, AcceptConfig, config_from_args))


def run(config: AcceptConfig) -> int:
    """Accept the cluster as a rank, or start ``--np`` local ranks and return their verdict."""

    def start_local(np: int) -> int:
        per_rank = 2 * config.sweep.max_bytes  # the sweep's largest size dominates: send and receive buffers
        return start_local_ranks(np, config.rank_argv, config.out, config.cluster, config.backend, per_rank)

    if config.rails.plan:
        profile, settings = validate(config)
        nodes, ranks = rails_cmd.plan_shape(config.rails, profile)
        return rails_cmd.print_plan(accept_plan(config, profile, settings, nodes, ranks))
    return rank_or_local(
        "accept", config.np, lambda info: run_rank(config, info), start_local, lambda: validate(config)
    )
