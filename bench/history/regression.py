"""Every metric's state from tonight's values and the baseline's, with the noise each was judged against.

A metric with at least ``min_runs`` baseline values is judged on its own (its median, its robust sigma,
the band ``max(threshold, noise_k x sigma, resolution)``). The others are the *first nights*
(``bench.history.compare``, module docstring): their noise is pooled over the baseline's metrics of the same
scope, or with one baseline run read from the spread of tonight's changes across those metrics, or else
assumed at ``noise_floor``; a size past its threshold is regressed only as part of adjacent sizes that moved
together, alone far outside the noise, or when it moved last night too. The arrays are aligned: one row per
metric, ordered by series (collective, scope, group) and then size.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from bench.history.compare import (
    MAD_TO_SIGMA,
    BaselineStats,
    BoolArray,
    Direction,
    FloatArray,
    RunEvidence,
    State,
    allowed_change,
    baseline_stats,
    classify,
    confirm_runs,
    difference_sigma,
    floored_sigma,
    isolated_k,
    noise_estimated,
    pooled_relative_sigma,
    repeated,
)
from bench.profile.compare import CompareSettings

NoiseSource = Literal["own", "pooled", "tonight", "floor", "none"]
"""Where a metric's noise came from: its own baseline runs, the pool of the baseline's metrics of its
scope, the spread of tonight's changes across them (one baseline run), the floor, or nowhere (no baseline)."""


@dataclass(frozen=True)
class FirstNights:
    """How the metrics with fewer than ``min_runs`` baseline values were judged."""

    pooled: dict[Hashable, tuple[float, NoiseSource]]
    """Per scope: the relative noise the first nights used and where it came from."""
    single_k: float
    """The k an isolated first-night size had to clear (``bench.history.compare.isolated_k``)."""
    count: int
    """How many metrics were judged as first nights."""


@dataclass(frozen=True)
class Judgement:
    """The states and what they were judged against (GB/s unless said), one row per metric."""

    states: list[State]
    baseline: BaselineStats
    sigma: FloatArray
    """The noise of one value: own robust sigma, pooled, or floor (NaN without a baseline)."""
    allowed: FloatArray
    """Half-width of the band around the baseline; on the first nights the threshold's (noise is the
    confirmation's job)."""
    source: list[NoiseSource]
    evidence: list[str]
    """Why a first-night metric past its threshold is or is not regressed/improved ('' otherwise)."""
    first_nights: FirstNights


def spread_relative_sigma(
    change: FloatArray, groups: Sequence[Hashable], count: np.ndarray, min_values: int
) -> dict[Hashable, float]:
    """One baseline run: the noise of one value from the spread of tonight's relative changes per group.

    1.4826 x the median absolute deviation of the changes around their median (a shift common to every size
    is not noise), divided by sqrt(1 + v/R) (each change carries tonight's noise and the baseline's). Here the
    plain MAD, not the trimmed RMS of ``pooled_relative_sigma``: a regression over several of tonight's sizes
    is part of what is measured, and only the median ignores up to half of the values whatever they are.
    """
    out: dict[Hashable, float] = {}
    usable = (count > 0) & np.isfinite(change)
    for label in {g for g, ok in zip(groups, usable, strict=True) if ok}:
        rows = usable & np.array([g == label for g in groups])
        if rows.sum() < min_values:
            continue
        deviation = np.abs(change[rows] - np.median(change[rows]))
        ratio = float(difference_sigma(np.array([1.0]), np.array([int(np.median(count[rows]))]))[0])
        out[label] = MAD_TO_SIGMA * float(np.median(deviation)) / ratio
    return out


def judge(
    current: FloatArray,
    present: BoolArray,
    failed: BoolArray,
    history: FloatArray,
    thresholds: FloatArray,
    series: Sequence[Hashable],
    scopes: Sequence[Hashable],
    settings: CompareSettings,
) -> Judgement:
    """States for every metric (see the module docstring); ``history`` is metrics x runs, newest first."""
    judged = _on_own_noise(current, present, failed, history, thresholds, settings)
    if not (np.isfinite(judged.baseline.median) & ~noise_estimated(judged.baseline.count, settings.min_runs)).any():
        return judged
    return _on_first_nights(judged, current, present, failed, history, thresholds, series, scopes, settings)


def _on_own_noise(
    current: FloatArray,
    present: BoolArray,
    failed: BoolArray,
    history: FloatArray,
    thresholds: FloatArray,
    settings: CompareSettings,
) -> Judgement:
    """Every metric judged on its own baseline; those with too few values of it by the threshold alone."""
    baseline = baseline_stats(history)
    own = noise_estimated(baseline.count, settings.min_runs)
    sigma = floored_sigma(baseline.median, baseline.sigma, settings.noise_floor)
    allowed = allowed_change(baseline.median, sigma, thresholds, settings.noise_k, settings.resolution_GBps, own)
    return Judgement(
        states=classify(current, present, failed, baseline.median, allowed),
        baseline=baseline,
        sigma=sigma,
        allowed=allowed,
        source=["own" if known else "none" for known in own],
        evidence=[""] * len(current),
        first_nights=FirstNights({}, settings.noise_k, 0),
    )


def _on_first_nights(
    judged: Judgement,
    current: FloatArray,
    present: BoolArray,
    failed: BoolArray,
    history: FloatArray,
    thresholds: FloatArray,
    series: Sequence[Hashable],
    scopes: Sequence[Hashable],
    settings: CompareSettings,
) -> Judgement:
    """``judged`` with its first nights (a baseline, but fewer than ``min_runs`` values of it) judged again on
    pooled noise and confirmed by their neighbours or last night (see the module docstring)."""
    median, count = judged.baseline.median, judged.baseline.count
    states, source, evidence = list(judged.states), list(judged.source), list(judged.evidence)
    first = np.isfinite(median) & ~noise_estimated(count, settings.min_runs)
    judging = first & present & ~failed & np.isfinite(current)
    pooled: dict[Hashable, tuple[float, NoiseSource]] = {}
    rows = [int(i) for i in np.flatnonzero(first)]
    from_history = pooled_relative_sigma(history[first], [scopes[i] for i in rows], settings.min_runs)
    with np.errstate(divide="ignore", invalid="ignore"):
        change = np.where(judging, (current - median) / np.abs(median), np.nan)
    one_run = judging & (count == 1)
    from_tonight = (
        spread_relative_sigma(change, scopes, np.where(judging, count, 0), settings.min_runs) if one_run.any() else {}
    )
    relative = np.full(len(current), np.nan)
    for i in rows:
        value, where = _first_night_noise(scopes[i], int(count[i]), from_history, from_tonight, settings)
        pooled[scopes[i]] = (value, where)
        relative[i] = value
        source[i] = where
    with np.errstate(divide="ignore", invalid="ignore"):
        band = np.maximum(thresholds, np.where(first, settings.resolution_GBps / np.abs(median), 0.0))
    sigma_d = difference_sigma(relative, count)
    single_k = isolated_k(settings.noise_k, int(judging.sum()))
    directions: tuple[tuple[Direction, float, State], ...] = (
        ("higher", 1.0, "regressed"),
        ("lower", -1.0, "improved"),
    )
    for direction, sign, word in directions:
        with np.errstate(divide="ignore", invalid="ignore"):
            worse = np.where(judging, sign * (median - current) / np.abs(median), np.nan)
        runs = confirm_runs(worse, band, sigma_d, series, settings.noise_k, single_k)
        again = repeated(history, current, band, relative, single_k, direction) & judging
        for i in (int(j) for j in np.flatnonzero(judging & (runs.length > 0))):
            states[i] = word if runs.confirmed[i] or again[i] else "unchanged"
            evidence[i] = _evidence(word, runs, i, bool(again[i]))
    return replace(
        judged,
        states=states,
        sigma=np.where(first, relative * np.abs(median), judged.sigma),
        allowed=np.where(first, _threshold_band(median, thresholds, settings.resolution_GBps), judged.allowed),
        source=source,
        evidence=evidence,
        first_nights=FirstNights(pooled, single_k, int(first.sum())),
    )


def _threshold_band(median: FloatArray, thresholds: FloatArray, resolution: float) -> FloatArray:
    """The first nights' band in GB/s: the threshold's share of the baseline, never below the resolution.

    Worked in GB/s, not as the relative band times the baseline: a baseline of 0 (a 0-byte row's busbw) makes
    the relative band infinite, and infinity times 0 is NaN, not a band.
    """
    return np.maximum(thresholds * np.abs(median), resolution)


def _first_night_noise(
    scope: Hashable,
    count: int,
    from_history: dict[Hashable, float],
    from_tonight: dict[Hashable, float],
    settings: CompareSettings,
) -> tuple[float, NoiseSource]:
    """The relative noise of a first-night metric of ``scope``, and where it came from (never below the floor)."""
    if scope in from_history and from_history[scope] > settings.noise_floor:
        return from_history[scope], "pooled"
    if count == 1 and scope in from_tonight and from_tonight[scope] > settings.noise_floor:
        return from_tonight[scope], "tonight"
    return settings.noise_floor, "floor"


def _evidence(word: State, runs: RunEvidence, i: int, again: bool) -> str:
    """One phrase: the run of sizes the metric is in, and whether that evidence sufficed."""
    length, mean, needed = int(runs.length[i]), float(runs.mean_worse[i]), float(runs.needed[i])
    verb = "fell" if word == "regressed" else "rose"
    where = f"{length} adjacent sizes {verb} {mean:.1%} on average" if length > 1 else f"alone it {verb} {mean:.1%}"
    if runs.confirmed[i]:
        return f"{where}, beyond the {needed:.1%} that noise could explain"
    if again:
        return f"{where}, and it {verb} last night too"
    return f"{where}: within the noise (needed {needed:.1%})"
