"""What a world sweep measures (``railbench run``): a frozen config validated on construction."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from bench.exits import UserError
from bench.frame.config_parts import Launch, Output
from bench.frame.validate import check_common
from bench.measure.collectives import DEFAULT_COLLECTIVES, get_collective, get_dtype
from bench.profile.cluster import Profile, profile_for
from bench.runtime import spec
from bench.units import format_size

MAX_SIZES = 4096
DEFAULT_MAX_BYTES = 64 << 20
"""-e on a profile that judges no world collective (the local CPU profile)."""
JUDGED_MAX_BYTES = 8 << 30
"""-e on a profile that judges world collectives: past its judged sizes (256M up), as nccl-tests users test."""


_PER_NODE_FLAGS = ("nnodes", "node-rank", "main-address", "nproc-per-node")


@dataclass(frozen=True)
class RunConfig:
    """Everything a sweep needs; validated on construction so bad input never reaches a rank."""

    collectives: tuple[str, ...] = DEFAULT_COLLECTIVES
    """Collectives to sweep, in order (names from bench.measure.collectives.REGISTRY)."""
    min_bytes: int = 8
    """-b: the first message size."""
    max_bytes: int | None = None
    """-e: the last message size (inclusive). None: the profile's default (:func:`sized`): 8G where the profile
    judges world collectives, well past its judged sizes as nccl-tests users test; 64M where it judges none."""
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
    confirm: int = 2
    """--confirm: a judged size under its target is measured again, up to this many times, and fails only when
    every measurement falls short (0: judged on one measurement). One measurement is one draw of the fabric's
    noise; a slow part slows every draw (``bench.sweep.rank``)."""
    dtype: str = "float"
    """-d: element type (nccl-tests names)."""
    graph: bool | None = None
    """Capture the timed iterations in a CUDA graph (nccl-tests -G); NCCL only. None: on with NCCL where
    capture works (agreed by every rank before the sweep), off on gloo and under blocking wait."""
    launch: Launch = field(default_factory=Launch)
    """How the ranks start: backend, step timeout, ``--np``, ``--sysfs-root`` (``bench.frame.config_parts``)."""
    nnodes: int | None = None
    node_rank: int | None = None
    main_address: str | None = None
    main_port: int = 29500
    nproc_per_node: int | None = None
    output: Output = field(default_factory=Output)
    """Where the run goes: run directory, cluster name, history (``bench.frame.config_parts``)."""
    profile: str = "local"
    """Cluster profile (name or TOML path): targets and pass thresholds."""
    oob_ifname: str | None = None
    """Interface for the rendezvous and the world group (the management network)."""
    progress: Literal["auto", "on", "off"] = "auto"
    """Progress bar on rank 0: auto shows it when the user's terminal is a terminal."""

    def __post_init__(self) -> None:
        for name in self.collectives:
            get_collective(name)
        get_dtype(self.dtype)
        if self.min_bytes < 0 or (self.max_bytes is not None and self.max_bytes < 0):
            raise UserError("-b/-e: message sizes must not be negative: use sizes like 8, 1K, 64M, 16G")
        if self.max_bytes is not None and self.min_bytes > self.max_bytes:
            raise UserError(
                f"--min-bytes {format_size(self.min_bytes)} is larger than --max-bytes {format_size(self.max_bytes)}:"
                " swap them or raise -e"
            )
        if self.min_bytes == 0:
            raise UserError("-b 0 asks for 0-byte messages, which measure nothing: start at 8 bytes or more (-b 8)")
        if self.step_bytes is not None and self.step_bytes <= 0:
            raise UserError(f"--step-bytes {self.step_bytes} must be positive: sizes would never grow")
        if self.step_bytes is None and self.step_factor < 2:
            raise UserError(
                f"--step-factor {self.step_factor} must be at least 2: it multiplies each size (use -i for steps)"
            )
        last = self.max_bytes if self.max_bytes is not None else JUDGED_MAX_BYTES
        if len(message_sizes(self.min_bytes, last, self.step_factor, self.step_bytes)) > MAX_SIZES:
            raise UserError(f"-b/-e: the sweep has more than {MAX_SIZES} sizes: raise -f or -i, or narrow -b/-e")
        if self.iters < 1:
            raise UserError(f"--iters {self.iters} must be at least 1")
        if self.warmup < 0:
            raise UserError(f"--warmup {self.warmup} must not be negative")
        if self.confirm < 0:
            raise UserError(f"--confirm {self.confirm} must be at least 0: 0 judges each size on one measurement")
        if self.launch.backend == "gloo" and self.graph is True:
            raise UserError("--graph captures CUDA graphs and needs --backend nccl: drop --graph for gloo")
        per_node = (self.nnodes, self.node_rank, self.main_address, self.nproc_per_node)
        if any(v is not None for v in per_node):
            if any(v is None for v in per_node):
                given = ", ".join(f"--{n}" for n, v in zip(_PER_NODE_FLAGS, per_node, strict=True) if v is not None)
                raise UserError(
                    f"{given}: the per-node launch needs all of --nnodes, --node-rank, --main-address and "
                    "--nproc-per-node"
                )
            assert self.nnodes is not None and self.node_rank is not None and self.nproc_per_node is not None
            if self.nnodes < 1 or self.nproc_per_node < 1:
                raise UserError("--nnodes and --nproc-per-node must be at least 1")
            if not 0 <= self.node_rank < self.nnodes:
                raise UserError(f"--node-rank {self.node_rank} must be in 0..{self.nnodes - 1} (--nnodes)")
            if self.launch.np is not None:
                raise UserError("--np starts local ranks; it cannot be combined with the per-node flags")
        if not 1 <= self.main_port <= 65535:
            raise UserError(f"--main-port {self.main_port} is not a TCP port (1..65535)")

    @property
    def sizes(self) -> list[int]:
        if self.max_bytes is None:
            raise ValueError(
                "the sweep's last size comes from the profile: resolve it first (bench.sweep.config.sized)"
            )
        return message_sizes(self.min_bytes, self.max_bytes, self.step_factor, self.step_bytes)

    def rank_argv(self, out: Path | None) -> list[str]:
        """The argv of the ranks the parent starts: this very config (``bench.runtime.spec``), minus how to
        start, with the run directory the parent chose."""
        # The ranks' stdout is mpirun's pseudo-terminal whatever the user's is, so the parent decides.
        progress = self.progress if self.progress != "auto" else ("on" if sys.stdout.isatty() else "off")
        ranks = replace(
            self,
            launch=replace(self.launch, np=None),
            output=replace(self.output, out=out or self.output.out),
            nnodes=None,
            node_rank=None,
            main_address=None,
            nproc_per_node=None,
            progress=progress,
        )
        return spec.rank_argv("run", ranks)


def message_sizes(min_bytes: int, max_bytes: int, step_factor: int, step_bytes: int | None) -> list[int]:
    """nccl-tests' sweep: from -b to -e inclusive, multiplying by -f or adding -i."""
    sizes: list[int] = []
    size = min_bytes
    while size <= max_bytes and len(sizes) <= MAX_SIZES:
        sizes.append(size)
        nxt = size + step_bytes if step_bytes else size * step_factor
        if nxt == size:  # -b 0 with -f: nccl-tests would spin forever
            nxt = 1 if size == 0 else nxt
        size = nxt
    return sizes


def validate(config: RunConfig, *, with_history: bool = True) -> Profile:
    """What a frozen config cannot know by itself: the profile, the hardware, ``--out`` and ``--history``.

    Runs in the parent before any rank starts, and on every rank before it joins the process group (there
    without the history, which rank 0 alone checks: ``bench.frame.job``).
    """
    profile = profile_for(config.profile, config.launch.profile_read)
    check_common(config.launch, config.output, graph=config.graph is True, with_history=with_history)
    return profile


def default_max_bytes(profile: Profile) -> int:
    """-e when none is given: the profile's ``default_max_bytes`` (8G on lambda-1cc, past its 256M judged size:
    nccl-tests users sweep to 8-16 GiB); else 8G (at least the judged size) where the profile has a target,
    64M where it has none (the CPU profiles: gloo moves 64M in well under a second)."""
    if profile.default_max_bytes:
        return profile.default_max_bytes
    return max(JUDGED_MAX_BYTES, profile.judge_min_bytes) if profile.has_targets else DEFAULT_MAX_BYTES


def cpu_sized(config: RunConfig, profile: Profile, np: int) -> tuple[RunConfig, str | None]:
    """:func:`sized` for ``np`` local ranks on the CPU (gloo over loopback), and the note to print when the
    profile's default -e was not taken.

    A profile's default -e is sized for its GPUs (8G on lambda-1cc, past its judged 256M): on CPU ranks it asks
    for np x 2 x 8 GiB of memory and minutes per size, and the memory check refused the run before a single
    check could say why this machine is not the cluster (no RDMA device, no GPU). Without -e, CPU ranks sweep
    to the CPU default (64M, which gloo moves in well under a second), and the note says so; a -e the user
    gave is kept (and still refused when it cannot fit).
    """
    if config.max_bytes is not None or default_max_bytes(profile) <= DEFAULT_MAX_BYTES:
        return sized(config, profile), None
    chosen = max(DEFAULT_MAX_BYTES, config.min_bytes)
    profile_default = default_max_bytes(profile)
    need = np * 2 * profile_default / 2**30
    unjudged = (
        f", below the {format_size(profile.judge_min_bytes)} its targets judge from"
        if chosen < profile.judge_min_bytes
        else ""
    )
    return replace(config, max_bytes=chosen), (
        f"-e not given: profile {profile.name} sweeps to {format_size(profile_default)}, sized for its GPUs; "
        f"these {np} ranks run on the CPU (gloo), where that needs about {need:.0f} GiB and minutes per size, "
        f"so the sweep stops at {format_size(chosen)}{unjudged} (give -e to choose)"
    )


def sized(config: RunConfig, profile: Profile) -> RunConfig:
    """``config`` with its last size resolved from ``profile`` when -e was not given (issue 21: a default run
    on a GPU profile must reach the judged size, or it judges nothing)."""
    if config.max_bytes is not None:
        return config
    resolved = replace(config, max_bytes=default_max_bytes(profile))
    if resolved.min_bytes > default_max_bytes(profile):
        raise UserError(
            f"--min-bytes {format_size(resolved.min_bytes)} is larger than the profile's default -e "
            f"{format_size(default_max_bytes(profile))}: give -e"
        )
    return resolved
