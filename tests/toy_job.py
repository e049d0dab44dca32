"""The smallest whole job (docs/design.md, "Adding a job"): a config, a measure function and a
registration. ``ping`` all-reduces one tensor per rank and judges one item: the sum is the world's size.

It lives in tests/ and is registered only by the test that runs it (``tests/test_toy_job.py``): it is the
example the docs show, kept honest by running it through the real frame, not a command users have."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import ClassVar

import torch
import torch.distributed as dist

from bench import sysroot
from bench.frame.job import Job, run_job
from bench.frame.launch_job import JobKind, Sized
from bench.frame.run import Launch, Run, launch_of
from bench.frame.verdict import Item
from bench.profiles import Profile, load_profile
from bench.runtime import spec
from bench.runtime.dist import Backend
from bench.runtime.env import RankInfo


@dataclass(frozen=True)
class PingConfig:
    """The job's config: frozen, validated by the job's constructor; the fields ``launch_of`` reads
    (``StartsRanks``) and the job's own."""

    profile: str = "local"
    backend: Backend = "gloo"
    timeout_s: float = 60.0
    out: Path | None = None
    cluster: str | None = None
    sysfs_root: Path = sysroot.LIVE
    no_history: bool = True
    np: int | None = None

    def rank_argv(self, out: Path) -> list[str]:
        """The local ranks' argv under ``--np``: the command and this whole config (``bench.runtime.spec``)."""
        return spec.rank_argv("ping", replace(self, out=out, np=None))


class PingJob(Job):
    """The rank half: one all-reduce of a one-element tensor, judged against the world's size."""

    command: ClassVar[str] = "ping"

    def __init__(self, config: PingConfig) -> None:
        launch: Launch = launch_of(config, None, None, config.no_history)
        super().__init__(launch, load_profile(config.profile))

    def measure(self, run: Run) -> Sequence[Item]:
        with run.guarded() as watchdog:
            watchdog.enter("all-reducing one tensor per rank")
            total = torch.ones(1, device=run.ctx.device)
            dist.all_reduce(total)
            watchdog.leave()
        world = run.ctx.info.world_size
        got = int(total.item())
        if got == world:
            return [Item("railbench.ping", "all_reduce", "pass")]
        return [Item("railbench.ping", "all_reduce", "fail", f"ping all_reduce: summed {got}, expected {world}")]


def run_rank(config: PingConfig, info: RankInfo) -> int:
    """The registration's rank entry: what a command module's ``run_rank`` is for a real job."""
    return run_job(info, lambda: PingJob(config))


def _sized(config: PingConfig, profile: Profile, np: int | None) -> Sized[PingConfig]:
    return Sized(config, 4)  # one float32 per rank


PING: JobKind[PingConfig, Profile] = JobKind("ping", run_rank, lambda config: load_profile(config.profile), _sized)
"""The parent half (``bench.frame.launch_job.launch``): a command's ``run`` is ``launch(PING, config)``."""
