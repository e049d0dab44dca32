"""The profile's ``[soak]`` table: the limits of a soak's gates and the false-alarm rates of its tests
(``bench.soak.judge``; docs/design.md, "Soak").

=========================  ==========================================================================  =======
key                        what                                                                        default
=========================  ==========================================================================  =======
``[soak.window_max_rise]`` ``counter = limit``: the most an error counter of a port may rise in one      see
                           window; a counter of ``[errors] fail_on_rise`` not listed may not rise at     below
                           all (0)
``[soak.total_max_rise]``  ``counter = limit``: the most it may rise over the whole soak, the same way    see
                                                                                                       below
``false_alarm``            the family-wise false-alarm rate of the duty-cycle and trend tests: the      0.01
                           chance that a clean soak names any part, over every part tested
``window_false_alarm``     the rate at which one window's own judgement names a healthy link slow: a    0.01
                           link named in k of its n windows is intermittent only when k is improbable
                           under it
``trend_min_windows``      the fewest windows a series needs before a trend can be named               6
``trend_noise_k``          a trend's fall over the soak must exceed this many robust sigmas of the      3
                           series' residuals
``trend_min_fall``         and this fraction of the series' first fitted value                          0.05
=========================  ==========================================================================  =======

"Zero error accumulation across the soak window" (the acceptance guides' words) is the default: every
``fail_on_rise`` counter (symbol errors, link downs, link error recoveries, link integrity errors, carrier
changes) may rise by 0 in a window and by 0 in total. A counter of neither table nor ``fail_on_rise`` that
rises is said as a warning, as ``railbench check`` says it. A bad key or value is refused when the profile
loads (exit 2, with the file and line).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from bench import codec
from bench.profile.errors import ALL_COUNTERS

MAX_TREND_WINDOWS = 100_000
_RATE = codec.bounded(sign="positive", maximum=0.5)
"""A false-alarm rate is a probability; one above a half is no test."""


@dataclass(frozen=True)
class SoakLimits:
    """The ``[soak]`` table (see the module docstring), read by the codec."""

    window_max_rise: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    """Counter -> the most it may rise in one window (``[soak.window_max_rise]``)."""
    total_max_rise: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    """Counter -> the most it may rise over the soak (``[soak.total_max_rise]``)."""
    false_alarm: float = field(default=0.01, metadata=_RATE)
    window_false_alarm: float = field(default=0.01, metadata=_RATE)
    trend_min_windows: int = 6
    trend_noise_k: float = field(default=3.0, metadata=codec.bounded(maximum=100.0))
    trend_min_fall: float = field(default=0.05, metadata=codec.bounded(maximum=1.0))

    def __post_init__(self) -> None:
        for name in ("window_max_rise", "total_max_rise"):
            table: Mapping[str, int] = getattr(self, name)
            object.__setattr__(self, name, MappingProxyType(dict(table)))  # frozen as the record is
            for counter, limit in table.items():
                if counter not in ALL_COUNTERS:
                    known = ", ".join(sorted(ALL_COUNTERS))
                    raise codec.Invalid(
                        (name, counter), f"= {limit}: not an error counter railbench reads; known: {known}"
                    )
                if limit < 0:
                    raise codec.Invalid((name, counter), f"= {limit} must be a whole number >= 0")
        if not 3 <= self.trend_min_windows <= MAX_TREND_WINDOWS:
            raise codec.Invalid(
                "trend_min_windows", f"= {self.trend_min_windows} must be between 3 and {MAX_TREND_WINDOWS}"
            )

    def limits(self, fail_on_rise: tuple[str, ...]) -> tuple[Mapping[str, int], Mapping[str, int]]:
        """The per-window and whole-soak limits by counter: each table over 0 for every ``fail_on_rise``
        counter."""
        gated = dict.fromkeys(fail_on_rise, 0)
        return {**gated, **self.window_max_rise}, {**gated, **self.total_max_rise}
