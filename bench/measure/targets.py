"""What a measurement is compared against, as a pure function of the profile, the collective, the run's shape
and the message size (docs/design.md, "Units and formulas"). Every figure is the profile's, and the profile
cites where it comes from (docs/run.md, "What to expect on a 1CC").

* Collectives spanning nodes: the profile's ``[node_targets_gbps]`` figure for the collective, else the
  node's aggregate rail rate (``node_target_gbps``, 8 x 400 = 3200 Gb/s on a 1CC).
* sendrecv spanning nodes is point-to-point: one GPU through one NIC, so one rail's line rate.
* alltoall spanning nodes cannot spread one GPU's traffic over the node's other NICs (NCCL sends each peer's
  share from the GPU's own NIC; NVIDIA/nccl-tests#267, "Alltoall cannot aggregate the bandwidth of multiple
  NICs"), so its bound is one GPU's NIC: the rail rate, or the node's rate over its ranks when they share
  NICs, times (n - 1) / n, the fraction of nccl-tests' alltoall busbw (algbw x (n-1)/n) that leaves the
  GPU. On N nodes the local share rides NVLink, so a healthy cluster measures up to N/(N-1) times this
  (NVIDIA/nccl-tests#130); the bound holds at every N.
* Single-node collectives: the profile's ``[nvlink_targets_gbps]`` figure for that collective, else its one
  NVLink figure: NVLS all_reduce runs far above all_gather or sendrecv on the same links.
* A figure given per size range applies from its size up; below the first one there is no target, as where
  the published curve starts higher than the small sizes reach (NVLS all_reduce is at its peak only from
  GiB sizes).
* No figure in the profile (the ``local`` CPU profile): no target, so no efficiency and no verdict on speed.
* One rank: nothing moves between GPUs (the busbw factor of every ring collective is (n-1)/n = 0), so there is
  nothing to compare with a bandwidth target: not judged (MEASURED), never a FAIL at 0 Gb/s.
"""

from __future__ import annotations

from collections.abc import Mapping

from bench.profile.cluster import Profile
from bench.profile.gpu_targets import TargetSteps

POINT_TO_POINT = frozenset({"sendrecv"})
ONE_NIC_PER_GPU = frozenset({"alltoall"})
"""Collectives whose inter-node traffic leaves each GPU through its own NIC only."""


ONE_RANK = (
    "one rank moves nothing between GPUs (its busbw is a copy on the device, or no work):"
    " start one rank per GPU to judge bandwidth"
)


def at_size(steps: TargetSteps, nbytes: int | None) -> float | None:
    """The figure of ``steps`` that holds at ``nbytes`` (None below the first step); without a size, the
    figure of the largest sizes."""
    if not steps:
        return None
    if nbytes is None:
        return steps[-1][1]
    held = [gbps for start, gbps in steps if start <= nbytes]
    return held[-1] if held else None


def per_gpu_nic_gbps(profile: Profile, nranks: int | None, nnodes: int) -> float | None:
    """One GPU's share of its node's NICs: the rail rate, or the node's rate over its ranks when fewer rails
    than ranks (None when the profile gives neither)."""
    rail = getattr(profile, "rail_rate_gbps", None)
    node = getattr(profile, "node_target_gbps", None)
    per_rank = node / max(1, (nranks or 0) // max(1, nnodes)) if node and nranks else None
    shares = [x for x in (rail, per_rank) if x]
    return min(shares) if shares else None


def world_target_gbps(
    profile: Profile, collective: str, nnodes: int, *, nbytes: int | None = None, nranks: int | None = None
) -> float | None:
    """Target busbw in Gb/s of a world-scope collective at ``nbytes`` (see the module docstring), or None when
    the profile gives none or a single rank has nothing to judge (``ONE_RANK``)."""
    if profile is None or nranks == 1:
        return None
    if nnodes > 1:
        listed: Mapping[str, TargetSteps] = getattr(profile, "node_targets_gbps", None) or {}
        if collective in listed:
            return at_size(listed[collective], nbytes)
        if collective in POINT_TO_POINT:
            return getattr(profile, "rail_rate_gbps", None)
        if collective in ONE_NIC_PER_GPU:
            nic = per_gpu_nic_gbps(profile, nranks, nnodes)
            return nic * (nranks - 1) / nranks if nic and nranks else nic
        return getattr(profile, "node_target_gbps", None)
    per_collective: Mapping[str, TargetSteps] = getattr(profile, "nvlink_targets_gbps", None) or {}
    if collective in per_collective:
        return at_size(per_collective[collective], nbytes)
    return getattr(profile, "nvlink_target_gbps", None)


def judge_min_bytes(profile: Profile) -> int:
    """The smallest size judged against a target (the profile's ``judge_min_bytes``, default 256M)."""
    return profile.judge_min_bytes
