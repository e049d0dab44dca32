"""Disjoint process groups, made in one step of the world where torch and the backend allow it.

On NCCL railbench binds the world to each rank's GPU (``bench.runtime.dist.init_distributed``), and torch then
makes every ``new_group`` by ``ncclCommSplit`` of the world's communicator: a collective of every world rank,
member or not (``perform_nocolor_split``), whose colour all-gather runs around the whole world. One group per
node is then as many world-wide all-gathers in a row as there are nodes: at 1024 nodes x 8 GPUs, 1024 rings of
8192 ranks before the first intra-node pair moves (pytorch/pytorch#130407 names this cost: 32 groups of 8 are 32
splits on every rank).

``torch.distributed.split_group`` gives every rank its colour in one ``ncclCommSplit``: one all-gather around
the world, then each group's own set-up, all groups at once. It is the path torch's ``DeviceMesh`` takes for a
mesh dimension whenever the world is bound to a device, so every eagerly initialised FSDP or tensor-parallel job
runs it. Where it is missing (torch before it, gloo, an unbound world) the groups are made one ``new_group``
after another, as before; gloo makes a group from its members alone, so nothing is lost there.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch.distributed import ProcessGroup

_SPLIT_GROUP = re.compile(r"^def split_group\(", re.MULTILINE)


def torch_splits_at_once() -> bool:
    """Whether the installed torch has ``split_group``, found without importing torch (the plan runs on a login
    node, where importing torch costs seconds): :func:`c10d_defines_split_group` on its c10d module."""
    try:
        spec = importlib.util.find_spec("torch")
    except (ImportError, ValueError):
        return False
    if spec is None or spec.origin is None:
        return False
    return c10d_defines_split_group(Path(spec.origin).parent / "distributed" / "distributed_c10d.py")


def c10d_defines_split_group(source: Path) -> bool:
    """Whether torch's ``distributed_c10d.py`` at ``source`` defines ``split_group`` (False where unreadable)."""
    try:
        return _SPLIT_GROUP.search(source.read_text(encoding="utf-8", errors="replace")) is not None
    except OSError:
        return False


def splits_at_once() -> bool:
    """Whether this rank's world makes disjoint groups in one split: a torch with ``split_group``, the world bound
    to a device, and its backend able to split (NCCL 2.18 on: ``supports_splitting``, which torch's own
    ``new_group`` asks before it splits). A gloo or unbound world makes each group from its members alone."""
    import torch.distributed as dist

    world = dist.group.WORLD
    device = getattr(world, "bound_device_id", None)
    if not hasattr(dist, "split_group") or world is None or device is None:
        return False
    try:
        backend = world._get_backend(device)
    except RuntimeError:  # no backend for the bound device: nothing to split from
        return False
    return bool(getattr(backend, "supports_splitting", False))


def disjoint_groups(members: Sequence[Sequence[int]], timeout: timedelta) -> list[ProcessGroup | None]:
    """One process group per entry of ``members`` (global ranks; no rank in two entries), every rank of the
    world calling with the same ``members``; returns, per entry, the group where this rank is a member and None
    (``NON_GROUP_MEMBER`` from ``new_group``) elsewhere. One split of the world where :func:`splits_at_once`
    (:func:`split_groups`), else one ``new_group`` per entry, in order."""
    import torch.distributed as dist

    if splits_at_once():
        return split_groups(members, timeout)
    # An empty entry is no group (torch's ``new_group([])`` is not one either); every rank skips it alike.
    return [dist.new_group(list(ranks), timeout=timeout) if ranks else None for ranks in members]


def split_groups(members: Sequence[Sequence[int]], timeout: timedelta) -> list[ProcessGroup | None]:
    """:func:`disjoint_groups` by one ``split_group`` of the world, for a caller that has asked
    :func:`splits_at_once` itself (one that makes its groups otherwise where it cannot)."""
    import torch.distributed as dist

    wanted = [sorted(ranks) for ranks in members if ranks]
    if not wanted:  # split_group refuses an empty split; every rank sees the same members, so none splits
        return [None for _ in members]
    mine = dist.get_rank()
    group = dist.split_group(split_ranks=wanted, timeout=timeout)
    return [group if mine in ranks else None for ranks in members]
