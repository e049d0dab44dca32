"""The backends a run's process groups are made on, declared once: as the command line asks for one, and as it
resolves on a rank (``bench.runtime.dist.resolve_backend``)."""

from __future__ import annotations

from typing import Literal, get_args

Backend = Literal["auto", "nccl", "gloo"]
"""As asked on the command line; auto is nccl when CUDA is available, gloo otherwise."""
BACKENDS: tuple[Backend, ...] = get_args(Backend)

ResolvedBackend = Literal["nccl", "gloo"]
"""What a rank's process groups are made on once ``auto`` is decided."""
