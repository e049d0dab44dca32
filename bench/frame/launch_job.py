"""The parent half of every job, written once: be the rank a launcher started, else validate the input once,
size the ranks' config, start them (``--np`` local ranks, or the per-node form where the job has one) and read
their exit status back from the run directory (docs/design.md, "The frame").

A command describes its job by a :class:`JobKind` and calls :func:`launch`; the rank half is the job's
``run_rank`` (``bench.frame.job.run_job``). The parent never imports torch: ``bench.runtime.launch`` is
imported where ranks are started, not for ``--help`` or a rank.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

from bench.exits import EXIT_FAIL, InfraError, UserError
from bench.rundir.files import default_cluster_name, default_run_dir, new_run_dir
from bench.runtime import env as benv

if TYPE_CHECKING:
    from bench.frame.config_parts import Launch, Output


class StartsRanks(Protocol):
    """What every job's config says about starting its ranks and where its run goes: the two parts it nests
    (``bench.frame.config_parts``)."""

    @property
    def launch(self) -> Launch: ...
    @property
    def output(self) -> Output: ...


class LaunchedConfig(StartsRanks, Protocol):
    """What :func:`launch` reads from a job's frozen config besides :class:`StartsRanks`."""

    def rank_argv(self, out: Path) -> list[str]: ...


C = TypeVar("C", bound=LaunchedConfig)
V = TypeVar("V")


@dataclass(frozen=True)
class Sized(Generic[C]):
    """The config the ranks get (sizes chosen here, said here once) and the memory one rank needs for it."""

    config: C
    per_rank_bytes: int


@dataclass(frozen=True)
class JobKind(Generic[C, V]):
    """How one command's job starts: its rank half and what its parent does before starting ranks."""

    command: str
    rank: Callable[[C, benv.RankInfo], int]
    """The rank half (the job's ``run_rank``); it validates there, where rank 0 alone speaks."""
    validate: Callable[[C], V]
    """Bad input raises ``UserError`` (one line, exit 2, before any rank starts); what it returns (the profile
    it loaded) is handed to ``size``, so the parent loads it once."""
    size: Callable[[C, V, int | None], Sized[C]]
    """The ranks' config and bytes per rank, for ``np`` local ranks or (None) the per-node form."""
    node: Callable[[C], benv.NodeLaunch | None] | None = None
    """The per-node form (``torchrun`` on each node), for a job that has one; None: ``--np`` only."""
    rank_flags: Callable[[C], bool] | None = None
    """Whether the config asks to start ranks (``--np``, and the per-node flags where the job has them)."""
    already_rank: str = "--np"
    """The flags a rank is told to drop."""
    no_launcher: str | None = None
    """The line when nothing starts ranks; None: the usual one."""


def launch(kind: JobKind[C, V], config: C) -> int:
    """Run the job as the rank this process is, or start its ranks and return the exit status they recorded."""
    info = benv.discover_launched_rank()
    if info is not None:
        starts = kind.rank_flags(config) if kind.rank_flags is not None else config.launch.np is not None
        if starts:
            raise UserError(
                f"railbench is already a rank under {info.launcher}: drop {kind.already_rank}, "
                "the launcher starts ranks"
            )
        benv.cuda_device_order()  # before anything in this rank touches CUDA
        return kind.rank(config, info)
    validated = kind.validate(config)  # bad input: one line and exit 2 before any rank starts
    node = kind.node(config) if kind.node is not None else None
    np, output = config.launch.np, config.output
    if np is None and node is None:
        raise UserError(
            kind.no_launcher
            or f"no launcher detected and no --np: start 'railbench {kind.command}' under mpirun/srun/torchrun on "
            "every node, or use --np N for local ranks"
        )
    from bench.runtime import launch as starting  # the launcher and its output relay: not for --help

    if node is None:
        assert np is not None
        sized = kind.size(config, validated, np)
        ranks = sized.config
        return starting.start_local_ranks(
            np,
            ranks.rank_argv,
            output.out,
            output.cluster,
            config.launch.backend,
            sized.per_rank_bytes,
            config.launch.timeout_s,
        )
    return _start_node(kind.size(config, validated, None).config, node)


def _start_node(config: LaunchedConfig, node: benv.NodeLaunch) -> int:
    """This node's ranks under torchrun; node 0 reads the verdict from the run directory its rank 0 wrote."""
    from bench.runtime import launch as starting

    here = node.node_rank == 0
    # Node 0 claims the folder its rank 0 writes; the other nodes' proposals lose to rank 0's and are never made.
    claimed = here and config.output.out is None
    cluster = config.output.cluster or default_cluster_name(socket.gethostname())
    out = config.output.out or (new_run_dir(cluster) if claimed else default_run_dir(cluster))
    try:
        return _run_node(config, node, out, here)
    finally:
        if claimed:
            starting.release_unused(out)


def _run_node(config: LaunchedConfig, node: benv.NodeLaunch, out: Path, here: bool) -> int:
    from bench.runtime import launch as starting

    cmd = starting.elastic_command(
        node.nnodes, node.node_rank, node.nproc_per_node, node.main_address, node.main_port, config.rank_argv(out)
    )
    before = starting.run_json_stamp(out)  # a --resume's run.json is there before the ranks start
    ended = starting.run_interrupted_into(out, cmd, config.launch.timeout_s, starting.terminal_output(), here=here)
    if not here:
        # Rank 0 lives on node 0 and writes the run directory there; this node only knows its own ranks.
        if ended.hang is not None or ended.launcher_signal is not None:
            raise InfraError(ended.hang or f"the launcher was killed by signal {ended.launcher_signal}")
        return 0 if ended.rc == 0 else EXIT_FAIL
    return starting.exit_status_from_run_dir(out, ended, before=before)
