"""Is railbench's number honest? Its all_reduce busbw against a bare torch.distributed loop, same run.

    python ci/bench_honest.py [--np 4] [--iters 20] [--repeats 5] [--tiny]

Starts N local ranks under mpirun (gloo on CPU; nccl where CUDA is available). In one process group, for
each size from 1 MiB to 64 MiB it alternates railbench's timing path (``bench.measure.size.measure``, the code
``railbench run`` uses) with the plainest possible loop:

    barrier; t0 = perf_counter(); for _ in range(iters): all_reduce(x); t1 = perf_counter()

and converts both with the same nccl-tests formula. It prints the median of each over the repeats and
their ratio per size; the target is a ratio within 0.95-1.05. Not a test: shared machines are noisy.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.support import mpirun_command  # noqa: E402  (the one way the tests start ranks themselves)

SIZES = [1 << 20, 4 << 20, 16 << 20, 64 << 20]


def bare_loop_us(x: object, iters: int, warmup: int) -> float:
    import torch.distributed as dist

    for _ in range(warmup):
        dist.all_reduce(x)
    dist.barrier()
    t0 = time.perf_counter()
    for _ in range(iters):
        dist.all_reduce(x)
    mine = (time.perf_counter() - t0) * 1e6 / iters
    everyone: list[object] = [None] * dist.get_world_size()
    dist.all_gather_object(everyone, mine)
    return statistics.fmean(float(t) for t in everyone)  # type: ignore[arg-type]


def worker(iters: int, warmup: int, repeats: int, sizes: list[int]) -> None:
    import torch
    import torch.distributed as dist

    from bench.measure.collectives import REGISTRY
    from bench.measure.results import bandwidths
    from bench.measure.size import measure
    from bench.measure.timing import Loop
    from bench.runtime.dist import init_distributed, shutdown, transport_for
    from bench.runtime.env import discover_rank
    from bench.sysroot import LIVE

    info = discover_rank()
    assert info is not None, "run me through 'python ci/bench_honest.py', which starts mpirun"
    ctx = init_distributed(info, transport_for("auto"), 300.0, sysfs_root=LIVE)
    n, rank = ctx.info.world_size, ctx.info.rank
    coll = REGISTRY["all_reduce"]
    factor = coll.busbw_factor(n)
    if rank == 0:
        print(f"# {n} ranks, {ctx.backend} on {ctx.device}, {iters} iters, median of {repeats} alternations")
        print(f"# {'size':>8} {'railbench':>12} {'bare loop':>12} {'ratio':>7}   (busbw GB/s)")
    for nbytes in sizes:
        ours, bare = [], []
        x = torch.ones(nbytes // 4, dtype=torch.float32, device=ctx.device)
        for _ in range(repeats):
            res = measure(
                coll,
                nbytes,
                rank,
                n,
                None,
                Loop(iters, warmup),
                dtype=torch.float32,
                elsize=4,
                device=ctx.device,
                check=False,
            )
            ours.append(bandwidths(res.nbytes, res.time_us, factor)[1])
            bare.append(bandwidths(nbytes, bare_loop_us(x, iters, warmup), factor)[1])
        if rank == 0:
            a, b = statistics.median(ours), statistics.median(bare)
            print(f"  {nbytes >> 20:>6}M {a:>12.3f} {b:>12.3f} {a / b:>7.3f}", flush=True)
    dist.barrier()
    shutdown()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--np", type=int, default=4)
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--tiny", action="store_true", help="2 ranks, 1 MiB, one short repeat: the code path, in seconds"
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.tiny:
        args.np, args.iters, args.warmup, args.repeats = 2, 2, 1, 1
    sizes = SIZES[:1] if args.tiny else SIZES
    if args.worker:
        worker(args.iters, args.warmup, args.repeats, sizes)
        return 0
    env = dict(os.environ, PYTHONPATH=str(REPO), OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    worker_argv = [
        sys.executable,
        __file__,
        "--worker",
        "--iters",
        str(args.iters),
        "--warmup",
        str(args.warmup),
        "--repeats",
        str(args.repeats),
        *(["--tiny"] if args.tiny else []),
    ]
    return subprocess.call(mpirun_command(args.np, worker_argv), env=env)


if __name__ == "__main__":
    raise SystemExit(main())
