"""Memory and speed of making and checking a buffer (-c), per size: printed, not asserted.

    python ci/bench_check_memory.py [--sizes 16M,64M,256M,1G] [--dtype float] [--device cpu|cuda] [--tiny]

Each size runs in a fresh process (a one-rank gloo or NCCL group) through the sweep's own path
(``bench.measure.size.measure`` with ``check=True``). It prints the growth of the peak memory beyond the buffers
(host RSS on CPU, ``torch.cuda.max_memory_allocated`` on CUDA): the target is a fixed margin, the same at
every size, where the old host-built check needed 4 to 12 times the buffer.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PROBE = """
import json, resource, sys, tempfile, time
import torch, torch.distributed as dist
from bench.measure.collectives import REGISTRY, get_dtype
from bench.measure.memory_fit import buffer_bytes
from bench.measure.size import measure
from bench.measure.timing import Loop

nbytes, dtype_name, device_kind = int(sys.argv[1]), sys.argv[2], sys.argv[3]
dtype = get_dtype(dtype_name)
device = torch.device("cuda", 0) if device_kind == "cuda" else torch.device("cpu")
backend = "nccl" if device_kind == "cuda" else "gloo"
if device_kind == "cuda":
    torch.cuda.set_device(device)
dist.init_process_group(backend, store=dist.FileStore(tempfile.mktemp(), 1), rank=0, world_size=1)
coll = REGISTRY["all_reduce"]
once = Loop(iters=1, warmup=0)
kw = dict(dtype=getattr(torch, dtype.torch_name), elsize=dtype.size, device=device, check=True)

def peak():
    if device_kind == "cuda":
        return torch.cuda.max_memory_allocated(device)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

measure(coll, 1 << 20, 0, 1, None, once, **kw)
if device_kind == "cuda":
    torch.cuda.reset_peak_memory_stats(device)
before = peak() if device_kind != "cuda" else 0
start = time.perf_counter()
result = measure(coll, nbytes, 0, 1, None, once, **kw)
seconds = time.perf_counter() - start
print(json.dumps({"grown": peak() - before, "buffers": buffer_bytes(coll, nbytes, dtype, 1),
                  "seconds": seconds, "wrong": result.wrong}))
dist.destroy_process_group()
"""


def _size(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(text[:-1]) * units[text[-1].upper()] if text[-1].upper() in units else int(text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="16M,64M,256M,1G")
    parser.add_argument("--dtype", default="float")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument(
        "--tiny",
        action="store_true",
        help="one size, 1M: the same code at the smallest size, in seconds (CI runs every ci/ script so)",
    )
    args = parser.parse_args()
    if args.tiny:
        args.sizes = "1M"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    print(f"{'size':>8} {'buffers MiB':>12} {'peak beyond MiB':>16} {'make+run+check s':>17} {'wrong':>6}")
    for text in args.sizes.split(","):
        nbytes = _size(text.strip())
        proc = subprocess.run(
            [sys.executable, "-c", PROBE, str(nbytes), args.dtype, args.device],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            print(f"{text:>8} failed: {proc.stderr.strip().splitlines()[-1:]}")
            continue
        out = json.loads(proc.stdout.strip().splitlines()[-1])
        beyond = (out["grown"] - out["buffers"]) / 2**20
        print(f"{text:>8} {out['buffers'] / 2**20:12.0f} {beyond:16.1f} {out['seconds']:17.2f} {out['wrong']:>6}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
