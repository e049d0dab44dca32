"""The smallest whole job (docs/design.md, "Adding a job"): a config, a measure function and a
registration. ``ping`` all-reduces one tensor per rank and judges one item: the sum is the world's size.

It lives in tests/support/ and is registered only by the test that runs it (``tests/test_frame_toy_job.py``): it is the
example the docs show, kept honest by running it through the real frame, not a command users have."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import ClassVar

import torch
import torch.distributed as dist

from bench.frame.config_parts import Launch, Output
from bench.frame.decide import Item
from bench.frame.job import Job, run_job
from bench.frame.launch_job import JobKind, Sized
from bench.frame.run import Run, Setup, setup_of
from bench.profile.cluster import Profile, load_profile
from bench.runtime import spec
from bench.runtime.env import RankInfo


@dataclass(frozen=True)
class PingConfig:
    """The job's config: frozen, validated by the job's constructor; the two parts every job nests, which
    ``setup_of`` reads (``StartsRanks``), and the job's own fields."""

    profile: str = "local"
    launch: Launch = field(default_factory=lambda: Launch(backend="gloo", timeout_s=60.0))
    output: Output = field(default_factory=lambda: Output(no_history=True))

    def rank_argv(self, out: Path) -> list[str]:
        """The local ranks' argv under ``--np``: the command and this whole config (``bench.runtime.spec``)."""
        ranks = replace(self, launch=replace(self.launch, np=None), output=replace(self.output, out=out))
        return spec.rank_argv("ping", ranks)


class PingJob(Job):
    """The rank half: one all-reduce of a one-element tensor, judged against the world's size."""

    command: ClassVar[str] = "ping"

    def __init__(self, config: PingConfig) -> None:
        setup: Setup = setup_of(config, None)
        super().__init__(setup, load_profile(config.profile))

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
