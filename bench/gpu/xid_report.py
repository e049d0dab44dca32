"""The events of one GPU or one NVSwitch, judged and said in one line: code, meaning, why, and NVIDIA's action.

``gpu-xid`` (``bench.preflight.gpu_checks.GpuXid``) says each GPU's and each NVSwitch's events since boot with
these; the verdict of each event is ``bench.gpu.xid.judge``'s.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from bench.gpu import xid


def current(events: Sequence[xid.Xid]) -> list[xid.Xid]:
    """One device's events as they stand: a bus loss said beside an Xid 79 is that Xid (the driver writes both
    lines for one loss), and only the last Xid 154 counts (each names the recovery action needed now)."""
    has_79 = any(e.kind == "Xid" and e.code == 79 for e in events)
    last_154 = next((e for e in reversed(events) if e.kind == "Xid" and e.code == 154), None)
    kept = []
    for event in events:
        if event.kind == "bus" and has_79:
            continue
        if event.kind == "Xid" and event.code == 154 and event is not last_154:
            continue
        kept.append(event)
    return kept


@dataclass(frozen=True)
class Said:
    status: Literal["fail", "warn"]
    words: str
    """``SXid 22013 (the line says Non-fatal: no action; watch for it repeating) x3``, joined for every code."""
    latest: str
    """The last failing event's line (the last event's, when none fails)."""


def say(events: Sequence[xid.Xid], fail_xids: Iterable[int]) -> Said:
    """The verdict and words for one device's events (at least one)."""
    failing = tuple(fail_xids)
    groups: dict[tuple[str, int, str, str, str], int] = {}
    worst: Literal["fail", "warn"] = "warn"
    latest = events[-1]
    for event in events:
        verdict = xid.judge(event, failing)
        if verdict.status == "fail":
            worst = "fail"
            latest = event
        key = (verdict.status, event.code, _name(event), verdict.why, verdict.action)
        groups[key] = groups.get(key, 0) + 1
    ordered = sorted(groups.items(), key=lambda item: (item[0][0] != "fail", item[0][1]))
    parts = []
    for (_, _code, name, why, action), count in ordered:
        times = f" x{count}" if count > 1 else ""
        parts.append(f"{name} ({why}: {action}){times}")
    return Said(worst, "; ".join(parts), latest.line[:200])


def _name(event: xid.Xid) -> str:
    if event.kind == "SXid":
        return f"SXid {event.code}"
    if event.kind == "bus":
        return "fallen off the bus"
    return f"Xid {event.code} {event.meaning}"
