"""What ``railbench compare`` leaves in the run directory, and how it prints.

* ``compare.json``: every metric with its state, tonight's busbw, the baseline, the noise and the band;
* ``compare-junit.xml``: one JUnit testcase per metric (the run's own ``junit.xml`` is left alone);
* ``trend.csv``: the points of the trend chart (columns ``TREND_COLUMNS``): one row per baseline run and
  metric (state ``baseline``), then tonight's row with the metric's state; the baseline and its no-alarm
  band repeat on every row of a metric so a chart can draw them as a band over time.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TextIO

from bench import codec
from bench.history.compare import BAD_STATES, STATES, State
from bench.rundir.comparedoc import CompareDoc
from bench.rundir.docversion import COMPARE_FORMAT_VERSION
from bench.rundir.files import atomic_write_json, atomic_write_text
from bench.rundir.junit import Case, Status, write_junit
from bench.rundir.results_csv import results_csv_text
from bench.units import rate_unit_of

TREND_COLUMNS = ("run_time", "metric", "busbw_GBps", "baseline_GBps", "band_lo_GBps", "band_hi_GBps", "state")


@dataclass(frozen=True)
class OtherVersion:
    """Tonight against the runs of another NCCL version, for one metric."""

    nccl: str | None
    runs: int
    baseline_GBps: float | None
    change: float | None


@dataclass(frozen=True)
class MetricComparison:
    """The verdict on one metric."""

    metric: str
    collective: str
    scope: str
    group: str
    bytes: int
    state: State
    busbw_GBps: float | None
    """Tonight's value (None when missing)."""
    baseline_GBps: float | None
    sigma_GBps: float | None
    """Robust sigma of the baseline values (1.4826 x MAD)."""
    baseline_runs: int
    change: float | None
    """(tonight - baseline) / baseline."""
    threshold: float
    allowed_GBps: float | None
    """Half-width of the no-alarm band: max(threshold x baseline, noise_k x sigma, resolution)."""
    history_GBps: tuple[float | None, ...]
    """The baseline values, newest first."""
    other_nccl: tuple[OtherVersion, ...] = ()
    noise_estimated: bool = True
    """False when the baseline had fewer than ``min_runs`` values: a first night (``noise_source`` says what
    the noise was taken from instead)."""
    noise_source: str = "own"
    """``own``, ``pooled`` (the baseline's metrics of the scope), ``tonight`` (the spread of tonight's changes,
    one baseline run), ``floor`` or ``none`` (``bench.history.regression.NoiseSource``)."""
    evidence: str = ""
    """On a first night, past the threshold: the run of adjacent sizes it belongs to and whether that beat the
    noise (``"4 adjacent sizes fell 9.8% on average, beyond the 8.7% that noise could explain"``)."""
    changes: tuple[str, ...] = ()
    """What changed since the baseline (``NCCL 2.21.5 -> 2.23.4``), beside a regressed or improved metric."""

    @property
    def band(self) -> tuple[float | None, float | None]:
        if self.baseline_GBps is None or self.allowed_GBps is None:
            return None, None
        return self.baseline_GBps - self.allowed_GBps, self.baseline_GBps + self.allowed_GBps


def exit_status(results: Sequence[MetricComparison]) -> int:
    """1 when any metric regressed, went missing or failed; else 0."""
    return 1 if any(r.state in BAD_STATES for r in results) else 0


def _num(value: float | None, digits: int = 4) -> float | None:
    return None if value is None or not math.isfinite(value) else round(value, digits)


def write_compare_json(
    path: Path, results: Sequence[MetricComparison], header: Mapping[str, object], status: int | None = None
) -> None:
    """compare.json; ``status`` is the exit status when something beside the metrics decided it (error rises).
    ``header`` (the run, the baseline, the settings) is written as the caller built it."""
    counts = Counter(r.state for r in results)
    doc: dict[str, object] = {
        "format_version": COMPARE_FORMAT_VERSION,
        "tool": "railbench",
        "command": "compare",
        **header,
        "summary": {state: counts.get(state, 0) for state in STATES},
        "exit_status": exit_status(results) if status is None else status,
        "metrics": [
            {
                **{k: v for k, v in asdict(r).items() if k not in ("history_GBps", "other_nccl", "changes")},
                "changes": list(r.changes),
                "band_GBps": [_num(b) for b in r.band],
                "history_GBps": [_num(v) for v in r.history_GBps],
                "other_nccl": [asdict(o) for o in r.other_nccl],
            }
            for r in results
        ],
    }
    # Written as built (its keys in this order), after the reader's record has read it: a key the record does
    # not declare fails here, where it was made, not in every later report of the run.
    codec.decode(CompareDoc, codec.encode(doc), f"{path}: ")
    atomic_write_json(path, doc)


def write_compare_junit(
    path: Path, results: Sequence[MetricComparison], hostname: str = "", extra: Sequence[Case] = ()
) -> None:
    """compare-junit.xml: one case per metric, then ``extra`` (a rail's error rate)."""
    cases = list(extra)
    for r in results:
        status: Status = "fail" if r.state in BAD_STATES else "skip" if r.state == "new" else "pass"
        cases.append(
            Case(
                classname=f"railbench.compare.{r.collective}",
                name=r.metric,
                status=status,
                message=describe(r) if status != "pass" else "",
                details=describe(r),
            )
        )
    write_junit(path, "railbench.compare", cases, hostname=hostname)


def write_trend_csv(path: Path, results: Sequence[MetricComparison], run_times: Sequence[str], tonight: str) -> None:
    """``run_times`` are the baseline runs' start times, newest first (aligned with ``history_GBps``)."""
    rows: list[dict[str, Any]] = []
    for r in results:
        lo, hi = r.band
        common = {
            "metric": r.metric,
            "baseline_GBps": _num(r.baseline_GBps),
            "band_lo_GBps": _num(lo),
            "band_hi_GBps": _num(hi),
        }
        for when, value in reversed(list(zip(run_times, r.history_GBps, strict=True))):
            if value is not None:
                rows.append({"run_time": when, "busbw_GBps": _num(value), "state": "baseline", **common})
        rows.append({"run_time": tonight, "busbw_GBps": _num(r.busbw_GBps), "state": r.state, **common})
    atomic_write_text(path, results_csv_text(rows, TREND_COLUMNS))


def rate_unit(r: MetricComparison) -> tuple[str, float]:
    """The unit ``r``'s rates are said in, and the factor from GB/s to it."""
    return rate_unit_of(r.scope)


def describe(r: MetricComparison) -> str:
    """One line: what happened to the metric, in numbers (in its scope's unit, ``rate_unit``)."""
    unit, factor = rate_unit(r)
    tonight = "absent" if r.busbw_GBps is None else f"{r.busbw_GBps * factor:.2f} {unit}"
    if r.baseline_GBps is None:
        return f"{r.metric}: {r.state}: tonight {tonight}, no baseline"
    change = "" if r.change is None else f" ({r.change:+.1%})"
    noise = f", noise {r.sigma_GBps * factor:.2f}" if r.sigma_GBps else ""
    if r.sigma_GBps and not r.noise_estimated:
        noise = f", noise {r.sigma_GBps * factor:.2f} {_SOURCES.get(r.noise_source, r.noise_source)}"
    since = f"; {', '.join(r.changes)} since the baseline" if r.changes else ""
    why = f"; {r.evidence}" if r.evidence else ""
    band = f"allowed +-{(r.allowed_GBps or 0) * factor:.2f} (threshold {r.threshold:.0%})"
    if first_night(r):
        band = f"no band of its own yet: within the threshold {r.threshold:.0%} unchanged, past it the evidence decides"
    return (
        f"{r.metric}: {r.state}: tonight {tonight}{change} vs baseline {r.baseline_GBps * factor:.2f} {unit} over "
        f"{r.baseline_runs} run(s){noise}, {band}{why}{since}"
    )


def first_night(r: MetricComparison) -> bool:
    """A metric with a baseline too short for a noise band of its own (``bench.history.regression``, the first
    nights): its threshold is no band, a change past it is judged by its evidence (``r.evidence``)."""
    return r.baseline_GBps is not None and not r.noise_estimated


_SOURCES = {
    "pooled": "pooled over the baseline's metrics of the scope",
    "tonight": "read from the spread of tonight's changes (one baseline run)",
    "floor": "assumed at the noise floor (too few values to pool)",
}


def first_night_note(results: Sequence[MetricComparison], min_runs: int) -> str | None:
    """One line on the metrics judged as first nights: how many, and where their noise came from, per scope."""
    first = [r for r in results if r.baseline_GBps and not r.noise_estimated and r.noise_source in _SOURCES]
    if not first:
        return None
    scopes: dict[str, tuple[float, str]] = {}
    for r in first:
        scopes.setdefault(r.scope, ((r.sigma_GBps or 0.0) / (r.baseline_GBps or 1.0), r.noise_source))
    noise = "; ".join(f"{scope} {rel:.1%} {_SOURCES[where]}" for scope, (rel, where) in sorted(scopes.items()))
    return (
        f"{len(first)} metric(s) have fewer than {min_runs} baseline runs: noise per value {noise}; a size past "
        "its threshold is regressed only with adjacent sizes that moved with it, alone far outside the noise, or "
        "when it moved last night too"
    )


def print_table(
    results: Sequence[MetricComparison], out: TextIO, *, show_all: bool, min_runs: int, from_history: bool = True
) -> None:
    """The metrics that need a look (all of them with ``show_all``), then a one-line summary.

    A first-night metric past its threshold that the noise explains is shown too, with why it is unchanged;
    its ``allowed`` cell says ``first``, not a number: with fewer than ``min_runs`` baseline runs there is no
    band, the evidence beside it decides. New metrics are one line, not one each (the first night is every
    metric; each is in compare.json), unless ``show_all``.
    """
    new = [r for r in results if r.state == "new"]
    shown = [r for r in results if show_all or (r.state not in ("unchanged", "new")) or r.evidence]
    if shown:
        width = max(len("metric"), *(len(r.metric) for r in shown))
        head = f"{'metric':<{width}}  {'tonight':>9}  {'baseline':>9}  {'noise':>7}  {'allowed':>8}  {'unit':<4}"
        legend = "allowed = +- band around the baseline"
        if any(first_night(r) for r in shown):
            legend += f"; first = under {min_runs} baseline runs, no band yet: the evidence in brackets decides"
        print(f"{head}  {'change':>7}  state   ({legend})", file=out)
        for r in shown:
            unit, f = rate_unit(r)
            allowed = f"{'first':>8}" if first_night(r) else _cell(r.allowed_GBps, 8, f)
            cells = [_cell(r.busbw_GBps, 9, f), _cell(r.baseline_GBps, 9, f), _cell(r.sigma_GBps, 7, f), allowed]
            change = "" if r.change is None else f"{r.change:+.1%}"
            since = f"  ({', '.join(r.changes)} since the baseline)" if r.changes else ""
            why = f"  ({r.evidence})" if r.evidence else ""
            row = f"{r.metric:<{width}}  {'  '.join(cells)}  {unit:<4}  {change:>7}  {r.state}"
            print(f"{row}{why}{since}", file=out)
    if new and not show_all:
        print(_new_line(len(new), len(results), from_history), file=out)
    counts = Counter(r.state for r in results)
    parts = ", ".join(f"{counts.get(s, 0)} {s}" for s in STATES)
    print(f"{len(results)} metrics: {parts}", file=out)


def _new_line(new: int, total: int, from_history: bool) -> str:
    """One line for the metrics the baseline holds no value of (each is in compare.json)."""
    which = f"all {total} metrics are" if new == total else f"{new} of {total} metrics are"
    after = (
        "tonight's values become their baseline for the next compare"
        if from_history
        else "the baseline run has no value of them"
    )
    return f"{which} new (no baseline value): {after}; each is in compare.json"


def _cell(value: float | None, width: int = 9, factor: float = 1.0) -> str:
    return f"{'-':>{width}}" if value is None else f"{value * factor:>{width}.2f}"
