"""How a world sweep is judged: one item per collective, and the counters as evidence (pure functions).

A collective passes when its rows at the judged sizes (from the profile's ``judge_min_bytes``, 256M by default)
reach ``pass_fraction`` of their target and no row has a wrong element; it fails on either miss. When no row
reaches a judged size with a target it is only measured, and the item says why and how to reach a
judgement: smaller sizes run below the bandwidth a fabric reaches, so judging them would fail healthy
clusters (docs/design.md, "One verdict"). A failed item carries its findings (a ``CollectiveMiss`` per row that
misses, what the counters and NCCL's logs said), which ``bench.rundir.finding_words`` says at the edge
(docs/design.md, "Adding a finding").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from bench.finding import EvidenceFinding
from bench.frame.decide import Item
from bench.measure.targets import ONE_RANK
from bench.rundir.findings import CollectiveMiss, Finding, collective_finding, evidence_finding
from bench.rundir.results_csv import RowValue, row_float, row_int
from bench.units import format_size

GROUP = "railbench.run"


def _number(value: RowValue) -> float | None:
    """A row's number, whether it came from the sweep (a float) or from results.csv (a string)."""
    return None if value is None or value == "" else row_float(value)


def _busbw_said(row: Mapping[str, RowValue]) -> str:
    """A collective's busbw in GB/s, as nccl-tests, the terminal's table, the report and its charts give it
    (``docs/design.md``, "Units and formulas"): Gb/s is for links and rails."""
    return f"{(_number(row.get('busbw_Gbps')) or 0.0) / 8:.4g} GB/s"


Measured = Mapping[tuple[str, int], Sequence[float]]
"""Each row measured more than once (``(collective, bytes)``): every measurement's busbw in Gb/s, in the order
taken; the row holds the best of them."""


def collective_items(
    rows: Sequence[Mapping[str, RowValue]],
    min_bytes: int,
    pass_fraction: float,
    profile: str,
    untargeted: str = "",
    measured: Measured | None = None,
) -> list[Item]:
    """One item per collective of the world sweep ``rows`` (scope ``world``), in the order measured.
    ``untargeted``: why the profile gives this run no target at all (``Profile.choice.why_none``: no GPU, a GPU of
    no known generation), said for every collective it leaves unjudged; ``measured``: the rows measured again
    (``bench.sweep.rank``), whose misses say each measurement."""
    world = [r for r in rows if r.get("scope", "world") == "world"]
    items = []
    for collective in dict.fromkeys(str(r["collective"]) for r in world):
        mine = [r for r in world if r["collective"] == collective]
        items.append(_collective(collective, mine, min_bytes, pass_fraction, profile, untargeted, measured or {}))
    return items


def under_target(row: Mapping[str, RowValue], min_bytes: int, pass_fraction: float) -> bool:
    """Whether ``row`` is judged (a target, at ``min_bytes`` or more) and its busbw falls under ``pass_fraction``
    of that target: the rate miss of :func:`collective_items`, and what the sweep measures again before it."""
    return _judged(row, min_bytes) and (_number(row.get("efficiency")) or 0.0) < pass_fraction


def _judged(row: Mapping[str, RowValue], min_bytes: int) -> bool:
    """A row with a target at a judged size."""
    return (_number(row.get("target_Gbps")) or 0) > 0 and row_int(row["bytes"]) >= min_bytes


def _collective(
    collective: str,
    rows: Sequence[Mapping[str, RowValue]],
    min_bytes: int,
    pass_fraction: float,
    profile: str,
    untargeted: str,
    measured: Measured,
) -> Item:
    misses = [
        CollectiveMiss(collective, row_int(r["bytes"]), _number(r.get("busbw_Gbps")) or 0.0, wrong=wrong)
        for r in rows
        if (wrong := int(_number(r.get("wrong")) or 0))
    ]
    judged = [r for r in rows if _judged(r, min_bytes)]
    for r in rows:
        if under_target(r, min_bytes, pass_fraction):
            nbytes = row_int(r["bytes"])
            target, busbw = _number(r.get("target_Gbps")) or 0.0, _number(r.get("busbw_Gbps")) or 0.0
            misses.append(
                CollectiveMiss(
                    collective,
                    nbytes,
                    busbw,
                    0,
                    target,
                    _number(r.get("efficiency")) or 0.0,
                    pass_fraction,
                    tuple(measured.get((collective, nbytes), ())),
                )
            )
    details = "\n".join(f"{format_size(row_int(r['bytes']))}: busbw {_busbw_said(r)}" for r in rows)
    if misses:
        return Item(GROUP, collective, "fail", details=details, findings=tuple(map(collective_finding, misses)))
    if judged:
        return Item(GROUP, collective, "pass", "", details)
    return Item(GROUP, collective, "measured", not_judged(rows, min_bytes, profile, untargeted), details)


def not_judged(rows: Sequence[Mapping[str, RowValue]], min_bytes: int, profile: str, untargeted: str = "") -> str:
    """Why a collective's rows were not judged, and how to reach a judgement (the same words for every
    collective with the same cause, so the verdict says it once)."""
    if rows and all(_number(r.get("nranks")) == 1 for r in rows):
        return ONE_RANK
    if not any((_number(r.get("target_Gbps")) or 0) > 0 for r in rows):
        if untargeted:
            return f"no busbw target: {untargeted}"
        return f"profile {profile} sets no busbw target for these collectives"
    largest = max((row_int(r["bytes"]) for r in rows), default=0)
    return (
        f"the largest size {format_size(largest)} is below the judged {format_size(min_bytes)} "
        f"(the profile's judge_min_bytes): run with -e {format_size(min_bytes)} or more to judge against the targets"
    )


def counter_item(findings: Sequence[EvidenceFinding], per_host: Mapping[str, Mapping[str, object]]) -> Item:
    """The byte and error counters over the sweep, and what NCCL's logs said: evidence that can fail the run,
    never pass it alone. A failed item carries its failures, a warned one its warnings."""
    details = "\n".join(f"{host}: {devices}" for host, devices in per_host.items())
    failed = _said(findings, "fail")
    if failed:
        return Item(GROUP, "counters", "fail", details=details, decides=False, findings=failed)
    warned = _said(findings, "warn")
    return Item(GROUP, "counters", "warn" if warned else "pass", details=details, decides=False, findings=warned)


def _said(records: Sequence[EvidenceFinding], severity: str) -> tuple[Finding, ...]:
    return tuple(evidence_finding(r) for r in records if r.severity == severity)
