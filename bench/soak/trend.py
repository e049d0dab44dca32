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

import math
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from bench.profile.soak import SoakLimits
from bench.rundir.part import Part
from bench.rundir.soak_records import UNITS, Quantity, Trend
from bench.rundir.soak_windows import SoakWindow
from bench.soak.gates import gpu_part, link_part
from bench.soak.stats import Floats, binned, fit, holm, mann_kendall_fall

HOUR_S = 3600.0


@dataclass
class Points:
    """One series: the part, and per window its index, its middle in hours and its value (and a GPU's
    temperature where the window read it, NaN where not), each in a packed array: a link of a 1,000-window soak
    holds 24 KB, not 1,000 Python objects."""

    part: Part
    what: Quantity
    windows: array[int] = field(default_factory=lambda: array("q"))
    hours: array[float] = field(default_factory=lambda: array("d"))
    values: array[float] = field(default_factory=lambda: array("d"))
    temperatures: array[float] = field(default_factory=lambda: array("d"))

    def add(self, window: SoakWindow, value: float, temperature: float | None = None) -> None:
        self.windows.append(window.index)
        self.hours.append((window.start_s + window.end_s) / 2 / HOUR_S)
        self.values.append(value)
        if self.what == "sm_clock":
            self.temperatures.append(math.nan if temperature is None else temperature)


def add_busbw(series: dict[tuple[str, int], Points], window: SoakWindow) -> None:
    """Add each link's typical pair rate in ``window``, where it measured one."""
    for link in window.links:
        if link.busbw_Gbps is None:
            continue
        points = series.setdefault(
            (link.node, link.rail), Points(link_part(link.node, link.rail, link.device), "busbw")
        )
        points.add(window, link.busbw_Gbps)


def add_clocks(series: dict[tuple[str, int], Points], window: SoakWindow) -> None:
    """Add each GPU's SM clock in ``window``, where it read one."""
    for gpu in window.gpus:
        if gpu.sm_clock_MHz is None:
            continue
        points = series.get((gpu.node, gpu.gpu))
        if points is None:
            points = series[(gpu.node, gpu.gpu)] = Points(gpu_part(gpu.node, gpu.gpu), "sm_clock")
        points.add(window, gpu.sm_clock_MHz, gpu.temperature_C)


@dataclass(frozen=True)
class Trends:
    """A family's trends, and how many series were long enough to test."""

    found: list[Trend]
    tested: int
    short: int
    """Series with fewer windows than a trend needs: not judged."""
    longest: int
    """The most windows any series had (to say why none was tested)."""


def judge(series: Sequence[Points], limits: SoakLimits) -> Trends:
    """The trends of one family (see the module docstring)."""
    tested = [s for s in series if len(s.values) >= limits.trend_min_windows]
    p_values = [mann_kendall_fall(_binned(s)[1]) for s in tested]
    found = []
    for s, p, significant in zip(tested, p_values, holm(p_values, limits.false_alarm), strict=True):
        if not significant:
            continue
        line = fit(*_binned(s), span=(s.hours[0], s.hours[-1]))
        if line.slope >= 0 or line.fall <= limits.trend_noise_k * line.noise:
            continue
        if line.fall <= limits.trend_min_fall * abs(line.first):
            continue
        found.append(_trend(s, line.slope, line.first, line.last, p, line.noise))
    longest = max((len(s.values) for s in series), default=0)
    return Trends(found, len(tested), len(series) - len(tested), longest)


def _binned(s: Points) -> tuple[Floats, Floats]:
    return binned(np.frombuffer(s.hours, dtype=np.float64), np.frombuffer(s.values, dtype=np.float64))


def _known(value: float) -> float | None:
    return None if math.isnan(value) else value


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
        temperature_first_C=_known(s.temperatures[0]) if s.temperatures else None,
        temperature_last_C=_known(s.temperatures[-1]) if s.temperatures else None,
    )
