"""The sections of run.json, each a typed record as the command writes it (``bench.rundir.runjson`` holds them).

A section is declared once, here, with its keys as written: the settings a run resolved (``sweep``,
``rails_test``), what it measured beside the numbers (``counters``, ``plan``), how it was judged (``items``,
``judged_by``) and how it ended (``failure``). A key an older release or an imported log did not write is
``ABSENT`` (``bench.codec``): the record reads such a document as it is and writes it back with the same keys.
Numbers are ``int | float`` where a writer may give either: a count read back stays the number it was written.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from bench.codec import ABSENT, Absent
from bench.jsondoc import JSONValue
from bench.rundir.verdict import Word

Number = int | float
"""A number as written: ``2`` stays ``2`` and ``0.5`` stays ``0.5`` (the codec's ``float`` reads ``2`` as 2.0)."""
Finish = Literal["running", "done", "failed", "interrupted"]
"""Where the finish step (the history row, then the report) is: ``running`` until it ends."""


@dataclass(frozen=True, kw_only=True)
class SweepSettings:
    """``sweep``: what the world sweep measured (``run``, ``accept``; an import's from its log, where a setting
    the log does not say is null and those it cannot know are absent)."""

    collectives: tuple[str, ...] | Absent = ABSENT
    min_bytes: int | Absent | None = ABSENT
    max_bytes: int | Absent | None = ABSENT
    step_factor: Number | Absent | None = ABSENT
    step_bytes: int | Absent | None = ABSENT
    iters: int | Absent | None = ABSENT
    warmup: int | Absent | None = ABSENT
    dtype: str | Absent | None = ABSENT
    check: bool | Absent | None = ABSENT
    confirm: int | Absent | None = ABSENT
    """How many times a judged size under its target was measured again, at most (``--confirm``)."""
    graph: bool | Absent = ABSENT
    """CUDA graph capture as every rank agreed it."""
    timeout_s: Number | Absent | None = ABSENT


@dataclass(frozen=True, kw_only=True)
class RailsTestSettings:
    """``rails_test``: the rails settings as resolved from the flags, the profile and the defaults."""

    collectives: tuple[str, ...] | Absent = ABSENT
    rail_bytes: int | Absent = ABSENT
    pair_bytes: int | Absent = ABSENT
    iters: int | Absent = ABSENT
    warmup: int | Absent = ABSENT
    repeats: int | Absent = ABSENT
    seed: int | Absent = ABSENT
    isolation: bool | Absent = ABSENT
    pairs: bool | Absent = ABSENT
    intra_node: str | bool | Absent | None = ABSENT
    relative_fraction: Number | Absent = ABSENT
    pass_fraction: Number | Absent = ABSENT
    rail_rate_gbps: Number | Absent | None = ABSENT
    socket_ifname: str | Absent | None = ABSENT
    confirm: int | Absent = ABSENT
    cell_budget_s: Number | Absent | None = ABSENT
    topology: str | Absent | None = ABSENT
    """The cabling file ``--topology`` named."""
    max_minutes: Number | Absent | None = ABSENT
    oob_ifname: str | Absent | None = ABSENT
    host: str | Absent = ABSENT
    """Rank 0's host name."""


@dataclass(frozen=True, kw_only=True)
class PlanPhase:
    """One phase of ``plan``: its projection (absent without a plan) and the seconds it took (null: not run)."""

    name: str
    rounds: int | Absent = ABSENT
    cells: int | Absent = ABSENT
    bytes: int | Absent = ABSENT
    low_s: Number | Absent = ABSENT
    high_s: Number | Absent = ABSENT
    measured_s: Number | None


@dataclass(frozen=True, kw_only=True)
class PlanSection:
    """``plan`` (rails, accept): each phase projected and measured, the totals, and what the plan learned from
    (``bench.rails.plan.laps``); without a plan, the phases as measured alone."""

    nodes: int | Absent = ABSENT
    ranks_per_node: int | Absent = ABSENT
    phases: tuple[PlanPhase, ...] = ()
    projected_low_s: Number | Absent = ABSENT
    projected_high_s: Number | Absent = ABSENT
    cut: str | Absent | None = ABSENT
    learned_from: tuple[str, ...] | Absent = ABSENT
    measured_s: Number | Absent = ABSENT


@dataclass(frozen=True, kw_only=True)
class ItemFinding:
    """One finding an item carries, as run.json says it: the step that found it and its part's kind
    (``bench.rundir.findings``); a run.json of format 1 says the step alone (``bench.rundir.docversion``)."""

    step: str
    """``preflight``, ``rails``, ``intra-node`` or ``run``."""
    part: str | Absent = ABSENT


@dataclass(frozen=True, kw_only=True)
class ItemEntry:
    """One of ``items``: what the verdict was decided from."""

    group: str
    name: str
    state: Literal["pass", "warn", "fail", "measured", "skip"]
    reason: str
    """The item's sentence, rendered from its findings (or its note where it carries none)."""
    decides: bool | Absent = ABSENT
    repeats: bool = False
    """A view that gathers other items' findings (a node's line in accept): said by them."""
    findings: tuple[ItemFinding, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Failure:
    """``failure``: why the run ended early (a hang, a lost rank, a dead link, the launcher, a refused write)."""

    kind: str
    message: str
    step: str | Absent = ABSENT
    """The step it happened in (a hang, a dead link)."""
    missing_ranks: tuple[int, ...] | Absent = ABSENT
    missing_hosts: tuple[str | None, ...] | Absent = ABSENT
    unresponsive_ranks: tuple[int, ...] | Absent = ABSENT
    hosts: tuple[str | None, ...] | Absent = ABSENT
    """The hosts a dead link's ends are on."""
    links: tuple[tuple[Mapping[str, str | None], ...], ...] | Absent = ABSENT
    """Each dead link's ends: host, device and address."""
    action: str | Absent = ABSENT
    reported_by: tuple[int, ...] | Absent = ABSENT
    causes: tuple[str, ...] | Absent = ABSENT


@dataclass(frozen=True, kw_only=True)
class Judged:
    """One node's, rail's or collective's verdict in ``accept``."""

    verdict: str
    reason: str


@dataclass(frozen=True, kw_only=True)
class AcceptSection:
    """``accept``: each node, rail, GPU pair group and collective with its item's state, and each node's checks
    (an older release also wrote the run's own ``verdict`` here)."""

    verdict: str | Absent = ABSENT
    nodes: Mapping[str, Judged] | Absent = ABSENT
    rails: Mapping[str, Judged] | Absent = ABSENT
    intra_node: Mapping[str, Judged] | Absent = ABSENT
    collectives: Mapping[str, Judged] | Absent = ABSENT
    checks: Mapping[str, str] | Absent = ABSENT


@dataclass(frozen=True, kw_only=True)
class ImportSource:
    """``source`` (import): the log a run was read from, and what its tables said."""

    path: str
    sha256: str
    format: str
    truncated: bool
    failures: tuple[JSONValue, ...] | Absent = ABSENT
    command: str | Absent | None = ABSENT
    collective_from_file_name: tuple[int, ...] | Absent = ABSENT
    """Tables (1-based) whose collective only the file's name gave."""
    tables: tuple[Mapping[str, JSONValue], ...] | Absent = ABSENT


@dataclass(frozen=True, kw_only=True)
class BeforeCompare:
    """``before_compare``: the run's own verdict, kept while compare says it regressed."""

    verdict: Word
    """``pass``, ``measured`` or ``skip``: a run that failed keeps that verdict, and compare leaves it."""
    reasons: tuple[str, ...]
    exit_status: int | None = None


@dataclass(frozen=True, kw_only=True)
class LeftOutNode:
    """A node of the partition Slurm gave no job when the run started."""

    node: str
    state: str
    reason: str
    user: str | Absent = ABSENT


@dataclass(frozen=True, kw_only=True)
class Scheduler:
    """``scheduler`` (accept in a Slurm job): the job, and the partition's nodes Slurm left out (null when they
    could not be read; ``note`` says why)."""

    job_id: str
    partition: str | None
    nodelist: str | None
    left_out: tuple[LeftOutNode, ...] | None
    note: str | Absent = ABSENT


@dataclass(frozen=True, kw_only=True)
class DrainedNode:
    """What ``accept --drain`` did to one node a defect names."""

    node: str
    outcome: Literal["drained", "renewed", "resumed", "kept", "left", "failed", "unknown"]
    reason: str
    note: str


@dataclass(frozen=True, kw_only=True)
class Drain:
    """``drain`` (accept --drain): each node acted on, and the defects that drained no node."""

    nodes: tuple[DrainedNode, ...]
    not_drained: tuple[str, ...]
