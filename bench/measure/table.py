"""The nccl-tests table, so railbench output reads like the tool operators already know."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TextIO

from bench.rundir.results_csv import RowValue, row_float, row_int
from bench.units import format_size

HEADER = (
    "#       size         count      type   redop    root     time   algbw   busbw  #wrong\n"
    "#        (B)    (elements)                               (us)  (GB/s)  (GB/s)        "
)


def _time(us: float) -> str:
    # nccl-tests keeps the column 8 wide: two decimals while they fit, then fewer.
    for digits in (2, 1, 0):
        text = f"{us:.{digits}f}"
        if len(text) <= 8:
            return text
    return f"{us:.0f}"


def section_header(collective: str, nranks: int, nnodes: int, backend: str, placement: str, graph: bool = False) -> str:
    """The lines printed before a collective's rows, saying how calls were timed.

    ``graph``: the timed calls were one CUDA graph (nccl-tests ``-G``), comparable one-to-one with nccl-tests
    at every size; ``eager``: each call was launched by torch, whose per-call overhead shows at small sizes.
    """
    node_word = "node" if nnodes == 1 else "nodes"
    timing = "graph" if graph else "eager"
    return f"#\n# {collective}: {nranks} ranks on {nnodes} {node_word}, {backend}, {placement}, {timing}\n{HEADER}"


def row_line(row: Mapping[str, RowValue]) -> str:
    """One result row in nccl-tests' fixed-width layout."""
    wrong = row.get("wrong")
    wrong_text = "N/A" if wrong in (None, "") else str(wrong)
    return (
        f"{row['bytes']:>12} {row['count']:>13} {row['dtype']:>9} {row['redop']:>7} {row['root']:>7} "
        f"{_time(row_float(row['time_us'])):>8} {row_float(row['algbw_GBps']):>7.2f} "
        f"{row_float(row['busbw_GBps']):>7.2f} {wrong_text:>7}"
    )


def write_summary(out: TextIO, rows: Sequence[Mapping[str, RowValue]], run_dir: str, *, judged_from: int = 0) -> None:
    """nccl-tests' closing lines plus railbench's headline: the busbw at the largest size per collective, and
    its share of the target only where that size is judged (``judged_from`` up)."""
    if not rows:
        out.write("# no sizes were measured\n")
        return
    avg = sum(row_float(r["busbw_GBps"]) for r in rows) / len(rows)
    wrong = sum(row_int(r.get("wrong")) for r in rows)
    out.write(f"# Out of bounds values : {wrong} {'OK' if wrong == 0 else 'FAILED'}\n")
    out.write(f"# Avg bus bandwidth    : {avg:g}\n#\n")
    by_coll: dict[str, Mapping[str, RowValue]] = {}
    for r in rows:
        name = str(r["collective"])
        if name not in by_coll or row_int(r["bytes"]) >= row_int(by_coll[name]["bytes"]):
            by_coll[name] = r
    for name, r in by_coll.items():
        target = ""
        if r.get("efficiency") not in (None, ""):
            goal = row_float(r["target_Gbps"])
            # the target in the busbw's own unit (GB/s), its line rate beside it: 95% of 400 GB/s, not of 3200 Gb/s
            goal_said = f"{goal / 8:.4g} GB/s ({goal:.4g} Gb/s)"
            target = (
                f" = {100 * row_float(r['efficiency']):.0f}% of {goal_said}"
                if row_int(r["bytes"]) >= judged_from
                else f" (target {goal_said} applies from {format_size(judged_from)})"
            )
        out.write(
            f"# railbench {name}: busbw {row_float(r['busbw_GBps']):.2f} GB/s ({row_float(r['busbw_Gbps']):.1f} Gb/s)"
            f" at {r['bytes']} B{target}\n"
        )
    out.write(f"# results: {run_dir}\n")
