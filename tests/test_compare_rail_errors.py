"""Error counters per rail as nightly metrics: kept in the history, and ``railbench compare`` flags a rail whose
error rate rose beside the busbw verdict, by a noise rule (zero to nonzero, or past factor x baseline), not
every +1."""

from __future__ import annotations

import json
import sqlite3
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from bench.history import rail_errors
from bench.history.rail_errors import RailErrorCount, judge
from bench.history.store import add_run
from bench.profile.compare import CompareSettings
from bench.rails.diagnosis.rails_outcome import RailDevices, RailsOutcome
from bench.rails.output import rails_doc
from bench.rundir.files import atomic_write_json
from bench.rundir.railsdoc import RailsDoc
from tests.support import railbench
from tests.support.history_fixtures import make_run_dir

NODES = ("node01", "node02")
AR = ("all_reduce", "rail", "rail0", 1 << 28)
WATCHED = ("symbol_error", "link_downed")


def _errors(counts: dict[str, int], saturated: tuple[str, ...] = ()) -> dict[str, object]:
    entry: dict[str, object] = {"bytes": 1 << 30, "errors": {"symbol_error": 0, "link_downed": 0, **counts}}
    if saturated:
        entry["errors_saturated"] = list(saturated)
        entry["errors"] = {k: v for k, v in entry["errors"].items() if k not in saturated}  # type: ignore[attr-defined]
    return entry


def _rails_run(path: Path, night: int, node02_rail1: dict[str, int], saturated: tuple[str, ...] = ()) -> Path:
    """A rails run directory whose rails.json (built by railbench's own builder) has node02's rail 1 device
    showing ``node02_rail1`` and every other device clean."""
    run_dir = make_run_dir(
        path, started_utc=f"2026-11-{night + 1:02d}T02:00:00Z", busbw={AR: 45.0}, hosts=NODES, nranks=4, command="rails"
    )
    devices = [RailDevices(k, {n: f"mlx5_{k + 1}:1" for n in NODES}, {}) for k in range(2)]
    counters = {n: {f"mlx5_{k + 1}:1": _errors({}) for k in range(2)} for n in NODES}
    counters["node02"]["mlx5_2:1"] = _errors(node02_rail1, saturated)
    outcome = RailsOutcome(RailsDoc(nodes=NODES), 2, devices=devices, counters=counters)
    atomic_write_json(run_dir / "rails.json", rails_doc(outcome).to_json())
    return run_dir


def test_the_metric_sums_a_rails_devices_and_keeps_saturation(tmp_path: Path) -> None:
    run_dir = _rails_run(tmp_path / "r", 0, {"symbol_error": 7, "link_downed": 1}, saturated=("port_rcv_errors",))
    metrics = {(e.rail, e.counter): e for e in rail_errors.read_run_dir(run_dir)}
    assert metrics[(1, "symbol_error")] == RailErrorCount(1, "symbol_error", 7, 2)
    assert metrics[(1, "port_rcv_errors")].saturated and metrics[(0, "link_downed")].count == 0


def test_the_noise_rule() -> None:
    def night(count: int | None, counter: str = "symbol_error") -> list[RailErrorCount]:
        return [RailErrorCount(3, counter, count, 8)]

    clean = [night(0)] * 5
    assert [r.count for r in judge(night(1), clean, WATCHED, 0, 2.0)] == [1]  # zero to nonzero
    noisy = [night(4), night(5), night(6), night(5), night(5)]
    assert judge(night(6), noisy, WATCHED, 0, 2.0) == []  # one more than usual is not news
    assert [r.count for r in judge(night(11), noisy, WATCHED, 0, 2.0)] == [11]
    assert judge(night(3), clean, WATCHED, 3, 2.0) == []  # the profile's allowance
    assert judge(night(50, "rx_dropped"), clean, WATCHED, 0, 2.0) == []  # not a watched counter
    (went,) = judge(night(None), clean, WATCHED, 0, 2.0)
    assert went.count is None and "saturated (no count)" in went.describe()
    assert judge(night(None), [night(None)] * 3, WATCHED, 0, 2.0) == []  # saturated every night: old news
    assert [r.baseline for r in judge(night(2), [], WATCHED, 0, 2.0)] == [None]  # no baseline: any count


@pytest.mark.slow
def test_compare_flags_a_rail_whose_error_rate_rose(tmp_path: Path) -> None:
    history = tmp_path / "history.sqlite"
    for night in range(5):
        add_run(history, _rails_run(tmp_path / f"n{night}", night, {"symbol_error": 0}))
    with sqlite3.connect(history) as conn:
        assert conn.execute("SELECT COUNT(*) FROM rail_errors WHERE count = 0").fetchone()[0] > 0
    tonight = _rails_run(tmp_path / "tonight", 20, {"symbol_error": 1204, "link_downed": 2})
    done = railbench(["compare", str(tonight), "--history", str(history), "--baseline", "last:5"])
    # the busbw held, so the verdict stays: the risen error rate is flagged beside it
    assert done.returncode == 0, done.stdout + done.stderr
    assert "WARN rail 1: symbol_error 1,204 per rails test (baseline median 0 over 5 runs) → rose" in done.stdout
    assert "WARN rail 1: link_downed 2 per rails test" in done.stdout and "rail 0:" not in done.stdout
    doc = json.loads((tonight / "compare.json").read_text())
    assert [(r["rail"], r["counter"], r["count"]) for r in doc["rail_errors"]] == [
        (1, "link_downed", 2),
        (1, "symbol_error", 1204),
    ]
    assert doc["exit_status"] == 0
    cases = ET.parse(tonight / "compare-junit.xml").getroot().iter("testcase")
    assert "rail1/symbol_error" in {c.get("name") for c in cases}


@pytest.mark.slow
def test_the_profile_can_make_a_rise_fail_compare(tmp_path: Path) -> None:
    history = tmp_path / "history.sqlite"
    for night in range(2):
        add_run(history, _rails_run(tmp_path / f"n{night}", night, {"symbol_error": 5}))
    profile = tmp_path / "p.toml"
    profile.write_text(
        '[errors]\nfail_on_rise = ["symbol_error"]\n\n[compare]\nfail_on_error_rise = true\nerror_allowance = 2\n'
    )
    settings = CompareSettings.from_table({"error_factor": 1.5}, error_counters=())
    assert settings.error_factor == 1.5 and settings.error_counters == ()
    quiet = _rails_run(tmp_path / "quiet", 20, {"symbol_error": 10, "link_downed": 9})  # 10 = 2 x 5: not above
    assert railbench(["compare", str(quiet), "--history", str(history), "--profile", str(profile)]).returncode == 0
    loud = _rails_run(tmp_path / "loud", 21, {"symbol_error": 11})
    done = railbench(["compare", str(loud), "--history", str(history), "--profile", str(profile)])
    assert done.returncode == 1 and "FAIL rail 1: symbol_error 11 per rails test" in done.stdout, done.stdout
    assert json.loads((loud / "compare.json").read_text())["exit_status"] == 1
    bad = tmp_path / "bad.toml"
    bad.write_text("[compare]\nerror_factor = 0.5\n")
    refused = railbench(["compare", str(loud), "--history", str(history), "--profile", str(bad)])
    assert refused.returncode == 2 and "error_factor = 0.5 must be a number from 1" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_a_damaged_rails_json_is_one_line(tmp_path: Path) -> None:
    run_dir = _rails_run(tmp_path / "r", 0, {})
    doc = json.loads((run_dir / "rails.json").read_text())
    (run_dir / "rails.json").write_text(json.dumps({**doc, "counters": []}))
    done = railbench(["history", "add", str(run_dir), "--history", str(tmp_path / "h.sqlite")])
    assert done.returncode == 2 and "counters holds [], not an object" in done.stderr and "Traceback" not in done.stderr
