"""``railbench run``: sweep message sizes for collectives under any launcher, or start the ranks itself.

Three ways to start (docs/design.md, "Layers"):

* under a launcher (mpirun, srun, torchrun, deepspeed): this process is a rank and runs the sweep;
* ``--np N``: start N local ranks under mpirun (gloo on CPU over loopback when there is no GPU);
* per node (``--nnodes/--node-rank/--main-address/--nproc-per-node``, or a RunPod pod's variables):
  start this node's ranks with torch's elastic launcher.

The parent never imports torch; the ranks do (``bench.sweep.rank``).
"""

from __future__ import annotations

import argparse
import socket
from collections.abc import Callable
from pathlib import Path

from bench.commands.flags import Given, add_spec_argument, config_or_spec, refuse_two_step_rules
from bench.exits import EXIT_FAIL, UserError
from bench.measure.collectives import DEFAULT_COLLECTIVES, get_collective, get_dtype
from bench.rundir.files import default_cluster_name, default_run_dir
from bench.runtime import env as benv
from bench.runtime import launch
from bench.runtime.placement import blocking_wait_conflict
from bench.sweep.config import RunConfig, message_sizes, validate
from bench.sweep.rank import run_rank
from bench.units import parse_size


def _size(flag: str) -> Callable[[str], int]:
    return lambda text: parse_size(text, flag)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sweep = parser.add_argument_group("sweep (nccl-tests flags)")
    sweep.add_argument(
        "-b", "--min-bytes", type=_size("--min-bytes"), default=RunConfig.min_bytes, help="first message size"
    )
    sweep.add_argument(
        "-e",
        "--max-bytes",
        type=_size("--max-bytes"),
        default=RunConfig.max_bytes,
        help="last message size (inclusive)",
    )
    sweep.add_argument(
        "-f", "--step-factor", type=int, default=RunConfig.step_factor, action=Given, help="multiply the size by this"
    )
    sweep.add_argument("-i", "--step-bytes", type=_size("--step-bytes"), default=None, help="add this instead of -f")
    sweep.add_argument("-n", "--iters", type=int, default=RunConfig.iters, help="timed iterations per size")
    sweep.add_argument("-w", "--warmup", type=int, default=RunConfig.warmup, help="untimed iterations per size")
    sweep.add_argument("-c", "--check", nargs="?", type=int, const=1, default=0, help="verify results (-c or -c 1)")
    sweep.add_argument("-d", "--dtype", default=RunConfig.dtype, help="element type (nccl-tests names)")
    sweep.add_argument(
        "--collectives", default=",".join(DEFAULT_COLLECTIVES), help="comma-separated, e.g. all_reduce,sendrecv"
    )
    sweep.add_argument("--backend", choices=("auto", "nccl", "gloo"), default="auto", help="nccl on GPUs, gloo on CPU")
    sweep.add_argument(
        "--graph",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="capture iterations in a CUDA graph (nccl-tests -G); default: on with NCCL where capture works",
    )
    sweep.add_argument("--timeout", type=float, default=RunConfig.timeout_s, help="seconds per collective (exit 3)")
    start = parser.add_argument_group("starting ranks (omit under mpirun/srun/torchrun)")
    start.add_argument("--np", type=int, help="start N local ranks under mpirun")
    start.add_argument("--nnodes", type=int, help="per-node form: number of nodes")
    start.add_argument("--node-rank", type=int, help="per-node form: this node's index")
    start.add_argument("--main-address", help="per-node form: node 0's address")
    start.add_argument("--main-port", type=int, default=RunConfig.main_port, help="per-node form: node 0's port")
    start.add_argument("--nproc-per-node", type=int, help="per-node form: ranks per node")
    start.add_argument("--oob-ifname", help="management interface for the rendezvous and the world group")
    out = parser.add_argument_group("output")
    out.add_argument("--out", type=Path, help="run directory (default reports/runs/<UTC>-<cluster>)")
    out.add_argument("--cluster", help="cluster name for the run directory and history")
    out.add_argument("--profile", default=RunConfig.profile, help="cluster profile: name or TOML path")
    out.add_argument("--history", type=Path, help="history store (default reports/history.sqlite)")
    out.add_argument("--no-history", action="store_true", help="do not add this run to the history")
    out.add_argument("--progress", choices=("auto", "on", "off"), default="auto", help="progress bar on rank 0")
    add_spec_argument(parser)


def config_from_args(args: argparse.Namespace) -> RunConfig:
    refuse_two_step_rules(args)
    collectives = tuple(c.strip() for c in args.collectives.split(",") if c.strip())
    if not collectives:
        raise UserError("--collectives is empty: name at least one, e.g. all_reduce")
    return RunConfig(
        collectives=tuple(get_collective(c).name for c in collectives),
        min_bytes=args.min_bytes,
        max_bytes=args.max_bytes,
        step_factor=args.step_factor,
        step_bytes=args.step_bytes,
        iters=args.iters,
        warmup=args.warmup,
        check=bool(args.check),
        dtype=get_dtype(args.dtype).name,
        backend=args.backend,
        graph=args.graph,
        timeout_s=args.timeout,
        np=args.np,
        nnodes=args.nnodes,
        node_rank=args.node_rank,
        main_address=args.main_address,
        main_port=args.main_port,
        nproc_per_node=args.nproc_per_node,
        out=args.out,
        cluster=args.cluster,
        profile=args.profile,
        oob_ifname=args.oob_ifname,
        history=args.history,
        no_history=args.no_history,
        progress=args.progress,
    )


def main(args: argparse.Namespace) -> int:
    return run(config_or_spec(args, RunConfig, config_from_args))


def run(config: RunConfig) -> int:
    """Run the sweep as a rank, or start the ranks and report their verdict; returns the exit status."""
    conflict = blocking_wait_conflict(benv.environ(), config.graph is True)
    if conflict is not None:
        raise UserError(conflict)
    info = benv.discover_launched_rank()
    if info is not None:
        if config.np is not None or config.nnodes is not None:
            raise UserError(
                f"railbench is already a rank under {info.launcher}: drop --np/--nnodes, the launcher starts ranks"
            )
        return run_rank(config, info)
    validate(config)  # bad input: one line and exit 2 before any rank starts
    node = _node_launch(config)
    if config.np is None and node is None:
        raise UserError(
            "no launcher detected and no --np: use 'railbench run --np 4' for local ranks, start it under "
            "mpirun/srun/torchrun, or give --nnodes/--node-rank/--main-address/--nproc-per-node"
        )
    return _start_ranks(config, node)


def _node_launch(config: RunConfig) -> benv.NodeLaunch | None:
    if config.nnodes is not None:
        assert config.node_rank is not None and config.main_address is not None
        assert config.nproc_per_node is not None
        return benv.NodeLaunch(
            config.nnodes, config.node_rank, config.nproc_per_node, config.main_address, config.main_port, "cli"
        )
    return None if config.np is not None else benv.discover_node_launch()


def _start_ranks(config: RunConfig, node: benv.NodeLaunch | None) -> int:
    if node is None:
        assert config.np is not None
        per_rank = 2 * config.max_bytes  # send + receive buffers; the check works in fixed chunks, no copy
        return launch.start_local_ranks(
            config.np, config.rank_argv, config.out, config.cluster, config.backend, per_rank
        )
    out = config.out or default_run_dir(config.cluster or default_cluster_name(socket.gethostname()))
    cmd = launch.elastic_command(
        node.nnodes, node.node_rank, node.nproc_per_node, node.main_address, node.main_port, config.rank_argv(out)
    )
    rc = launch.run_interrupted_into(out, cmd, launch.terminal_output())
    if node.node_rank != 0:
        # Rank 0 lives on node 0 and writes the run directory there; this node only knows its own ranks.
        return 0 if rc == 0 else EXIT_FAIL
    return launch.exit_status_from_run_dir(out, rc)


__all__ = ["RunConfig", "add_arguments", "main", "message_sizes", "run"]
