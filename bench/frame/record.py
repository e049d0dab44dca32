"""run.json: the keys every railbench command writes, and the record rank 0 rewrites atomically on every
change (DESIGN.md, "The run directory")."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bench.profiles import Profile
from bench.rundir.files import FORMAT_VERSION
from bench.rundir.runjson import RunFile, new_record
from bench.runtime import env as benv
from bench.runtime.dist import DistContext, node_layout
from bench.version import __version__


def iso_utc(t: float | None = None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if t is None else t))


def versions(backend: str) -> dict[str, str | None]:
    """torch / NCCL / CUDA / driver versions of this node, for run.json and the cross-node check."""
    import torch

    nccl = None
    if backend == "nccl":
        v = torch.cuda.nccl.version()
        nccl = ".".join(str(x) for x in v) if isinstance(v, tuple) else str(v)
    driver = None
    try:
        first = Path("/proc/driver/nvidia/version").read_text().splitlines()[0]
        driver = next((w for w in first.split() if w[:1].isdigit() and "." in w), None)
    except (OSError, IndexError):
        pass
    return {
        "railbench": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "nccl": nccl,
        "cuda": torch.version.cuda,
        "driver": driver,
    }


class RunRecord(RunFile):
    """A new run's run.json, started from the fields a command knows (status ``running``)."""

    def __init__(self, out_dir: Path, meta: Mapping[str, Any]) -> None:
        super().__init__(out_dir, new_record(**meta))


def base_metadata(ctx: DistContext, cluster: str, profile: Profile, command: str) -> dict[str, Any]:
    """The run.json keys every railbench command writes (DESIGN.md, "The run directory")."""
    ranks = []
    for r, host in enumerate(ctx.hosts):
        local_rank, _, node_rank, _ = node_layout(ctx.hosts, r)
        ranks.append({"rank": r, "host": host, "local_rank": local_rank, "node_rank": node_rank})
    return {
        "format_version": FORMAT_VERSION,
        "tool": "railbench",
        "version": __version__,
        "command": command,
        "cluster": cluster,
        "profile": profile.name,
        "started_utc": iso_utc(),
        "finished_utc": None,
        "status": "running",
        "verdict": None,
        "exit_status": None,
        "hosts": list(ctx.node_hosts),
        "nnodes": ctx.info.nnodes,
        "nranks": ctx.info.world_size,
        "ranks": ranks,
        "launcher": ctx.info.launcher,
        "backend": ctx.backend,
        "device": str(ctx.device),
        "versions": versions(ctx.backend),
        "env": benv.recorded_environment(),
        "pid": os.getpid(),
    }
