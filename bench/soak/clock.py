"""Rank 0's soak clock: the deadline, the rotation through the pair matrix, run.json's ``soak`` section, the
progress line and what a stopped soak keeps (docs/design.md, "Soak").

Only rank 0 decides: whether the next window fits before the deadline (the last window's length, or the asked
length before any ran), which pair rounds it runs, and, in the first window, how many rounds fit a window (R); every
pair is then covered every K = ceil(rounds / R) windows.
"""

from __future__ import annotations

import dataclasses
import math
import signal
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from bench.exits import FabricFault, InfraError, Interrupted
from bench.frame.decide import Item, decide, item_entries
from bench.frame.job import print_verdict
from bench.frame.run import Run, write_refused_is_infra
from bench.rundir.soak_records import SoakFound
from bench.rundir.soak_windows import SoakSection, SoakWindow, iter_windows
from bench.runtime.progress import times_text
from bench.soak.config import SoakConfig, read_resumed

STOPS = (KeyboardInterrupt, InfraError, FabricFault)
"""What ends a soak early and still leaves a verdict on its finished windows: Ctrl-C, SIGTERM, a lost node, a
link that died mid-window."""
SHOWN_PARTS = 4
"""Parts the progress line names by name; more are counted."""


@dataclass(frozen=True)
class Next:
    """What rank 0 tells every rank before a window: its index and the pair rounds it runs (indices into the
    matrix's schedule); ``fill`` (the soak's first window): from the one round told, round after round while they
    fit the window."""

    index: int
    rounds: tuple[int, ...]
    window_s: float
    """The window's length (a resumed soak's is its first start's)."""
    fill: bool = False


@dataclass
class SoakClock:
    """Rank 0's state of the soak."""

    planned_s: float
    window_s: float
    deadline: float
    """Seconds since the epoch: the first start's deadline."""
    total_rounds: int
    """Rounds of the pair matrix (0: one node, no pairs)."""
    per_window: int | None
    """R: rounds each window runs; None until the first window has measured it."""
    index: int = 0
    """The next window's index (= windows kept so far)."""
    next_round: int = 0
    elapsed_before: float = 0.0
    """Soak seconds of the starts before this one (``--resume``)."""
    resumed: tuple[int, ...] = ()
    stopped: str | None = None
    findings: tuple[SoakFound, ...] = ()
    """The judges' findings over the windows kept, once judged (run.json's ``soak.findings``)."""
    started: float = field(default_factory=time.monotonic)
    last_len: float | None = None
    window_began: float = 0.0
    rounds_began: float = 0.0
    named: Counter[str] = field(default_factory=Counter)
    """Each part's words -> windows that named it (this start's)."""

    @classmethod
    def start(cls, config: SoakConfig, out_dir: Path, total_rounds: int, now: float | None = None) -> SoakClock:
        """A new soak's clock from ``--hours``/``--until``, or a resumed one's from its run directory."""
        now = time.time() if now is None else now
        if config.resume:
            return cls._resumed(config, out_dir, total_rounds, now)
        planned = config.hours * 3600 if config.hours is not None else (config.until or now) - now
        return cls(planned, config.window_s, now + planned, total_rounds, None if total_rounds else 0)

    @classmethod
    def _resumed(cls, config: SoakConfig, out_dir: Path, total: int, now: float) -> SoakClock:
        found = read_resumed(out_dir, now=now)
        last: SoakWindow | None = None
        for last in iter_windows(out_dir):  # noqa: B007 - the last one kept says where the rotation stands
            pass
        section = found.section
        # Every window runs R rounds (the first as many as fitted): the last one kept says R, which K cannot (a
        # window that fits the whole matrix runs more of it, and K is 1 however many).
        per_window = len(last.rounds) if total and last is not None and last.rounds else None
        after = (last.rounds[-1] + 1) % total if total and last is not None and last.rounds else 0
        return cls(
            section.planned_s,
            section.window_s,
            found.deadline,
            total,
            per_window if total else 0,
            index=found.windows,
            next_round=after,
            elapsed_before=section.elapsed_s,
            resumed=(*section.resumed, found.windows),
        )

    @property
    def cover_every(self) -> int:
        """K; before the first window has measured R, the most it can be (one round a window). A window that fits
        the whole matrix runs it more than once (the load stays on for the window's length): K is 1."""
        if not self.total_rounds:
            return 1
        return math.ceil(self.total_rounds / (self.per_window or 1))

    def elapsed(self) -> float:
        """Soak seconds so far, over every start."""
        return self.elapsed_before + time.monotonic() - self.started

    def section(self) -> SoakSection:
        deadline = datetime.fromtimestamp(self.deadline, timezone.utc).isoformat(timespec="seconds")
        return SoakSection(
            planned_s=round(self.planned_s, 3),
            window_s=self.window_s,
            cover_every=self.cover_every,
            windows=self.index,
            elapsed_s=round(self.elapsed(), 3),
            resumed=self.resumed,
            stopped=self.stopped,
            deadline_utc=deadline,
            findings=self.findings,
        )

    def next_window(self, now: float | None = None) -> Next | None:
        """The next window, or None when it would not end before the deadline."""
        now = time.time() if now is None else now
        if now + (self.last_len or self.window_s) > self.deadline:
            return None
        self.window_began = self.rounds_began = time.monotonic()
        total = self.total_rounds
        if not total:
            return Next(self.index, (), self.window_s)
        if self.per_window is None:  # the first window: from the next round while rounds fit (pair_rounds)
            return Next(self.index, (self.next_round,), self.window_s, fill=True)
        rounds = tuple((self.next_round + i) % total for i in range(self.per_window))
        return Next(self.index, rounds, self.window_s)

    def another_round_fits(self, done: int) -> bool:
        """The first window: whether one more round, at the mean of the ``done`` so far, ends within the window."""
        now = time.monotonic()
        per_round = (now - self.rounds_began) / done
        return now - self.window_began + per_round <= self.window_s

    def calibrated(self, rounds: int) -> None:
        """The first window fitted ``rounds`` rounds: every window runs that many from now on."""
        self.per_window = max(1, rounds)

    def kept(self, window: SoakWindow, seconds: float) -> None:
        """``window`` is on disk and took ``seconds``."""
        self.index = window.index + 1
        if self.total_rounds:
            self.next_round = (self.next_round + len(window.rounds)) % self.total_rounds
        self.last_len = seconds
        self.named.update({f"{n.part.where or n.part.kind} ({n.part.kind})" for n in window.named})

    def progress(self) -> str:
        """``# soak window 3 of about 12: 0:15 elapsed, about 0:45 left; named so far: none``."""
        left = max(0.0, self.deadline - time.time())
        about = self.index + int(left // self.last_len) if self.last_len else self.index
        if not self.named:
            named = "none"
        else:
            shown = [f"{part} in {n} window{'s' if n > 1 else ''}" for part, n in self.named.most_common(SHOWN_PARTS)]
            more = len(self.named) - len(shown)
            named = "; ".join(shown) + (f"; {more} more" if more > 0 else "")
        return f"# soak window {self.index} of about {about}: {times_text(self.elapsed(), left)}; named so far: {named}"


def why_stopped(exc: BaseException) -> str:
    """run.json's ``soak.stopped`` for what ended the soak early."""
    if isinstance(exc, Interrupted):
        name = signal.Signals(exc.signum).name if exc.signum in signal.Signals._value2member_map_ else str(exc.signum)
        return "Ctrl-C" if exc.signum == signal.SIGINT else (exc.why or name)
    if isinstance(exc, KeyboardInterrupt):
        return "Ctrl-C"
    if isinstance(exc, FabricFault):
        return f"a link failed: {exc}"
    return f"a lost node: {exc}"


def keep_verdict(run: Run, items: list[Item], stop: BaseException) -> None:
    """Rank 0, a soak stopped early: the verdict on its finished windows in run.json, which the stop has already
    made ``interrupted`` (Ctrl-C, SIGTERM: the windows' verdict stands, with the signal's exit status) or ``failed``
    (a lost node, a link that died: that failure stays the verdict, the windows' reasons after it), and on the
    terminal."""
    record = run.record
    if record is None:
        return
    verdict = decide(items)
    now = record.record
    if isinstance(stop, KeyboardInterrupt):
        judged = dataclasses.replace(now, verdict=verdict.word, reasons=tuple(verdict.reasons))
    else:
        judged = dataclasses.replace(now, reasons=(*(now.reasons or ()), *verdict.reasons))
    judged = dataclasses.replace(judged, items=item_entries(items))
    write_refused_is_infra(run.out_dir, "run.json", lambda: record.become(judged))
    print_verdict("soak", verdict)
