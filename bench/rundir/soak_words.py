"""The sentences of a soak's findings (``bench.rundir.soak_records``), for ``bench.rundir.finding_words``, the one
renderer: each says where, what the windows showed, with the numbers, and what to do."""

from __future__ import annotations

from collections.abc import Sequence

from bench.rundir.soak_records import WINDOWS_SHOWN, ErrorGate, Intermittent, Trend
from bench.units import format_size

WHAT = {"busbw": "its rate", "sm_clock": "its SM clock"}


def window_list(windows: Sequence[int]) -> str:
    """``windows 1, 4, 9`` (the first :data:`WINDOWS_SHOWN`, then how many more)."""
    shown = ", ".join(str(w) for w in windows[:WINDOWS_SHOWN])
    more = f" and {len(windows) - WINDOWS_SHOWN} more" if len(windows) > WINDOWS_SHOWN else ""
    return f"window{'s' if len(windows) > 1 else ''} {shown}{more}"


def _acted(line: str, action: str) -> str:
    return f"{line}; action: {action}" if action else line


def _rose(counter: str, count: int) -> str:
    """``symbol_error rose by 12``; a GPU's Xid ``Xid 79 came 2 times``."""
    if counter.startswith("xid "):
        return f"Xid {counter.removeprefix('xid ')} came {count:,} time{'' if count == 1 else 's'}"
    return f"{counter} rose by {count:,}"


def gate_line(gate: ErrorGate, action: str = "") -> str:
    """``node03 rail 1 (mlx5_4:1): symbol_error rose by 12 in window 7 (limit 0 a window); in 2 of 40 windows,
    15 in all; action: ...``, and the windows where it gave no count."""
    where, c = gate.part.where, gate.counter
    seen = f"in {gate.windows_risen} of {gate.windows} windows"
    if gate.limit is None:
        unlimited = "not one of [gpudirect] fail_xids" if c.startswith("xid ") else "no [soak] limit gates it"
        most = f"most {gate.worst_rise:,} in window {gate.worst_window}"
        line = f"{where}: {_rose(c, gate.total)} {seen} ({most}); {unlimited}"
    elif gate.scope == "window" and gate.over:
        line = (
            f"{where}: {_rose(c, gate.worst_rise)} in window {gate.worst_window} (limit {gate.limit:,} a window); "
            f"{seen}, {gate.total:,} in all"
        )
    elif gate.over:
        line = (
            f"{where}: {_rose(c, gate.total)} over the soak (limit {gate.limit:,}); {seen}, most "
            f"{gate.worst_rise:,} in window {gate.worst_window}"
        )
    else:
        line = f"{where}: {c} gave no count in {window_list(gate.uncounted)}"
    if gate.uncounted and (gate.over or gate.limit is None):
        line += f"; it gave no count in {window_list(gate.uncounted)}"
    if gate.uncounted:
        line += " (saturated or cleared: clear the port's counters, perfquery -x, to count again)"
    return _acted(line, action)


def _where(record: Intermittent) -> str:
    if record.collective is not None:
        return f"{record.collective} at {format_size(record.bytes or 0)}"
    return record.part.where


def intermittent_line(record: Intermittent, action: str = "") -> str:
    """``node03 rail 1 (mlx5_4:1): intermittent, flapping in 2 of 9 windows (duty 22%), first window 1, last 7:
    windows 1, 7; action: ...`` (``in window 1`` for one); a persistent part ``slow in every window it was
    measured in (3 of 3, duty 100%)``."""
    k, n = record.windows_named, record.windows_measured
    if record.persistent:
        said = f"{record.symptom} in every window it was measured in ({k} of {n}, duty 100%)"
    else:
        when = (
            f"in window {record.first}"
            if k == 1
            else f"first window {record.first}, last {record.last}: {window_list(record.windows)}"
        )
        said = f"intermittent, {record.symptom} in {k} of {n} windows (duty {100 * record.duty:.0f}%), {when}"
    if record.p_value is not None:
        said += f" (a healthy part is named so often with p = {record.p_value:.2g})"
    return _acted(f"{_where(record)}: {said}", action)


def cleared_line(record: Intermittent) -> str:
    """A part named in some windows, not convicted: ``node03 rail 1 (mlx5_4:1): slow in 2 of 40 windows
    (windows 3, 17), not convicted (p = 0.061 under the windows' false-alarm rate)``."""
    return (
        f"{_where(record)}: {record.symptom} in {record.windows_named} of {record.windows_measured} windows "
        f"({window_list(record.windows)}), not convicted (p = {record.p_value or 1.0:.2g} under the windows' "
        "false-alarm rate)"
    )


def trend_line(found: Trend, action: str = "") -> str:
    """``node03 rail 1 (mlx5_4:1): its rate falls 12.3 Gb/s per hour, from 380 to 341 Gb/s over 3.2 h (windows 0
    to 39, 40 windows; Mann-Kendall p = 1e-08, noise 2.1 Gb/s); action: ...``."""
    u = found.unit
    line = (
        f"{found.part.where}: {WHAT.get(found.what, found.what)} falls {-found.slope_per_hour:.3g} {u} per hour, "
        f"from {found.first:.4g} to {found.last:.4g} {u} over {found.hours:.3g} h (windows {found.first_window} to "
        f"{found.last_window}, {found.windows} windows; Mann-Kendall p = {found.p_value:.2g}, noise "
        f"{found.noise:.3g} {u})"
    )
    t0, t1 = found.temperature_first_C, found.temperature_last_C
    if t0 is not None and t1 is not None:
        line += f", as its temperature went from {t0:.0f} to {t1:.0f} C"
    return _acted(line, action)
