"""GPUs counted without importing torch: the parent checks ``--np`` and ``--backend`` against them."""

from __future__ import annotations

from pathlib import Path

GPU_PROC_ROOT = Path("/proc/driver/nvidia/gpus")


def gpu_count(proc_root: Path = GPU_PROC_ROOT) -> int:
    """GPUs the NVIDIA driver exposes, counted without importing torch (0 on machines without one)."""
    try:
        return sum(1 for p in proc_root.iterdir() if p.is_dir())
    except OSError:
        return 0
