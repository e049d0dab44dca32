"""What a run was judged against, as its profile said when it ran (run.json ``judged_by``).

A report drawn, metrics exported or a certificate printed months later shows the run against these
numbers, never against whatever the profile of the same name says today
(docs/design.md, "Records and schemas"). Written and read by the codec (``bench.codec``): a run written before
the GPU fields reads with their defaults.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class JudgedBy:
    """The profile's thresholds and device lists that the run's verdict and evidence used."""

    profile: str
    source: str
    """The file the profile was read from."""
    pass_fraction: float
    judge_min_bytes: int
    compare_min_bytes: int
    idle_devices: tuple[str, ...]
    """Devices that had to carry no benchmark traffic: the excluded HCAs and interfaces, the management one."""
    counter_tolerance_bytes: int
    gpu_models: tuple[str, ...] = ()
    """The GPU names the ranks reported, most ranks first (none on CPU ranks)."""
    gpu_generation: str | None = None
    """The profile's GPU generation whose figures were the targets (``bench.profile.gpu_targets``), if it has any."""
    targets_source: str | None = None
    """Where that generation's figures come from."""
    targets_note: str = ""
    """Why no generation's figures judged the run (no GPU, an unknown one, two generations)."""
