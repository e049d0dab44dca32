"""mpirun started by a test as railbench's parent starts its launcher: in a session of its own, waited for under
the parent's own deadlines (``bench.runtime.launcher_watch``), so that a launcher that hangs is ended, and said,
instead of holding the test until its timeout.

Open MPI 5's launcher has an open hang at a job's end (https://github.com/openpmix/prrte/issues/1839, 5-10% of
runs there): its ranks have all exited, and it neither reaps them nor exits. railbench's parent ends such a
launcher ``LINGER_S`` after its last rank; a test that ran mpirun bare waited out its whole timeout and failed
on a run whose ranks had done everything right. Here the test is told which it was: the ranks' own end (when the
last of them exited, and whether the watch had to end one that lingered) and the launcher's hang apart.
"""

from __future__ import annotations

import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.runtime import launcher_watch, session


@dataclass(frozen=True)
class Launched:
    """How a watched launch ended."""

    returncode: int
    """The launcher's exit status (negative: the signal that ended it)."""
    stdout: str
    stderr: str
    ranks_s: float
    """Seconds from the start until the last rank had exited (or was ended by the watch)."""
    rank_hang: str | None
    """The watch's line where it had to end ranks (stopped, or lingering after the run was recorded)."""
    launcher_hang: str | None
    """The watch's line where the launcher outlived its ranks and was ended: the launcher's fault, not theirs."""
    timed_out: bool
    """Nothing ended it within the test's own limit: the session was killed."""

    def said(self) -> str:
        """What to show when an assertion on this launch fails."""
        hangs = "; ".join(filter(None, (self.rank_hang, self.launcher_hang, "timed out" if self.timed_out else "")))
        return f"rc {self.returncode}, ranks ended at {self.ranks_s:.1f} s, {hangs or 'no hang'}\n" + (
            self.stdout[-3000:] + self.stderr[-3000:]
        )


def watched_mpirun(
    cmd: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    command: str = "",
    run_dir: Path | None = None,
    rank_timeout_s: float = 60.0,
    limit_s: float = 300.0,
) -> Launched:
    """Run ``cmd`` (mpirun ...) whose ranks run ``command`` into ``run_dir``, as railbench's parent waits for it.
    Without ``run_dir`` (a rank program that writes no run.json) the watch cannot tell when the run was recorded,
    so ranks are never ended for lingering; a launcher that outlives them still is."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        began = time.monotonic()
        proc = subprocess.Popen(
            list(cmd), cwd=cwd, env=dict(env), stdout=out, stderr=err, text=True, start_new_session=True
        )
        last_rank = [began]
        over = threading.Event()
        timed_out = threading.Event()

        def track() -> None:
            # When the ranks were last seen running, and the test's own limit on the whole launch.
            while not over.wait(0.25):
                now = time.monotonic()
                if any(not m.gone for m in session.ranks(proc.pid)):
                    last_rank[0] = now
                if now - began > limit_s:
                    timed_out.set()
                    session.kill_all(proc.pid)

        tracker = threading.Thread(target=track, daemon=True)
        tracker.start()
        try:
            ended = launcher_watch.wait(proc, launcher_watch.Watch(rank_timeout_s, command, run_dir))
        finally:
            over.set()
            tracker.join()
            session.kill_all(proc.pid)
        out.seek(0)
        err.seek(0)
        return Launched(
            returncode=ended.rc,
            stdout=out.read(),
            stderr=err.read(),
            ranks_s=last_rank[0] - began,
            rank_hang=None if ended.launcher_hung else ended.hang,
            launcher_hang=ended.hang if ended.launcher_hung else None,
            timed_out=timed_out.is_set(),
        )
