"""What ``railbench hca`` explains."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from bench.fabric import hca


@dataclass(frozen=True)
class HcaConfig:
    """What ``railbench hca`` explains."""

    value: str | None
    """The NCCL_IB_HCA value; None means unset."""
    value_source: Literal["cli", "env"]
    """Where the value came from (``env`` also when the environment does not set it)."""
    devices: tuple[str, ...] | None
    """``name:port`` ports to consider instead of reading sysfs."""
    sysfs_root: Path
    """Stands in for /sys (DIR/class/infiniband/...)."""
    json: bool = False
    """Print JSON instead of the text table."""

    def __post_init__(self) -> None:
        if self.devices is not None:
            for device in self.devices:
                hca.split_device(device)
