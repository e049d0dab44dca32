"""The nightly trend after compare: headline metrics only (sizes from min_bytes up, at most six per
collective and scope, numeric order), regressed first and in red, bands never below zero, and a PNG that
stays under 2000 px tall however long the history."""

from __future__ import annotations

import struct
from pathlib import Path

import pandas as pd
import pytest

from bench.report import trend
from bench.report.build import ReportOptions, write_report
from tests.support.history_fixtures import make_run_dir

SIZES = [1 << e for e in range(3, 35)]  # 8 B .. 16 GiB, as accept's -b 8 -f 2 sweep


def _trend(nights: int) -> pd.DataFrame:
    rows = []
    for collective in ("all_reduce", "all_gather", "sendrecv"):
        for size in SIZES:
            metric = f"{collective}/world/world/{size}"
            base = 380.0 * size / (size + (1 << 22))
            for night in range(nights):
                value = base * (0.6 if night == nights - 1 and (collective, size) == ("all_gather", 1 << 27) else 1)
                state = "baseline" if night < nights - 1 else ("regressed" if value < base else "unchanged")
                rows.append(
                    {
                        "run_time": pd.Timestamp("2026-01-01", tz="UTC") + pd.Timedelta(days=night),
                        "metric": metric,
                        "busbw_GBps": value,
                        "baseline_GBps": base,
                        "band_lo_GBps": base - max(0.05 * base, 1.0),
                        "band_hi_GBps": base + max(0.05 * base, 1.0),
                        "state": state,
                    }
                )
    return pd.DataFrame(rows)


def test_headline_metrics_in_numeric_order_regressed_first() -> None:
    table = trend.trend_table(_trend(12), min_bytes=1 << 20).frame
    panels = list(dict.fromkeys(table.sort_values("panel_order")["panel"]))
    assert panels[0] == "▼ all_gather · world · 128M"
    assert table[table["alarm"] == 1]["metric"].unique().tolist() == ["all_gather/world/world/134217728"]
    sizes = {}
    for metric in table["metric"].unique():
        collective, _, _, size = metric.split("/")
        sizes.setdefault(collective, []).append(int(size))
    for collective, found in sizes.items():
        calm = [s for s in found if (collective, s) != ("all_gather", 1 << 27)]
        assert len(calm) <= 6 and min(calm) >= 1 << 20, (collective, calm)
        assert calm == sorted(calm) and max(calm) == 1 << 34  # numeric (not text) order, the largest kept
    assert (table["band_lo_GBps"] >= 0).all()
    assert len(panels) <= 19  # 3 x 6 sizes + the regressed one


def _png_size(path: Path) -> tuple[int, int]:
    width, height = struct.unpack(">II", path.read_bytes()[16:24])
    return width, height


@pytest.mark.slow
def test_png_stays_short_at_any_history_length(tmp_path: Path) -> None:
    for nights in (3, 400):
        run_dir = make_run_dir(
            tmp_path / f"run{nights}",
            started_utc="2027-02-01T02:00:00Z",
            busbw={("all_reduce", "world", "world", 1 << 30): 380.0},
        )
        trend = _trend(nights)
        trend["run_time"] = trend["run_time"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
        trend.to_csv(run_dir / "trend.csv", index=False)
        paths = write_report(run_dir, options=ReportOptions())
        png = next(c.png for c in paths.charts if c.name == "trend")
        assert png is not None
        width, height = _png_size(png)
        assert height < 2000, (nights, width, height)
        body = (run_dir / "charts" / "trend.csv").read_text()
        assert "-" not in body.split("\n", 1)[1].replace("T", " ").split(",")[3]  # no negative band edge


def test_states_have_colours_of_their_own_and_same_day_runs_show_the_hour() -> None:
    from bench.report import charts
    from bench.report.theme import spec_dict

    nightly = trend.trend_table(_trend(4), min_bytes=1 << 20)
    spec = spec_dict(charts.trend_chart(nightly.frame))
    point = next(layer for layer in spec["spec"]["layer"] if layer["mark"]["type"] == "point")
    scale = point["encoding"]["color"]["scale"]
    colours = dict(zip(scale["domain"], scale["range"], strict=True))
    assert {"baseline", "unchanged", "regressed"} <= set(colours)
    assert len(set(colours.values())) == len(colours)  # "baseline" and "unchanged" no longer share a grey
    assert point["encoding"]["x"]["axis"]["format"] == "%m-%d"  # one run a day: the day says it
    hourly = _trend(4)
    hourly["run_time"] = pd.Timestamp("2026-11-23T08:00:00Z") + (hourly["run_time"] - hourly["run_time"].min()) / 24
    table = trend.trend_table(hourly, min_bytes=1 << 20).frame
    assert charts.time_format(table) == "%m-%d %H:%M"  # four runs on 11-23: the hour tells them apart
