"""The cell budget in the one timing loop (``time_budgeted`` with chunks), on a real one-rank gloo world.

Steps that sleep stand in for a link: a whole message of 16 chunks, and each chunk taking a sixteenth of it.
What is checked is the plan, not a rate: a dead-slow cell never sends one whole message and stops within its
budget's chunks; a healthy cell whose probe hit a scheduling hiccup still moves every byte and is not
stopped; a cell that fits runs the usual warmup and iterations of whole messages.
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

    dist.init_process_group("gloo", store=dist.FileStore(tempfile.mktemp(), 1), rank=0, world_size=1)
    out = {}

    def cell(name, whole_s, chunk_s, budget_s):
        calls = {"whole": 0, "chunk": 0}
        def whole():
            calls["whole"] += 1
            time.sleep(whole_s)
        def chunk():
            calls["chunk"] += 1
            time.sleep(chunk_s.pop(0) if isinstance(chunk_s, list) and len(chunk_s) > 1 else
                       chunk_s[0] if isinstance(chunk_s, list) else chunk_s)
        began = time.monotonic()
        timed = time_budgeted(whole, group=None, device=torch.device("cpu"), iters=5, warmup=1,
                              budget_s=budget_s, chunked=Chunked(chunk, 16))
        out[name] = {"time_us": timed.time_us, "steps": timed.steps, "stopped": timed.stopped,
                     "wall_s": time.monotonic() - began, **calls}

    cell("dead_slow", 0.8, 0.05, 0.6)            # a message takes 0.8 s; five of them would take 4 s
    cell("hiccup", 0.016, [0.3, 0.001], 0.6)     # healthy, but the probe chunk waited 0.3 s
    cell("fits", 0.016, 0.001, 0.6)
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
    assert 2 <= slow["chunk"] <= 13  # the probe, then what fits in the rest of 0.6 s at 0.05 s a chunk
    # The rate is the chunks' own: 16 chunks of 0.05 s make a message of about 0.8 s.
    assert 0.5e6 < slow["time_us"] < 2.0e6

    hiccup = out["hiccup"]
    assert not hiccup["stopped"] and hiccup["steps"] == 5
    assert hiccup["chunk"] == 1 + 5 * 16  # the probe, then all five messages' bytes in two batches
    assert hiccup["whole"] == 0

    fits = out["fits"]
    assert not fits["stopped"] and fits["steps"] == 5
    assert fits["whole"] == 6 and fits["chunk"] == 1  # warmup and iterations of whole messages, as usual
