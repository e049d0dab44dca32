"""The one place a measuring phase ends badly: a hang, a lost rank, Ctrl-C or SIGTERM.

Every command that measures (the world sweep, the rails test, accept's rails phase) runs inside
:func:`guarded`: the hang watchdog watches each step, and however the phase ends early the run directory
says so before the exception goes on: ``failed`` with the hang or the lost rank named (exit 3), or
``interrupted`` with 130/143. Rows already measured are on disk already; nothing here deletes anything.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from bench.errors import EXIT_INFRA, InfraError, Interrupted, interrupt_status
from bench.runtime import signals
from bench.runtime.dist import DistContext
from bench.runtime.watchdog import Hang, Watchdog

EndRecorder = Callable[[str, int, dict[str, Any] | None], None]
"""(status, exit status, failure or None) -> write it into the run directory (rank 0; a no-op elsewhere)."""


def hang_failure(hang: Hang) -> dict[str, Any]:
    """run.json's ``failure`` for a hang: the step, and the ranks and hosts that did not arrive."""
    return {
        "kind": "hang",
        "message": hang.describe(),
        "step": hang.label,
        "missing_ranks": list(hang.missing_ranks),
        "missing_hosts": list(hang.missing_hosts),
        "unresponsive_ranks": list(hang.unresponsive_ranks),
    }


@contextlib.contextmanager
def guarded(ctx: DistContext, timeout_s: float, record_end: EndRecorder) -> Iterator[Watchdog]:
    """Run a measuring phase under the hang watchdog; every early end is recorded, then raised on."""
    address = (ctx.info.master_addr, ctx.info.master_port) if ctx.info.master_addr and ctx.info.master_port else None
    watchdog = Watchdog(
        ctx.store,
        ctx.info.rank,
        ctx.hosts,
        timeout_s,
        lambda hang: record_end("failed", EXIT_INFRA, hang_failure(hang)),
        store_address=address,
    )
    watchdog.start()
    try:
        yield watchdog
    except KeyboardInterrupt as exc:
        record_end("interrupted", interrupt_status(exc), None)
        raise
    except RuntimeError as exc:
        signum = signals.received()
        if signum is not None:  # the peers were interrupted too: their collective failed first
            record_end("interrupted", 128 + signum, None)
            raise Interrupted(signum) from None
        # A peer that died or a transport error surfaces here as torch's RuntimeError/DistError.
        message = watchdog.lost(exc)
        record_end("failed", EXIT_INFRA, {"kind": "lost-rank", "message": message})
        raise InfraError(message) from None
    finally:
        watchdog.stop()
