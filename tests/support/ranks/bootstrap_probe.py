"""One rank of ``rails`` up to its world communicator, under a launcher started on a pretend node.

Run by torchrun as ``-m tests.support.ranks.bootstrap_probe OUT [OOB_IFNAME]``: the rank discovers itself from
torchrun's variables, meets the others through torchrun's ``MASTER_ADDR`` (``bench.runtime.dist.init_distributed``, the
command's own start-up), runs the before-init step of ``rails`` on an IB profile (``bench.rails.rank.rail_prelude``)
and makes the world communicator on the model of NCCL (tests/support/models/async_backend.py), which reads its
environment as NCCL does. Prints one JSON line: the host, the rank, MASTER_ADDR and the NCCL_SOCKET_IFNAME NCCL would
read.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path


def main(argv: list[str]) -> None:
    from bench import sysroot
    from bench.rails.plan.config import RailsConfig, validate
    from bench.rails.rank import rail_prelude
    from bench.runtime.dist import init_distributed, shutdown
    from bench.runtime.env import discover_rank
    from tests.support.ranks.async_ranks import MODEL_OF_NCCL

    out, oob = Path(argv[0]), (argv[1] if len(argv) > 1 else None)
    info = discover_rank()
    assert info is not None, "start under torchrun"
    profile, settings = validate(RailsConfig(profile="lambda-1cc", oob_ifname=oob), with_history=False)
    ctx = init_distributed(
        info, MODEL_OF_NCCL, 60.0, oob, rail_prelude(settings, profile, lambda: out), sysfs_root=sysroot.LIVE
    )
    try:
        said = {
            "host": socket.gethostname(),
            "rank": ctx.info.rank,
            "launcher": ctx.info.launcher,
            "master_addr": info.master_addr,
            "NCCL_SOCKET_IFNAME": os.environ.get("NCCL_SOCKET_IFNAME"),
        }
        print(json.dumps(said), flush=True)
    finally:
        shutdown()


if __name__ == "__main__":
    main(sys.argv[1:])
