"""The rates and fixed costs an acceptance plan projects with: the profile's ``[plan]`` table (``bench.rails.plan``
explains each key) over the rail's line rate."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from bench.exits import UserError
from bench.measure.targets import world_target_gbps
from bench.profiles import Profile

PLAN_KEYS: Mapping[str, float] = {
    "pair_efficiency": 0.96,
    "rail_efficiency": 0.94,
    "startup_s": 30.0,
    "step_s": 0.005,
    "latency_us": 30.0,
    "suspect_fraction": 0.01,
    "cell_overhead_s": 0.01,
    "finish_s": 10.0,
}
"""Defaults of the ``[plan]`` keys that have one (``rate_gbps`` and ``world_gbps`` have none)."""


@dataclass(frozen=True)
class PlanModel:
    """The rates and fixed costs a projection uses."""

    rate_Gbps: float
    """A rail's line rate (or the planning rate)."""
    pair_efficiency: float = PLAN_KEYS["pair_efficiency"]
    rail_efficiency: float = PLAN_KEYS["rail_efficiency"]
    startup_s: float = PLAN_KEYS["startup_s"]
    step_s: float = PLAN_KEYS["step_s"]
    latency_us: float = PLAN_KEYS["latency_us"]
    suspect_fraction: float = PLAN_KEYS["suspect_fraction"]
    cell_overhead_s: float = PLAN_KEYS["cell_overhead_s"]
    """What one sweep point or rail-group measurement costs beyond its messages: buffers, checks, records."""
    finish_s: float = PLAN_KEYS["finish_s"]
    """The end of the run: rails.json and results, JUnit, the report and its charts, the history."""
    nvlink_Gbps: float | None = None
    """An intra-node pair's rate (the profile's NVLink sendrecv target), for the intra-node matrix."""
    world_Gbps: float | None = None
    """World collectives' busbw (the profile's node target), for accept's sweep."""

    @property
    def pair_Gbps(self) -> float:
        return self.rate_Gbps * self.pair_efficiency

    @classmethod
    def for_profile(cls, profile: Profile, rate_Gbps: float | None) -> PlanModel | None:
        """The model of ``profile``'s ``[plan]`` table over ``rate_Gbps`` (else the table's ``rate_gbps``); None
        when no rate is known. UserError naming the key when one is wrong."""
        values = plan_table(profile)
        rate = rate_Gbps or values.pop("rate_gbps", None)
        values.pop("rate_gbps", None)
        world = values.pop("world_gbps", None)
        if not rate:
            return None
        if world is None and profile.node_target_gbps:
            world = profile.node_target_gbps * values.get("rail_efficiency", PLAN_KEYS["rail_efficiency"])
        nvlink = world_target_gbps(profile, "sendrecv", 1) if profile.gpus_per_node else None
        return cls(rate, **values, nvlink_Gbps=nvlink, world_Gbps=world)


def plan_table(profile: Profile) -> dict[str, float]:
    """The profile's ``[plan]`` table, every key known and every value a positive number (fractions at most 1)."""
    raw = profile.plan
    extra = ("rate_gbps", "world_gbps")
    unknown = sorted(set(raw) - set(PLAN_KEYS) - set(extra))
    if unknown:
        known = ", ".join(sorted([*PLAN_KEYS, *extra]))
        raise UserError(f"{profile.source}: unknown [plan] key {unknown[0]!r}; known keys: {known}")
    values: dict[str, float] = {}
    for key, value in raw.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1e9:
            raise UserError(f"{profile.source}: [plan] {key} = {value!r} must be a positive number")
        if key in ("pair_efficiency", "rail_efficiency", "suspect_fraction") and value > 1:
            raise UserError(f"{profile.source}: [plan] {key} = {value:g} is a fraction: at most 1")
        values[key] = float(value)
    return values
