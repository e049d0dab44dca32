"""nccl-tests measures each size twice, out-of-place and in-place, and prints the two halves side by side;
both halves reach the report's per-size table the same way (and the in-place busbw the chart's tooltip), and
a railbench run, which measures the one placement torch offers, shows which half it timed."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from bench.commands.importer import ImportConfig, run
from bench.report import data
from bench.report.sweep_table import SWEEP_HEADERS, sweep_rows
from tests.support.history_fixtures import float_str, text_log

HOSTS = ("gpu-c01", "gpu-c02")
SIZES = [1 << k for k in range(20, 31, 2)]


def _slower_in_place(text: str) -> str:
    """The log with every in-place half 25% slower than its out-of-place half, as nccl-tests prints it."""
    out = []
    for line in text.splitlines():
        words = line.split()
        if line.strip()[:1].isdigit() and len(words) == 13:
            time, algbw, busbw = (float(w) for w in words[9:12])
            words[9:12] = [float_str(time * 1.25, 7), float_str(algbw / 1.25, 6), float_str(busbw / 1.25, 6)]
            words[12] = "N/A"
            line = "  ".join(words)
        out.append(line)
    return "\n".join(out) + "\n"


def _frame(rows: list[tuple[str, int, str, float, float | None]]) -> pd.DataFrame:
    """results.csv rows of the world sweep: (collective, bytes, placement, busbw, wrong)."""
    return pd.DataFrame(
        [
            {
                "collective": c,
                "scope": "world",
                "bytes": b,
                "count": b // 4,
                "placement": p,
                "time_us": b / (bus * 1e3),
                "algbw_GBps": bus,
                "busbw_GBps": bus,
                "wrong": math.nan if wrong is None else wrong,
                "time_us_min": math.nan,
                "time_us_max": math.nan,
            }
            for c, b, p, bus, wrong in rows
        ]
    )


def test_both_halves_of_a_size_are_one_line_out_of_place_first() -> None:
    frame = _frame(
        [
            ("sendrecv", 1 << 20, "in-place", 40.0, None),
            ("sendrecv", 1 << 20, "out-of-place", 50.0, 0),
            ("all_gather", 1 << 20, "out-of-place", 30.0, 2),
        ]
    )
    assert SWEEP_HEADERS[3:11] == (
        "out-of-place time (us)",
        "algbw GB/s",
        "busbw GB/s",
        "#wrong",
        "in-place time (us)",
        "algbw GB/s",
        "busbw GB/s",
        "#wrong",
    )
    sendrecv, all_gather = sweep_rows(frame)
    assert sendrecv[:3] == ("sendrecv", "1M", "262144")
    assert sendrecv[5:7] == ("50.00", "0") and sendrecv[9:11] == ("40.00", "—")  # N/A is not 0 wrong
    # railbench's all_gather is out-of-place only: the half it did not measure is a dash
    assert all_gather[5:7] == ("30.00", "2") and all_gather[7:11] == ("—",) * 4


@pytest.mark.slow
def test_an_imported_log_keeps_both_halves_in_the_report(tmp_path: Path) -> None:
    log = tmp_path / "all_reduce.log"
    log.write_text(_slower_in_place(text_log("all_reduce", HOSTS, 8, SIZES)))
    assert run(ImportConfig("nccl-tests", (log,), out_root=tmp_path / "runs", no_history=True)) == 0
    (run_dir,) = (tmp_path / "runs").iterdir()
    results = pd.read_csv(run_dir / "results.csv")
    top = results[results["bytes"] == SIZES[-1]].set_index("placement")["busbw_GBps"]
    assert top["in-place"] == pytest.approx(top["out-of-place"] / 1.25, abs=0.01)
    md = (run_dir / "report.md").read_text()
    table = md[md.index("### Per size (world)") :]
    line = next(row for row in table.splitlines() if row.startswith("| all\\_reduce | 1G |"))
    cells = [cell.strip() for cell in line.strip("|").split("|")]
    assert cells[5] == f"{top['out-of-place']:,.2f}" and cells[9] == f"{top['in-place']:,.2f}"
    assert cells[10] == "—"  # the in-place #wrong was N/A in the log
    assert table.count("| all\\_reduce |") == len(SIZES)  # one line per size, not one per half
    # the chart's line is the out-of-place half; the in-place busbw is in its data, for the tooltip
    chart = pd.read_csv(run_dir / "charts" / "busbw-vs-size.csv").set_index("bytes")
    assert chart.loc[SIZES[-1], "busbw_GBps"] == pytest.approx(top["out-of-place"])
    assert chart.loc[SIZES[-1], "in_place_busbw_GBps"] == pytest.approx(top["in-place"])
    assert "in-place busbw (GB/s)" in (run_dir / "charts" / "busbw-vs-size.vl.json").read_text()
    assert data.sweep_table(results).frame["collective"].tolist() == ["all_reduce"] * len(SIZES)
