"""What a new user meets in compare's first nights (issue 43, item 6): the ``allowed`` column never shows a
band that the state then ignores, a 0-byte row (busbw 0) raises no numpy warning, and the first night says
"new" once, not once per metric."""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path

import pytest

from bench.commands.compare import CompareConfig, run
from bench.history.store import add_run
from tests.support.history_fixtures import make_run_dir

# Every test here runs compare whole, which draws the run's report (bench.compare.run writes it): a second or
# more a test, so the slow tier.
pytestmark = pytest.mark.slow

Key = tuple[str, str, str, int]
SIZES = [0] + [1 << e for e in range(20, 28)]
KEYS: list[Key] = [(c, "world", "world", n) for c in ("all_reduce", "all_gather") for n in SIZES]
DROPPED: Key = ("all_reduce", "world", "world", 1 << 24)
"""One size that falls 30% alone on the second night: past the 5% threshold, inside the first nights' noise."""


def _busbw(key: Key, scale: float = 1.0) -> float:
    """A smooth curve, 0 at 0 bytes (no bytes moved, as nccl-tests prints a 0-byte row)."""
    return 0.0 if key[3] == 0 else 0.4 * key[3] / (key[3] + (4 << 20)) * scale


def _nights(tmp_path: Path, tonight: dict[Key, float], baseline_runs: int) -> Path:
    """``baseline_runs`` nights of the curve with a small wobble, then tonight; each added to the history."""
    runs = tmp_path / "reports" / "runs"
    history = tmp_path / "reports" / "history.sqlite"
    for night in range(baseline_runs):
        wobble = {k: _busbw(k, 1.0 + 0.004 * ((night + i) % 3 - 1)) for i, k in enumerate(KEYS)}
        add_run(history, make_run_dir(runs / f"n{night}", started_utc=f"2026-11-0{night + 1}T02:00:00Z", busbw=wobble))
    run_dir = make_run_dir(runs / "tonight", started_utc="2026-11-20T02:00:00Z", busbw=tonight)
    add_run(history, run_dir)
    return run_dir


def _compare(run_dir: Path, *, show_all: bool = False) -> str:
    out = io.StringIO()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning (numpy's RuntimeWarning among them) fails the test
        run(CompareConfig(run_dir=run_dir, show_all=show_all), out=out)
    return out.getvalue()


def _line(text: str, key: Key) -> str:
    metric = "/".join(map(str, key))
    return next(line for line in text.splitlines() if line.startswith(f"{metric} "))


def test_a_first_night_past_its_threshold_shows_no_band_that_its_state_ignores(tmp_path: Path) -> None:
    # A CPU host's night: every size 12% up or down (the spread that sets the noise with one baseline run).
    tonight = {k: _busbw(k, 0.7 if k == DROPPED else 1.0 + 0.12 * (-1) ** i) for i, k in enumerate(KEYS)}
    run_dir = _nights(tmp_path, tonight, baseline_runs=1)
    text = _compare(run_dir)
    line = _line(text, DROPPED)
    cells = line.split()
    assert float(cells[6].rstrip("%")) < -25 and cells[7] == "unchanged" and "within the noise" in line, line
    assert cells[4] == "first", line  # the allowed column: no number for a band there is not yet
    assert "first = under 5 baseline runs, no band yet" in text
    doc = json.loads((run_dir / "compare.json").read_text())
    metric = next(m for m in doc["metrics"] if m["metric"] == "/".join(map(str, DROPPED)))
    assert metric["state"] == "unchanged" and metric["noise_estimated"] is False
    junit = (run_dir / "compare-junit.xml").read_text()
    assert "no band of its own yet: within the threshold 5% unchanged, past it the evidence decides" in junit
    assert "allowed +-0.01" not in junit.split("/".join(map(str, DROPPED)))[1].split("</system-out>")[0]


def test_with_a_full_baseline_the_allowed_column_is_the_band_that_decides(tmp_path: Path) -> None:
    tonight = {k: _busbw(k, 0.7 if k == DROPPED else 1.0) for k in KEYS}
    run_dir = _nights(tmp_path, tonight, baseline_runs=5)
    line = _line(_compare(run_dir), DROPPED)
    cells = line.split()
    assert cells[-1] == "regressed" and float(cells[4]) == round(0.05 * float(cells[2]), 2), line


def test_zero_byte_rows_raise_no_numpy_warning_on_any_night(tmp_path: Path) -> None:
    for baseline_runs in (1, 2, 5):
        root = tmp_path / str(baseline_runs)
        run_dir = _nights(root, {k: _busbw(k) for k in KEYS}, baseline_runs=baseline_runs)
        text = _compare(run_dir, show_all=True)  # warnings are errors in _compare
        assert "unchanged" in _line(text, ("all_reduce", "world", "world", 0))


def test_the_first_night_says_new_once_and_keeps_every_metric_in_compare_json(tmp_path: Path) -> None:
    run_dir = _nights(tmp_path, {k: _busbw(k) for k in KEYS}, baseline_runs=0)
    text = _compare(run_dir)
    new_lines = [line for line in text.splitlines() if " new" in line]
    assert new_lines == [
        f"all {len(KEYS)} metrics are new (no baseline value): tonight's values become their baseline for the next "
        "compare; each is in compare.json",
        f"{len(KEYS)} metrics: 0 regressed, 0 improved, 0 unchanged, {len(KEYS)} new, 0 missing, 0 failed",
    ]
    doc = json.loads((run_dir / "compare.json").read_text())
    assert [m["state"] for m in doc["metrics"]] == ["new"] * len(KEYS)
    assert len(_compare(run_dir, show_all=True).splitlines()) > len(KEYS)  # --all still lists each one


def test_a_few_new_metrics_among_known_ones_are_one_line_too(tmp_path: Path) -> None:
    extra: list[Key] = [("sendrecv", "world", "world", n) for n in SIZES[1:]]
    run_dir = _nights(tmp_path, {k: _busbw(k) for k in [*KEYS, *extra]}, baseline_runs=2)
    text = _compare(run_dir)
    assert f"{len(extra)} of {len(KEYS) + len(extra)} metrics are new (no baseline value)" in text
    assert not any(line.startswith("sendrecv/") for line in text.splitlines())
