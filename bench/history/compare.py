"""Tell a real drop from noise: small pure functions over arrays (one row per metric).

For each metric the baseline is the median of its last N comparable values, and the noise is the robust
sigma of those values, 1.4826 x MAD (the median absolute deviation; 1.4826 makes it the standard deviation
for normal noise, and one outlier night barely moves it), never below ``noise_floor x baseline`` (two or
three identical values say sigma 0, which no fabric has). The *allowed* change around the baseline is the
largest of ``threshold x baseline``, ``noise_k x sigma`` and the printed resolution, so a regression is a
change for the worse larger than BOTH the threshold and k x the noise. With fewer than ``min_runs``
baseline values the noise cannot be estimated: the threshold alone decides, and the output says so. The
direction is explicit: busbw is higher-is-better, a time would be lower-is-better.

States, which are distinct and never merged:

* ``regressed`` / ``improved``: worse / better by more than allowed;
* ``unchanged``: within the allowed band (including drops above the threshold but inside the noise);
* ``new``: measured tonight, no baseline;
* ``missing``: in the baseline, absent tonight;
* ``failed``: measured tonight but the measurement failed (wrong elements, no finite value).

**The first nights** (fewer than ``min_runs`` baseline values for a metric): a metric's own spread over one to
four runs says little, so its noise is *pooled*: every metric of the same scope in the baseline (the same
kind of run: every size and collective) contributes its deviations from its own baseline mean, scaled by
sqrt(R/(R-1)) so that each has the noise's variance, and the pool's robust RMS (the deviations within
``TRIM_SIGMAS`` x 1.4826 x their median absolute deviation) is the relative noise of them all
(``pooled_relative_sigma``). With one baseline run there are no deviations to pool: the spread of tonight's
changes across the scope's sizes stands in (``bench.history.regression``); with too few values of either, the noise
is assumed at ``noise_floor``. Tonight minus the baseline then has the noise ``sigma x sqrt(1 + v/R)``, where
``v/R`` is the variance of the median of R values relative to one (``difference_sigma``). A size worse than
the threshold is *regressed* only with evidence that noise does not explain it (``confirm_runs``):

* **spans**: adjacent sizes of one series (collective, scope, group) that are each worse than the threshold
  form a run of L sizes; the run is regressed when its mean drop exceeds the threshold by more than
  ``noise_k`` x its noise (the sizes' ``sigma_d`` combined, sqrt(sum sigma_d^2) / L). A real regression
  moves neighbouring sizes together; noise at one size does not move the next.
* **an isolated size** (a run of one) must exceed the threshold by ``isolated_k`` x its noise: ``noise_k``
  raised so that noise alone makes *any* of tonight's first-night sizes look regressed no more often than
  one ``noise_k``-sigma excursion (the Sidak correction for M looks). A single size 6% down while its
  neighbours are unchanged is inside that noise; one 40% down is not.
* **a repeat**: the same size worse than the threshold last night too (both against the median of the
  older baseline runs), the two nights' mean drop beyond the threshold by ``isolated_k`` x its noise
  (``repeated``).

Improvements are judged the same way. A size over the threshold that none of these confirms stays
``unchanged`` and is shown as such (an isolated excursion inside the noise).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Literal

import numpy as np
import numpy.typing as npt

State = Literal["regressed", "improved", "unchanged", "new", "missing", "failed"]
STATES: tuple[State, ...] = ("regressed", "improved", "unchanged", "new", "missing", "failed")
BAD_STATES: frozenset[State] = frozenset({"regressed", "missing", "failed"})
"""States that make ``railbench compare`` exit 1."""
Direction = Literal["higher", "lower"]
MAD_TO_SIGMA = 1.4826
TRIM_SIGMAS = 4.0
"""Pooled deviations beyond this many robust sigmas are left out of the pooled noise (``pooled_relative_sigma``)."""

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


def as_matrix(values: FloatArray) -> FloatArray:
    """``values`` as metrics x runs: a vector is one run per metric; zero metrics stay a 0 x runs matrix."""
    values = np.asarray(values, dtype=np.float64)
    return values[:, None] if values.ndim == 1 else values


def row_medians(values: FloatArray) -> FloatArray:
    """The median of each row's finite values (NaN for a row with none): ``np.nanmedian(values, axis=1)``
    without its masked-array path, which costs milliseconds on the small rows a history gives."""
    values = as_matrix(values)
    if values.shape[1] == 0:  # no baseline run at all
        return np.full(len(values), np.nan)
    count = np.sum(np.isfinite(values), axis=1)
    ordered = np.sort(np.where(np.isfinite(values), values, np.inf), axis=1)  # absent values sort last
    rows = np.arange(len(values))
    low = ordered[rows, np.maximum(count - 1, 0) // 2]
    high = ordered[rows, np.maximum(count, 1) // 2 - (count == 0)]
    with np.errstate(invalid="ignore"):
        return np.where(count > 0, (low + high) / 2, np.nan)


@dataclass(frozen=True)
class BaselineStats:
    """Each metric's baseline, one row per metric: what its values were (NaN where it has none)."""

    median: FloatArray
    sigma: FloatArray
    """The robust sigma of one value (1.4826 x the median absolute deviation), before any floor."""
    count: npt.NDArray[np.int64]
    """How many baseline runs hold a value of the metric."""


def baseline_stats(history: FloatArray) -> BaselineStats:
    """Median, robust sigma and count per row of ``history`` (metrics x runs, NaN where absent)."""
    history = as_matrix(history)
    median = row_medians(history)
    return BaselineStats(
        median=median,
        sigma=MAD_TO_SIGMA * row_medians(np.abs(history - median[:, None])),
        count=np.sum(np.isfinite(history), axis=1),
    )


def noise_estimated(count: npt.NDArray[np.int64], min_runs: int) -> BoolArray:
    """Whether each metric has enough baseline values for its noise to mean anything."""
    return np.asarray(count) >= min_runs


def floored_sigma(median: FloatArray, sigma: FloatArray, noise_floor: float) -> FloatArray:
    """The robust sigma, never below ``noise_floor`` x |baseline| (NaN where there is no baseline)."""
    return np.where(np.isfinite(median), np.maximum(np.nan_to_num(sigma), noise_floor * np.abs(median)), np.nan)


def allowed_change(
    median: FloatArray,
    sigma: FloatArray,
    threshold: FloatArray,
    noise_k: float,
    resolution: float,
    estimated: BoolArray | None = None,
) -> FloatArray:
    """Half-width of the no-alarm band around each baseline, in the metric's unit.

    Where ``estimated`` is False (too few runs) the noise term is left out: the threshold alone decides.
    """
    noise = noise_k * np.nan_to_num(sigma)
    if estimated is not None:
        noise = np.where(estimated, noise, 0.0)
    return np.maximum.reduce([threshold * np.abs(median), noise, np.full_like(median, resolution)])


def classify(
    current: FloatArray,
    present: BoolArray,
    failed: BoolArray,
    median: FloatArray,
    allowed: FloatArray,
    direction: Direction = "higher",
) -> list[State]:
    """The state of every metric (see the module docstring)."""
    worse = (median - current) if direction == "higher" else (current - median)
    states: list[State] = []
    for i in range(len(current)):
        has_baseline = bool(np.isfinite(median[i]))
        if not present[i]:
            states.append("missing" if has_baseline else "new")
        elif failed[i] or not np.isfinite(current[i]):
            states.append("failed")
        elif not has_baseline:
            states.append("new")
        elif worse[i] > allowed[i]:
            states.append("regressed")
        elif -worse[i] > allowed[i]:
            states.append("improved")
        else:
            states.append("unchanged")
    return states


def relative_change(current: FloatArray, median: FloatArray) -> FloatArray:
    """(current - baseline) / baseline, NaN where either is missing or the baseline is 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        change = (current - median) / median
    return np.where(np.isfinite(change), change, np.nan)


# --- the first nights: pooled noise and corroborated regressions ------------------------------------------


def median_variance_factor(count: npt.NDArray[np.int64]) -> FloatArray:
    """Var(median of R normal values) x R / sigma^2: 1 for R <= 2 (the median is the mean), pi/2 from 3.

    pi/2 is the large-sample value; the exact one is 1.34 for three values and 1.19 for four, so from three
    runs the band errs a little wide, never narrow.
    """
    return np.where(np.asarray(count) <= 2, 1.0, math.pi / 2)


def pooled_relative_sigma(history: FloatArray, groups: Sequence[Hashable], min_values: int) -> dict[Hashable, float]:
    """The relative noise of each group of metrics, from every metric of the group with two or more values.

    ``history`` is metrics x runs (NaN where absent), ``groups`` a label per metric (its scope). A metric's
    values deviate from their mean by d = (x - mean) / mean x sqrt(R / (R - 1)), which has the variance of
    one value's noise; the group's sigma is the RMS of all its metrics' deviations, leaving out those beyond
    ``TRIM_SIGMAS`` x the robust 1.4826 x median(|d|), so a few odd metrics do not inflate it. A group with
    fewer than ``min_values`` deviations is left out (no estimate).
    """
    history = as_matrix(history)
    count = np.sum(np.isfinite(history), axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.nansum(history, axis=1) / count
        scale = np.sqrt(count / (count - 1.0))
        deviation = np.abs((history - mean[:, None]) / mean[:, None]) * scale[:, None]
    usable = (count >= 2) & np.isfinite(mean) & (mean != 0)
    out: dict[Hashable, float] = {}
    for label in dict.fromkeys(groups):
        rows = usable & np.array([g == label for g in groups], dtype=bool)
        pooled = deviation[rows][np.isfinite(deviation[rows])]
        if len(pooled) >= min_values:
            # The MAD sigma is robust but noisy (37% efficient); the RMS of the deviations within 4 of those
            # sigmas keeps the robustness (an odd metric far out is dropped) at nearly full efficiency.
            robust = MAD_TO_SIGMA * float(np.median(pooled))
            kept = pooled[pooled <= TRIM_SIGMAS * robust] if robust > 0 else pooled
            out[label] = float(np.sqrt(np.mean(np.square(kept))))
    return out


def difference_sigma(sigma: FloatArray, count: npt.NDArray[np.int64]) -> FloatArray:
    """The noise of tonight minus the median of ``count`` baseline values, each with noise ``sigma``."""
    count = np.asarray(count)
    factor = np.where(count > 0, median_variance_factor(count) / np.maximum(count, 1), np.nan)
    return np.asarray(sigma, dtype=np.float64) * np.sqrt(1.0 + factor)


def isolated_k(noise_k: float, looks: int) -> float:
    """``noise_k`` raised for ``looks`` independent single-size tests (Sidak): the chance that noise alone
    passes any of them equals the chance that it passes one ``noise_k``-sigma test."""
    normal = NormalDist()
    tail = 1.0 - normal.cdf(noise_k)
    if looks <= 1 or tail <= 0.0:
        return noise_k
    per_look = -math.expm1(math.log1p(-tail) / looks)
    return normal.inv_cdf(1.0 - per_look)


@dataclass(frozen=True)
class RunEvidence:
    """Per metric: the run of adjacent sizes it belongs to (worse than the threshold), and the verdict on it."""

    length: npt.NDArray[np.int64]
    """Sizes in the metric's run (0 when the metric is not worse than its threshold)."""
    mean_worse: FloatArray
    """The run's mean relative change for the worse (0.09 = 9% worse)."""
    needed: FloatArray
    """What the mean had to exceed: threshold + k x the run's noise."""
    confirmed: BoolArray


def confirm_runs(
    worse: FloatArray,
    threshold: FloatArray,
    sigma_d: FloatArray,
    series: Sequence[Hashable],
    noise_k: float,
    single_k: float,
) -> RunEvidence:
    """Which metrics worse than their threshold are confirmed by their neighbours (see the module docstring).

    ``worse`` is each metric's relative change for the worse (positive = worse; NaN where not judged this
    way), ``sigma_d`` the relative noise of that change; metrics are ordered by series, then size, so that
    neighbours in a series are neighbours here. ``single_k`` applies to a run of one (``isolated_k``).
    """
    worse = np.asarray(worse, dtype=np.float64)
    n = len(worse)
    length = np.zeros(n, dtype=np.int64)
    mean_worse = np.full(n, np.nan)
    needed = np.full(n, np.nan)
    confirmed = np.zeros(n, dtype=bool)
    over = np.isfinite(worse) & (worse > threshold)
    start = 0
    while start < n:
        if not over[start]:
            start += 1
            continue
        end = start + 1
        while end < n and over[end] and series[end] == series[start]:
            end += 1
        run = slice(start, end)
        size = end - start
        noise = math.sqrt(float(np.sum(np.square(sigma_d[run])))) / size
        k = noise_k if size > 1 else single_k
        length[run] = size
        mean_worse[run] = float(np.mean(worse[run]))
        needed[run] = float(np.mean(threshold[run])) + k * noise
        confirmed[run] = mean_worse[start] > needed[start]
        start = end
    return RunEvidence(length, mean_worse, needed, confirmed)


def repeated(
    history: FloatArray,
    current: FloatArray,
    threshold: FloatArray,
    sigma: FloatArray,
    k: float,
    direction: Direction = "higher",
) -> BoolArray:
    """Metrics worse than the threshold tonight *and* in the newest baseline run, both against the median of
    the older baseline runs, whose two nights' mean change for the worse exceeds the threshold by ``k`` x
    its noise (``sigma`` relative; the older runs' median is shared by both nights, so its variance counts
    once: sigma^2 x (1/2 + v/R_older)). ``history`` is metrics x runs, newest first."""
    history = as_matrix(history)
    out = np.zeros(len(history), dtype=bool)
    if history.shape[1] < 2:
        return out
    older = history[:, 1:]
    count = np.sum(np.isfinite(older), axis=1)
    rows = np.isfinite(history[:, 0]) & (count > 0) & np.isfinite(current)
    if not rows.any():
        return out
    ref = np.where(rows, row_medians(older), np.nan)
    sign = 1.0 if direction == "higher" else -1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        tonight = sign * (ref - current) / np.abs(ref)
        last = sign * (ref - history[:, 0]) / np.abs(ref)
    factor = np.where(count > 0, median_variance_factor(count) / np.maximum(count, 1), np.nan)
    noise = np.asarray(sigma) * np.sqrt(0.5 + factor)
    both = (tonight > threshold) & (last > threshold)
    return np.asarray(rows & both & ((tonight + last) / 2 > threshold + k * noise), dtype=bool)
