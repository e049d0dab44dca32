"""A rank of the testbed's plumbing test: world group over mgmt, one group per rail over its interface.

Run under the testbed's mpirun as ``python -m tests.support.ranks.netns_probe RAILS``. Prints one JSON line per rank:
hostname, the world all_reduce result, and the bytes each interface of its node carried while the rail
groups ran their all_reduce.
"""

from __future__ import annotations

import json
import os
import socket
import sys


def main() -> None:
    import torch
    import torch.distributed as dist

    from bench import sysroot
    from bench.fabric import counters
    from bench.runtime import env as benv
    from bench.runtime.dist import init_distributed, transport_for

    rails = int(sys.argv[1])
    info = benv.discover_rank()
    assert info is not None, "start under mpirun"
    os.environ["GLOO_SOCKET_IFNAME"] = "mgmt"
    ctx = init_distributed(info, transport_for("gloo"), 60.0, oob_ifname="mgmt", sysfs_root=sysroot.LIVE)
    world = torch.full((4,), float(ctx.info.rank))
    dist.all_reduce(world)
    groups = []
    for k in range(rails):
        # gloo binds a new group's sockets to GLOO_SOCKET_IFNAME as it is when the group is made.
        os.environ["GLOO_SOCKET_IFNAME"] = f"rail{k}"
        groups.append(dist.new_group([k + rails * n for n in range(ctx.info.nnodes)]))
    os.environ["GLOO_SOCKET_IFNAME"] = "mgmt"
    data = torch.ones(1 << 20)
    # Both ranks of a node read the node's counters: each takes its "before" ahead of the barrier, so no rail's
    # all_reduce has started when either reads (a rank released late by the barrier once read its neighbour's
    # rail half-way through its all_reduce, and counted half of it).
    before = counters.snapshot(sysroot.LIVE)
    dist.barrier()
    dist.all_reduce(data, group=groups[ctx.info.local_rank])
    dist.barrier()  # both ranks of a node share its counters: wait for every rail's all_reduce
    after = counters.snapshot(sysroot.LIVE)
    moved = {name: d.tx_bytes for name, d in counters.delta(before, after).items()}
    print(
        json.dumps(
            {
                "host": socket.gethostname(),
                "rank": ctx.info.rank,
                "local_rank": ctx.info.local_rank,
                "node_rank": ctx.info.node_rank,
                "world": world[0].item(),
                "rail_sum": data[0].item(),
                "tx_bytes": moved,
            }
        ),
        flush=True,
    )
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
