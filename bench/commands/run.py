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
import sys
from dataclasses import replace

from bench.commands import flags
from bench.exits import UserError
from bench.frame.config_parts import carrying
from bench.frame.launch_job import JobKind, Sized, launch
from bench.measure.collectives import DEFAULT_COLLECTIVES, get_collective, get_dtype
from bench.profile.cluster import Profile
from bench.runtime import env as benv
from bench.runtime.placement import blocking_wait_conflict
from bench.sweep.config import RunConfig, cpu_sized, message_sizes, sized, validate


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sweep = parser.add_argument_group("sweep (nccl-tests flags)")
    flags.add_sweep(sweep)
    flags.add_check(sweep, default=RunConfig.check, what="every result")
    sweep.add_argument(
        "--confirm",
        type=int,
        default=RunConfig.confirm,
        metavar="N",
        help="measure a judged size under its target again, up to N times, before it fails (0: off)",
    )
    sweep.add_argument("-d", "--dtype", default=RunConfig.dtype, help="element type (nccl-tests names)")
    flags.add_collectives(sweep, default=DEFAULT_COLLECTIVES, help="comma-separated, e.g. all_reduce,sendrecv")
    flags.said(
        sweep.add_argument(
            "--graph", action=flags.OnOff, default=None, help="capture the timed iterations in a CUDA graph (-G)"
        ),
        "on with NCCL where capture works, off on gloo",
    )
    start = parser.add_argument_group("starting ranks (omit under mpirun/srun/torchrun)")
    flags.add_launch(start)
    start.add_argument("--nnodes", type=int, help="per-node form: number of nodes")
    start.add_argument("--node-rank", type=int, help="per-node form: this node's index")
    start.add_argument("--main-address", help="per-node form: node 0's address")
    start.add_argument("--main-port", type=int, default=RunConfig.main_port, help="per-node form: node 0's port")
    start.add_argument("--nproc-per-node", type=int, help="per-node form: ranks per node")
    flags.add_interfaces(start, rails=False)
    out = parser.add_argument_group("output")
    flags.add_output(out)
    flags.add_profile(out, default=RunConfig.profile)
    out.add_argument(
        "--progress",
        choices=("auto", "on", "off"),
        default=RunConfig.progress,
        help="progress bar on rank 0 (auto: when the output is a terminal)",
    )
    flags.add_spec_argument(parser)


def config_from_args(args: argparse.Namespace) -> RunConfig:
    names = flags.collectives(args, empty="--collectives is empty: name at least one, e.g. all_reduce")
    return flags.config_of(
        RunConfig,
        args,
        collectives=tuple(get_collective(c).name for c in names),
        **flags.sweep_fields(args),
        dtype=get_dtype(args.dtype).name,
        launch=flags.launch_part(args),
        output=flags.output_part(args),
    )


def main(args: argparse.Namespace) -> int:
    return run(flags.config_or_spec(args, RunConfig, config_from_args))


def _rank(config: RunConfig, info: benv.RankInfo) -> int:
    from bench.sweep.rank import run_rank  # the rank side (frame, torch's world): not for --help

    return run_rank(config, info)


def _sized(config: RunConfig, profile: Profile, np: int | None) -> Sized[RunConfig]:
    from bench.runtime import launch  # the launcher and its output relay: not for --help

    if np is not None and not launch.local_ranks_use_gpus(config.launch.backend):
        config, note = cpu_sized(config, profile, np)
        if note:
            print(f"railbench: note: {note}", file=sys.stderr)
    else:
        config = sized(config, profile)
    config = replace(config, launch=carrying(config.launch, profile))  # the ranks parse what was read here
    return Sized(config, 2 * (config.max_bytes or 0))  # send + receive buffers; the check works in fixed chunks


def _node_launch(config: RunConfig) -> benv.NodeLaunch | None:
    if config.nnodes is not None:
        assert config.node_rank is not None and config.main_address is not None
        assert config.nproc_per_node is not None
        return benv.NodeLaunch(
            config.nnodes, config.node_rank, config.nproc_per_node, config.main_address, config.main_port, "cli"
        )
    return None if config.launch.np is not None else benv.discover_node_launch()


RUN: JobKind[RunConfig, Profile] = JobKind(
    "run",
    _rank,
    validate,
    _sized,
    node=_node_launch,
    rank_flags=lambda config: config.launch.np is not None or config.nnodes is not None,
    already_rank="--np/--nnodes",
    no_launcher="no launcher detected and no --np: use 'railbench run --np 4' for local ranks, start it under "
    "mpirun/srun/torchrun, or give --nnodes/--node-rank/--main-address/--nproc-per-node",
)


def run(config: RunConfig) -> int:
    """Run the sweep as a rank, or start the ranks and report their verdict; returns the exit status."""
    conflict = blocking_wait_conflict(benv.environ(), config.graph is True)
    if conflict is not None:
        raise UserError(conflict)
    return launch(RUN, config)


__all__ = ["RunConfig", "add_arguments", "main", "message_sizes", "run"]
