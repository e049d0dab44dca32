"""A re-drawn report draws the pass line its run was judged by (run.json ``judged_by``), not a fixed 90%:
a run judged at 85% whose rail read 87% of its target must not be coloured a failure months later."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.report.build import DEFAULT_EFFICIENCY, ReportOptions
from bench.rundir.runjson import RunDoc, new_record
from tests.support import railbench_inline
from tests.support.history_fixtures import make_run_dir

JUDGED = {
    "profile": "lab",
    "source": "lab.toml (as it was)",
    "pass_fraction": 0.85,
    "judge_min_bytes": 1 << 20,
    "compare_min_bytes": 1 << 20,
    "idle_devices": [],
    "counter_tolerance_bytes": 0,
}


def _run(**sections: object) -> RunDoc:
    return new_record(
        format_version=1,
        tool="railbench",
        version="0",
        command="run",
        cluster="lab",
        profile=None,
        started_utc="2026-11-20T23:00:00Z",
        status="running",
        **sections,
    )


def test_the_recorded_pass_fraction_is_the_default() -> None:
    assert ReportOptions().efficiency(_run(judged_by=JUDGED)) == 0.85
    assert ReportOptions().efficiency(_run()) == DEFAULT_EFFICIENCY  # a run from before judged_by
    assert ReportOptions(min_efficiency=0.7).efficiency(_run(judged_by=JUDGED)) == 0.7  # the operator's word
    damaged = {**JUDGED, "pass_fraction": "most"}  # refused in one line, never taken as no judged_by
    with pytest.raises(ValueError, match=r'judged_by\.pass_fraction holds "most", not a number'):
        _run(judged_by=damaged)


@pytest.mark.slow
def test_railbench_report_redraws_with_the_run_s_own_line(tmp_path: Path) -> None:
    busbw = {("all_reduce", "world", "world", 1 << 28): 40.0}
    run_dir = make_run_dir(
        tmp_path / "run", started_utc="2026-11-20T23:00:00Z", busbw=busbw, meta_extra={"judged_by": JUDGED}
    )
    done = railbench_inline(["report", str(run_dir), "--no-images"])
    assert done.returncode == 0, done.stderr
    page = (run_dir / "report.md").read_text()
    assert "fail below 85% of target" in page and "fail below 90%" not in page
    done = railbench_inline(["report", str(run_dir), "--no-images", "--min-efficiency", "0.5"])
    assert done.returncode == 0, done.stderr
    assert "fail below 50% of target" in (run_dir / "report.md").read_text()
