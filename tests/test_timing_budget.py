"""The cell budget in the one timing loop (``time_budgeted`` with chunks), on a real one-rank gloo world.

Steps that sleep stand in for a link: a whole message of 16 chunks, and each chunk taking a sixteenth of it.
What is checked is the plan, not a rate: a dead-slow cell never sends one whole message and stops within its
budget's chunks; a healthy cell whose probe hit a scheduling hiccup still moves every byte and is not
stopped; a cell that fits runs the usual warmup and iterations of whole messages.

Then one rail of a healthy 64-node fabric as NCCL runs it (the model's numbers, ``tests/async_backend.py``): a
256 MiB ring all_reduce at 400 Gb/s pays 2 x 63 network steps of 14 us (NCCL tuning.cc, NET Simple) per call,
and its first call of a size class pays a 50 ms connection (NCCL_RUNTIME_CONNECT). Its 4 MiB chunks are mostly
latency; the cell must read the rail's true busbw, not the chunks'. Every time is stretched tenfold (40 Gb/s,
140 us steps, a 0.5 s connection: the same ratios) so that the host's sleep granularity stays well inside 5%.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from tests.support import rank_env

_PROGRAM = textwrap.dedent(
    """
    import json, tempfile, time
    import torch, torch.distributed as dist
    from bench.measure.timing import Chunked, time_budgeted
    from bench.rails.budget import cell_budget

    dist.init_process_group("gloo", store=dist.FileStore(tempfile.mktemp(), 1), rank=0, world_size=1)
    out = {}

    def cell(name, whole_s, chunk_s, budget_s):
        calls = {"whole": 0, "chunk": 0, "tiny": 0}
        def tiny():
            calls["tiny"] += 1
        def whole():
            calls["whole"] += 1
            time.sleep(whole_s)
        def chunk():
            calls["chunk"] += 1
            time.sleep(chunk_s.pop(0) if isinstance(chunk_s, list) and len(chunk_s) > 1 else
                       chunk_s[0] if isinstance(chunk_s, list) else chunk_s)
        began = time.monotonic()
        timed = time_budgeted(whole, group=None, device=torch.device("cpu"), iters=5, warmup=1,
                              budget_s=budget_s, chunked=Chunked(chunk, 16, tiny))
        out[name] = {"time_us": timed.time_us, "steps": timed.steps, "stopped": timed.stopped,
                     "wall_s": time.monotonic() - began, **calls}

    cell("dead_slow", 0.8, 0.05, 0.6)            # a message takes 0.8 s; five of them would take 4 s
    cell("hiccup", 0.016, [0.001, 0.3, 0.001], 0.6)  # healthy, but the timed probe chunk waited 0.3 s
    cell("fits", 0.016, 0.001, 0.6)

    # One rail of a healthy 64-node fabric (see the module docstring).
    n, rate, step_s, connect_s, S, chunks = 64, 40e9, 140e-6, 0.5, 256 << 20, 64
    bus, latency, connected, whole_s = S * 2 * (n - 1) / n, 2 * (n - 1) * step_s, set(), []
    def nccl_call(bus_bytes, size_class):
        first = size_class not in connected
        connected.add(size_class)
        began = time.perf_counter()
        time.sleep(latency + bus_bytes * 8 / rate + (connect_s if first else 0))
        if bus_bytes == bus and not first:
            whole_s.append(time.perf_counter() - began)  # what each warm whole message really took here
    timed = time_budgeted(lambda: nccl_call(bus, "large"), group=None, device=torch.device("cpu"), iters=10,
                          warmup=2, budget_s=cell_budget(int(bus), 12, 40),
                          chunked=Chunked(lambda: nccl_call(bus / chunks, "large"), chunks,
                                          lambda: nccl_call(4, "small")))
    out["rail64"] = {"time_us": timed.time_us, "true_us": (latency + bus * 8 / rate) * 1e6, "bus": bus,
                     "stopped": timed.stopped, "whole_us": sum(whole_s) / max(1, len(whole_s)) * 1e6}
    print(json.dumps(out))
    dist.destroy_process_group()
    """
)


@pytest.mark.mpi
def test_the_budget_moves_chunks_of_a_dead_slow_cell_and_every_byte_of_a_healthy_one() -> None:
    proc = subprocess.run([sys.executable, "-c", _PROGRAM], env=rank_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])

    slow = out["dead_slow"]
    assert slow["whole"] == 0, "a dead-slow cell must never send a whole message"
    assert slow["stopped"] and slow["steps"] == 1
    assert 3 <= slow["chunk"] <= 14  # the warm call and the probe, then what fits in the rest of 0.6 s
    assert slow["tiny"] == 2  # the latency: one untimed call, one timed
    # The rate is the chunks' own: 16 chunks of 0.05 s make a message of about 0.8 s.
    assert 0.5e6 < slow["time_us"] < 2.0e6

    hiccup = out["hiccup"]
    assert not hiccup["stopped"] and hiccup["steps"] == 5
    assert hiccup["chunk"] == 2 + 5 * 16  # warm and probe, then all five messages' bytes in two batches
    assert hiccup["whole"] == 0

    fits = out["fits"]
    assert not fits["stopped"] and fits["steps"] == 5
    assert fits["whole"] == 6 and fits["chunk"] == 2  # warmup and iterations of whole messages, as usual

    rail = out["rail64"]
    # Within 5% of what its warm whole messages took (the rail's true busbw, latency included, as NCCL's own
    # numbers are; a loaded host stretches every sleep a little), and nowhere near the chunks' 10x.
    assert not rail["stopped"] and abs(rail["time_us"] / rail["whole_us"] - 1) < 0.05, rail
    assert abs(rail["time_us"] / rail["true_us"] - 1) < 0.15, rail
