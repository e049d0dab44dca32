"""The node's checks within a time limit: a read that never returns (a wedged driver's sysfs file, a hung
device) becomes a finding naming the check it was in, instead of a ``check`` that never answers, an ``accept``
whose other ranks wait on this one, or a health check slurmd kills with nothing said.

The checks run in a thread of their own; at the limit the caller goes on with what was answered, the thread
is abandoned (a read blocked in the kernel cannot be interrupted from Python; the thread is a daemon, so it
does not hold the process open), and every tool the thread was waiting on is killed with its process group
(``bench.toolrun.stop_all``), so nothing is left running behind it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from bench import toolrun
from bench.preflight.check_base import Check, CheckResult, Context

TIME_LIMIT_CHECK = "time-limit"
"""The name of the finding a check that did not finish in time becomes (a failure of the node)."""


@dataclass(frozen=True)
class Bounded:
    """What the checks answered within the time limit."""

    results: tuple[CheckResult, ...]
    """Every answer given before the limit."""
    stuck_in: str | None
    """The check still running when the time limit passed, else None."""
    seconds: float
    time_limit_s: float

    @property
    def finding(self) -> CheckResult | None:
        """The time limit's own failure when a check did not finish, else None."""
        if self.stuck_in is None:
            return None
        message = (
            f"{self.stuck_in} did not finish within the {self.time_limit_s:g} s time limit: reading the node's "
            "devices hung"
        )
        return CheckResult(TIME_LIMIT_CHECK, "fail", message, None)

    @property
    def answers(self) -> list[CheckResult]:
        """The answers, then the time limit's finding when there is one."""
        return [*self.results, *([self.finding] if self.finding is not None else [])]


def run_within(ctx: Context, selected: Sequence[Check], time_limit_s: float) -> Bounded:
    """Run ``selected`` in order against ``ctx`` for at most ``time_limit_s`` seconds. Bad input a check raises
    (a ``UserError``: a file given on the command line) is raised here, in the caller's thread."""
    results: list[CheckResult] = []
    current: list[str] = []
    raised: list[BaseException] = []
    started = time.monotonic()

    def work() -> None:
        try:
            for check in selected:
                current.append(check.name)
                results.extend(check.answer(ctx))
            current.append("")
        except BaseException as exc:  # handed to the caller: Check.answer turns every other error into a finding
            raised.append(exc)
            current.append("")

    worker = threading.Thread(target=work, name="railbench-checks", daemon=True)
    worker.start()
    worker.join(time_limit_s)
    if raised:
        raise raised[0]
    stuck = current[-1] if worker.is_alive() and current else None
    if stuck is not None:
        # The abandoned check may be waiting on a tool (a hung nvidia-smi): end it and whatever it started.
        toolrun.stop_all()
    return Bounded(tuple(results), stuck or None, time.monotonic() - started, time_limit_s)
