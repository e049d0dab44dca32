"""railbench compare: its files (compare.json, JUnit, trend.csv), the missing/failed/new states, a run
directory as the baseline, profile thresholds, and bad input."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from bench.commands.compare import CompareConfig, compare, run
from bench.exits import UserError
from bench.frame.decide import Item, write_junit_items
from bench.history.baseline import from_run_dir
from bench.history.outputs import TREND_COLUMNS
from bench.history.records import read_run
from bench.history.store import add_run
from bench.profile.compare import CompareSettings
from bench.rundir.verdict import Verdict
from tests.support import railbench, rank_env
from tests.support.history_fixtures import make_run_dir

AR_1G = ("all_reduce", "world", "world", 1 << 30)
AG_1G = ("all_gather", "world", "world", 1 << 30)
SR_1G = ("sendrecv", "pair", "node01-node02/rail0", 1 << 30)
SMALL = ("all_reduce", "world", "world", 1024)


def _nights(tmp_path: Path, values: list[dict[tuple[str, str, str, int], float]]) -> Path:
    history = tmp_path / "history.sqlite"
    for night, busbw in enumerate(values):
        add_run(
            history, make_run_dir(tmp_path / f"n{night}", started_utc=f"2026-11-{night + 1:02d}T02:00:00Z", busbw=busbw)
        )
    return history


@pytest.mark.slow
def test_files_and_states(tmp_path: Path) -> None:
    history = _nights(tmp_path, [{AR_1G: 380.0 + d, AG_1G: 350.0 - d, SR_1G: 48.0} for d in (0, 2, -1, 1)])
    tonight = make_run_dir(
        tmp_path / "tonight",
        started_utc="2026-11-20T02:00:00Z",
        busbw={AR_1G: 381.0, SR_1G: 47.9, SMALL: 0.5},  # all_gather missing, a new small size
        wrong={SR_1G: 7},  # sendrecv returned wrong data
    )
    assert run(CompareConfig(run_dir=tonight, history=history, baseline="last:3")) == 1
    doc = json.loads((tonight / "compare.json").read_text())
    states = {m["metric"]: m["state"] for m in doc["metrics"]}
    assert states == {
        "all_gather/world/world/1073741824": "missing",
        "all_reduce/world/world/1024": "new",
        "all_reduce/world/world/1073741824": "unchanged",
        "sendrecv/pair/node01-node02/rail0/1073741824": "failed",
    }
    assert [r["time_utc"] for r in doc["baseline"]["runs"]] == [f"2026-11-0{d}T02:00:00Z" for d in (4, 3, 2)]
    ar = next(m for m in doc["metrics"] if m["metric"].endswith("world/1073741824") and m["collective"] == "all_reduce")
    assert ar["baseline_GBps"] == 381.0 and ar["history_GBps"] == [381.0, 379.0, 382.0]

    suite = ET.parse(tonight / "compare-junit.xml").getroot().find("testsuite")
    assert suite is not None and (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("4", "2", "1")
    failed_names = {c.get("name") for c in suite.iter("testcase") if c.find("failure") is not None}
    assert failed_names == {"all_gather/world/world/1073741824", "sendrecv/pair/node01-node02/rail0/1073741824"}

    with (tonight / "trend.csv").open() as fh:
        reader = csv.DictReader(fh)
        assert tuple(reader.fieldnames or ()) == TREND_COLUMNS
        rows = list(reader)
    ar_rows = [r for r in rows if r["metric"] == "all_reduce/world/world/1073741824"]
    assert [r["run_time"] for r in ar_rows] == [
        "2026-11-02T02:00:00Z",
        "2026-11-03T02:00:00Z",
        "2026-11-04T02:00:00Z",
        "2026-11-20T02:00:00Z",
    ]
    assert [r["state"] for r in ar_rows] == ["baseline"] * 3 + ["unchanged"]
    assert float(ar_rows[0]["band_lo_GBps"]) == pytest.approx(381.0 * 0.95)  # the threshold dominates the noise
    new_row = next(r for r in rows if r["metric"] == "all_reduce/world/world/1024")
    assert (new_row["state"], new_row["baseline_GBps"]) == ("new", "")


@pytest.mark.slow
def test_a_run_directory_as_baseline(tmp_path: Path) -> None:
    base = make_run_dir(tmp_path / "base", started_utc="2026-11-01T02:00:00Z", busbw={AR_1G: 380.0, SR_1G: 48.0})
    tonight = make_run_dir(
        tmp_path / "tonight", started_utc="2026-11-02T02:00:00Z", busbw={AR_1G: 359.0, SR_1G: 44.0}, nccl="2.28.1"
    )
    tonight_run, metrics = read_run(tonight)
    baselines = from_run_dir(base, tonight_run)
    assert any("NCCL 2.27.3" in n for n in baselines.notes)
    # -5.5% and -8.3%, each alone in its series against one run: past the 5% threshold, inside the noise an
    # isolated size must clear (the 1% floor: one run, two values, nothing to pool)
    results = compare(metrics, baselines, CompareSettings())
    assert {r.state for r in results} == {"unchanged"}
    assert all(r.noise_source == "floor" and "within the noise" in r.evidence for r in results)
    looser = CompareSettings.from_table(
        {"default_threshold": "6%", "rule": [{"pattern": "sendrecv/*", "threshold": 0.10}]}
    )
    assert {r.state for r in compare(metrics, baselines, looser)} == {"unchanged"}
    assert all(r.evidence == "" for r in compare(metrics, baselines, looser) if r.metric.startswith("sendrecv"))
    worse = make_run_dir(
        tmp_path / "worse", started_utc="2026-11-03T02:00:00Z", busbw={AR_1G: 260.0, SR_1G: 44.0}, nccl="2.28.1"
    )
    done = railbench(["compare", str(worse), "--baseline", str(base)], timeout=60)
    assert done.returncode == 1 and "1 regressed" in done.stdout, done.stdout + done.stderr
    (line,) = [x for x in done.stdout.splitlines() if x.startswith("all_reduce/world/world/1073741824")]
    assert "-31.6%  regressed  (alone it fell 31.6%, beyond the" in line


def _sweep(max_bytes: int, dtype: str = "float") -> dict[str, object]:
    return {
        "sweep": {
            "collectives": ["all_reduce", "all_gather"],
            "min_bytes": 1 << 20,
            "max_bytes": max_bytes,
            "step_factor": 4,
            "dtype": dtype,
        }
    }


AR_4G, AG_4G = ("all_reduce", "world", "world", 4 << 30), ("all_gather", "world", "world", 4 << 30)


def test_a_baseline_of_another_kind_is_compared_on_what_both_measured(tmp_path: Path) -> None:
    """Issue 33 item 6: a shorter sweep against a run directory that went further was REGRESSED on the sizes
    it never set out to measure (``missing``)."""
    base = make_run_dir(
        tmp_path / "base",
        started_utc="2026-11-01T02:00:00Z",
        busbw={AR_1G: 380.0, AG_1G: 350.0, AR_4G: 470.0, AG_4G: 360.0},
        meta_extra=_sweep(4 << 30),
    )
    tonight = make_run_dir(
        tmp_path / "tonight",
        started_utc="2026-11-02T02:00:00Z",
        busbw={AR_1G: 381.0, AG_1G: 349.0},
        meta_extra=_sweep(1 << 30),
    )
    tonight_run, metrics = read_run(tonight)
    baselines = from_run_dir(base, tonight_run, metrics)
    (note,) = [n for n in baselines.notes if "another kind" in n]
    assert "2 that only the baseline measured are left out, not missing" in note
    results = compare(metrics, baselines, CompareSettings())
    assert {r.metric: r.state for r in results} == {
        "all_gather/world/world/1073741824": "unchanged",
        "all_reduce/world/world/1073741824": "unchanged",
    }
    # a group lost at a size tonight measured elsewhere is still missing: a rail that went quiet
    rail1 = ("sendrecv", "pair", "node01-node02/rail1", 1 << 30)
    base = make_run_dir(
        tmp_path / "rails-base", started_utc="2026-11-01T02:00:00Z", busbw={SR_1G: 48.0, rail1: 48.0}, command="rails"
    )
    quiet = make_run_dir(tmp_path / "quiet", started_utc="2026-11-03T02:00:00Z", busbw={SR_1G: 48.0}, command="accept")
    quiet_run, quiet_metrics = read_run(quiet)
    lost = compare(quiet_metrics, from_run_dir(base, quiet_run, quiet_metrics), CompareSettings())
    assert {r.metric: r.state for r in lost} == {
        "sendrecv/pair/node01-node02/rail0/1073741824": "unchanged",
        "sendrecv/pair/node01-node02/rail1/1073741824": "missing",
    }


def test_a_baseline_with_nothing_in_common_or_another_dtype_is_refused(tmp_path: Path) -> None:
    tonight = make_run_dir(
        tmp_path / "tonight", started_utc="2026-11-02T02:00:00Z", busbw={AR_1G: 381.0}, meta_extra=_sweep(1 << 30)
    )
    tonight_run, metrics = read_run(tonight)
    rails = make_run_dir(tmp_path / "rails", started_utc="2026-11-01T02:00:00Z", busbw={SR_1G: 48.0}, command="rails")
    with pytest.raises(UserError, match=r"no collective, scope and size in common .* choose a run of the same kind"):
        from_run_dir(rails, tonight_run, metrics)
    halves = make_run_dir(
        tmp_path / "bf16",
        started_utc="2026-11-01T02:00:00Z",
        busbw={AR_1G: 381.0},
        meta_extra=_sweep(4 << 30, dtype="bfloat16"),
    )
    with pytest.raises(UserError, match="measured bfloat16, tonight's run float: busbw of another element type"):
        from_run_dir(halves, tonight_run, metrics)


@pytest.mark.slow
def test_compare_says_its_verdict_in_every_output_of_the_run_and_gives_it_back(tmp_path: Path) -> None:
    """Issue 33 item 6: after compare, run.json said regressed with exit_status 0 and junit.xml still said
    measured. Now run.json's word and exit status, junit.xml's property and failure count, the report and
    metrics.prom all say REGRESSED, and a later compare that finds nothing gives every one of them back."""
    base = make_run_dir(tmp_path / "base", started_utc="2026-11-01T02:00:00Z", busbw={AR_1G: 380.0, AG_1G: 350.0})
    tonight = make_run_dir(
        tmp_path / "tonight",
        started_utc="2026-11-02T02:00:00Z",
        busbw={AR_1G: 250.0, AG_1G: 350.0},
        meta_extra={"exit_status": 0},
    )
    own = Verdict.of("measured", ["no busbw target applies to these rows"])
    items = [Item("railbench.run", "all_reduce", "measured", own.reasons[0], "1G: busbw 2000 Gb/s")]
    write_junit_items(tonight / "junit.xml", "railbench.run", items, own)

    def outputs() -> tuple[str, int, str, str, str, str]:
        doc = json.loads((tonight / "run.json").read_text())
        suite = ET.parse(tonight / "junit.xml").getroot().find("testsuite")
        assert suite is not None
        word = next(p.get("value") for p in suite.iter("property") if p.get("name") == "railbench.verdict")
        lit = re.findall(
            r'railbench_verdict\{cluster="lab",verdict="([A-Z]+)"\} 1\.0', (tonight / "metrics.prom").read_text()
        )
        md = re.search(r"^\*\*Verdict: ([A-Z]+)\*\*", (tonight / "report.md").read_text(), re.M)
        assert md is not None and len(lit) == 1
        return doc["verdict"], doc["exit_status"], str(word), str(suite.get("failures")), lit[0], md.group(1)

    assert run(CompareConfig(run_dir=tonight, baseline=str(base))) == 1
    assert outputs() == ("regressed", 1, "regressed", "1", "REGRESSED", "REGRESSED")
    cases = ET.parse(tonight / "junit.xml").getroot().iter("testcase")
    assert [c.get("name") for c in cases] == ["all_reduce", "baseline"]  # the run's own case is kept as written
    assert "1G: busbw 2000 Gb/s" in (tonight / "junit.xml").read_text()
    low = make_run_dir(tmp_path / "low", started_utc="2026-11-01T01:00:00Z", busbw={AR_1G: 250.0, AG_1G: 350.0})
    assert run(CompareConfig(run_dir=tonight, baseline=str(low))) == 0
    assert outputs() == ("measured", 0, "measured", "0", "MEASURED", "MEASURED")


def test_settings_from_profile() -> None:
    settings = CompareSettings.from_table(
        {
            "noise_k": 2.5,
            "min_bytes": "1M",
            "rule": [{"pattern": "sendrecv/pair/*", "threshold": 0.10}, {"pattern": "*", "threshold": 0.07}],
        }
    )
    assert (settings.noise_k, settings.min_bytes, settings.default_threshold) == (2.5, 1 << 20, 0.05)
    assert settings.threshold_for("sendrecv/pair/node01-node02/rail0/8") == 0.10
    assert settings.threshold_for("all_reduce/world/world/8") == 0.07
    assert CompareSettings.from_table({}) == CompareSettings()
    for bad, match in (
        ({"default_threshold": 5}, "fraction"),
        ({"default_threshold": "five"}, "not a number"),
        ({"treshold": 0.05}, r"unknown \[compare\] key 'treshold'"),
        ({"noise_k": -1}, "noise_k"),
        ({"rule": {"pattern": "*"}}, "array of tables"),
        ({"rule": [{"pattern": "*"}]}, r"\[\[compare.rule\]\] number 1: threshold is missing"),
        ({"min_bytes": "lots"}, "not a size"),
    ):
        with pytest.raises(UserError, match=match):
            CompareSettings.from_table(bad)


@pytest.mark.slow
def test_bad_input_exits_2_with_one_line(tmp_path: Path) -> None:
    tonight = make_run_dir(tmp_path / "t", started_utc="2026-11-02T02:00:00Z", busbw={AR_1G: 380.0})
    for args, hint in (
        ([str(tonight), "--baseline", "last:0"], "last:N"),
        ([str(tmp_path / "nope")], "does not exist"),
        ([str(tonight), "--baseline", str(tmp_path / "nope")], "does not exist"),
    ):
        done = railbench(["compare", *args, "--history", str(tmp_path / "h.sqlite")], timeout=60)
        assert done.returncode == 2 and done.stderr.count("\n") == 1 and hint in done.stderr, done.stderr


@pytest.mark.slow
def test_commands_do_not_import_torch() -> None:
    code = (
        "import sys\n"
        "import bench.commands.compare, bench.commands.history, bench.commands.importer\n"
        "heavy = sorted(m for m in ('torch', 'pandas', 'altair') if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], env=rank_env(), capture_output=True, text=True, check=False)
    assert done.returncode == 0 and done.stdout.strip() == "", done.stdout + done.stderr
