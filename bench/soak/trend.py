"""The soak's trend judge (docs/design.md, "Soak: trends"): a link whose rate, or a GPU whose SM clock, falls
window after window.

A series (one value per window, at the window's middle, in hours since the soak began) is named a trend when
three things hold: the Mann-Kendall test (rank-based: heavy-tailed noise and a single dip move it little) finds a
fall, significant after Holm's correction over every series of its family tested (``[soak] false_alarm``); the
fall of its Theil-Sen line over the series (the slope times the hours, a median of pairwise slopes a few
outliers do not move) exceeds ``[soak] trend_noise_k`` robust sigmas of the residuals around the line, so a flat
noisy series never convicts; and it exceeds ``trend_min_fall`` of the line's first value, so a fall too small to
matter is not named. A series of fewer than ``trend_min_windows`` windows is not judged.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from bench.profile.soak import SoakLimits
from bench.rundir.part import Part
from bench.rundir.soak_records import UNITS, Quantity, Trend
from bench.rundir.soak_windows import SoakWindow
from bench.soak.gates import gpu_part, link_part
from bench.soak.stats import binned, fit, holm, mann_kendall_fall

HOUR_S = 3600.0


@dataclass
class Points:
    """One series: the part, and per window its index, its middle in hours and its value (and a GPU's
    temperature, where the window read it)."""

    part: Part
    what: Quantity
    windows: list[int] = field(default_factory=list)
    hours: list[float] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    temperatures: list[float | None] = field(default_factory=list)

    def add(self, window: SoakWindow, value: float, temperature: float | None = None) -> None:
        self.windows.append(window.index)
        self.hours.append((window.start_s + window.end_s) / 2 / HOUR_S)
        self.values.append(value)
        self.temperatures.append(temperature)


def busbw_series(windows: Iterable[SoakWindow]) -> list[Points]:
    """Each link's typical pair rate, in the windows that measured it."""
    out: dict[tuple[str, int], Points] = {}
    for window in windows:
        for link in window.links:
            if link.busbw_Gbps is None:
                continue
            key = (link.node, link.rail)
            points = out.setdefault(key, Points(link_part(link.node, link.rail, link.device), "busbw"))
            points.add(window, link.busbw_Gbps)
    return list(out.values())


def clock_series(windows: Iterable[SoakWindow]) -> list[Points]:
    """Each GPU's SM clock, in the windows that read it."""
    out: dict[tuple[str, int], Points] = {}
    for window in windows:
        for gpu in window.gpus:
            if gpu.sm_clock_MHz is None:
                continue
            points = out.setdefault((gpu.node, gpu.gpu), Points(gpu_part(gpu.node, gpu.gpu), "sm_clock"))
            points.add(window, gpu.sm_clock_MHz, gpu.temperature_C)
    return list(out.values())


@dataclass(frozen=True)
class Trends:
    """A family's trends, and how many series were long enough to test."""

    found: list[Trend]
    tested: int
    longest: int
    """The most windows any series had (to say why none was tested)."""


def judge(series: Sequence[Points], limits: SoakLimits) -> Trends:
    """The trends of one family (see the module docstring)."""
    tested = [s for s in series if len(s.values) >= limits.trend_min_windows]
    arrays = [binned(np.asarray(s.hours), np.asarray(s.values, dtype=np.float64)) for s in tested]
    p_values = [mann_kendall_fall(y) for _, y in arrays]
    found = []
    for s, (t, y), p, significant in zip(tested, arrays, p_values, holm(p_values, limits.false_alarm), strict=True):
        if not significant:
            continue
        line = fit(t, y)
        if line.slope >= 0 or line.fall <= limits.trend_noise_k * line.noise:
            continue
        if line.fall <= limits.trend_min_fall * abs(line.first):
            continue
        found.append(_trend(s, line.slope, line.first, line.last, p, line.noise))
    return Trends(found, len(tested), max((len(s.values) for s in series), default=0))


def _trend(s: Points, slope: float, first: float, last: float, p: float, noise: float) -> Trend:
    return Trend(
        part=s.part,
        what=s.what,
        unit=UNITS[s.what],
        slope_per_hour=slope,
        first=first,
        last=last,
        p_value=p,
        windows=len(s.values),
        first_window=s.windows[0],
        last_window=s.windows[-1],
        hours=s.hours[-1] - s.hours[0],
        noise=noise,
        temperature_first_C=s.temperatures[0],
        temperature_last_C=s.temperatures[-1],
    )
