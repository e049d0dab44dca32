"""The one place a measuring phase ends badly: a hang, a lost rank, Ctrl-C or SIGTERM.

Every command that measures (the world sweep, the rails test, accept's rails phase) runs inside
:func:`guarded`: the hang watchdog watches each step, and however the phase ends early the run directory
says so before the exception goes on: ``failed`` with the hang or the lost rank named (exit 3), or
``interrupted`` with 130/143. Rows already measured are on disk already; nothing here deletes anything.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable, Iterator, Mapping
from datetime import timedelta

from bench.exits import EXIT_FAIL, EXIT_INFRA, FabricFault, InfraError, Interrupted, interrupt_status
from bench.frame.postmortem import Postmortem
from bench.runtime import signals
from bench.runtime.dist import DistContext
from bench.runtime.watchdog import Hang, Watchdog

EndRecorder = Callable[[str, int, Mapping[str, object] | None], None]
"""(status, exit status, failure or None) -> write it into the run directory (rank 0; a no-op elsewhere)."""


def hang_failure(hang: Hang) -> dict[str, object]:
    """run.json's ``failure`` for a hang: the step, and the ranks and hosts that did not arrive."""
    return {
        "kind": "hang",
        "message": hang.describe(),
        "step": hang.label,
        "missing_ranks": list(hang.missing_ranks),
        "missing_hosts": list(hang.missing_hosts),
        "unresponsive_ranks": list(hang.unresponsive_ranks),
    }


def rank0_lost_failure(label: str, host0: str, rank: int) -> dict[str, object]:
    """run.json's ``failure`` when rank 0 itself is gone, as a surviving rank records it."""
    return {
        "kind": "lost-rank",
        "message": f"{label}: rank 0 ({host0}) died or stopped answering (recorded by rank {rank})",
        "missing_ranks": [0],
        "missing_hosts": [host0],
    }


SIGNALLED_KEY = "railbench/signalled/"
"""Store key prefix under which a rank says which signal stopped it (the key ends with its rank)."""


def announce_signal(ctx: DistContext) -> None:
    """This rank was sent SIGINT or SIGTERM: say so in the store before it leaves its collective, so that its
    peers, whose collective then fails, name it as the run's end instead of a rank that died. Best effort."""
    signum = signals.received()
    if signum is None:
        return
    with contextlib.suppress(RuntimeError, OSError):
        ctx.store.set(f"{SIGNALLED_KEY}{ctx.info.rank}", str(signum))


def signalled_peer(ctx: DistContext) -> tuple[int, int] | None:
    """(rank, signal) of a peer that said a signal stopped it, lowest rank first; None when none did (or the
    store no longer answers: rank 0 is gone, which the lost-rank path says)."""
    try:
        ctx.store.set_timeout(timedelta(seconds=5))
        for rank in range(ctx.info.world_size):
            key = f"{SIGNALLED_KEY}{rank}"
            if rank != ctx.info.rank and ctx.store.check([key]):
                return rank, int(ctx.store.get(key))
    except (RuntimeError, ValueError):
        return None
    return None


def signal_failure(label: str, ctx: DistContext, rank: int, signum: int) -> dict[str, object]:
    """run.json's ``failure`` of a run one rank's signal ended: that rank, its host and the signal, not the
    ranks whose collective failed with it."""
    host = ctx.hosts[rank]
    try:
        name = signal.Signals(signum).name
    except ValueError:
        name = f"signal {signum}"
    return {
        "kind": "signal",
        "message": f"{label}: rank {rank} on {host} was sent {name} and stopped the run",
        "missing_ranks": [rank],
        "missing_hosts": [host],
    }


def _survivor_records(ctx: DistContext, rank0_lost: EndRecorder | None, label: str) -> None:
    """A surviving rank records rank 0's loss (rank 0 itself records through its own recorder)."""
    if rank0_lost is not None and ctx.info.rank != 0:
        rank0_lost("failed", EXIT_INFRA, rank0_lost_failure(label, ctx.hosts[0], ctx.info.rank))


def _if_rank0_silent(ctx: DistContext, rank0_lost: EndRecorder | None, watchdog: Watchdog) -> None:
    """The launcher stops every rank when one dies: if that one was rank 0, its end is ours to record."""
    if ctx.info.rank != 0 and rank0_lost is not None and not watchdog.rank0_answers():
        _survivor_records(ctx, rank0_lost, watchdog.current_label())


@contextlib.contextmanager
def guarded(
    ctx: DistContext,
    timeout_s: float,
    record_end: EndRecorder,
    rank0_lost: EndRecorder | None = None,
    postmortem: Postmortem | None = None,
) -> Iterator[Watchdog]:
    """Run a measuring phase under the hang watchdog; every early end is recorded, then raised on.

    Rank 0 records through ``record_end``. When rank 0 is what was lost, nobody would: a surviving rank then
    records it through ``rank0_lost`` (run.json where this rank can see it), under the user's own mpirun or
    srun as under railbench's launcher, so the run never stays ``running``.

    ``postmortem`` (NCCL): a call that failed in the backend first asks the failed ranks' NCCL logs which link
    broke it (``bench.frame.postmortem``); a link named is the run's FAIL, exit 1, not a lost rank.
    """
    address = (ctx.info.master_addr, ctx.info.master_port) if ctx.info.master_addr and ctx.info.master_port else None
    rank = ctx.info.rank

    def on_hang(hang: Hang) -> None:
        record_end("failed", EXIT_INFRA, hang_failure(hang))
        if hang.unreachable:
            _survivor_records(ctx, rank0_lost, hang.label)

    tick = None if postmortem is None else postmortem.poll if rank == 0 else postmortem.watch
    # A rank that read rank 0's named link leaves with the run's FAIL when rank 0's end leaves it in a wait.
    ended = None if postmortem is None or rank == 0 else lambda: EXIT_FAIL if postmortem.named else None
    watchdog = Watchdog(
        ctx.store, rank, ctx.hosts, timeout_s, on_hang, store_address=address, on_tick=tick, ended=ended
    )
    watchdog.start()
    try:
        yield watchdog
    except KeyboardInterrupt as exc:
        announce_signal(ctx)
        _if_rank0_silent(ctx, rank0_lost, watchdog)
        record_end("interrupted", interrupt_status(exc), None)
        raise
    except RuntimeError as exc:
        signum = signals.received()
        if signum is not None:  # the peers were interrupted too: their collective failed first
            announce_signal(ctx)
            _if_rank0_silent(ctx, rank0_lost, watchdog)
            record_end("interrupted", 128 + signum, None)
            raise Interrupted(signum) from None
        # One peer was sent the signal (an operator's kill of one rank): its leaving failed this collective.
        peer = signalled_peer(ctx)
        if peer is not None:
            failure = signal_failure(watchdog.current_label(), ctx, *peer)
            record_end("interrupted", 128 + peer[1], failure)
            raise Interrupted(peer[1], str(failure["message"])) from None
        # A link that died under a communicator: its ranks' NCCL logs name it, and the run is a FAIL.
        named = postmortem.failed_here(watchdog.current_label(), exc) if postmortem is not None else None
        if named is not None:
            raise FabricFault(named) from None
        # A peer that died or a transport error surfaces here as torch's RuntimeError/DistError.
        message = watchdog.lost(exc)
        record_end("failed", EXIT_INFRA, {"kind": "lost-rank", "message": message})
        if watchdog.rank0_gone:
            _survivor_records(ctx, rank0_lost, watchdog.current_label())
        raise InfraError(message) from None
    finally:
        watchdog.stop()
