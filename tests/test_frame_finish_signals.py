"""A signal in the finish step is recorded as what it is (issue 43, item 4).

Rank 0 alone works in the finish step (the history row, then the report) while the other ranks wait for its
exit status. SIGTERM to rank 0 there was recorded by rank 0 as ``interrupted`` with its verdict standing; then
the other ranks named rank 0 lost ("never said the exit status") and the parent rewrote run.json as failed
"during the run" (exit 3), so ``history add`` later listed a run whose verdict was decided as an error; rails
never ended at all. Real ranks under the real launcher, the signal sent to rank 0's process alone, as an
operator's ``kill`` would.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from tests.support import (
    history_locked,
    kill_leftovers,
    railbench_inline,
    rank_pids,
    spawn_railbench,
    wait_for_finish_step,
)

pytestmark = [pytest.mark.mpi, pytest.mark.slow]


COMMANDS = {
    "run": ["run", "--np", "2", "-b", "8", "-e", "64K", "-n", "1", "-w", "0"],
    # One node: the rails test is skipped and judged; the finish step is the same as a full run's.
    "rails": ["rails", "--np", "2", "--rail-bytes", "64K", "--pair-bytes", "64K"],
    "accept": ["accept", "--profile", "local", "--np", "2", "-e", "64K", "-n", "1", "-w", "0"],
}
VERDICTS = {"run": "measured", "rails": "skip", "accept": "measured"}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_sigterm_to_rank_0_in_its_finish_step_is_an_interrupt_not_a_failure(tmp_path: Path, command: str) -> None:
    # Before the fix: run ended exit 3 with run.json rewritten as failed "during the run" and rank 1 naming
    # rank 0 lost; rails never ended (rank 0 in MPI's finalize, rank 1 waiting for rank 0's exit status).
    out, history = tmp_path / "run", tmp_path / "h.sqlite"
    with history_locked(history):  # rank 0 waits for the history's write lock, held by another writer
        proc = spawn_railbench([*COMMANDS[command], "--out", str(out), "--history", str(history)])
        try:
            wait_for_finish_step(out, proc)
            os.kill(rank_pids(out)[0], signal.SIGTERM)
            # Within Slurm's KillWait (30 s), not once the lock comes free: SQLite's busy handler sleeps in C, where
            # the signal once waited for BUSY_TIMEOUT_S (120 s).
            stdout, stderr = proc.communicate(timeout=30)
        finally:
            kill_leftovers(proc, out)
    assert proc.returncode == 143, stdout[-2000:] + stderr[-2000:]
    said = [line for line in stderr.splitlines() if line.startswith("railbench: ")]
    assert len(said) == 1 and said[0].startswith("railbench: interrupted while finishing the run"), stderr[-3000:]
    meta = json.loads((out / "run.json").read_text())
    assert (meta["status"], meta["exit_status"], meta["finish"]) == ("interrupted", 143, "interrupted"), meta
    assert meta["verdict"] == VERDICTS[command] and meta.get("failure") is None, meta  # decided before the signal
    # Added later as the line says, the history lists the run with the verdict it had, not as an error.
    assert railbench_inline(["history", "add", str(out), "--history", str(history)]).returncode == 0
    listed = railbench_inline(["history", "list", "--history", str(history), "--json"])
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [(r["status"], r["verdict"]) for r in rows] == [("interrupted", VERDICTS[command])], listed.stdout
