"""railbench: NCCL and InfiniBand benchmark and validation suite for GPU clusters.

Importing the package is cheap: it never imports torch. Heavy modules load when a command needs them.
This module is the package's public face, the top of its layers: nothing inside ``bench`` imports it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bench.version import __version__

__all__ = ["__version__", "select_hcas"]

if TYPE_CHECKING:
    from bench.fabric.hca import select_hcas


def __getattr__(name: str) -> object:
    # Lazy so that ``import bench`` stays torch-free and fast.
    if name == "select_hcas":
        from bench.fabric.hca import select_hcas

        return select_hcas
    raise AttributeError(f"module 'bench' has no attribute {name!r}")
