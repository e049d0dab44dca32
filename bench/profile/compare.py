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
from dataclasses import dataclass, field

from bench import codec
from bench.exits import UserError
from bench.jsondoc import Parsed
from bench.profile.errors import DEFAULT_FAIL_ON_RISE
from bench.profile.toml_lines import said, size

MAX_PATTERN_CHARS = 200
"""A metric key is ``collective/scope/group/bytes``: a longer pattern is a mistake."""
MAX_NOISE_K = 100.0
MAX_RESOLUTION_GBPS = 1e6
MAX_ERROR_FACTOR = 1e6


def _number(value: object) -> bool:
    """An int or a finite float, not a bool (TOML's ``nan`` and ``inf`` are floats)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def threshold(value: object) -> float:
    """``0.05`` or ``"5%"`` -> 0.05: the codec's reader of a threshold (``codec.read_by``); ``ValueError`` saying,
    after the key, why anything that is not a fraction in (0, 1) is not (``TypeError``: not even a number or a
    string)."""
    shown = repr(value) if len(repr(value)) <= 40 else f"{repr(value)[:40]}..."
    if isinstance(value, str) and value.strip().endswith("%"):
        try:
            value = float(value.strip()[:-1]) / 100.0
        except ValueError:
            raise ValueError(f'= {shown} is not a percentage: write e.g. "5%" or 0.05') from None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise TypeError('a fraction such as 0.05 or a percentage such as "5%"')
    if not isinstance(value, int | float) or not _number(value):
        raise ValueError(f'= {shown} is not a number: write a fraction such as 0.05 or "5%"')
    if not 0.0 < value < 1.0:
        raise ValueError(f"= {shown} is not a fraction between 0 and 1: write 0.05 for 5%")
    return float(value)


@dataclass(frozen=True)
class ThresholdRule:
    """A threshold for the metrics whose key matches ``pattern`` (a ``[[compare.rule]]`` block)."""

    pattern: str
    """fnmatch pattern over ``collective/scope/group/bytes``, e.g. ``all_reduce/world/*``."""
    threshold: float = field(metadata=codec.read_by(threshold))
    """Smallest relative drop (fraction) that can count as a regression for these metrics."""

    def __post_init__(self) -> None:
        if not self.pattern:
            raise codec.Invalid("pattern", 'is empty: write e.g. pattern = "all_reduce/*"')
        if len(self.pattern) > MAX_PATTERN_CHARS:
            raise codec.Invalid("pattern", f"is {len(self.pattern)} characters: {MAX_PATTERN_CHARS} at most")
        try:  # a rule made in code; one read is checked by its reader
            threshold(self.threshold)
        except (TypeError, ValueError) as exc:
            raise codec.Invalid("threshold", str(exc)) from None


@dataclass(frozen=True)
class CompareTable:
    """A profile's ``[compare]`` table as the codec reads it (its ``[[compare.rule]]`` blocks are ``rule``);
    :meth:`CompareSettings.read` makes the settings of it, which check each value."""

    default_threshold: float = field(default=0.05, metadata=codec.read_by(threshold))
    noise_k: float = 3.0
    min_bytes: int = field(default=0, metadata=codec.read_by(size))
    min_runs: int = 5
    noise_floor: float = 0.01
    resolution_GBps: float = 0.01
    rule: tuple[ThresholdRule, ...] = ()
    error_allowance: int = 0
    error_factor: float = 2.0
    fail_on_error_rise: bool = False


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
        try:
            threshold(self.default_threshold)
        except (TypeError, ValueError) as exc:
            raise codec.Invalid("default_threshold", str(exc)) from None
        for name, ok, should in (
            ("noise_k", 0 <= self.noise_k <= MAX_NOISE_K, f"a number from 0 to {MAX_NOISE_K}, e.g. 3"),
            ("min_bytes", self.min_bytes >= 0, 'a size >= 0, e.g. "1M"'),
            ("resolution_GBps", _number(self.resolution_GBps), "a number, e.g. 0.01"),
            ("min_runs", 1 <= self.min_runs <= 10**6, "a whole number from 1 to 1000000, e.g. 5"),
            ("noise_floor", 0 <= self.noise_floor < 1, "a fraction in [0, 1), e.g. 0.01"),
            ("error_allowance", 0 <= self.error_allowance <= 10**12, "a whole number >= 0, e.g. 0"),
            ("error_factor", 1 <= self.error_factor <= MAX_ERROR_FACTOR, "a number from 1, e.g. 2"),
            ("resolution_GBps", 0 <= self.resolution_GBps <= MAX_RESOLUTION_GBPS, f"from 0 to {MAX_RESOLUTION_GBPS:g}"),
        ):
            if not ok:  # nan fails every comparison
                raise codec.Invalid(name, f"= {getattr(self, name):g} must be {should}")

    def threshold_for(self, metric_key: str) -> float:
        """The threshold of one metric: the first matching rule's, else the default."""
        for rule in self.rules:
            if fnmatch.fnmatchcase(metric_key, rule.pattern):
                return rule.threshold
        return self.default_threshold

    @classmethod
    def read(cls, table: object) -> CompareSettings:
        """The settings of a profile's ``[compare]`` table as parsed (the codec's reader of it): each value of its
        type and checked; :class:`bench.codec.Refused` at the value that is not."""
        if not isinstance(table, dict):
            raise ValueError(f"= {codec.shown(table)} must be a table")
        read = codec.decode(CompareTable, table)
        return codec.projected(cls, read, rules=read.rule, error_counters=DEFAULT_FAIL_ON_RISE)

    @classmethod
    def from_table(cls, table: Parsed, error_counters: tuple[str, ...] = DEFAULT_FAIL_ON_RISE) -> CompareSettings:
        """Settings from a parsed ``[compare]`` table (empty: the defaults); ``error_counters`` are the profile's
        ``[errors] fail_on_rise``. A bad value is a UserError naming it (a profile's is located by its reader)."""
        try:
            settings = cls.read(dict(table))
        except (codec.Refused, codec.Invalid) as exc:
            raise UserError(said(exc, ("compare",))) from None
        return codec.replaced(settings, {"error_counters": error_counters})
