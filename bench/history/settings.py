"""How ``railbench compare`` decides, from a profile's ``[compare]`` table::

    [compare]
    default_threshold = 0.05      # a drop must exceed 5% of the baseline ...
    noise_k = 3.0                 # ... and 3 x the baseline's robust sigma to be a regression
    min_bytes = "1M"              # sizes below this are not compared (every shipped profile sets it)
    min_runs = 5                  # below this many baseline runs the threshold alone decides
    noise_floor = 0.01            # sigma is at least this fraction of the baseline
    resolution_GBps = 0.01        # optional: changes within the printed resolution are no change

    [[compare.rule]]              # per-metric thresholds; the first matching pattern wins
    pattern = "sendrecv/pair/*"   # fnmatch over "collective/scope/group/bytes"
    threshold = 0.10

Thresholds are fractions (0.05) or percent strings ("5%"). Every value is profile data, not code.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bench.errors import UserError
from bench.units import parse_size

_KEYS = ("default_threshold", "noise_k", "min_bytes", "min_runs", "noise_floor", "resolution_GBps", "rule")


def parse_threshold(value: object, where: str) -> float:
    """``0.05`` or ``"5%"`` -> 0.05; UserError for anything that is not a fraction in (0, 1)."""
    if isinstance(value, str) and value.strip().endswith("%"):
        try:
            value = float(value.strip()[:-1]) / 100.0
        except ValueError:
            raise UserError(f'{where} = {value!r} is not a percentage: write e.g. "5%" or 0.05') from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise UserError(f'{where} = {value!r} is not a number: write a fraction such as 0.05 or "5%"')
    if not 0.0 < value < 1.0:
        raise UserError(f"{where} = {value!r} is not a fraction between 0 and 1: write 0.05 for 5%")
    return float(value)


@dataclass(frozen=True)
class ThresholdRule:
    """A threshold for the metrics whose key matches ``pattern``."""

    pattern: str
    """fnmatch pattern over ``collective/scope/group/bytes``, e.g. ``all_reduce/world/*``."""
    threshold: float
    """Smallest relative drop (fraction) that can count as a regression for these metrics."""

    def __post_init__(self) -> None:
        if not self.pattern:
            raise UserError('a [[compare.rule]] has an empty pattern: write e.g. pattern = "all_reduce/*"')
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

    def __post_init__(self) -> None:
        parse_threshold(self.default_threshold, "[compare] default_threshold")
        if isinstance(self.noise_k, bool) or not isinstance(self.noise_k, (int, float)) or not self.noise_k >= 0:
            raise UserError(f"[compare] noise_k = {self.noise_k!r} must be a number >= 0, e.g. 3")
        if not isinstance(self.min_bytes, int) or self.min_bytes < 0:
            raise UserError(f'[compare] min_bytes = {self.min_bytes!r} must be a size >= 0, e.g. "1M"')
        if isinstance(self.resolution_GBps, bool) or not isinstance(self.resolution_GBps, (int, float)):
            raise UserError(f"[compare] resolution_GBps = {self.resolution_GBps!r} must be a number, e.g. 0.01")
        if isinstance(self.min_runs, bool) or not isinstance(self.min_runs, int) or self.min_runs < 1:
            raise UserError(f"[compare] min_runs = {self.min_runs!r} must be a whole number >= 1, e.g. 5")
        floor = self.noise_floor
        if isinstance(floor, bool) or not isinstance(floor, (int, float)) or not 0 <= floor < 1:
            raise UserError(f"[compare] noise_floor = {floor!r} must be a fraction in [0, 1), e.g. 0.01")
        if self.resolution_GBps < 0:
            raise UserError(f"[compare] resolution_GBps = {self.resolution_GBps!r} must be >= 0")

    def threshold_for(self, metric_key: str) -> float:
        """The threshold of one metric: the first matching rule's, else the default."""
        for rule in self.rules:
            if fnmatch.fnmatchcase(metric_key, rule.pattern):
                return rule.threshold
        return self.default_threshold

    @classmethod
    def from_profile(cls, raw: Mapping[str, Any] | None) -> CompareSettings:
        """Settings from a profile's raw TOML mapping (its ``[compare]`` table); defaults without one."""
        table = (raw or {}).get("compare")
        if table is None:
            return cls()
        if not isinstance(table, Mapping):
            raise UserError("[compare] in the profile must be a table: write [compare] on its own line")
        unknown = sorted(set(table) - set(_KEYS))
        if unknown:
            raise UserError(f"unknown key(s) {', '.join(unknown)} in [compare]: use {', '.join(_KEYS)}")
        rules = table.get("rule", [])
        if not isinstance(rules, list) or not all(isinstance(r, Mapping) for r in rules):
            raise UserError("compare.rule must be an array of tables: write [[compare.rule]] blocks")
        parsed = []
        for rule in rules:
            if set(rule) != {"pattern", "threshold"}:
                raise UserError(f"[[compare.rule]] {dict(rule)!r} needs exactly pattern and threshold")
            where = f"[[compare.rule]] {rule['pattern']!r} threshold"
            parsed.append(ThresholdRule(str(rule["pattern"]), parse_threshold(rule["threshold"], where)))
        min_bytes = table.get("min_bytes", 0)
        return cls(
            default_threshold=parse_threshold(table.get("default_threshold", 0.05), "[compare] default_threshold"),
            noise_k=table.get("noise_k", 3.0),
            rules=tuple(parsed),
            min_bytes=parse_size(min_bytes, "[compare] min_bytes") if isinstance(min_bytes, str) else min_bytes,
            resolution_GBps=table.get("resolution_GBps", 0.01),
            min_runs=table.get("min_runs", 5),
            noise_floor=table.get("noise_floor", 0.01),
        )
