"""Each rate in one unit in every output of a run (issue 43; ``docs/design.md``, "Units and formulas"): a
collective's busbw in GB/s, as nccl-tests prints it (JUnit, run.json's reasons, the terminal, the report's
table and chart), with its target in GB/s beside it; a rail's or a pair's in Gb/s, a link's unit (rails'
lines, charts and the report's rails table)."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest

from bench.measure.table import write_summary
from bench.report.build import ReportOptions, write_report
from bench.sweep.judge import collective_items
from tests.report_data import write_run_dir

WORLD_ROW = {
    "collective": "all_gather",
    "scope": "world",
    "bytes": 256 << 20,
    "busbw_GBps": 200.0,
    "busbw_Gbps": 1600.0,
    "target_Gbps": 3200.0,
    "efficiency": 0.5,
    "wrong": 0,
}


def test_a_collectives_busbw_is_gbytes_in_junit_and_on_the_terminal() -> None:
    (item,) = collective_items([WORLD_ROW], 1 << 20, 0.9, "lambda-1cc")
    assert item.state == "fail"
    assert item.reason == "all_gather at 256M: busbw 200 GB/s is 50% of its 400 GB/s target (3200 Gb/s; needs 90%)"
    assert item.details == "256M: busbw 200 GB/s"
    out = io.StringIO()
    write_summary(out, [WORLD_ROW], "reports/runs/x")
    line = next(x for x in out.getvalue().splitlines() if x.startswith("# railbench all_gather"))
    assert line == "# railbench all_gather: busbw 200.00 GB/s (1600.0 Gb/s) at 268435456 B = 50% of 400 GB/s (3200 Gb/s)"


def _table(page: str, heading: str) -> list[list[str]]:
    """The first markdown table after ``heading``: header and rows as cells (the ``---`` line left out)."""
    lines = page.split(heading, 1)[1].splitlines()
    start = next(i for i, x in enumerate(lines) if x.startswith("|"))
    block = []
    for x in lines[start:]:
        if not x.startswith("|"):
            break
        block.append([c.strip() for c in x.strip("|").split("|")])
    return [row for row in block if not set("".join(row)) <= set("-: ")]


def _axis_units(spec: dict[str, object]) -> set[str]:
    """The units of a chart's bandwidth axis titles (``bus bandwidth (GB/s = 1e9 bytes/s)``)."""
    return set(re.findall(r'"title": "bus bandwidth \((G[Bb]/s) =', json.dumps(spec)))


@pytest.mark.slow
def test_the_reports_tables_and_charts_give_each_rate_in_the_unit_of_its_other_outputs(tmp_path: Path) -> None:
    paths = write_report(write_run_dir(tmp_path / "run"), options=ReportOptions(images=False))
    page = paths.report_md.read_text(encoding="utf-8")
    world = _table(page, "\n## World sweep")
    assert world[0][4:7] == ["worst busbw GB/s (group)", "median GB/s", "target GB/s"], world[0]
    rails = _table(page, "\n## Rails")
    head = rails[0]
    assert head[4:7] == ["worst busbw Gb/s (group)", "median Gb/s", "target Gb/s"], head
    charts = paths.report_md.parent / "charts"
    assert _axis_units(json.loads((charts / "busbw-vs-size.vl.json").read_text())) == {"GB/s"}
    for name in ("rails", "rail-all-reduce"):
        assert _axis_units(json.loads((charts / f"{name}.vl.json").read_text())) == {"Gb/s"}, name
    # the rails table's rail group: its worst in Gb/s, as the defect's line says it, and the line rate as target
    (rail,) = [r for r in rails[1:] if r[0] == "rail"]
    assert rail[6] == "400" and float(rail[4].split()[0]) == pytest.approx(171.3, abs=0.1), rail
    assert re.search(r"\| 17[12] Gb/s = 43% of 400 Gb/s", page)
