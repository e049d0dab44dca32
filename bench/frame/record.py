"""run.json's first version: the keys every railbench job writes, from the process group's facts
(docs/design.md, "Records and schemas"); the frame starts the record with them (``bench.frame.job``)."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from bench import codec
from bench.bounded import ascii_digits
from bench.exits import UserError
from bench.profile.cluster import Profile
from bench.rundir.files import FORMAT_VERSION
from bench.rundir.judged_by import JudgedBy
from bench.rundir.runjson import RunFile
from bench.rundir.sections import Failure
from bench.runtime import clock
from bench.runtime import env as benv
from bench.runtime.dist import DistContext
from bench.runtime.rendezvous import node_layout
from bench.version import __version__


def iso_utc(t: float | None = None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if t is None else t))


def versions(backend: str) -> dict[str, str | None]:
    """torch / NCCL / CUDA / driver versions of this node, for run.json and the cross-node check."""
    import torch

    nccl = None
    # A torch built without NCCL has no _nccl_version: the version is then unknown, not a failed run.
    if backend == "nccl" and hasattr(torch._C, "_nccl_version"):
        v = torch.cuda.nccl.version()
        nccl = ".".join(str(x) for x in v) if isinstance(v, tuple) else str(v)
    driver = None
    try:
        first = Path("/proc/driver/nvidia/version").read_text().splitlines()[0]
        driver = next((w for w in first.split() if ascii_digits(w[:1]) and "." in w), None)
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


def base_metadata(ctx: DistContext, cluster: str, profile: Profile, command: str) -> dict[str, object]:
    """The run.json keys every railbench job writes (docs/design.md, "Records and schemas")."""
    ranks = []
    for r, host in enumerate(ctx.hosts):
        local_rank, _, node_rank, _ = node_layout(ctx.hosts, r)
        ranks.append({"rank": r, "host": host, "local_rank": local_rank, "node_rank": node_rank})
    launched = clock.launched_at(benv.environ())
    return {
        "format_version": FORMAT_VERSION,
        "tool": "railbench",
        "version": __version__,
        "command": command,
        "cluster": cluster,
        "profile": profile.name,
        **({"launched_utc": iso_utc(launched)} if launched is not None else {}),  # the launcher's start
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
        "judged_by": judged_by(profile),
    }


def judged_by(profile: Profile) -> JudgedBy:
    """What the run is judged against, kept in run.json so that a later report shows the same judgement."""
    idle = [*profile.excluded_devices]
    if profile.oob_ifname and profile.oob_ifname != "lo":
        idle.append(profile.oob_ifname)
    # The profile holds the GPU choice whole; run.json's judged_by keeps it flat, its format unchanged.
    choice = profile.choice
    chosen = choice.generation
    return JudgedBy(
        profile=profile.name,
        source=profile.source,
        pass_fraction=profile.pass_fraction,
        judge_min_bytes=profile.judge_min_bytes,
        compare_min_bytes=profile.compare.min_bytes,
        idle_devices=tuple(dict.fromkeys(idle)),
        counter_tolerance_bytes=profile.counter_tolerance_bytes,
        gpu_models=choice.gpus,
        gpu_generation=None if chosen is None else chosen.name,
        targets_source=None if chosen is None else chosen.source,
        targets_note=choice.why_none,
    )


def rank0_lost_recorder(out_dir: Path | None) -> Callable[[str, int, Mapping[str, object] | None], None]:
    """How a surviving rank records that rank 0 was lost (``bench.frame.guard.guarded``'s ``rank0_lost``):
    run.json, where this rank can see it (rank 0's node, or a shared file system), turns ``failed`` unless it
    already says how the run ended. Several survivors may write; each write is atomic and says the same."""

    def record(status: str, exit_status: int, failure: Mapping[str, object] | None) -> None:
        if out_dir is None or not (Path(out_dir) / "run.json").is_file():
            return
        try:
            run = RunFile.load(out_dir)
            if run.status in ("failed", "interrupted"):
                return
            if failure is None or status == "interrupted":
                run.become(run.record.interrupted(exit_status))
            else:
                run.become(run.record.failed(codec.decode(Failure, failure, "failure: "), exit_status))
        except (OSError, UserError):
            return  # a run directory this rank cannot read or write is rank 0's node's alone

    return record
