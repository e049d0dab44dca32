"""What the operator reads of a soak: the certificate's Soak section, the timeline charts, OpenMetrics and the
history (bench.history.soak_runs, bench.report.soak, bench.report.soak_charts, bench.report.soak_metrics)."""

from __future__ import annotations

import io
import itertools
import json
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from bench import codec
from bench.exits import UserError
from bench.history import manage, soak_runs
from bench.history.manage import HistoryConfig
from bench.history.queries import metrics_of
from bench.history.soak_runs import SoakPart, WorldPoint, read_soak, soak_findings, summarise
from bench.history.store import add_run, opened
from bench.report import soak, soak_charts
from bench.report.build import ReportOptions, write_report
from bench.report.openmetrics import openmetrics_text
from bench.report.theme import spec_dict
from bench.rundir.part import LocalGpu, Part
from bench.rundir.soak_records import ErrorGate, Intermittent, SoakFound, Trend
from bench.rundir.soak_windows import (
    WINDOWS_FILE,
    LinkWindow,
    NamedInWindow,
    SoakSection,
    SoakWindow,
    iter_windows,
    window_line,
)
from tests.support.report_schema import validate
from tests.support.soak_data import SoakModel, window, write_soak_dir

FLAPPING = Part(kind="link", node="gpu-node-02", rail=3, device="mlx5_4:1")


@pytest.fixture(scope="module")
def soak_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_soak_dir(tmp_path_factory.mktemp("soak") / "run", SoakModel(gpus=True))


def test_a_clean_soak_says_zero_errors_and_names_nothing() -> None:
    model = SoakModel(flapping=None, rising=None, windows=4)
    summary = summarise((window(model, i) for i in range(4)), SoakSection(240.0, 60.0, 3, 4, 240.0))
    said = soak.sentences(summary)
    assert summary.errors == 0 and summary.flaps == 0 and not summary.named and not summary.rises
    assert "Error counters accumulated over the soak: 0; link flaps: 0." in said
    assert "No part was named in any window." in said
    assert said[0] == (
        "The soak ran 4 windows over 4 min 0 s of 4 min 0 s planned (windows of about 1 min 0 s; every pair "
        "covered every 3 windows)."
    )
    assert [c.windows for c in summary.collectives] == [4]


def test_the_windows_sum_to_the_soaks_counts_and_duty_cycles() -> None:
    model = SoakModel(stopped="SIGTERM", resumed=(4,))
    section = SoakSection(1080.0, 60.0, 3, 9, 540.0, resumed=(4,), stopped="SIGTERM")
    summary = summarise((window(model, i) for i in range(9)), section)
    assert (summary.errors, dict(summary.counters), summary.flaps) == (12, {"symbol_error": 12}, 3)
    (rise,) = summary.rises
    assert (rise.node, rise.rail, rise.counter, rise.total, rise.windows, rise.first) == (
        "gpu-node-04",
        6,
        "symbol_error",
        12,
        1,
        5,
    )
    (named,) = summary.named
    assert (named.part, named.windows_named, named.windows, named.first, named.last) == (FLAPPING, 3, 9, 1, 7)
    assert not named.by_finding
    said = soak.sentences(summary)
    assert "It stopped before its planned end: SIGTERM; every window it finished is kept." in said
    assert "It was resumed 1 time (at window 4)." in said
    assert said[-1] == "The parts the windows' own judgements named are listed below with how often."
    gates = (("errors-per-window", "fail", "..."), ("intermittent", "pass", "..."))
    assert "1 gate failed: errors-per-window (below, with what each says)." in soak.sentences(summary, gates)
    assert soak.part_rows(summary.named) == (
        ("gpu-node-02 rail 3 (mlx5_4:1)", "flaky", "3 of 9", "33%", "1–7", "—", "a window's own judgement"),
    )


def test_a_soak_finding_is_read_from_its_records_fields_and_replaces_the_windows_count() -> None:
    """The judges' records as run.json's ``soak.findings`` holds them (written, then read back through the codec):
    an Intermittent's k of n, first and last; an ErrorGate's windows risen and its worst window; a Trend's series,
    with no duty."""
    action = "reseat or replace the cable of gpu-node-02 mlx5_4 port 1"
    intermittent = Intermittent(FLAPPING, "flapping", 3, 9, 1, 7, (1, 4, 7), hard=3)
    port_part = Part(kind="link", node="gpu-node-04", rail=6, device="mlx5_7:1")
    gate = ErrorGate(port_part, "symbol_error", "window", 12, 5, 12, 0, 1, 9)
    slow_part = Part(kind="link", node="gpu-node-01", rail=0, device="mlx5_1:1")
    trend = Trend(slow_part, "busbw", "Gb/s", -12.5, 380.0, 341.0, 1e-8, 9, 0, 8, 0.15, 2.1)
    kept = (
        SoakFound(intermittent, action),
        SoakFound(gate),
        SoakFound(replace(gate, scope="soak")),  # the same port over the soak's limit: one row
        SoakFound(trend),
    )
    section = codec.decode(SoakSection, codec.encode(SoakSection(540.0, 60.0, 3, windows=9, findings=kept)))
    assert section.findings == kept
    found = soak_findings(section)
    assert found == (
        SoakPart(FLAPPING, "intermittent", 3, 9, 1, 7, action, "fail", by_finding=True),
        SoakPart(port_part, "errors", 1, 9, 5, 5, "", "fail", by_finding=True),
        SoakPart(slow_part, "trend", None, 9, 0, 8, "", "fail", by_finding=True),
    )
    assert soak.part_rows(found)[2][2:5] == ("—", "—", "0–8")
    model = SoakModel(rising=None)
    summary = summarise((window(model, i) for i in range(9)), None, found)
    assert summary.named == found  # one row per part: the finding's, not the windows' too


@pytest.mark.slow
def test_the_certificate_has_the_soak_section_and_a_timeline_per_named_part(soak_dir: Path) -> None:
    paths = write_report(soak_dir, out_dir=soak_dir / "out", options=ReportOptions(images=False))
    names = [c.name for c in paths.charts]
    assert names == ["soak-world", "soak-gpu-node-04-rail-6-mlx5-7-1", "soak-gpu-node-02-rail-3-mlx5-4-1"]
    md = paths.report_md.read_text()
    section = md[md.index("## Soak") :]
    assert "Error counters accumulated over the soak: 12 (symbol\\_error 12); link flaps: 3." in section
    assert "GPUs: 0 Xid events, 0 uncorrected ECC errors." in section
    assert "| gpu-node-02 rail 3 (mlx5\\_4:1) | intermittent | 3 of 9 | 33% | 1–7 |" in section
    assert "| gpu-node-04 rail 6 (mlx5\\_7:1) | symbol\\_error | 12 | 1 of 9 | 5 |" in section
    assert (
        "| intermittent | fail | gpu-node-02 rail 3 (mlx5\\_4:1): intermittent, flapping in 3 of 9 windows (duty 33%), "
        "first window 1, last 7: windows 1, 4, 7; action: check the cable and the switch port of gpu-node-02 mlx5\\_4 "
        "port 1: its link went down;"
    ) in section
    html = paths.report_html.read_text()
    assert 'id="section-soak"' in html and "soak-gpu-node-02-rail-3-mlx5-4-1" in html
    timeline = pd.read_csv(soak_dir / "out" / "charts" / "soak-gpu-node-02-rail-3-mlx5-4-1.csv")
    assert timeline.loc[timeline["named"] == 1, "window"].tolist() == [1, 4, 7]
    assert timeline.loc[timeline["named"] == 1, "flaps"].tolist() == [1, 1, 1]
    assert timeline["busbw_Gbps"].min() < 0.4 * timeline["busbw_Gbps"].max()
    for chart in paths.charts:
        validate(json.loads(chart.spec.read_text()))


def test_openmetrics_says_each_windows_rises_and_the_totals(soak_dir: Path) -> None:
    families = {f.name: f for f in text_string_to_metric_families(openmetrics_text(soak_dir))}
    (total,) = families["railbench_soak_link_errors"].samples
    assert total.value == 12.0
    (rise,) = families["railbench_soak_window_port_errors"].samples
    assert rise.labels == {
        "cluster": "lambda-1cc-test",
        "node": "gpu-node-04",
        "rail": "6",
        "device": "mlx5_7:1",
        "counter": "symbol_error",
        "window": "5",
    }
    assert [s.labels["window"] for s in families["railbench_soak_window_link_flaps"].samples] == ["1", "4", "7"]
    samples = families["railbench_soak_part_duty_ratio"].samples
    duty = {(s.labels["part"], s.labels["symptom"]): s.value for s in samples}
    assert duty[("gpu-node-02 rail 3 (mlx5_4:1)", "intermittent")] == pytest.approx(1 / 3)
    assert duty[("gpu-node-04 rail 6 (mlx5_7:1)", "errors")] == pytest.approx(1 / 9)


def test_the_history_keeps_the_soak_and_a_run_that_is_no_soak_has_no_row(soak_dir: Path, tmp_path: Path) -> None:
    history = tmp_path / "history.sqlite"
    run_id = add_run(history, soak_dir)
    with opened(history) as conn:
        stored = soak_runs.of_runs(conn, [run_id, run_id + 1])
    assert list(stored) == [run_id]
    held = stored[run_id]
    assert (held.windows, held.elapsed_s, held.errors, held.flaps) == (9, 540.0, 12, 3)
    # the port whose counter rose is named too (its error gate; the judges' findings are in run.json now)
    assert held.named == ("gpu-node-04 rail 6 (mlx5_7:1)", "gpu-node-02 rail 3 (mlx5_4:1)")
    (world,) = held.collectives
    assert (world.collective, world.bytes, world.windows) == ("all_reduce", 1 << 30, 9)
    assert world.median_busbw_GBps == pytest.approx(371.0, rel=0.01)
    assert read_soak(soak_dir) is not None
    with opened(history) as conn:
        (metric,) = metrics_of(conn, [run_id])[run_id]
    # compare reads a soak's world collectives as key metrics: their median over the windows, one sample each
    assert (metric.key, metric.samples) == ("all_reduce/world/soak/1073741824", 9)
    assert metric.busbw_GBps == world.median_busbw_GBps
    out = io.StringIO()
    manage.run(HistoryConfig(action="list", history=history, as_json=True), out)
    assert json.loads(out.getvalue())["soak"]["errors"] == 12


@pytest.mark.slow
def test_a_thousand_windows_keep_every_spec_small(tmp_path: Path) -> None:
    """1,000 windows and a part over all 16 links: at most MAX_POINTS points per series, specs far under 2 MB."""
    model = SoakModel(hosts=("gpu-node-01", "gpu-node-02"), windows=1000, flapping=("gpu-node-01", 0), rising=None)
    run_dir = write_soak_dir(tmp_path / "run", replace(model, windows=0))
    spine = NamedInWindow(Part(kind="spine", switches=("spine-1", "spine-2")), "slow")
    lines = []
    for index in range(model.windows):
        w = window(model, index)
        lines.append(window_line(replace(w, named=(*w.named, spine)) if index % 250 == 3 else w))
    (run_dir / WINDOWS_FILE).write_bytes(b"".join(lines))  # the bytes append_window writes, without 1,000 fsyncs
    summary = read_soak(run_dir)
    assert summary is not None and summary.windows == 1000
    assert [(n.part.kind, n.windows_named) for n in summary.named] == [("link", 333), ("spine", 4)]
    for named, table in soak.part_tables(iter_windows(run_dir), summary.named):
        frame = table.frame
        assert frame.groupby("series").size().max() <= soak.MAX_POINTS
        assert table.note == "each point is the slowest of 3 windows"
        if named.part == spine.part:
            assert set(frame["series"]) == {"median of 16 links", "slowest link"}
            # every window that named it still marked after sampling, and only those
            assert frame.loc[frame["series"] == "slowest link", "named"].sum() == 4
        spec = spec_dict(soak_charts.part_timeline_chart(frame, title="t"), validate=False)
        assert len(json.dumps(spec)) < 2 << 20
    world = soak.world_table(summary)
    assert len(world.frame) <= soak.MAX_POINTS
    assert len(json.dumps(spec_dict(soak_charts.world_timeline_chart(world.frame), validate=False))) < 2 << 20


@pytest.mark.slow
@settings(max_examples=15, deadline=None)
@given(
    count=st.integers(1, 1300),
    rises=st.dictionaries(st.integers(0, 1299), st.integers(1, 10**6), max_size=12),
    named=st.sets(st.integers(0, 1299), max_size=12),
)
def test_sampling_keeps_every_rise_and_every_named_window(count: int, rises: dict[int, int], named: set[int]) -> None:
    """However many windows, a timeline has at most MAX_POINTS points, its rises sum to the windows' own and each
    window the part was named in lies in a point marked named (each point the slowest of its windows)."""
    part = Part(kind="link", node="n1", rail=0, device="mlx5_1:1")

    def at(i: int) -> SoakWindow:
        errors = {"symbol_error": rises[i]} if i in rises else {}
        link = LinkWindow("n1", 0, "mlx5_1:1", 380.0 - (i in named) * 200.0, 2, named=i in named, errors=errors)
        return SoakWindow(index=i, start_s=i * 10.0, end_s=i * 10.0 + 9.0, links=(link,))

    gpu = Part(kind="gpu", node="n1", gpu=LocalGpu(3))  # on no link: no timeline
    named_parts = [SoakPart(part, "slow", 1, count), SoakPart(gpu, "trend", None, count)]
    ((_, table),) = soak.part_tables((at(i) for i in range(count)), named_parts)
    frame = table.frame
    assert len(frame) <= soak.MAX_POINTS
    assert frame["errors"].sum() == sum(r for i, r in rises.items() if i < count)
    for i in (i for i in named if i < count):
        point = frame[(frame["window"] <= i) & (frame["window_last"] >= i)]
        assert point["named"].tolist() == [1] and point["busbw_Gbps"].tolist() == [180.0]


def test_a_damaged_window_line_is_one_line_of_bad_input(tmp_path: Path) -> None:
    run_dir = write_soak_dir(tmp_path / "run", SoakModel(windows=2))
    with (run_dir / WINDOWS_FILE).open("a") as out:
        out.write('{"index": "third"}\n')
    with pytest.raises(UserError, match=r"windows.jsonl: line 3: start_s is missing: the run directory is damaged"):
        read_soak(run_dir)


def test_a_world_target_far_above_a_cpu_soak_stays_off_the_axis_and_is_said() -> None:
    """A CPU soak against a GPU profile: 1 GB/s of busbw under a 400 GB/s target (charts.OFF_SCALE, as the
    sweep's chart does it): no rule that flattens the line at zero, a note in the subtitle instead."""
    points = tuple(WorldPoint(i, "all_reduce", 1 << 30, 8.0 + i % 2, 3200.0) for i in range(6))
    summary = replace(summarise((), None), world=points, windows=6)
    table = soak.world_table(summary).frame
    assert table["target_GBps"].tolist() == [400.0] * 6
    spec = spec_dict(soak_charts.world_timeline_chart(table, subtitle="lab"))
    validate(spec)
    assert len(spec["layer"]) == 1
    assert spec["title"]["subtitle"] == "lab · target 400 GB/s is off this scale"


def test_two_parts_whose_places_read_alike_get_charts_of_their_own() -> None:
    a, b = Part(kind="link", node="n1", rail=0, device="mlx5_1"), Part(kind="link", node="n1", rail=0, device="mlx5-1")
    first = soak.chart_name(a)
    assert first == "soak-n1-rail-0-mlx5-1" and soak.chart_name(b, {first}) == f"{first}-2"
    assert soak.chart_name(b, {first, f"{first}-2"}) == f"{first}-3"


def test_counters_no_window_read_are_said_as_not_read_never_as_zero(tmp_path: Path) -> None:
    """A soak on CPU ranks of one host: its windows know no link's port (windows.jsonl as railbench soak --np 4
    wrote it here: no links, the world collectives only), so nothing is said of error accumulation."""
    model = SoakModel(hosts=("vm",), rails=0, windows=2, flapping=None, rising=None)
    run_dir = write_soak_dir(tmp_path / "run", model)
    summary = read_soak(run_dir)
    assert summary is not None and not summary.counters_read and summary.links == 0
    said = soak.sentences(summary)
    assert "Error counters: not read (no window knew a link's port), so nothing is said of their accumulation." in said
    assert not any("accumulated over the soak: 0" in s for s in said)
    names = {f.name for f in text_string_to_metric_families(openmetrics_text(run_dir))}
    assert "railbench_soak_windows" in names and "railbench_soak_link_errors" not in names
    history = tmp_path / "history.sqlite"
    run_id = add_run(history, run_dir)
    with opened(history) as conn:
        held = soak_runs.of_runs(conn, [run_id])[run_id]
    assert (held.windows, held.errors, held.flaps) == (2, None, None)


@settings(max_examples=60, deadline=None)
@given(last=st.integers(min_value=1, max_value=10**7))
def test_the_window_axis_ticks_whole_windows_only(last: int) -> None:
    """A window has no half: the axis says whole windows from 0, at a step of 1, 2 or 5 times a power of ten, at most
    20 of them, the last within one step of the last window."""
    ticks = soak_charts.window_ticks(last)
    step = ticks[1] - ticks[0]
    assert ticks[0] == 0 and all(b - a == step for a, b in itertools.pairwise(ticks))
    assert len(ticks) <= soak_charts.MAX_TICKS and last - step < ticks[-1] <= last
    assert step // 10 ** (len(str(step)) - 1) in (1, 2, 5) and set(str(step)[1:]) <= {"0"}
