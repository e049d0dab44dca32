"""How ``railbench compare`` decides, from a profile's ``[compare]`` table::

    [compare]
    default_threshold = 0.05      # a drop must exceed 5% of the baseline ...
    noise_k = 3.0                 # ... and 3 x the baseline's robust sigma to be a regression
    min_bytes = "1M"              # sizes below this are not compared (every shipped profile sets it)
    min_runs = 5                  # below this many baseline runs the threshold alone decides
    noise_floor = 0.01            # sigma is at least this fraction of the baseline
    resolution_GBps = 0.01        # optional: changes within the printed resolution are no change

    error_allowance = 0           # a rail's error count rises above baseline + this ...
    error_factor = 2.0            # ... and above this x baseline (0 -> any count is a rise)
    fail_on_error_rise = false    # true: a risen error count makes compare exit 1 (default: flagged only)

    [[compare.rule]]              # per-metric thresholds; the first matching pattern wins
    pattern = "sendrecv/pair/*"   # fnmatch over "collective/scope/group/bytes"
    threshold = 0.10

Thresholds are fractions (0.05) or percent strings ("5%"). Every value is profile data, not code. The error
counters judged are the profile's ``[errors] fail_on_rise`` (``bench.history.rail_errors``).
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeGuard

from bench.exits import UserError
from bench.jsondoc import Parsed
from bench.profile.errors import DEFAULT_FAIL_ON_RISE
from bench.units import parse_size

MAX_PATTERN_CHARS = 200
"""A metric key is ``collective/scope/group/bytes``: a longer pattern is a mistake."""
MAX_NOISE_K = 100.0
MAX_RESOLUTION_GBPS = 1e6


def _number(value: object) -> TypeGuard[int | float]:
    """An int or a finite float, not a bool (TOML's ``nan`` and ``inf`` are floats)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


_KEYS = (
    "default_threshold",
    "noise_k",
    "min_bytes",
    "min_runs",
    "noise_floor",
    "resolution_GBps",
    "rule",
    "error_allowance",
    "error_factor",
    "fail_on_error_rise",
)
MAX_ERROR_FACTOR = 1e6


def parse_threshold(value: object, where: str) -> float:
    """``0.05`` or ``"5%"`` -> 0.05; UserError for anything that is not a fraction in (0, 1)."""
    shown = repr(value) if len(repr(value)) <= 40 else f"{repr(value)[:40]}..."
    if isinstance(value, str) and value.strip().endswith("%"):
        try:
            value = float(value.strip()[:-1]) / 100.0
        except ValueError:
            raise UserError(f'{where} = {shown} is not a percentage: write e.g. "5%" or 0.05') from None
    if not _number(value):
        raise UserError(f'{where} = {shown} is not a number: write a fraction such as 0.05 or "5%"')
    if not 0.0 < value < 1.0:
        raise UserError(f"{where} = {shown} is not a fraction between 0 and 1: write 0.05 for 5%")
    return float(value)


@dataclass(frozen=True)
class ThresholdRule:
    """A threshold for the metrics whose key matches ``pattern``."""

    pattern: str
    """fnmatch pattern over ``collective/scope/group/bytes``, e.g. ``all_reduce/world/*``."""
    threshold: float
    """Smallest relative drop (fraction) that can count as a regression for these metrics."""

    def __post_init__(self) -> None:
        if not isinstance(self.pattern, str):
            raise UserError(f'[[compare.rule]] pattern = {self.pattern!r} must be a string: write e.g. "all_reduce/*"')
        if not self.pattern:
            raise UserError('a [[compare.rule]] has an empty pattern: write e.g. pattern = "all_reduce/*"')
        if len(self.pattern) > MAX_PATTERN_CHARS:
            raise UserError(
                f"a [[compare.rule]] pattern is {len(self.pattern)} characters: {MAX_PATTERN_CHARS} at most"
            )
        parse_threshold(self.threshold, f"[[compare.rule]] {self.pattern!r} threshold")


@dataclass(frozen=True)
class CompareSettings:
    """The knobs of regression detection."""

    default_threshold: float = 0.05
    """Smallest relative drop (fraction of the baseline) that can count as a regression."""
    noise_k: float = 3.0
    """A drop must also exceed ``noise_k`` x the baseline's robust sigma (1.4826 x MAD)."""
    rules: tuple[ThresholdRule, ...] = ()
    """Per-metric thresholds; the first rule whose pattern matches the metric key wins."""
    min_bytes: int = 0
    """Metrics of smaller messages are not compared (latency-bound sizes are noisy and rarely matter)."""
    resolution_GBps: float = 0.01
    """A change no larger than this is no change: nccl-tests prints busbw with two decimals."""
    min_runs: int = 5
    """Below this many baseline values a metric's noise is not estimated: the threshold alone decides."""
    noise_floor: float = 0.01
    """The noise estimate is at least this fraction of the baseline, so sigma 0 is never believed."""
    error_allowance: int = 0
    """A rail's error count rises only above its baseline plus this many..."""
    error_factor: float = 2.0
    """... and above this many times its baseline: from a clean baseline any count rises, not every +1 after."""
    fail_on_error_rise: bool = False
    """Whether a risen error count makes compare exit 1 (by default it is flagged beside the verdict)."""
    error_counters: tuple[str, ...] = DEFAULT_FAIL_ON_RISE
    """The counters judged: the profile's ``[errors] fail_on_rise``."""

    def __post_init__(self) -> None:
        # The checkers below return each value narrowed to its type: from_table builds the settings from them,
        # so a value read from TOML is checked before it is used, with the same message as here.
        parse_threshold(self.default_threshold, "[compare] default_threshold")
        _noise_k(self.noise_k)
        _min_bytes(self.min_bytes)
        _resolution(self.resolution_GBps)
        _min_runs(self.min_runs)
        _noise_floor(self.noise_floor)
        _error_allowance(self.error_allowance)
        _error_factor(self.error_factor)
        _fail_on_error_rise(self.fail_on_error_rise)
        if not 0 <= self.resolution_GBps <= MAX_RESOLUTION_GBPS:
            raise UserError(
                f"[compare] resolution_GBps = {self.resolution_GBps!r} must be from 0 to {MAX_RESOLUTION_GBPS:g}"
            )

    def threshold_for(self, metric_key: str) -> float:
        """The threshold of one metric: the first matching rule's, else the default."""
        for rule in self.rules:
            if fnmatch.fnmatchcase(metric_key, rule.pattern):
                return rule.threshold
        return self.default_threshold

    @classmethod
    def from_table(cls, table: Parsed, error_counters: tuple[str, ...] = DEFAULT_FAIL_ON_RISE) -> CompareSettings:
        """Settings from a profile's parsed ``[compare]`` table (empty: the defaults); ``error_counters`` are the
        profile's ``[errors] fail_on_rise``, already checked by ``bench.profile.errors``."""
        unknown = sorted(set(table) - set(_KEYS))
        if unknown:
            raise UserError(f"unknown key(s) {', '.join(unknown)} in [compare]: use {', '.join(_KEYS)}")
        rules = table.get("rule", [])
        if not isinstance(rules, list) or not all(isinstance(r, Mapping) for r in rules):
            raise UserError("compare.rule must be an array of tables: write [[compare.rule]] blocks")
        parsed = []
        for number, rule in enumerate(rules, start=1):
            if set(rule) != {"pattern", "threshold"}:
                keys = ", ".join(sorted(str(k)[:40] for k in rule)) or "none"
                raise UserError(
                    f"[[compare.rule]] number {number} has keys {keys}: it needs exactly pattern and threshold"
                )
            pattern = rule["pattern"]
            if not isinstance(pattern, str):
                raise UserError(
                    f'[[compare.rule]] number {number}: pattern = {pattern!r:.40} must be a string, e.g. "sendrecv/*"'
                )
            where = f"[[compare.rule]] {pattern[:60]!r} threshold"
            parsed.append(ThresholdRule(pattern, parse_threshold(rule["threshold"], where)))
        min_bytes = table.get("min_bytes", 0)
        size = parse_size(min_bytes, "[compare] min_bytes") if isinstance(min_bytes, str) else min_bytes
        # Keyword arguments are evaluated in order: the same order as __post_init__'s checks, so the first bad
        # value named is the same whichever path built the settings.
        return cls(
            default_threshold=parse_threshold(table.get("default_threshold", 0.05), "[compare] default_threshold"),
            noise_k=_noise_k(table.get("noise_k", 3.0)),
            rules=tuple(parsed),
            min_bytes=_min_bytes(size),
            resolution_GBps=_resolution(table.get("resolution_GBps", 0.01)),
            min_runs=_min_runs(table.get("min_runs", 5)),
            noise_floor=_noise_floor(table.get("noise_floor", 0.01)),
            error_allowance=_error_allowance(table.get("error_allowance", 0)),
            error_factor=_error_factor(table.get("error_factor", 2.0)),
            fail_on_error_rise=_fail_on_error_rise(table.get("fail_on_error_rise", False)),
            error_counters=error_counters,
        )


def _whole(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _noise_k(value: object) -> float:
    if not _number(value) or not 0 <= value <= MAX_NOISE_K:
        raise UserError(f"[compare] noise_k = {value!r} must be a number from 0 to {MAX_NOISE_K}, e.g. 3")
    return value


def _min_bytes(value: object) -> int:
    if not _whole(value) or value < 0:
        raise UserError(f'[compare] min_bytes = {value!r} must be a size >= 0, e.g. "1M"')
    return value


def _resolution(value: object) -> float:
    """The type only: the range is checked last (``__post_init__``), as it always was."""
    if not _number(value):
        raise UserError(f"[compare] resolution_GBps = {value!r} must be a number, e.g. 0.01")
    return value


def _min_runs(value: object) -> int:
    if not _whole(value) or not 1 <= value <= 10**6:
        raise UserError(f"[compare] min_runs = {value!r} must be a whole number from 1 to 1000000, e.g. 5")
    return value


def _noise_floor(value: object) -> float:
    if not _number(value) or not 0 <= value < 1:
        raise UserError(f"[compare] noise_floor = {value!r} must be a fraction in [0, 1), e.g. 0.01")
    return value


def _error_allowance(value: object) -> int:
    if not _whole(value) or not 0 <= value <= 10**12:
        raise UserError(f"[compare] error_allowance = {value!r} must be a whole number >= 0, e.g. 0")
    return value


def _error_factor(value: object) -> float:
    if not _number(value) or not 1 <= value <= MAX_ERROR_FACTOR:
        raise UserError(f"[compare] error_factor = {value!r} must be a number from 1, e.g. 2")
    return value


def _fail_on_error_rise(value: object) -> bool:
    if not isinstance(value, bool):
        raise UserError(f"[compare] fail_on_error_rise = {value!r} must be true or false")
    return value
