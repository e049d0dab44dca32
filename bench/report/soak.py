"""The certificate's soak section and the tables of its timeline charts (docs/reports.md, its sections).

A soak's run directory (``railbench soak``) holds run.json's ``soak`` section and ``windows.jsonl``;
``bench.history.soak_runs`` sums them up (``SoakSummary``) and this module says it: how many windows over how
long of the duration planned, whether the soak stopped early or was resumed, every error counter's rises
accumulated over the soak (a clean soak says 0), the parts named with how often (their duty cycle) and what to
do, each gate with its sentence as run.json's items carry it (rendered from the soak findings by the one
renderer, ``bench.rundir.finding_words``), and the world collectives over the windows.

The timeline tables are read in a second pass over the windows, for the named parts only: per window, the
part's busbw (a link's ``busbw_Gbps``; for a part over several links each link, or past
:data:`LINKS_APART` of them their median and the slowest), its error counters' rises and its flaps, and whether
it was named in that window. A soak of thousands of windows is drawn in at most :data:`MAX_POINTS` points per
series (each the slowest of its windows, their rises summed), so every spec stays well under 2 MB.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field

import pandas as pd

from bench.history.soak_runs import SoakPart, SoakSummary
from bench.report.certificate import plural
from bench.report.data import ChartData
from bench.rundir.part import Part
from bench.rundir.runjson import RunDoc
from bench.rundir.soak_windows import LinkWindow, SoakWindow
from bench.units import format_size

MAX_POINTS = 400
"""Points per series on a timeline: 1,000 windows are drawn as 334 points of 3 windows each."""
LINKS_APART = 8
"""A part over more links than this (a rail of 64 nodes, a spine layer) is drawn as the median and the slowest
of its links, not one line each."""
MAX_PART_CHARTS = 24
"""Named parts charted; more are listed in the table and counted in a note."""
NO_LINK = "(no link)"
"""The series of a window in which the part was on no link."""
PART_HEADERS = ("part", "symptom", "named in", "duty cycle", "windows", "action", "named by")
GATE_HEADERS = ("gate", "state", "what it says")
RISE_HEADERS = ("port", "counter", "accumulated", "rose in", "windows")
WORLD_HEADERS = ("collective", "size", "windows", "median busbw GB/s", "wrong elements")


def _duration(seconds: float) -> str:
    """``3 h 12 min``, ``4 min 30 s``, ``45 s``."""
    whole = round(seconds)
    if whole >= 3600:
        return f"{whole // 3600} h {whole % 3600 // 60} min"
    return f"{whole // 60} min {whole % 60} s" if whole >= 60 else f"{whole} s"


def _ran(soak: SoakSummary) -> str:
    planned = f" of {_duration(soak.planned_s)} planned" if soak.planned_s else ""
    shape = []
    if soak.window_s:
        shape.append(f"windows of about {_duration(soak.window_s)}")
    if soak.cover_every:
        every = "window" if soak.cover_every == 1 else f"{soak.cover_every} windows"
        shape.append(f"every pair covered every {every}")
    said = f" ({'; '.join(shape)})" if shape else ""
    return f"The soak ran {plural(soak.windows, 'window')} over {_duration(soak.elapsed_s)}{planned}{said}."


def _errors(soak: SoakSummary) -> str:
    """Every counter's rises summed over the soak: ``0`` is said, never left out; counters no window read are
    said as not read, never as 0."""
    if not soak.counters_read:
        return "Error counters: not read (no window knew a link's port), so nothing is said of their accumulation."
    by_counter = ", ".join(f"{name} {count:,}" for name, count in soak.counters.items() if count)
    counted = f" ({by_counter})" if by_counter else ""
    return f"Error counters accumulated over the soak: {soak.errors:,}{counted}; link flaps: {soak.flaps:,}."


def sentences(soak: SoakSummary, gates: Sequence[tuple[str, str, str]] = ()) -> tuple[str, ...]:
    """What the section says above its tables; ``gates``: the soak's items as :func:`gate_rows` gives them (none
    where run.json holds no verdict yet). Nothing said here claims more than the findings and the items say."""
    said = [_ran(soak)]
    if soak.stopped:
        said.append(f"It stopped before its planned end: {soak.stopped}; every window it finished is kept.")
    if soak.resumed:
        at = ", ".join(str(i) for i in soak.resumed)
        said.append(f"It was resumed {plural(len(soak.resumed), 'time')} (at window {at}).")
    said.append(_errors(soak))
    if soak.gpus_read:
        said.append(f"GPUs: {plural(soak.gpu_xid, 'Xid event')}, {soak.gpu_ecc_uncorrected:,} uncorrected ECC errors.")
    convicted = {n.part for n in soak.named if n.by_finding}
    failed = [name for name, state, _ in gates if state == "fail"]
    if convicted:
        said.append(f"{plural(len(convicted), 'part')} named by the soak's judges (below, each with its timeline).")
    elif failed:
        said.append(f"{plural(len(failed), 'gate')} failed: {', '.join(failed)} (below, with what each says).")
    if not soak.named:
        said.append("No part was named in any window.")
    elif not convicted:
        said.append("The parts the windows' own judgements named are listed below with how often.")
    return tuple(said)


def part_rows(named: Sequence[SoakPart]) -> tuple[tuple[str, ...], ...]:
    """One row per named part: where, its symptom, k of n windows, the duty cycle, first and last, the action."""
    rows = []
    for n in named:
        span = "—" if n.first is None else (f"{n.first}" if n.first == n.last else f"{n.first}–{n.last}")
        rows.append(
            (
                n.part.where or n.part.kind,
                n.symptom or "—",
                "—" if n.windows_named is None else f"{n.windows_named} of {n.windows}",
                "—" if n.duty is None else f"{n.duty:.0%}",
                span,
                n.action or "—",
                "the soak's judges" if n.by_finding else "a window's own judgement",
            )
        )
    return tuple(rows)


def gate_rows(run: RunDoc) -> tuple[tuple[str, str, str], ...]:
    """The soak's gates as run.json's items say them: one item per gate, its sentence made from its findings."""
    rows = []
    for item in run.items or ():
        if "soak" in item.group or any(f.step == "soak" for f in item.findings):
            rows.append((item.name, item.state, item.reason or "—"))
    return tuple(rows)


def rise_rows(soak: SoakSummary) -> tuple[tuple[str, ...], ...]:
    """Each port's counter that rose over the soak: its total and the windows it rose in."""
    rows = []
    for r in soak.rises:
        where = f"{r.node} rail {r.rail}" + (f" ({r.device})" if r.device else "")
        span = f"{r.first}" if r.first == r.last else f"{r.first}–{r.last}"
        rows.append((where, r.counter, f"{r.total:,}", f"{r.windows} of {soak.windows}", span))
    return tuple(rows)


def world_rows(soak: SoakSummary) -> tuple[tuple[str, ...], ...]:
    return tuple(
        (c.collective, format_size(c.bytes), str(c.windows), f"{c.median_busbw_GBps:,.2f}", f"{c.wrong:,}")
        for c in soak.collectives
    )


Table = tuple[str, tuple[str, ...], tuple[tuple[str, ...], ...], int | None]
"""A section's table: its title, headers, rows and the column whose cells are a state (None: none)."""


def tables(soak: SoakSummary, run: RunDoc) -> tuple[Table, ...]:
    """The section's tables: the parts named, the gates, the world collectives."""
    out: list[Table] = []
    if soak.named:
        out.append(("Parts named over the soak", PART_HEADERS, part_rows(soak.named), None))
    if soak.rises:
        out.append(("Error counters that rose over the soak", RISE_HEADERS, rise_rows(soak), None))
    gates = gate_rows(run)
    if gates:
        out.append(("Gates", GATE_HEADERS, gates, 1))
    if soak.collectives:
        out.append(("World collectives over the windows", WORLD_HEADERS, world_rows(soak), None))
    return tuple(out)


# --- the timeline tables ----------------------------------------------------------------------------------


def chart_name(part: Part, taken: Collection[str] = ()) -> str:
    """``soak-node03-rail-5-mlx5-5-1``: the part's place, as a file name not in ``taken`` (two parts whose places
    read alike get ``-2``, ``-3``...)."""
    slug = re.sub(r"[^a-z0-9]+", "-", (part.where or part.kind).lower()).strip("-") or part.kind
    name = base = f"soak-{slug[:80]}"
    for suffix in range(2, len(taken) + 3):
        if name not in taken:
            break
        name = f"{base}-{suffix}"
    return name


def timeline_title(named: SoakPart) -> str:
    """``node03 rail 5 (mlx5_5:1): named in 3 of 9 windows``; a part with no count of windows, its symptom."""
    count = "" if named.windows_named is None else f"named in {named.windows_named} of {named.windows} windows"
    return f"{named.part.where or named.part.kind}: {count or named.symptom or 'named'}"


def _covered(part: Part, links: Iterable[LinkWindow]) -> list[LinkWindow]:
    """The links a part is on (``Part.covers``); a part on a GPU is on none."""
    if part.intra or part.kind in ("gpu", "gpu-pair"):
        return []
    # A part with no node of its own (a rail, a switch) is on every node: only its rail is asked
    # (``Part.covers`` refuses any node given to a part that has none).
    return [link for link in links if part.covers(node=link.node if part.node is not None else None, rail=link.rail)]


@dataclass
class _Series:
    """One part's timeline as it is read: rows of (window, series, busbw, errors, flaps, named)."""

    part: Part
    rows: list[tuple[int, str, float, int, int, int]] = field(default_factory=list)

    def add(self, window: SoakWindow) -> None:
        links = _covered(self.part, window.links)
        # A link's own flag says its window named it or a part on it: it speaks for a part of one link only.
        one_link = self.part.node is not None and self.part.rail is not None and self.part.peer is None
        named = int(
            any(said.part == self.part for said in window.named) or (one_link and any(link.named for link in links))
        )
        errors = sum(max(rise, 0) for link in links for rise in link.errors.values())
        flaps = sum(link.flaps for link in links)
        rates = [(f"{link.node} rail {link.rail}", link.busbw_Gbps) for link in links]
        if len(rates) > LINKS_APART:
            measured = [rate for _, rate in rates if rate is not None]
            rates = [
                (f"median of {len(links)} links", statistics.median(measured) if measured else None),
                ("slowest link", min(measured) if measured else None),
            ]
        for series, rate in rates or [(NO_LINK, None)]:
            self.rows.append((window.index, series, math.nan if rate is None else rate, errors, flaps, named))


def _bucketed(frame: pd.DataFrame, windows: int, value: str, how: str) -> tuple[pd.DataFrame, str]:
    """``frame`` in at most MAX_POINTS points per series: each the ``how`` of ``value`` over its windows, the
    rises summed and named where any window was; and the note that says so."""
    if windows <= MAX_POINTS or not len(frame):
        frame = frame.assign(window_last=frame["window"])
        return frame, ""
    size = math.ceil(windows / MAX_POINTS)
    frame = frame.assign(bucket=frame["window"] // size)
    sums = {c: "sum" for c in ("errors", "flaps") if c in frame}
    agg = {"window": "min", value: how, **sums, **({"named": "max"} if "named" in frame else {})}
    keys = ["bucket", *(c for c in ("series", "collective") if c in frame)]
    out = frame.groupby(keys, sort=True).agg(agg).reset_index()
    last = frame.groupby("bucket")["window"].max()
    out["window_last"] = out["bucket"].map(last)
    word = "slowest" if how == "min" else "median"
    return out.drop(columns="bucket"), f"each point is the {word} of {size} windows"


def part_tables(windows: Iterable[SoakWindow], named: Sequence[SoakPart]) -> list[tuple[SoakPart, ChartData]]:
    """Each charted part's timeline (window, window_last, series, series_rank, busbw_Gbps, errors, flaps,
    named), read in one pass over ``windows``."""
    first: dict[Part, SoakPart] = {}
    for n in named:
        first.setdefault(n.part, n)  # one timeline per part, titled by its first row
    charted = list(first.values())[:MAX_PART_CHARTS]
    series = [_Series(n.part) for n in charted]
    count = 0
    for window in windows:
        count += 1
        for s in series:
            s.add(window)
    out = []
    for n, s in zip(charted, series, strict=True):
        columns = ["window", "series", "busbw_Gbps", "errors", "flaps", "named"]
        frame = pd.DataFrame(s.rows, columns=columns)
        if set(frame["series"]) <= {NO_LINK}:
            continue  # on no link in any window (a GPU): a busbw timeline would be empty; its table row says it
        frame, note = _bucketed(frame, count, "busbw_Gbps", "min")
        order = {name: rank for rank, name in enumerate(dict.fromkeys(frame["series"]))}
        frame = frame.assign(series_rank=frame["series"].map(order))
        out.append((n, ChartData(frame[["window", "window_last", "series", "series_rank", *columns[2:]]], note)))
    return out


def world_table(soak: SoakSummary) -> ChartData:
    """The world collectives' busbw over the windows (window, window_last, collective, busbw_GBps, target_GBps)."""
    rows = [
        (p.window, f"{p.collective} {format_size(p.bytes)}", p.busbw_Gbps / 8.0, _GBps(p.target_Gbps))
        for p in soak.world
    ]
    frame = pd.DataFrame(rows, columns=["window", "collective", "busbw_GBps", "target_GBps"])
    targets = frame.groupby("collective")["target_GBps"].max() if len(frame) else pd.Series(dtype=float)
    frame, note = _bucketed(frame.drop(columns="target_GBps"), soak.windows, "busbw_GBps", "median")
    frame = frame.assign(target_GBps=frame["collective"].map(targets))
    return ChartData(frame[["window", "window_last", "collective", "busbw_GBps", "target_GBps"]], note)


def _GBps(Gbps: float | None) -> float:
    return math.nan if Gbps is None else Gbps / 8.0
