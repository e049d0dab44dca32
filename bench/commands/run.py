"""``railbench run``: sweep message sizes for collectives under any launcher, or start the ranks itself.

Three ways to start (DESIGN.md):

* under a launcher (mpirun, srun, torchrun, deepspeed): this process is a rank and runs the sweep;
* ``--np N``: start N local ranks under mpirun (gloo on CPU over loopback when there is no GPU);
* per node (``--nnodes/--node-rank/--main-address/--nproc-per-node``, or a RunPod pod's variables):
  start this node's ranks with torch's elastic launcher.

The parent never imports torch; the ranks do (``bench.worker``).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from bench import env as benv
from bench.collectives import DEFAULT_COLLECTIVES, get_collective, get_dtype
from bench.errors import EXIT_FAIL, UserError
from bench.placement import blocking_wait_conflict
from bench.units import format_size, parse_size

MAX_SIZES = 4096


@dataclass(frozen=True)
class RunConfig:
    """Everything a sweep needs; validated on construction so bad input never reaches a rank."""

    collectives: tuple[str, ...] = DEFAULT_COLLECTIVES
    """Collectives to sweep, in order (names from bench.collectives.REGISTRY)."""
    min_bytes: int = 8
    """-b: the first message size."""
    max_bytes: int = 64 << 20
    """-e: the last message size (inclusive)."""
    step_factor: int = 2
    """-f: multiply the size by this between steps."""
    step_bytes: int | None = None
    """-i: add this many bytes between steps instead of multiplying."""
    iters: int = 20
    """-n: timed iterations per size."""
    warmup: int = 5
    """-w: untimed warm-up iterations per size."""
    check: bool = False
    """-c: verify every result element by element and count #wrong."""
    dtype: str = "float"
    """-d: element type (nccl-tests names)."""
    backend: Literal["auto", "nccl", "gloo"] = "auto"
    """auto is nccl when CUDA is available, gloo otherwise."""
    graph: bool = False
    """Capture the timed iterations in a CUDA graph (nccl-tests -G); NCCL only."""
    timeout_s: float = 300.0
    """A collective that has not finished after this many seconds ends the run with exit 3."""
    np: int | None = None
    """Start this many local ranks under mpirun."""
    nnodes: int | None = None
    node_rank: int | None = None
    main_address: str | None = None
    main_port: int = 29500
    nproc_per_node: int | None = None
    out: Path | None = None
    """Run directory; default reports/runs/<UTC time>-<cluster>."""
    cluster: str | None = None
    """Name in the run directory and history; default: rank 0's hostname without its trailing digits."""
    profile: str = "local"
    """Cluster profile (name or TOML path): targets and pass thresholds."""
    oob_ifname: str | None = None
    """Interface for the rendezvous and the world group (the management network)."""
    history: Path | None = None
    """History store to add the run to (default reports/history.sqlite)."""
    no_history: bool = False
    progress: Literal["auto", "on", "off"] = "auto"
    """Progress bar on rank 0: auto shows it when the user's terminal is a terminal."""
    extra_rank_args: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        for name in self.collectives:
            get_collective(name)
        get_dtype(self.dtype)
        if self.min_bytes < 0 or self.max_bytes < 0:
            raise UserError("message sizes must not be negative: use -b/-e like 8, 1K, 64M, 16G")
        if self.min_bytes > self.max_bytes:
            raise UserError(
                f"--min-bytes {format_size(self.min_bytes)} is larger than --max-bytes {format_size(self.max_bytes)}:"
                " swap them or raise -e"
            )
        if self.step_bytes is not None and self.step_bytes <= 0:
            raise UserError(f"--step-bytes {self.step_bytes} must be positive: sizes would never grow")
        if self.step_bytes is None and self.step_factor < 2:
            raise UserError(
                f"--step-factor {self.step_factor} must be at least 2: it multiplies each size (use -i for steps)"
            )
        if len(message_sizes(self.min_bytes, self.max_bytes, self.step_factor, self.step_bytes)) > MAX_SIZES:
            raise UserError(f"the sweep has more than {MAX_SIZES} sizes: raise -f or -i, or narrow -b/-e")
        if self.iters < 1:
            raise UserError(f"--iters {self.iters} must be at least 1")
        if self.warmup < 0:
            raise UserError(f"--warmup {self.warmup} must not be negative")
        if self.timeout_s <= 0:
            raise UserError(f"--timeout {self.timeout_s:g} must be positive (seconds)")
        if self.backend == "gloo" and self.graph:
            raise UserError("--graph captures CUDA graphs and needs --backend nccl: drop --graph for gloo")
        per_node = (self.nnodes, self.node_rank, self.main_address, self.nproc_per_node)
        if any(v is not None for v in per_node):
            if any(v is None for v in per_node):
                raise UserError(
                    "the per-node launch needs all of --nnodes, --node-rank, --main-address and --nproc-per-node"
                )
            assert self.nnodes is not None and self.node_rank is not None and self.nproc_per_node is not None
            if self.nnodes < 1 or self.nproc_per_node < 1:
                raise UserError("--nnodes and --nproc-per-node must be at least 1")
            if not 0 <= self.node_rank < self.nnodes:
                raise UserError(f"--node-rank {self.node_rank} must be in 0..{self.nnodes - 1} (--nnodes)")
            if self.np is not None:
                raise UserError("--np starts local ranks; it cannot be combined with the per-node flags")
        if not 1 <= self.main_port <= 65535:
            raise UserError(f"--main-port {self.main_port} is not a TCP port (1..65535)")

    @property
    def sizes(self) -> list[int]:
        return message_sizes(self.min_bytes, self.max_bytes, self.step_factor, self.step_bytes)

    def rank_argv(self, out: Path | None) -> list[str]:
        """The argv of the ranks the parent starts: the same sweep, minus how to start."""
        argv = [
            "run", "-b", str(self.min_bytes), "-e", str(self.max_bytes), "-n", str(self.iters),
            "-w", str(self.warmup), "-d", self.dtype, "--collectives", ",".join(self.collectives),
            "--backend", self.backend, "--timeout", f"{self.timeout_s:g}", "--profile", self.profile,
        ]  # fmt: skip
        argv += ["-i", str(self.step_bytes)] if self.step_bytes else ["-f", str(self.step_factor)]
        if self.check:
            argv += ["-c", "1"]
        if self.graph:
            argv.append("--graph")
        for flag, value in (("--out", out), ("--cluster", self.cluster), ("--oob-ifname", self.oob_ifname),
                            ("--history", self.history)):  # fmt: skip
            if value is not None:
                argv += [flag, str(value)]
        if self.no_history:
            argv.append("--no-history")
        # The ranks' stdout is mpirun's pseudo-terminal whatever the user's is, so the parent decides.
        progress = self.progress if self.progress != "auto" else ("on" if sys.stdout.isatty() else "off")
        argv += ["--progress", progress]
        return [*argv, *self.extra_rank_args]


def message_sizes(min_bytes: int, max_bytes: int, step_factor: int, step_bytes: int | None) -> list[int]:
    """nccl-tests' sweep: from -b to -e inclusive, multiplying by -f or adding -i."""
    sizes, size = [], min_bytes
    while size <= max_bytes and len(sizes) <= MAX_SIZES:
        sizes.append(size)
        nxt = size + step_bytes if step_bytes else size * step_factor
        if nxt == size:  # -b 0 with -f: nccl-tests would spin forever
            nxt = 1 if size == 0 else nxt
        size = nxt
    return sizes


def _size(flag: str):  # type: ignore[no-untyped-def]
    return lambda text: parse_size(text, flag)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sweep = parser.add_argument_group("sweep (nccl-tests flags)")
    sweep.add_argument("-b", "--min-bytes", type=_size("--min-bytes"), default=RunConfig.min_bytes)
    sweep.add_argument("-e", "--max-bytes", type=_size("--max-bytes"), default=RunConfig.max_bytes)
    sweep.add_argument("-f", "--step-factor", type=int, default=RunConfig.step_factor)
    sweep.add_argument("-i", "--step-bytes", type=_size("--step-bytes"), default=None)
    sweep.add_argument("-n", "--iters", type=int, default=RunConfig.iters)
    sweep.add_argument("-w", "--warmup", type=int, default=RunConfig.warmup)
    sweep.add_argument("-c", "--check", nargs="?", type=int, const=1, default=0, help="verify results (-c or -c 1)")
    sweep.add_argument("-d", "--dtype", default=RunConfig.dtype)
    sweep.add_argument(
        "--collectives", default=",".join(DEFAULT_COLLECTIVES), help="comma-separated, e.g. all_reduce,sendrecv"
    )
    sweep.add_argument("--backend", choices=("auto", "nccl", "gloo"), default="auto")
    sweep.add_argument("--graph", action="store_true", help="capture iterations in a CUDA graph (nccl-tests -G)")
    sweep.add_argument("--timeout", type=float, default=RunConfig.timeout_s, help="seconds per collective (exit 3)")
    start = parser.add_argument_group("starting ranks (omit under mpirun/srun/torchrun)")
    start.add_argument("--np", type=int, help="start N local ranks under mpirun")
    start.add_argument("--nnodes", type=int)
    start.add_argument("--node-rank", type=int)
    start.add_argument("--main-address")
    start.add_argument("--main-port", type=int, default=RunConfig.main_port)
    start.add_argument("--nproc-per-node", type=int)
    start.add_argument("--oob-ifname", help="management interface for the rendezvous and the world group")
    out = parser.add_argument_group("output")
    out.add_argument("--out", type=Path, help="run directory (default reports/runs/<UTC>-<cluster>)")
    out.add_argument("--cluster", help="cluster name for the run directory and history")
    out.add_argument("--profile", default=RunConfig.profile, help="cluster profile: name or TOML path")
    out.add_argument("--history", type=Path, help="history store (default reports/history.sqlite)")
    out.add_argument("--no-history", action="store_true", help="do not add this run to the history")
    out.add_argument("--progress", choices=("auto", "on", "off"), default="auto", help="progress bar on rank 0")


def config_from_args(args: argparse.Namespace) -> RunConfig:
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
    return run(config_from_args(args))


def run(config: RunConfig) -> int:
    """Run the sweep as a rank, or start the ranks and report their verdict; returns the exit status."""
    conflict = blocking_wait_conflict(benv.environ(), config.graph)
    if conflict is not None:
        raise UserError(conflict)
    info = benv.discover_launched_rank()
    if info is not None:
        if config.np is not None or config.nnodes is not None:
            raise UserError(
                f"railbench is already a rank under {info.launcher}: drop --np/--nnodes, the launcher starts ranks"
            )
        from bench.worker import run_rank

        return run_rank(config, info)
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
    import socket

    from bench import launch
    from bench.rundir import default_cluster_name, default_run_dir

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
    rc = launch.run_ranks(cmd, launch.child_environment(), timeout_s=None)
    if node.node_rank != 0:
        # Rank 0 lives on node 0 and writes the run directory there; this node only knows its own ranks.
        return 0 if rc == 0 else EXIT_FAIL
    return launch.exit_status_from_run_dir(out, rc)


__all__ = ["RunConfig", "add_arguments", "main", "message_sizes", "run"]
