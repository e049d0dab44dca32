"""Which GPU a rank drives, and settings that cannot work with the way it will be driven: pure functions.

NCCL refuses two ranks of one communicator on one GPU ("Duplicate GPU detected"), and it says so only after
the communicator is being made, as an infrastructure fault. ``local_rank % device_count`` would silently put
ranks 0 and 8 of a 16-rank node on GPU 0; these functions turn that into exit 2 and one line, before NCCL.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from bench.exits import UserError

_TRUE = frozenset({"1", "true", "yes", "y", "on"})
BLOCKING_WAIT_VARS = ("TORCH_NCCL_BLOCKING_WAIT", "NCCL_BLOCKING_WAIT")


def cuda_device_index(local_rank: int, local_world_size: int, visible_gpus: int) -> int:
    """The CUDA device index of local rank ``local_rank``; UserError when ranks would share a GPU.

    Either each rank sees the whole node (index = local rank, one GPU per rank) or the launcher gave each
    rank its own GPU (``srun --gpus-per-task=1``, per-rank ``CUDA_VISIBLE_DEVICES``: index 0). Any other
    split would put two ranks on one device.
    """
    if visible_gpus < 1:
        raise UserError(
            "this rank sees no CUDA GPU (CUDA_VISIBLE_DEVICES empty or no driver): give every rank a GPU "
            "or use --backend gloo"
        )
    if visible_gpus == 1:
        return 0
    if local_world_size > visible_gpus:
        raise UserError(
            f"{local_world_size} ranks on this node but only {visible_gpus} GPUs visible, so two ranks would "
            f"share a GPU: start at most {visible_gpus} ranks per node (--np/--nproc-per-node/--ntasks-per-node)"
        )
    return local_rank


def shared_gpus(placements: Sequence[tuple[int, str, str]]) -> str | None:
    """One line naming two ranks that drive the same GPU, or None. Each placement is (rank, host, PCI bus id)."""
    seen: dict[tuple[str, str], int] = {}
    for rank, host, bus_id in placements:
        key = (host, bus_id.lower())
        if key in seen:
            return (
                f"ranks {seen[key]} and {rank} on {host} both drive GPU {bus_id}: give each rank its own GPU "
                "(--gpus-per-task=1 or one CUDA_VISIBLE_DEVICES entry per rank, or fewer ranks per node)"
            )
        seen[key] = rank
    return None


def placement_post(host: str, domain: int = 0, bus: int = 0, device: int = 0, *, refusal: str | None = None) -> str:
    """What one rank posts to the store about its GPU: ``host bus-id``, or ``! host: why`` when it has none."""
    if refusal is not None:
        return f"! {host}: {refusal}"
    return f"{host} {domain:04x}:{bus:02x}:{device:02x}.0"


def placement_verdict(posted: Sequence[str]) -> str | None:
    """Rank 0's verdict over every rank's post (index = rank): the first refusal, else any shared GPU."""
    placements = []
    for rank, text in enumerate(posted):
        if text.startswith("! "):
            return text[2:]
        host, _, bus_id = text.partition(" ")
        placements.append((rank, host, bus_id))
    return shared_gpus(placements)


def blocking_wait_conflict(env: Mapping[str, str], graph: bool) -> str | None:
    """Why ``--graph`` cannot run under this environment, or None.

    With blocking wait, torch's ``Work.wait()`` polls the work's CUDA end event (``cudaEventQuery``) until it
    completes. During CUDA graph capture nothing has run and querying an event recorded on a capturing stream
    is not permitted, so the capture fails (or, in torch versions that check, is refused). Unsetting the
    variable from inside railbench would be too late: ProcessGroupNCCL reads it once, when it is made.
    """
    if not graph:
        return None
    for name in BLOCKING_WAIT_VARS:
        if (env.get(name) or "").strip().lower() in _TRUE:
            return (
                f"{name}={env[name]} makes every NCCL wait poll its CUDA event, which CUDA graph capture "
                f"(--graph) does not permit: unset {name} (railbench has its own timeouts) or drop --graph"
            )
    return None
