"""Each rate in one unit in every output of a run (issue 43; ``docs/design.md``, "Units and formulas"): a
collective's busbw in GB/s, as nccl-tests prints it (JUnit, run.json's reasons, the terminal, the report's
table and chart), with its target in GB/s beside it; a rail's or a pair's in Gb/s, a link's unit (rails'
lines, charts and the report's rails table)."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pandas as pd
import pytest
import vl_convert

from bench.commands.compare import CompareConfig
from bench.commands.compare import run as compare
from bench.frame.decide import said
from bench.history.store import add_run
from bench.measure.table import write_summary
from bench.report import charts, trend
from bench.report.build import ReportOptions, write_report
from bench.report.certificate import compare_rows
from bench.report.theme import spec_dict, vl_convert_version
from bench.rundir.comparedoc import ComparedMetric, CompareDoc
from bench.rundir.docversion import COMPARE_FORMAT_VERSION
from bench.sweep.items import collective_items
from tests.support.history_fixtures import make_run_dir
from tests.support.report_data import write_run_dir

WORLD_KEY = "all_reduce/world/world/1073741824"
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
    assert said(item) == "all_gather at 256M: busbw 200 GB/s is 50% of its 400 GB/s target (3200 Gb/s; needs 90%)"
    assert item.details == "256M: busbw 200 GB/s"
    out = io.StringIO()
    write_summary(out, [WORLD_ROW], "reports/runs/x")
    line = next(x for x in out.getvalue().splitlines() if x.startswith("# railbench all_gather"))
    assert (
        line == "# railbench all_gather: busbw 200.00 GB/s (1600.0 Gb/s) at 268435456 B = 50% of 400 GB/s (3200 Gb/s)"
    )


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


def test_compare_says_a_pairs_rate_in_gbits_and_a_collectives_in_gbytes(tmp_path: Path) -> None:
    """compare's statistics are in GB/s (results.csv's busbw_GBps); what it prints and writes to JUnit says a
    pair's rate in Gb/s, as rails says it, and a world collective's in GB/s."""
    pair = ("sendrecv", "pair", "node01-node02/rail0", 1 << 30)
    world = ("all_reduce", "world", "world", 1 << 30)
    runs, history = tmp_path / "reports" / "runs", tmp_path / "reports" / "history.sqlite"
    for night in range(5):
        add_run(
            history,
            make_run_dir(
                runs / f"n{night}",
                started_utc=f"2026-11-0{night + 1}T02:00:00Z",
                busbw={pair: 48.0 + 0.1 * night, world: 380.0 + night},
            ),
        )
    tonight = make_run_dir(runs / "tonight", started_utc="2026-11-20T02:00:00Z", busbw={pair: 24.0, world: 300.0})
    add_run(history, tonight)
    out = io.StringIO()
    assert compare(CompareConfig(run_dir=tonight), out=out) == 1
    lines = {x.split()[0]: x.split() for x in out.getvalue().splitlines() if x.startswith(("sendrecv/", "all_reduce/"))}
    assert lines["sendrecv/pair/node01-node02/rail0/1073741824"][1:3] + lines[
        "sendrecv/pair/node01-node02/rail0/1073741824"
    ][5:6] == ["192.00", "385.60", "Gb/s"]
    assert lines["all_reduce/world/world/1073741824"][1:3] + lines["all_reduce/world/world/1073741824"][5:6] == [
        "300.00",
        "382.00",
        "GB/s",
    ]
    junit = (tonight / "compare-junit.xml").read_text()
    assert "tonight 192.00 Gb/s (-50.2%) vs baseline 385.60 Gb/s" in junit
    assert "tonight 300.00 GB/s (-21.5%) vs baseline 382.00 GB/s" in junit
    doc = json.loads((tonight / "compare.json").read_text())
    assert {m["metric"]: m["busbw_GBps"] for m in doc["metrics"]}[
        "sendrecv/pair/node01-node02/rail0/1073741824"
    ] == 24.0


@pytest.mark.slow
def test_the_trend_chart_draws_a_pairs_nights_in_gbits() -> None:
    """The trend chart's panels as Vega draws them (vl-convert, as the report does): a rail group at 10 GB/s on an
    axis around 80 Gb/s, as rails says it; a world collective at 380 GB/s; trend.csv keeps GB/s."""
    rows = [
        {
            "run_time": pd.Timestamp("2026-11-01", tz="UTC") + pd.Timedelta(days=night),
            "metric": metric,
            "busbw_GBps": value,
            "baseline_GBps": value,
            "band_lo_GBps": value * 0.95,
            "band_hi_GBps": value * 1.05,
            "state": "baseline",
        }
        for night in range(3)
        for metric, value in (("all_reduce/rail/rail0/1073741824", 10.0), (WORLD_KEY, 380.0))
    ]
    table = trend.trend_table(pd.DataFrame(rows), min_bytes=1 << 20).frame
    svg = vl_convert.vegalite_to_svg(spec_dict(charts.trend_chart(table)), vl_version=vl_convert_version())
    ticks = [int(t) for t in re.findall(r">(\d+)</text>", svg)]
    assert any(70 <= t <= 90 for t in ticks) and any(350 <= t <= 400 for t in ticks), ticks
    assert not any(5 <= t <= 15 for t in ticks), ticks  # the rail is not drawn in GB/s
    assert "all_reduce · rail rail0 · 1G · Gb/s" in svg and "all_reduce · world · 1G · GB/s" in svg


def test_the_certificates_flagged_metrics_say_each_rate_in_its_scopes_unit() -> None:
    """A rail's or pair's rate in Gb/s, a collective's in GB/s, on the certificate as in compare's own table."""
    common = {"collective": "all_reduce", "bytes": 4 << 20, "state": "regressed"}
    rail = ComparedMetric(
        metric="rail/all_reduce/rail1/4M", scope="rail", group="rail1", busbw_GBps=0.035, baseline_GBps=0.07, **common
    )
    world = ComparedMetric(
        metric="world/all_reduce/4M", scope="world", group="world", busbw_GBps=200.0, baseline_GBps=400.0, **common
    )
    rows = compare_rows(CompareDoc(format_version=COMPARE_FORMAT_VERSION, metrics=(rail, world)))
    assert [(r[0], r[2], r[3]) for r in rows] == [
        ("rail/all_reduce/rail1/4M", "0.28 Gb/s", "0.56 Gb/s"),
        ("world/all_reduce/4M", "200.00 GB/s", "400.00 GB/s"),
    ]
