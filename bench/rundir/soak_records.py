"""The evidence a soak's findings carry (docs/design.md, "Soak"): what its judges (``bench.soak.judge``) found
over the windows, one record per idea, each holding the part it names and the numbers that convict it.

* :class:`ErrorGate`: an error counter of a port (or a GPU's ECC or Xid) that rose over its limit in one
  window, or over the whole soak;
* :class:`Intermittent`: a part named slow, dead, flapping or erring in k of the n windows it was measured in
  (a persistent fault when k = n), with its duty cycle and the windows;
* :class:`Trend`: a link whose rate, or a GPU whose SM clock, falls window after window, with its slope.

``bench.rundir.findings.soak_finding`` makes a finding of each; ``bench.rundir.finding_words`` says it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from bench.codec import Written
from bench.rundir.part import Part

WINDOWS_SHOWN = 6
"""A record's window numbers said in its sentence; the rest are counted (the record keeps them all)."""

Scope = Literal["window", "soak"]


@dataclass(frozen=True)
class ErrorGate(Written):
    """An error counter over its limit: in one window (``scope`` ``window``: its worst window named) or summed
    over the soak (``soak``). A counter that saturated or was cleared in a window gives no count there
    (``bench.fabric.error_counters``): those windows are listed, never counted."""

    part: Part
    """The port (a ``link`` part: node, rail, device) or the GPU (a ``gpu`` part)."""
    counter: str
    """The kernel's counter name (``symbol_error``, ``link_downed``), ``ecc_uncorrected``, or ``xid <code>``."""
    scope: Scope
    worst_rise: int
    """Its largest rise in one window."""
    worst_window: int | None
    """The window of that rise (the first such, where several tie); None: it never rose (it gave no count)."""
    total: int
    """Its rises summed over every window."""
    limit: int | None
    """The limit of ``scope`` (``[soak]``); None: a counter no limit gates, whose rise only warns."""
    windows_risen: int
    """Windows in which it rose."""
    windows: int
    """Windows in which the part's counters were judged."""
    uncounted: tuple[int, ...] = ()
    """Windows in which it saturated or was cleared: no count could be given."""

    @property
    def over(self) -> bool:
        """Whether it went past its limit (a saturated or cleared counter alone never does)."""
        if self.limit is None:
            return False
        return (self.worst_rise if self.scope == "window" else self.total) > self.limit


@dataclass(frozen=True)
class Intermittent(Written):
    """A part named in ``windows_named`` of the ``windows_measured`` windows it was measured in: intermittent
    (0 < k < n) with its duty cycle k/n, or persistent (k = n). Hard evidence (a flap, a dead link, a counter
    that rose, wrong elements, a GPU's clocks held down by heat) convicts in one window; a window's judgement
    that named it slow is a statistical one, and convicts only when k is improbable under the windows'
    false-alarm rate (``p_value``)."""

    part: Part
    symptom: str
    """``flapping``, ``dead``, ``errors``, ``wrong``, ``throttled`` (a GPU's clocks held down for its health) or
    ``slow``: the worst the windows said."""
    windows_named: int
    windows_measured: int
    first: int
    """The first window that named it."""
    last: int
    windows: tuple[int, ...]
    """Every window that named it, in order."""
    hard: int = 0
    """Of ``windows_named``, the windows with hard evidence."""
    p_value: float | None = None
    """The binomial tail P(K >= k) of the windows that named it slow, under the windows' false-alarm rate;
    None where hard evidence convicts."""
    collective: str | None = None
    """A world collective's (its part the run): its name and size."""
    bytes: int | None = None

    @property
    def persistent(self) -> bool:
        """Named in every window it was measured in: a fault, not an intermittent one."""
        return self.windows_named == self.windows_measured

    @property
    def duty(self) -> float:
        """k/n."""
        return self.windows_named / self.windows_measured if self.windows_measured else 0.0


Quantity = Literal["busbw", "sm_clock"]
UNITS: dict[Quantity, str] = {"busbw": "Gb/s", "sm_clock": "MHz"}


@dataclass(frozen=True)
class Trend(Written):
    """A series that falls window after window: its Theil-Sen slope per hour, significant by the Mann-Kendall
    test after the correction over every series tested, and a fall over the soak larger than the series' noise
    (docs/design.md, "Soak: trends")."""

    part: Part
    what: Quantity
    """``busbw`` (a link's typical pair rate) or ``sm_clock`` (a GPU's SM clock)."""
    unit: str
    """Of ``first``, ``last`` and ``noise``; the slope's is this per hour."""
    slope_per_hour: float
    first: float
    """The fitted value at the first window of the series."""
    last: float
    """The fitted value at its last window."""
    p_value: float
    """Mann-Kendall's one-sided p-value of a fall, before the correction."""
    windows: int
    """Windows in the series."""
    first_window: int
    last_window: int
    hours: float
    """From the first window of the series to its last."""
    noise: float
    """The robust sigma (1.4826 x MAD) of the residuals around the fitted line."""
    temperature_first_C: float | None = None
    """A GPU's temperature at the series' first and last window, where the windows carry it."""
    temperature_last_C: float | None = None


@dataclass(frozen=True)
class SoakFound(Written):
    """A soak finding as run.json's ``soak`` section keeps it: the judges' record, whole, and the action decided for
    it (``bench.rundir.findings.soak_finding`` makes the finding again from these two)."""

    record: ErrorGate | Intermittent | Trend
    action: str = ""
