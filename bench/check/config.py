"""What ``railbench check`` checks."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from bench.bounded import Where, finite
from bench.exits import UserError
from bench.profile.errors import MAX_WINDOW_S

MPI_LAUNCHERS = ("openmpi", "pmix", "pmi", "slurm")
INPUT_CHECK = "input"  # a node's bad input under mpirun, reported by rank 0 instead of hanging the gather


@dataclass(frozen=True)
class CheckConfig:
    """What ``railbench check`` checks."""

    profile: str
    """Profile NAME (shipped) or PATH to a .toml file."""
    sysfs_root: Path
    """Stands in for /sys (DIR/class/infiniband/...); ``{host}`` becomes this node's host name."""
    nccl_logs: tuple[Path, ...] = ()
    """NCCL_DEBUG=INFO logs to judge as evidence."""
    json: bool = False
    """Print JSON instead of the table."""
    gather: Literal["auto", "off"] = "auto"
    """``auto``: gather to rank 0 when an MPI-family launcher started several ranks."""
    error_window_s: float | None = None
    """Seconds between the two samples of the rails' error counters; None: the profile's ``[errors] window_s``."""
    kernel_log: Path | None = None
    """The kernel log to scan for link flaps and Xid events; None: the journal, kern.log or syslog of this machine."""
    nvidia_smi: tuple[Path, ...] = ()
    """Captured ``nvidia-smi -q -x`` and ``nvidia-smi nvlink -s`` output to judge; empty: run nvidia-smi (live)."""
    ibv_devinfo: Path | None = None
    """Captured ``ibv_devinfo`` output of this node (an InfiniBand port's active MTU); None: run it (live)."""
    topology: Path | None = None
    """The fabric's cabling (ibnetdiscover output or a cabling TOML) to check against the rail-optimised plan."""

    def __post_init__(self) -> None:
        # Paths are checked per node in local_report: under mpirun one rank's bad path must not leave the
        # others waiting in the gather.
        if self.gather not in ("auto", "off"):
            raise UserError(f"gather mode {self.gather!r} must be auto or off")
        if self.error_window_s is not None:
            finite(self.error_window_s, Where("--error-window", "seconds"), maximum=MAX_WINDOW_S)
