"""The one timing loop within a time budget: a dead-slow part costs its budget, not ``iters`` steps.

:func:`time_steps` times a :class:`~bench.measure.timing.Loop` as it says: the plain loop
(``bench.measure.timing.time_region``) where it has no budget, else :func:`time_budgeted`, which probes one
step first and times only the steps that fit (docs/design.md, "A cell within its time budget").
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bench.measure import device as device_ops
from bench.measure.timing import Agree, Align, Loop, Timed, group_max, no_collection, region, start_together

if TYPE_CHECKING:
    import torch
    from torch.distributed import ProcessGroup


@dataclass(frozen=True)
class Chunked:
    """The bytes of one step moved as ``per_step`` equal smaller steps (``step``): how a budgeted cell moves
    what it can when not even its planned messages fit, so that a dead-slow part costs its budget and is
    measured over the bytes it moved, instead of one whole message that may take a hundred budgets.

    Only for an exchange between two ranks (a pair direction, a two-rank group), never for a collective over
    more than two: there the chunk and the whole message do not run the same algorithm, and no chunk's rate
    says what the whole message's is (docs/design.md, "A cell within its time budget").

    ``half`` is the same exchange with half a chunk's bytes. A chunk pays a fixed cost per call, as a whole
    message does; it is planned from these two sizes (twice the half's time less the chunk's), both large
    enough to run the same protocol, never from a one-element call, which on NCCL runs another protocol (LL)
    and often another algorithm (a tree) than any chunk does, with a fraction of a chunk's fixed cost."""

    step: Callable[[], None]
    per_step: int
    half: Callable[[], None]


LATENCY_SHARE = 0.1
"""Chunks judge bandwidth only while their fixed cost per call is at most this share of a chunk's time (and the
chunk and half a chunk agree with one cost line to within it)."""
PROBE_SAMPLES = 3
"""Timed calls behind a probe, which plans from their median: one call that a scheduling hiccup or a late
completion stretched (by a few milliseconds: a quarter of a healthy 64-node message) must not decide a plan."""


def time_steps(
    step: Callable[[], None],
    loop: Loop,
    *,
    group: ProcessGroup | None,
    device: torch.device,
    agree: Agree | None = None,
    chunked: Chunked | None = None,
    align: Align | None = None,
) -> Timed:
    """This rank's time per ``step`` as ``loop`` says: every step timed (``time_region``), or within its budget
    (:func:`time_budgeted`, with ``agree`` and ``chunked``, which the plain loop has no use for)."""
    if loop.budget_s is None:
        return Timed(region(step, group, device, loop.iters, loop.warmup, loop.graph, align), loop.iters, False)
    return time_budgeted(step, loop, group=group, device=device, agree=agree, chunked=chunked, align=align)


def time_budgeted(
    step: Callable[[], None],
    loop: Loop,
    *,
    group: ProcessGroup | None,
    device: torch.device,
    agree: Agree | None = None,
    chunked: Chunked | None = None,
    align: Align | None = None,
) -> Timed:
    """``time_region`` within ``loop``'s time budget: a dead-slow part costs the budget, not ``iters`` steps.

    Connections first: NCCL connects an algorithm's channels (and a peer's point-to-point connectors) on the
    first call that needs them, and that can take longer than a whole healthy message. So every probe starts
    with one untimed call of each size it times (:func:`_probe`); nothing timed or budget-deciding ever pays a
    connection, and whole messages are timed only after at least one untimed whole message.

    The probe is the median of up to :data:`PROBE_SAMPLES` timed calls, each through ``agree`` (default: the
    slowest rank of ``group``), so every rank that takes part plans from the same values and runs the same
    number of steps. What it plans is the time of one whole step, the value a callable ``budget_s`` is given.
    Without ``chunked``, the probe calls are whole steps (fewer where they alone spend a fixed budget): when the
    whole plan fits the rest of the budget it runs as usual, else only the steps that fit are timed, and when
    not one more fits the probe's calls are the measurement. With ``chunked`` (two ranks only, see
    :class:`Chunked`) the probe times a chunk and half a chunk; a whole message is expected to take the fixed
    cost plus ``per_step`` times the chunk's time beyond it. When the plan fits, whole messages as usual;
    when it does not and the chunk's time is its bytes (the two sizes on one cost line whose fixed part is at
    most :data:`LATENCY_SHARE` of a chunk's time), chunks in two batches (:func:`_chunks`); else the whole
    messages that fit (one at least): a chunk that is mostly fixed cost cannot judge bandwidth, and two sizes
    off one line (half the chunk far faster than half its time: another protocol) cannot be extrapolated.

    Every rank of ``group`` meets the same barriers whichever way its own plan went (pairs of one rail plan
    differently and share the rail's group); ``align`` runs before every timer starts, and the two ends of a
    pair take the same branches (they plan from the values ``agree`` gave both), so they meet in it equally
    often.
    """
    iters, warmup, budget_s = loop.iters, loop.warmup, loop.budget_s
    if budget_s is None:
        raise ValueError("time_budgeted needs a loop with a budget_s")
    if not callable(budget_s) and budget_s <= 0:
        raise ValueError(f"budget_s {budget_s!r} must be positive")
    agreed = agree or (lambda s: group_max(s, group, device))
    if chunked is None:
        limit = math.inf if callable(budget_s) else budget_s
        # Messages that alone spend a fixed budget are not timed again: their timed calls are the measurement.
        samples = _probe([step], group, device, align, agreed, lambda spent: spent < limit)
        taken = [s[0] for s in samples]
        probe = _median(taken)
        left = (budget_s(probe) if callable(budget_s) else budget_s) - sum(taken)
        return _whole_steps(step, group, device, iters, max(0, warmup - 1 - len(taken)), left, taken, align)
    samples = _probe([chunked.step, chunked.half], group, device, align, agreed, lambda spent: True)
    chunk_s, half_s = _median([s[0] for s in samples]), _median([s[1] for s in samples])
    # One cost line through both sizes: its fixed part. Far below zero, the two sizes do not share one line (the
    # smaller ran another protocol or algorithm), and nothing can be extrapolated from them.
    line_fixed = 2 * half_s - chunk_s
    fixed = min(chunk_s, max(0.0, line_fixed))
    whole = fixed + (chunk_s - fixed) * chunked.per_step
    left = (budget_s(whole) if callable(budget_s) else budget_s) - sum(map(sum, samples))
    if whole * (warmup + iters) <= left:
        timed = Timed(region(step, group, device, iters, max(1, warmup - 1), False, align), iters, False)
        _steps(lambda: None, group, device, 0)  # the barrier of the second batch of the chunked branch
        return timed
    if abs(line_fixed) <= LATENCY_SHARE * chunk_s:
        return _chunks(chunked, group, device, iters, left, chunk_s, fixed, agreed, align)
    # Chunks that are mostly fixed cost (or off any one cost line): whole messages, the first of them untimed (its
    # own size may connect anew).
    fits = int(left // whole) if whole > 0 else warmup + iters
    steps = max(1, min(iters, fits - 1))
    timed = Timed(region(step, group, device, steps, 1, False, align), steps, steps < iters)
    _steps(lambda: None, group, device, 0)
    return timed


def _median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else 0.0


def _probe(
    steps: Sequence[Callable[[], None]],
    group: ProcessGroup | None,
    device: torch.device,
    align: Align | None,
    agree: Agree,
    more: Callable[[float], bool],
) -> list[list[float]]:
    """One untimed call of each of ``steps`` (it pays whatever the first use of that size costs: NCCL's
    connection set-up), then up to :data:`PROBE_SAMPLES` rounds of one timed call of each, every time agreed;
    a round is taken while ``more(seconds spent so far)``. Returns the agreed seconds, round by round.

    One barrier of ``group`` however many rounds are taken (pairs of one group take different numbers); the
    calls after the first start together through ``align`` (pairs) or the previous agreement (collectives).
    The agreed values are the same at every rank that takes part, so they all take the same rounds."""
    start_together(group, device, align)
    for step in steps:
        step()
    device_ops.synchronize(device)
    rounds: list[list[float]] = []
    spent = 0.0
    with no_collection():
        while len(rounds) < PROBE_SAMPLES and more(spent):
            taken = []
            for step in steps:
                if align is not None:
                    align()
                timer = device_ops.RegionTimer(device)
                timer.start()
                step()
                taken.append(agree(timer.stop()))
            rounds.append(taken)
            spent += sum(taken)
    return rounds


def _whole_steps(
    step: Callable[[], None],
    group: ProcessGroup | None,
    device: torch.device,
    iters: int,
    warmup: int,
    left: float,
    taken: Sequence[float],
    align: Align | None,
) -> Timed:
    """Whole steps within ``left`` seconds, planned from the median of ``taken`` (the probe's agreed times of
    one whole step each)."""
    probe = _median(taken)
    fits = int(left // probe) if probe > 0 else iters + warmup
    if fits >= warmup + iters:
        return Timed(region(step, group, device, iters, warmup, False, align), iters, False)
    if fits < 1:
        # Not one more step fits: the probe's calls are the measurement. The barrier keeps the group in step
        # with ranks whose plan timed more.
        _barrier(group)
        return Timed(probe * 1e6, len(taken), True)
    steps = min(fits, iters)
    return Timed(region(step, group, device, steps, 0, False, align), steps, steps < iters)


def _chunks(
    chunked: Chunked,
    group: ProcessGroup | None,
    device: torch.device,
    iters: int,
    left: float,
    probe: float,
    fixed: float,
    agree: Agree,
    align: Align | None,
) -> Timed:
    """Chunks in two timed batches within ``left`` seconds: the first planned from the probe for a quarter
    of it, the second from the first batch, and only when every chunk still wanted fits (a probe stretched
    by a scheduling hiccup plans too few chunks, and the second batch moves the rest; a cell that is really
    slow stops after the first, having spent a quarter of its budget). A whole step is the chunks' mean time
    beyond their ``fixed`` cost per call, ``per_step`` times, plus that cost once; the probe is left out, as
    warmup is (the first chunk on a token bucket rides its burst, the first on TCP its slow start)."""
    wanted = iters * chunked.per_step
    moved, spent = 0, 0.0
    per_chunk = probe
    for first in (True, False):
        if first:
            # A quarter of the budget at most (about what the whole plan should take), and one chunk at
            # least: the second batch plans from this one's rate, and when the rest cannot fit in what is
            # left, the cell stops with the rate it has.
            fits = max(1, int(left / 4 // per_chunk)) if per_chunk > 0 else wanted
            fits = fits if left > 0 else 0
        else:
            fits = int((left - spent) // per_chunk) if per_chunk > 0 else wanted
            if fits < wanted - moved:
                fits = 0
        batch = max(0, min(fits, wanted - moved))
        seconds = agree(_steps(chunked.step, group, device, batch, align))
        if batch:
            moved, spent, per_chunk = moved + batch, spent + seconds, seconds / batch
    if moved:
        per_chunk = spent / moved
    whole = fixed + max(0.0, per_chunk - fixed) * chunked.per_step
    if not moved:
        return Timed(whole * 1e6, 1, True)
    return Timed(whole * 1e6, max(1, moved // chunked.per_step), moved < wanted)


def _steps(
    step: Callable[[], None], group: ProcessGroup | None, device: torch.device, count: int, align: Align | None = None
) -> float:
    """Seconds for ``count`` timed steps; with none, only the region's barrier (the group stays in step)."""
    if count == 0:
        _barrier(group)
        return 0.0
    return region(step, group, device, count, 0, False, align) * count / 1e6


def _barrier(group: ProcessGroup | None) -> None:
    """The group's barrier alone, where this rank's plan times nothing: the group stays in step with ranks whose
    plan timed more."""
    import torch.distributed as dist

    dist.barrier(group=group)
