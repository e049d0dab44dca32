"""When the user's wait began: this process's start, and the railbench launcher's, passed to the ranks it starts.

A rank's own clock starts late: the launcher (``railbench run --np``, ``accept``) starts first, then mpirun or
torch's elastic launcher, then the interpreter of each rank imports torch and sets up the world. The parent
says when it started in :data:`LAUNCHED_VAR`, and rank 0 records it in run.json (``launched_utc``), so the
certificate can say the whole wait (issue 43: a 10 s accept said 0 s).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping
from pathlib import Path

LAUNCHED_VAR = "RAILBENCH_LAUNCHED_AT"
"""The railbench launcher's start, seconds since the epoch, set for the ranks it starts."""
LAUNCHED_SLACK_S = 7 * 86400.0
"""A start further back than this (or in the future) is not this run's: an inherited or mistyped variable."""


def process_age_s() -> float:
    """Seconds since this process started (0 where /proc cannot say)."""
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        started = int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22, counted after the command's ")"
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0.0
    return max(0.0, uptime - started)


def process_started() -> float:
    """This process's start, seconds since the epoch."""
    return time.time() - process_age_s()


def launched_env() -> dict[str, str]:
    """The variable a launcher gives the ranks it starts: its own start."""
    return {LAUNCHED_VAR: f"{process_started():.3f}"}


def launched_at(env: Mapping[str, str], now: float | None = None) -> float | None:
    """The railbench launcher's start as ``env`` says it; None under a launcher of the user's own (mpirun,
    srun), or for a value that is no plausible start of this run."""
    text = env.get(LAUNCHED_VAR)
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    now = time.time() if now is None else now
    if not math.isfinite(value) or not now - LAUNCHED_SLACK_S <= value <= now + 1.0:
        return None
    return value
