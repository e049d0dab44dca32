"""What a measurement is compared against, as a pure function of the profile
(docs/design.md, "Units and formulas").

* World collectives spanning nodes: the node's aggregate rail rate (8 x 400 = 3200 Gb/s on a 1CC).
* sendrecv spanning nodes is point-to-point: one GPU through one NIC, so one rail's line rate.
* Single-node collectives: the profile's NVLink figure for that collective (``[nvlink_targets_gbps]``), else
  its one NVLink figure: NVLS all_reduce runs far above all_gather or sendrecv on the same links.
* No figure in the profile (the ``local`` CPU profile): no target, so no efficiency and no verdict on speed.
"""

from __future__ import annotations

from bench.profiles import Profile

POINT_TO_POINT = frozenset({"sendrecv"})


def world_target_gbps(profile: Profile, collective: str, nnodes: int) -> float | None:
    """Target busbw in Gb/s for a world-scope collective, or None when the profile gives none."""
    if profile is None:
        return None
    if nnodes > 1:
        if collective in POINT_TO_POINT:
            return getattr(profile, "rail_rate_gbps", None)
        return getattr(profile, "node_target_gbps", None)
    per_collective = getattr(profile, "nvlink_targets_gbps", None) or {}
    if collective in per_collective:
        return per_collective[collective]
    return getattr(profile, "nvlink_target_gbps", None)


def judge_min_bytes(profile: Profile) -> int:
    """The smallest size judged against a target (the profile's ``judge_min_bytes``, default 256M)."""
    return profile.judge_min_bytes
