"""What ``railbench health`` checks, and how long it may take."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bench.bounded import Where, finite
from bench.exits import UserError
from bench.profile.errors import MAX_WINDOW_S
from bench.slurm.scheduler import check_node_name

HEALTH_CHECKS: tuple[str, ...] = (
    "ib-devices",
    "rail-count",
    "rail",
    "socket-rail",
    "gpu-count",
    "gpu-nic-affinity",
    "rail-firmware",
    "rail-errors",
    "sysfs-tree",
    "pcie-link",
    "pcie-acs",
    "gpu-peer-memory",
    "gpu-xid",
    "gpu-ecc",
    "gpu-clocks",
    "nvlink",
    "fabric-manager",
    "port-mtu",
)
"""The node-local subset of ``check`` (``bench.preflight.checks``) a health check runs: the node's own hardware as it
is now (``pcie-acs`` included: a BIOS update or a reboot can turn ACS redirection back on under a switch shared by a
GPU and its NIC), the GPUs' own health included (Xid events since boot: a GPU that fell off the bus or took a
double-bit error stays broken until it is reset, so it drains again after a resume until then; a GPU whose clocks
heat or a power brake hold down at idle, a fault of its cooling or power). Left out: the checks
of the run's settings (``NCCL_IB_HCA``, ``NCCL_SOCKET_IFNAME``: slurmd gives its health check no job's environment),
NCCL's logs (none given), and the kernel log's link flaps (history, not the present: a flap an hour ago would drain
the node again after every resume)."""

DEFAULT_TIME_LIMIT_S = 30.0
"""slurmd kills its HealthCheckProgram after 60 s (``run_script_health_check``, slurmd.c); a prolog
waits as long as ``PrologEpilogTimeout``. Half of that leaves room for a slow ``scontrol``."""
MAX_TIME_LIMIT_S = 600.0


@dataclass(frozen=True)
class HealthConfig:
    """``railbench health``: the node-local checks of a profile, bounded in time, for Slurm."""

    profile: str
    """Profile NAME (shipped) or PATH to a .toml file: what the node should have."""
    sysfs_root: Path
    """Stands in for /sys."""
    node: str | None = None
    """This node's name in Slurm; None: ``SLURMD_NODENAME`` (set by slurmd), else this host's name."""
    drain: bool = False
    """Drain the node in Slurm when a check fails, and resume it when it passes and railbench drained it."""
    time_limit_s: float = DEFAULT_TIME_LIMIT_S
    """A check still running after this many seconds is a finding (the node hung reading its devices)."""
    error_window_s: float | None = None
    """Seconds between the two samples of the rails' error counters; None: the profile's ``[errors] window_s``."""
    kernel_log: Path | None = None
    """A captured kernel log (``journalctl -k``, kern.log) to read Xid events from, as ``check --kernel-log``;
    None: this machine's own, on its own ``/sys`` only."""
    nvidia_smi: tuple[Path, ...] = ()
    """Captured ``nvidia-smi -q -x`` / ``nvidia-smi nvlink -s`` output to judge the GPUs by, as ``check
    --nvidia-smi``; empty: run nvidia-smi on a live node."""
    ibv_devinfo: Path | None = None
    """Captured ``ibv_devinfo`` output of this node (an InfiniBand port's active MTU); None: run it (live)."""

    def __post_init__(self) -> None:
        finite(self.time_limit_s, Where("--time-limit", "seconds"), maximum=MAX_TIME_LIMIT_S)
        if self.time_limit_s <= 0:
            raise UserError(f"--time-limit {self.time_limit_s:g} must be above 0 seconds")
        if self.error_window_s is not None:  # that it fits in the time limit is checked with the profile's
            finite(self.error_window_s, Where("--error-window", "seconds"), maximum=MAX_WINDOW_S)
        if self.node is not None:
            check_node_name(self.node, "--node")
        if self.kernel_log is not None and not self.kernel_log.is_file():
            raise UserError(
                f"--kernel-log {self.kernel_log} is not a file: give a kernel log (kern.log, journalctl -k)"
            )
        for path in self.nvidia_smi:
            if not path.is_file():
                raise UserError(
                    f"--nvidia-smi {path} is not a file: give nvidia-smi -q -x or nvidia-smi nvlink -s output"
                )
