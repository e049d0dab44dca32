"""What ``railbench soak`` is asked: the frozen config, and everything about it checked before any rank starts
(docs/design.md, "Soak").

A soak is the rails test's settings (``bench.rails.plan.config.RailsConfig``: the profile, message sizes,
interfaces, the launch and the run directory) plus how long it runs and in windows of what length. Every bad
input is one line and exit 2 in the parent, before any rank starts: a duration that is not positive, an
``--until`` that does not read or has passed, a window too short to hold a rails round, a window longer than the
soak, and a ``--resume`` of a folder that is not a soak's (or whose soak is over).
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

from bench import codec
from bench.exits import UserError
from bench.frame.config_parts import Launch, Output
from bench.profile.cluster import Profile
from bench.rails.plan.config import RailsConfig, RailsSettings, validate
from bench.rundir.runjson import read_run_json
from bench.rundir.soak_windows import SoakSection, read_windows
from bench.runtime import spec

MIN_WINDOW_S = 2.0
"""The shortest window: each window also gathers every rank's cells to rank 0, reads every node's counters and
agrees whether the next one fits; below a couple of seconds those fixed costs are most of the window."""
DEFAULT_WINDOW_S = 60.0
"""A minute: a 3-minute soak still has three windows, and an hour's sixty are a fine timeline."""
MAX_HOURS = 24.0 * 365
"""A year: anything longer is a typo (``--hours 8760`` is already a year of burn-in)."""


@dataclass(frozen=True)
class SoakConfig:
    """What ``railbench soak`` runs: the rails test's config, and the soak's duration and windows."""

    rails: RailsConfig = field(default_factory=RailsConfig)
    """The rails test each window runs (a rotating slice of its pair matrix), its launch and run directory."""
    hours: float | None = None
    """``--hours``: the soak's duration from its start."""
    until: float | None = None
    """``--until``, as seconds since the epoch: the soak ends at this wall-clock time."""
    window_s: float = DEFAULT_WINDOW_S
    """``--window-s``: each window's length; a window ends after the round and collective under way."""
    resume: bool = False
    """``--resume``: continue the soak in ``rails.output.out`` (its run directory) until its first start's deadline."""
    drain: bool = False
    """``--drain``: drain in Slurm every node the soak's gates convict (``bench.soak.drain``)."""

    def __post_init__(self) -> None:
        if self.hours is not None and not 0 < self.hours <= MAX_HOURS:
            raise UserError(f"--hours {self.hours:g} must be positive (and under a year), e.g. 24")
        if not MIN_WINDOW_S <= self.window_s < math.inf:
            raise UserError(
                f"--window-s {self.window_s:g} is too short: a window needs at least {MIN_WINDOW_S:g} s for its rails "
                "round, its collective and the counters at its edges; e.g. 60"
            )
        if self.resume and (self.hours is not None or self.until is not None):
            raise UserError("--resume goes on until the soak's first deadline: drop --hours and --until")
        if not self.resume and (self.hours is None) == (self.until is None):
            raise UserError("say how long to soak: --hours H or --until TIME (one of them), or --resume RUN_DIR")
        if self.resume and self.rails.output.out is None:
            raise UserError("--resume needs the soak's run directory")

    @property
    def launch(self) -> Launch:
        return self.rails.launch

    @property
    def output(self) -> Output:
        return self.rails.output

    def rank_argv(self, out: Path) -> list[str]:
        """The ranks' argv: this config (``bench.runtime.spec``), minus how to start, into ``out``."""
        rails = self.rails
        ranks = replace(rails, launch=replace(rails.launch, np=None), output=replace(rails.output, out=out))
        return spec.rank_argv("soak", replace(self, rails=ranks))


def parse_until(text: str) -> float:
    """``--until``: an ISO 8601 date and time (``2026-11-27T09:00``, ``2026-11-27 09:00:00+00:00``), or a time of
    day today (``18:30``); without a zone it is this machine's local time. Seconds since the epoch."""
    try:
        if "T" in text or " " in text.strip() or "-" in text:
            when = datetime.fromisoformat(text.strip())
        else:
            clock = datetime.strptime(text.strip(), "%H:%M:%S" if text.count(":") == 2 else "%H:%M")
            when = datetime.now().replace(hour=clock.hour, minute=clock.minute, second=clock.second, microsecond=0)
    except ValueError:
        raise UserError(f"--until {text!r} does not read as a time: give e.g. 2026-11-27T09:00 or 18:30") from None
    return (when if when.tzinfo is not None else when.astimezone()).timestamp()


@dataclass(frozen=True)
class Resumed:
    """What a soak's run directory says when ``--resume`` goes on with it."""

    section: SoakSection
    windows: int
    """Windows kept in ``windows.jsonl`` (the soak goes on from this index)."""
    deadline: float
    """The first start's deadline, seconds since the epoch."""


def first_deadline(section: SoakSection, started_utc: str) -> float:
    """The first start's deadline: its ``deadline_utc`` where the soak wrote one, else its start plus its plan."""
    if section.deadline_utc is not None:
        return datetime.fromisoformat(section.deadline_utc).timestamp()
    return datetime.fromisoformat(started_utc).timestamp() + section.planned_s


def read_resumed(run_dir: Path, *, now: float | None = None) -> Resumed:
    """``run_dir`` as a soak to go on with: refused (exit 2, one line) when it is not a soak's, its windows do
    not read, or its deadline has passed."""
    record = read_run_json(run_dir)  # a folder that is no run directory is refused there
    section = record.soak
    if record.command != "soak" or not isinstance(section, SoakSection):
        raise UserError(
            f"--resume {run_dir}: it holds a {record.command} run, not a soak's: pass the folder a 'railbench soak' "
            "wrote"
        )
    try:
        kept = len(read_windows(run_dir))
    except codec.Refused as exc:
        raise UserError(str(exc)) from None
    deadline = first_deadline(section, record.started_utc)
    now = time.time() if now is None else now
    if deadline <= now:
        when = datetime.fromtimestamp(deadline, timezone.utc).isoformat(timespec="seconds")
        raise UserError(f"--resume {run_dir}: the soak's deadline ({when}) has passed; its {kept} windows stand")
    return Resumed(section, kept, deadline)


def _allocation(ranks: Counter[str]) -> str:
    """``3 nodes x 2 ranks`` or ``node01 x 2, node02 x 1``: how many ranks each node runs."""
    counts = set(ranks.values())
    if len(counts) == 1:
        (per,) = counts
        return f"{len(ranks)} node{'s' if len(ranks) != 1 else ''} x {per} rank{'s' if per != 1 else ''}"
    return ", ".join(f"{node} x {ranks[node]}" for node in sorted(ranks))


def check_same_allocation(run_dir: Path, hosts: Sequence[str]) -> None:
    """``--resume`` on rank 0, before run.json is written again: the soak goes on with the nodes and ranks per node
    it started with (one rank per host in ``hosts``). Its rail groups, its pair matrix's rotation and every window's
    links are those of the first start's nodes; windows over other nodes would be judged as one soak with them.
    Refused (exit 2, one line) naming the nodes that differ."""
    before = Counter(entry.host for entry in read_run_json(run_dir).ranks)
    now = Counter(hosts)
    if not before or before == now:
        return
    gone, new = sorted(set(before) - set(now)), sorted(set(now) - set(before))
    moved = [
        f"{node} runs {now[node]}, was {before[node]}"
        for node in sorted(set(before) & set(now))
        if before[node] != now[node]
    ]
    said = "; ".join(
        [*([f"{', '.join(gone)} missing"] if gone else []), *([f"{', '.join(new)} new"] if new else []), *moved]
    )
    raise UserError(
        f"--resume {run_dir}: the soak started on {_allocation(before)}, this start has {_allocation(now)} ({said}): "
        "resume it on the same nodes with the same ranks per node, or start a new soak with another --out"
    )


def check_duration(config: SoakConfig, now: float | None = None) -> None:
    """``--until`` still to come, and a window no longer than the soak: in the parent, and on every rank (under
    the user's own launcher no parent checks it; rank 0 says it once)."""
    now = time.time() if now is None else now
    if config.until is not None and config.until <= now:
        when = datetime.fromtimestamp(config.until, timezone.utc).isoformat(timespec="seconds")
        raise UserError(f"--until {when} has passed: give a time to come")
    planned = config.hours * 3600 if config.hours is not None else (config.until or now) - now
    if not config.resume and config.window_s > planned:
        raise UserError(
            f"--window-s {config.window_s:g} is longer than the soak ({planned:.0f} s): no window would fit; "
            "give shorter windows or a longer soak"
        )


def validate_soak(config: SoakConfig, *, now: float | None = None) -> tuple[Profile, RailsSettings]:
    """The rails settings and the soak's own checks, in the parent before any rank starts. A resumed run directory
    holds run.json already: it is checked as a soak's, not as a new ``--out``."""
    rails = config.rails
    if config.resume:
        assert rails.output.out is not None  # __post_init__
        read_resumed(rails.output.out, now=now)
        rails = replace(rails, output=replace(rails.output, out=None))
    profile, settings = validate(rails)
    check_duration(config, now)
    return profile, settings
