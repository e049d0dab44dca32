"""railbench: NCCL and InfiniBand benchmark and validation suite for GPU clusters.

Importing the package is cheap: it never imports torch. Heavy modules load when a command needs them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["__version__", "select_hcas"]

if TYPE_CHECKING:
    from bench.fabric.hca import select_hcas


def __getattr__(name: str) -> Any:
    # Lazy so that ``import bench`` stays torch-free and fast.
    if name == "select_hcas":
        from bench.fabric.hca import select_hcas

        return select_hcas
    raise AttributeError(f"module 'bench' has no attribute {name!r}")
