"""Rank 0: one soak window's rails outcome as the aggregate ``windows.jsonl`` keeps (docs/design.md, "Soak").

The window's rails round is judged exactly as ``railbench rails`` judges its test (``bench.rails.diagnosis``:
localisation, re-measurement, conviction); what is kept of it is per (node, rail) link its typical pair rate (the
upper median of its cells, as the pair budget reads a rail's rate), the cells it ran, whether the judgement named it
or a part on it, the error counters that rose on its device and its flaps, plus the parts named. Never its rows.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from types import MappingProxyType

from bench.codec import ABSENT, Absent
from bench.rails.diagnosis.liveness import Membership
from bench.rails.diagnosis.matrix import PairTime
from bench.rails.diagnosis.rails_outcome import RailsOutcome
from bench.rails.plan.budget import upper_median
from bench.rundir.part import Part
from bench.rundir.rails_records import RailDefect
from bench.rundir.soak_windows import LinkWindow, NamedInWindow

FLAP_COUNTERS = ("link_downed",)
"""A port's own count of its link going down: one per flap."""
CARRIER_COUNTERS = ("carrier_changes",)
"""An interface's carrier changes: a flap is a down and an up, two changes."""


def pair_Gbps(t: PairTime) -> float:
    """One direction's rate in Gb/s (``nbytes`` per message over its mean time)."""
    return t.nbytes * 8 / (t.time_us * 1e3) if t.time_us > 0 else 0.0


def link_rates(times: Sequence[PairTime]) -> dict[tuple[int, int], list[float]]:
    """(node index, rail) -> the rates of every matrix cell that link ran in (either end), re-measurements left
    out: the window's typical rate is the matrix's, as the rails test's own rate table is."""
    rates: dict[tuple[int, int], list[float]] = {}
    for t in times:
        if t.confirm:
            continue
        rate = pair_Gbps(t)
        rates.setdefault((t.node, t.rail), []).append(rate)
        rates.setdefault((t.peer, t.rail), []).append(rate)
    return rates


def names_link(defect: RailDefect, node: str, rail: int) -> bool:
    """Whether ``defect`` names the (node, rail) link or a part on it: the link, its cable or HCA, its node, a pair
    it is an end of, or its whole rail. A switch part above many links (a leaf, a spine) names none of them."""
    if defect.rail is not None and defect.rail != rail:
        return False
    if defect.node is None:
        return defect.kind == "rail"
    return node in (defect.node, defect.peer)


def flaps(errors: Mapping[str, int]) -> int:
    """Link-down events among a device's risen counters: ``link_downed``, else the carrier changes halved (each
    flap is a down and an up; an odd count is a link that went down and stayed down: one flap)."""
    downed = sum(errors.get(name, 0) for name in FLAP_COUNTERS)
    carrier = sum(errors.get(name, 0) for name in CARRIER_COUNTERS)
    return max(downed, math.ceil(carrier / 2))


def risen(entry: Mapping[str, object] | None) -> dict[str, int]:
    """The counters that rose in a device's ``counters`` entry (``bench.fabric.error_counters.entry_json``)."""
    errors = entry.get("errors") if entry else None
    if not isinstance(errors, Mapping):
        return {}
    return {str(name): int(count) for name, count in errors.items() if isinstance(count, int) and count > 0}


def unread(entry: Mapping[str, object] | None, key: str) -> tuple[str, ...] | Absent:
    """The counters a device's entry lists under ``key`` (``errors_saturated``, ``errors_reset``: no count could
    be given); absent where there are none."""
    names = entry.get(key) if entry else None
    return tuple(str(n) for n in names) if isinstance(names, list) and names else ABSENT


def link_windows(outcome: RailsOutcome, membership: Membership) -> tuple[LinkWindow, ...]:
    """Every (node, rail) link of the window, in node then rail order."""
    rates = link_rates(outcome.pair_times)
    device = {(node, d.rail): name for d in outcome.devices for node, name in d.device.items()}
    links = []
    for n, node in enumerate(outcome.written.nodes):
        for rail in range(outcome.rails):
            cells = rates.get((n, rail), [])
            dev = device.get((node, rail))
            entry = outcome.counters.get(node, {}).get(dev) if dev else None
            errors = risen(entry)
            typical = upper_median(cells)
            links.append(
                LinkWindow(
                    node=node,
                    rail=rail,
                    device=dev,
                    busbw_Gbps=round(typical, 3) if typical is not None else None,
                    cells=len(cells),
                    named=any(names_link(d, node, rail) for d in outcome.defects),
                    dead=n not in membership.live[rail],
                    errors=MappingProxyType(errors),
                    flaps=flaps(errors),
                    errors_saturated=unread(entry, "errors_saturated"),
                    errors_reset=unread(entry, "errors_reset"),
                )
            )
    return tuple(links)


def named_in_window(outcome: RailsOutcome) -> tuple[NamedInWindow, ...]:
    """The parts the window's judgement named: each defect, then each rail group below its target."""
    named = [NamedInWindow(d.address, d.named.conviction.symptom or d.kind, d.severity) for d in outcome.defects]
    for short in outcome.below_target:
        symptom = "wrong" if short.wrong else "slow"
        named.append(NamedInWindow(Part(kind="rail-group", rail=short.rail), symptom))
    return tuple(dict.fromkeys(named))
