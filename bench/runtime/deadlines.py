"""Every deadline railbench keeps, in one place: the per-step ``--timeout`` and the parent's waits.

The ranks bound each measured step by ``--timeout`` (the hang watchdog, ``bench.runtime.watchdog``). The
parent that started them bounds what the ranks cannot see themselves (``bench.runtime.launch``): a rank
stopped outside a measured step (SIGSTOP, a debugger, a frozen VM), ranks that do not exit once the run is
over, a launcher that died. None of these waits is open-ended.
"""

from __future__ import annotations

import math

from bench.exits import UserError

DEFAULT_TIMEOUT_S = 300.0
"""``--timeout``: a step that has not finished after this many seconds ends the run with exit 3."""
MAX_TIMEOUT_S = 86_400.0
"""A day: no collective step waits longer; an infinite timeout would be no deadline at all."""
POSTMORTEM_COLLECT_S = 20.0
"""The most rank 0's post-mortem of a failed communicator waits for the failed ranks' posts to settle before it
names the link (``bench.frame.postmortem``): inside the step's ``--timeout``, after NCCL's own retries and
torch's abort, or the step ends as a hang instead (the ``nccl-ib-retry`` check counts it)."""

STOPPED_GRACE_S = 15.0
"""A rank stopped for ``--timeout`` plus this long is a hang the parent ends. Inside a measured step the
ranks' own watchdog speaks first (it acts at ``--timeout`` and needs a few seconds to name the rank), so the
parent only ends what the watchdog cannot see: a stop between steps, in start-up or after the run."""
LINGER_S = 60.0
"""Once rank 0 has recorded the run's end and one rank has exited, the others have this long to follow
(they only agree on the exit status through the store, whose wait is 60 s, and tear their groups down)."""
TERM_WAIT_S = 5.0
"""How long a launcher the parent asked to end (SIGTERM) has before it and its session are killed."""
POLL_S = 0.25
"""How often the parent looks at its launcher and the ranks."""


def check_timeout(seconds: float, flag: str = "--timeout") -> float:
    """``seconds`` as a step deadline: finite, above zero, at most :data:`MAX_TIMEOUT_S`; else one line."""
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise UserError(f"{flag} {seconds!r} is not a number of seconds, e.g. {flag} 300")
    if not math.isfinite(seconds) or seconds <= 0:
        raise UserError(f"{flag} {seconds:g} must be a positive number of seconds, e.g. {flag} 300")
    if seconds > MAX_TIMEOUT_S:
        raise UserError(f"{flag} {seconds:g} is more than a day ({MAX_TIMEOUT_S:g} s): give a step a real deadline")
    return float(seconds)


def stopped_deadline_s(timeout_s: float) -> float:
    """How long a rank may stay stopped before the parent ends the run as a hang."""
    return timeout_s + STOPPED_GRACE_S
