"""Node-local causes of a slow rail or GPU: each node's GPUDirect path checks, tied to the defects they explain.

Localisation names a part from bandwidth alone; a slow link on rail k of node N is the cable, the HCA or the
switch port as far as the fabric can tell. But GPUDirect RDMA on rail k runs from GPU k through its PCIe switch
to NIC k, and the cause is as often there: GPU k trained at x8, ACS redirecting the switch's peer traffic, the
IOMMU translating DMA, no peer-memory path. So, once the measurements are done:

* every node (its local rank 0) runs the checks of its own GPUDirect path (``bench.preflight``, the same code as
  ``railbench check``) on the run's sysfs root (``DistContext.sysfs_root``); on a live node the GPU checks run
  nvidia-smi and read the kernel log, and on NCCL the node's own NCCL logs of this run are evidence for
  ``gpu-peer-memory`` (``GDR 0``); ``accept`` hands over the reports of its check phase instead of reading twice;
* rank 0 gathers them (one small round of the run's coordination channel), and the conviction step ties each
  failure to the defects it explains (``bench.rails.diagnosis.causes``, by PCI address).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from bench import codec
from bench.frame.evidence import node_nccl_logs
from bench.nccllogs.nccl_log import NcclLog
from bench.preflight import checks
from bench.preflight.checks import CheckResult
from bench.profile.cluster import Profile
from bench.rails.diagnosis.causes import GPU_CHECKS, PATH_CHECKS
from bench.runtime import env as benv
from bench.runtime.coord import Coord
from bench.runtime.dist import DistContext


def read_node(
    profile: Profile, ctx: DistContext, logs: Sequence[NcclLog] = (), node: str | None = None
) -> list[CheckResult]:
    """This node's GPUDirect path and GPU checks on the run's sysfs root."""
    return checks.run_checks(
        profile,
        ctx.sysfs_root,
        logs,
        benv.environ(),
        node=node or ctx.hosts[ctx.info.rank],
        only=PATH_CHECKS + GPU_CHECKS,
    )


def gather(profile: Profile, ctx: DistContext, coord: Coord, out_dir: Path | None) -> dict[str, list[CheckResult]]:
    """Every node's results on rank 0 (empty elsewhere): every rank calls it together; one per node reads."""
    mine = None
    if ctx.info.local_rank == 0:
        host = ctx.hosts[ctx.info.rank]
        logs = (node_nccl_logs(out_dir, 0, host) or []) if ctx.backend == "nccl" and out_dir is not None else []
        mine = (host, [codec.encode(r) for r in read_node(profile, ctx, logs, host)])
    heard = coord.gather(mine)
    if heard is None:
        return {}
    # every rank runs this same code: a result of another shape is a bug here, raised as codec.Refused
    return {host: [codec.decode(CheckResult, r) for r in results] for host, results in filter(None, heard)}
