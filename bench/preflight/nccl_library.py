"""Which NCCL this node's torch would load, without importing torch: the version the checks and the node report
speak of."""

from __future__ import annotations

import glob
import importlib.metadata
import re

_NCCL_LIB_DIRS = ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/local/lib")


def package_version(name: str) -> str | None:
    """The installed version of distribution ``name``, or None."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def nccl_version() -> str | None:
    """NCCL's version without importing torch: the pip wheel torch uses, else the system library's name."""
    for name in ("nvidia-nccl-cu13", "nvidia-nccl-cu12", "nvidia-nccl-cu11"):
        version = package_version(name)
        if version:
            return version
    for directory in _NCCL_LIB_DIRS:
        for path in sorted(glob.glob(f"{directory}/libnccl.so.2.*")):
            match = re.search(r"libnccl\.so\.([0-9]+\.[0-9]+\.[0-9]+)$", path)
            if match:
                return match.group(1)
    return None


def major_minor(version: str | None) -> tuple[int, int] | None:
    """``(2, 21)`` from ``2.21.5``, ``2.21.5+cuda12.4`` or ``2.21.5-1``; None where it is not such a version."""
    match = re.match(r"\s*([0-9]+)\.([0-9]+)", version or "")
    return (int(match.group(1)), int(match.group(2))) if match else None
