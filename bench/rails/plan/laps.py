"""How long each phase of a run took, beside what its plan projected (``bench.rails.plan.acceptance``).

Every rank marks the same phase ends at the same points of the program; rank 0's laps go into the run's
records. The first lap starts when the process did (the launch, imports and set-up are the run's time too),
read from ``/proc/self/stat`` where Linux has it, else when the laps began.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

from bench.jsondoc import JSONObject, JSONValue
from bench.runtime.clock import process_age_s

if TYPE_CHECKING:  # only a type here: a lap counter need not load the planner and the rails settings
    from bench.rails.plan.acceptance import Plan


class Laps:
    """Phase name -> seconds, marked at each phase's end."""

    def __init__(self) -> None:
        self._last = time.monotonic() - process_age_s()
        self.seconds: dict[str, float] = {}

    def mark(self, name: str) -> None:
        now = time.monotonic()
        self.seconds[name] = self.seconds.get(name, 0.0) + now - self._last
        self._last = now


def compared(plan: Plan | None, measured: Mapping[str, float]) -> JSONObject:
    """run.json's ``plan``: the projection (``Plan.to_json``) with each phase's measured seconds beside it, and
    the totals; without a plan (no rate known to plan with), the phases as measured alone, so every run keeps
    its phase times (the history learns from them: ``bench.history.phase_times``)."""
    total = round(sum(measured.values()), 3)
    if plan is None:
        phases: list[JSONValue] = [{"name": name, "measured_s": round(took, 3)} for name, took in measured.items()]
        return {"phases": phases, "measured_s": total}
    phases = []
    for phase in plan.phases:
        took = measured.get(phase.name)
        if took is None:  # "confirmation (2 pass(es))" is marked as "confirmation"
            took = measured.get(phase.name.split(" (", 1)[0])
        phases.append({**phase.to_json(), "measured_s": None if took is None else round(took, 3)})
    return {**plan.to_json(), "phases": phases, "measured_s": total}
