"""SIGTERM sent to one rank other than 0 mid-run (an operator's ``kill`` of one process) is said once, naming that
rank and its host, and recorded as the interrupt it is in every output (issue 43).

Before: three ``infrastructure fault`` lines, one per surviving rank, each naming the ranks whose heartbeat had
stopped by the time it looked (rank 2, then ``1, 2, 3``, in the campaign's run rank 0), and run.json ``failed``
with a lost rank that was never lost. Real ranks under the real launcher, the signal sent to rank 2's process
alone, as tests/test_cli_run_failures.py sends SIGKILL.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from pathlib import Path

import pytest

from tests.support import kill_leftovers, railbench_inline, rank_pids, spawn_railbench

pytestmark = [pytest.mark.mpi, pytest.mark.slow]


def _rows(out: Path) -> int:
    try:
        return max(0, len((out / "results.csv").read_text().splitlines()) - 1)
    except FileNotFoundError:
        return 0


def test_sigterm_to_rank_2_is_one_line_naming_it_and_an_interrupt_everywhere(tmp_path: Path) -> None:
    out, history = tmp_path / "run", tmp_path / "h.sqlite"
    args = ["run", "--np", "4", "-b", "64K", "-e", "256M", "-f", "2", "-n", "10", "-w", "1"]
    args += ["--collectives", "all_reduce", "--timeout", "60", "--out", str(out), "--no-history"]
    proc = spawn_railbench(args)
    try:
        deadline = time.monotonic() + 180
        while _rows(out) < 2:  # the sweep is measuring: every rank is in its collectives
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the sweep did not start"
            time.sleep(0.2)
        os.kill(rank_pids(out)[2], signal.SIGTERM)
        _, stderr = proc.communicate(timeout=120)
    finally:
        kill_leftovers(proc, out)
    host = socket.gethostname()
    said = [line for line in stderr.splitlines() if line.startswith("railbench: ")]
    assert len(said) == 1, stderr[-3000:]
    assert said[0].startswith("railbench: interrupted: all_reduce at ") and said[0].endswith(
        f": rank 2 on {host} was sent SIGTERM and stopped the run; results measured so far are on disk"
    ), said
    assert "infrastructure fault" not in stderr and "Traceback" not in stderr, stderr[-3000:]
    assert proc.returncode == 143
    meta = json.loads((out / "run.json").read_text())
    assert (meta["status"], meta["verdict"], meta["exit_status"]) == ("interrupted", "error", 143), meta
    failure = meta["failure"]
    assert (failure["kind"], failure["missing_ranks"], failure["missing_hosts"]) == ("signal", [2], [host])
    assert said[0] == f"railbench: interrupted: {failure['message']}; results measured so far are on disk"
    assert meta["reasons"] == [f"{failure['message']} (exit status 143)"]
    assert _rows(out) >= 2  # every row measured before the signal is kept
    # The history lists it as the interrupt it was, not as a failed run.
    assert railbench_inline(["history", "add", str(out), "--history", str(history)]).returncode == 0
    listed = railbench_inline(["history", "list", "--history", str(history), "--json"])
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [(r["status"], r["verdict"]) for r in rows] == [("interrupted", "error")], listed.stdout
