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
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import numpy.typing as npt

State = Literal["regressed", "improved", "unchanged", "new", "missing", "failed"]
STATES: tuple[State, ...] = ("regressed", "improved", "unchanged", "new", "missing", "failed")
BAD_STATES: frozenset[State] = frozenset({"regressed", "missing", "failed"})
"""States that make ``railbench compare`` exit 1."""
Direction = Literal["higher", "lower"]
MAD_TO_SIGMA = 1.4826

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


def baseline_stats(history: FloatArray) -> tuple[FloatArray, FloatArray, npt.NDArray[np.int64]]:
    """Median, robust sigma and count per row of ``history`` (metrics x runs, NaN where absent)."""
    history = np.asarray(history, dtype=np.float64)
    # reshape(0, -1) has no answer (ValueError): no metric at all, e.g. every size below [compare] min_bytes
    history = history.reshape(len(history), -1) if history.size else np.empty((len(history), 0))
    count = np.sum(np.isfinite(history), axis=1)
    median = np.full(len(history), np.nan)
    sigma = np.full(len(history), np.nan)
    rows = count > 0  # nanmedian warns on all-NaN rows; those have no baseline anyway
    if rows.any():
        part = history[rows]
        median[rows] = np.nanmedian(part, axis=1)
        sigma[rows] = MAD_TO_SIGMA * np.nanmedian(np.abs(part - median[rows, None]), axis=1)
    return median, sigma, count


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
