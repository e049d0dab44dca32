"""What an acceptance plan projects with: every rate and fixed cost a range, low to high, never one guess.

A plan must hold on a cluster railbench has never run on, so each cost is a :class:`Span`: what it costs where
everything is quick, and where everything is as slow as a healthy cluster gets. The plan's low figure adds
every low end, its high figure every high end (``bench.rails.plan.acceptance``). Each default below says where it comes
from; the profile's ``[plan]`` table overrides any of them with a number or a ``[low, high]`` pair, and once a
cluster has run, ``bench.rails.plan.learn`` replaces the model's guesses by what its own runs measured.

=====================  ==============  ======================================================================
key                    default         what it is
=====================  ==============  ======================================================================
``pair_efficiency``    pass..0.98      a healthy pair's rate over the line rate (NDR sendrecv: 46-49 GB/s of
                                       50; a pair slower than the pass line fails, but still finishes)
``rail_efficiency``    0.80..0.96      a rail group's busbw over the line rate (a ring over n nodes pays
                                       2(n-1) steps of latency: about 86% at 64 nodes and 256 MiB)
``launch_s``           3..60           the launcher, Python and torch imports, the world's rendezvous
``comm_s``             0.15..2 (NCCL)  one communicator's set-up on its members beyond its bootstrap ring
                       0.01..0.25      (topology, graphs, buffers: NCCL's "Init timings" lines, 0.15 s a
                       (gloo)          split, NVIDIA/nccl#1605; 0.24 s an 8-GPU init without its kernels'
                                       loading, NVIDIA/nccl-tests#273; 2.6 s on DGX B200, NVIDIA/nccl#1646;
                                       gloo: about 15 ms a group on one host, pytorch/pytorch#99931)
``comm_rank_s``        1e-5..2.5e-4    one step of NCCL's bootstrap all-gather, a ~100-byte TCP message to the
                                       next rank of a ring of all the members (gloo: one member's connection
                                       to another); a ring over n ranks takes n/2 to n-1 steps
                                       (``ci/bench_coord.py``: 4-15 us a step on TCP loopback here; NVIDIA/
                                       nccl#1791: "a few 100 ms" an all-gather at Meta's large scale, read as
                                       at most 0.5 s over the 2048 steps of a two-way ring of 4096 ranks)
``sync_s``             0.001..0.02     one agreement over the world through the store (a barrier, a gather)
``sync_rank_s``        2e-5..5e-4      and this much more per rank of the world (the store's server is one
                                       process). ``ci/bench_coord.py``, today's O(n) coordination: a pair
                                       round at 8192 simulated ranks 1.09 s, 1.3e-4 s a rank, at 2048 2.0e-4
                                       (wall, every simulated rank's own work on two shared cores included),
                                       rank 0's own CPU 4.6-5.6e-5 s a rank; the high end is 2.5 times the
                                       largest wall. (The 1.5e-3 before was issue 28's n^2 coordination,
                                       0.2-0.7 s a round at 512 ranks, since replaced.)
``step_s``             1e-4..0.01      one small collective inside a rail group (a barrier, a pair's align)
``connect_s``          0.005..0.3      NCCL: connecting a new peer on its first send (``NCCL_RUNTIME_CONNECT``;
                                       every matrix round meets a new peer); 0 on gloo, which connects a
                                       group's full mesh when it is made
``latency_us``         10..200         one collective call's latency (the small sizes of accept's sweep)
``cell_overhead_s``    0.005..0.5      one sweep point or rail-group measurement beyond its messages
``store_MBps``         20..500         the end's gathers of every pair time through the store, in MB/s
                                       (``ci/bench_coord.py``: rank 0 took in 34 MB of reports from 8192
                                       ranks in 1.04 s of its CPU)
``finish_s``           5..30           the end: rails.json, JUnit, the history and the report ...
``row_s``              2e-5..2e-4      ... and per results row written and drawn by the report
                                       (``ci/bench_report.py``: 107,054 rows drawn in 6.3 s at load 2;
                                       ``ci/bench_report_scale.py``, 1024 nodes x 8 rails: 763,232 pair
                                       directions written in 18 s and drawn in 39 s at load 5-14, 7.5e-5 s
                                       each; the high end allows a rank 0 node 2.7 times slower)
``noise_cv``           0.01..0.03      a healthy pair's sample-to-sample spread (1-3% measured on NDR rails,
                                       issue 28): with the pass line it gives the share of suspect cells
``suspect_fraction``   from noise_cv   that share given outright
``rate_gbps``          -               the rail rate where the profile and sysfs give none (sockets)
``world_gbps``         -               accept's world collectives' busbw (default: each one's target)
=====================  ==============  ======================================================================

Pure arithmetic; nothing here talks to a rank.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from bench.exits import UserError
from bench.measure.targets import world_target_gbps
from bench.profile.cluster import Profile
from bench.runtime.subgroups import torch_splits_at_once


@dataclass(frozen=True)
class Span:
    """A quantity known to lie between ``low`` and ``high`` (both finite, 0 <= low <= high)."""

    low: float
    high: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.low) and math.isfinite(self.high)) or not 0 <= self.low <= self.high:
            raise ValueError(f"a span runs from a low to a high figure, both finite and >= 0: {self.low}..{self.high}")

    @classmethod
    def point(cls, value: float) -> Span:
        return cls(value, value)

    @classmethod
    def of(cls, a: float, b: float) -> Span:
        """The span between ``a`` and ``b``, in whichever order they come."""
        return cls(min(a, b), max(a, b))

    def __add__(self, other: Span | float) -> Span:
        other = other if isinstance(other, Span) else Span.point(other)
        return Span(self.low + other.low, self.high + other.high)

    def __radd__(self, other: float) -> Span:  # sum() starts from 0
        return self + other

    def __mul__(self, other: Span | float) -> Span:
        """Each end times ``other``'s same end (both spans of non-negative quantities), or times a number."""
        if isinstance(other, Span):
            return Span(self.low * other.low, self.high * other.high)
        return Span(self.low * other, self.high * other)

    __rmul__ = __mul__

    def over(self, rate: Span) -> Span:
        """This amount at ``rate``: low at the fastest rate, high at the slowest."""
        if rate.low <= 0:
            return Span(self.low / rate.high if rate.high > 0 else math.inf, math.inf)
        return Span(self.low / rate.high, self.high / rate.low)

    def text(self, digits: int = 0, unit: str = "") -> str:
        """``12-340 s``; one figure when both ends round alike."""
        low, high = f"{self.low:.{digits}f}", f"{self.high:.{digits}f}"
        return f"{low}{unit}" if low == high else f"{low}-{high}{unit}"


def _span(low: float, high: float) -> Span:
    return Span(low, high)


FRACTIONS = frozenset({"pair_efficiency", "rail_efficiency", "noise_cv", "suspect_fraction"})
"""Keys whose values are fractions: at most 1 (an efficiency above 0)."""
PLAN_KEYS: Mapping[str, Span] = {
    "rail_efficiency": _span(0.80, 0.96),
    "launch_s": _span(3.0, 60.0),
    "comm_rank_s": _span(1e-5, 2.5e-4),
    "sync_s": _span(0.001, 0.02),
    "sync_rank_s": _span(2e-5, 5e-4),
    "step_s": _span(1e-4, 0.01),
    "latency_us": _span(10.0, 200.0),
    "cell_overhead_s": _span(0.005, 0.5),
    "store_MBps": _span(20.0, 500.0),
    "finish_s": _span(5.0, 30.0),
    "row_s": _span(2e-5, 2e-4),
    "noise_cv": _span(0.01, 0.03),
}
"""Defaults of the ``[plan]`` keys that have one regardless of the profile (see the module docstring)."""
BEST_PAIR_EFFICIENCY = 0.98
"""The best a healthy pair reaches: NDR sendrecv tops out at 49 GB/s of the 50 the line carries."""
PAIR_EFFICIENCY = _span(0.9, BEST_PAIR_EFFICIENCY)
"""A healthy pair's efficiency where no profile says its pass line (the profile's pass fraction is the low end)."""
NCCL_COMM_S = _span(0.15, 2.0)
"""``comm_s`` on NCCL (the module docstring's table)."""
GLOO_COMM_S = _span(0.01, 0.25)
"""``comm_s`` on gloo: a group's store rendezvous on its members (pytorch/pytorch#99931: about 15 ms a group on one
host), up to a loaded node's."""
NCCL_CONNECT_S = _span(0.005, 0.3)
"""``connect_s`` on NCCL: a new peer's connectors on the first send (QPs and their exchange over the
bootstrap network)."""
OTHER_KEYS = ("pair_efficiency", "comm_s", "connect_s", "suspect_fraction", "rate_gbps", "world_gbps")
"""Keys whose default depends on the profile, or that have none."""


@dataclass(frozen=True)
class PlanModel:
    """The rates and costs a projection uses, each a span."""

    rate_Gbps: Span
    """A rail's line rate (or the planning rate)."""
    pair_efficiency: Span = PAIR_EFFICIENCY
    rail_efficiency: Span = PLAN_KEYS["rail_efficiency"]
    launch_s: Span = PLAN_KEYS["launch_s"]
    comm_s: Span = NCCL_COMM_S
    comm_rank_s: Span = PLAN_KEYS["comm_rank_s"]
    sync_s: Span = PLAN_KEYS["sync_s"]
    sync_rank_s: Span = PLAN_KEYS["sync_rank_s"]
    step_s: Span = PLAN_KEYS["step_s"]
    connect_s: Span = NCCL_CONNECT_S
    latency_us: Span = PLAN_KEYS["latency_us"]
    cell_overhead_s: Span = PLAN_KEYS["cell_overhead_s"]
    store_MBps: Span = PLAN_KEYS["store_MBps"]
    finish_s: Span = PLAN_KEYS["finish_s"]
    row_s: Span = PLAN_KEYS["row_s"]
    noise_cv: Span = PLAN_KEYS["noise_cv"]
    suspect_fraction: Span | None = None
    """The share of healthy samples that are suspect, given outright; None: from ``noise_cv``."""
    nvlink_Gbps: float | None = None
    """An intra-node pair's rate (the profile's NVLink sendrecv target), for the intra-node matrix."""
    world_Gbps: Span | None = None
    """accept's world collectives' busbw, given outright; None: each collective's own target."""
    splits: bool = True
    """Every group is split from the world (NCCL with a bound device: ``bench.rails.plan.phases.groups_seconds``);
    False on gloo, whose groups only their members make."""
    at_once: bool = False
    """Disjoint groups are made in one split of the world, not one after another (a torch with ``split_group``:
    ``bench.runtime.subgroups``)."""
    profile: Profile | None = field(default=None, compare=False, repr=False)
    """Where each world collective's target comes from (``bench.measure.targets``)."""

    def __post_init__(self) -> None:
        if not isinstance(self.rate_Gbps, Span):  # PlanModel(400): a line rate is one figure
            object.__setattr__(self, "rate_Gbps", Span.point(float(self.rate_Gbps)))

    @property
    def pair_Gbps(self) -> Span:
        return self.rate_Gbps * self.pair_efficiency

    @property
    def rail_Gbps(self) -> Span:
        return self.rate_Gbps * self.rail_efficiency

    def sync(self, ranks: int) -> Span:
        """One agreement over ``ranks`` ranks through the store."""
        return self.sync_s + self.sync_rank_s * ranks

    def world_rate(self, collective: str, nodes: int, ranks: int, nbytes: int) -> Span | None:
        """A world collective's busbw over ``nodes`` x ``ranks``: from the profile's target for it (a run that
        passes reaches at least the target x pass fraction) up to what it is bounded by, the node's NICs."""
        if self.world_Gbps is not None:
            return self.world_Gbps
        profile = self.profile
        if profile is None:
            return None
        world = nodes * ranks
        target = world_target_gbps(profile, collective, nodes, nbytes=nbytes, nranks=world)
        bound = world_target_gbps(profile, collective, nodes, nranks=world)
        node = profile.node_target_gbps if nodes > 1 and collective not in ("sendrecv", "alltoall") else None
        fast = max(x for x in (target, bound, node) if x is not None) if (target or bound) else None
        if target is None or fast is None:
            return None
        return Span.of(target * profile.pass_fraction, fast)

    def suspect_share(self, threshold: float) -> Span:
        """The share of a healthy fabric's samples that fall below ``threshold`` (a fraction of the line rate,
        or of the peers' level where no line rate is known: ``of_level``): from ``suspect_fraction`` when the
        profile gives it, else from the noise around a healthy pair's level, log-normal (the quick end: the
        best efficiency and the calmest fabric; the slow end: the pass line's efficiency and the noisiest)."""
        if self.suspect_fraction is not None:
            return self.suspect_fraction
        return Span.of(
            _below(threshold / self.pair_efficiency.high, self.noise_cv.low),
            _below(threshold / self.pair_efficiency.low, self.noise_cv.high),
        )

    @classmethod
    def for_profile(cls, profile: Profile, rate_Gbps: float | None) -> PlanModel | None:
        """The model of ``profile``'s ``[plan]`` table over ``rate_Gbps`` (else the table's ``rate_gbps``); None
        when no rate is known. UserError naming the key when one is wrong."""
        values = plan_table(profile)
        rate = Span.point(rate_Gbps) if rate_Gbps else values.pop("rate_gbps", None)
        values.pop("rate_gbps", None)
        if rate is None:
            return None
        best = max(BEST_PAIR_EFFICIENCY, profile.pass_fraction)
        values.setdefault("pair_efficiency", Span(min(profile.pass_fraction, best), best))
        nccl = bool(profile.gpus_per_node)
        # gloo connects a group's whole mesh when the group is made (start-up pays it); NCCL on first use.
        values.setdefault("connect_s", NCCL_CONNECT_S if nccl else Span.point(0.0))
        values.setdefault("comm_s", NCCL_COMM_S if nccl else GLOO_COMM_S)
        nvlink = world_target_gbps(profile, "sendrecv", 1) if nccl else None
        world = values.pop("world_gbps", None)
        at_once = nccl and torch_splits_at_once()
        return cls(rate, **values, nvlink_Gbps=nvlink, world_Gbps=world, splits=nccl, at_once=at_once, profile=profile)


def _below(fraction_of_level: float, cv: float) -> float:
    """P(sample < fraction x level) for a sample log-normal around ``level`` with spread ``cv``."""
    if fraction_of_level <= 0:
        return 0.0
    if cv <= 0:
        return 1.0 if fraction_of_level > 1 else 0.0
    return 0.5 * math.erfc(-math.log(fraction_of_level) / (cv * math.sqrt(2)))


def plan_table(profile: Profile) -> dict[str, Span]:
    """The profile's ``[plan]`` table as spans: every key known, every value a number >= 0 or a ``[low, high]``
    pair (fractions above 0 and at most 1)."""
    raw = profile.plan
    unknown = sorted(set(raw) - set(PLAN_KEYS) - set(OTHER_KEYS))
    if unknown:
        known = ", ".join(sorted([*PLAN_KEYS, *OTHER_KEYS]))
        raise UserError(f"{profile.source}: unknown [plan] key {unknown[0]!r}; known keys: {known}")
    values: dict[str, Span] = {}
    for key, (low, high) in raw.items():
        if key in FRACTIONS and high > 1:
            raise UserError(f"{profile.source}: [plan] {key} = {low:g}..{high:g} is a fraction: at most 1")
        if key.endswith("efficiency") and low <= 0:
            raise UserError(f"{profile.source}: [plan] {key} = {low:g} must be above zero: a healthy pair moves data")
        if key in ("rate_gbps", "world_gbps", "store_MBps") and low <= 0:
            raise UserError(f"{profile.source}: [plan] {key} = {low:g} must be above zero")
        values[key] = Span(low, high)
    return values
