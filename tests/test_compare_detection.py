"""Regression detection on a synthetic history of 10 nightly runs with realistic noise.

Noise is drawn as the normal quantiles (i + 0.5)/10 in a shuffled order, so each metric's 10 nights have
exactly the intended spread (about 2% CV, or 10% for the noisy metric) and the test is deterministic.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from statistics import NormalDist

import numpy as np
import pytest

from bench.commands.compare import CompareConfig, run
from bench.history.compare import (
    allowed_change,
    baseline_stats,
    classify,
    floored_sigma,
    noise_estimated,
    relative_change,
)
from bench.history.store import add_run
from tests.support import railbench
from tests.support.history_fixtures import make_run_dir

GiB = 1 << 30
BIG_DROP = ("all_reduce", "world", "world", GiB)  # -8% at 2% CV: regressed
SMALL_DROP = ("alltoall", "world", "world", GiB)  # -1% at 2% CV: unchanged
NOISY = ("sendrecv", "pair", "node01-node02/rail3", GiB)  # -8% at 10% CV: within the noise
BETTER = ("all_gather", "world", "world", GiB)  # +12% at 2% CV: improved
STEADY = ("all_reduce", "world", "world", 256 << 20)  # unchanged
BASE = {BIG_DROP: 380.0, SMALL_DROP: 200.0, NOISY: 45.0, BETTER: 350.0, STEADY: 300.0}
CV = {NOISY: 0.10}
TONIGHT = {BIG_DROP: 0.92, SMALL_DROP: 0.99, NOISY: 0.92, BETTER: 1.12, STEADY: 1.0}
Z = [NormalDist().inv_cdf((i + 0.5) / 10) for i in range(10)]


def _history(tmp_path: Path, *, nccl_tonight: str = "2.27.3") -> tuple[Path, Path]:
    history = tmp_path / "history.sqlite"
    orders = {key: random.Random(i).sample(Z, len(Z)) for i, key in enumerate(BASE)}
    for night in range(10):
        busbw = {key: BASE[key] * (1 + CV.get(key, 0.02) * orders[key][night]) for key in BASE}
        add_run(
            history,
            make_run_dir(tmp_path / f"night{night}", started_utc=f"2026-11-{night + 1:02d}T02:00:00Z", busbw=busbw),
        )
    tonight = {key: BASE[key] * TONIGHT[key] for key in BASE}
    run_dir = make_run_dir(tmp_path / "tonight", started_utc="2026-11-11T02:00:00Z", busbw=tonight, nccl=nccl_tonight)
    add_run(history, run_dir)  # as run/accept do at their end: tonight must not be its own baseline
    return history, run_dir


def _metric(key: tuple[str, str, str, int]) -> str:
    return "/".join(map(str, key))


@pytest.mark.slow
def test_nightly_history_tells_drops_from_noise(tmp_path: Path) -> None:
    history, run_dir = _history(tmp_path)
    assert run(CompareConfig(run_dir=run_dir, history=history)) == 1
    doc = json.loads((run_dir / "compare.json").read_text())
    states = {m["metric"]: m["state"] for m in doc["metrics"]}
    assert states == {
        _metric(BIG_DROP): "regressed",
        _metric(SMALL_DROP): "unchanged",
        _metric(NOISY): "unchanged",
        _metric(BETTER): "improved",
        _metric(STEADY): "unchanged",
    }
    big = next(m for m in doc["metrics"] if m["metric"] == _metric(BIG_DROP))
    assert big["baseline_runs"] == 10 and big["change"] == pytest.approx(-0.08, abs=0.01)
    assert doc["summary"] == {"regressed": 1, "improved": 1, "unchanged": 3, "new": 0, "missing": 0, "failed": 0}


@pytest.mark.slow
def test_cli_names_the_regressed_metric_and_exits_1(tmp_path: Path) -> None:
    history, run_dir = _history(tmp_path)
    done = railbench(["compare", str(run_dir), "--history", str(history)], timeout=60)
    assert done.returncode == 1, done.stderr
    flagged = [line for line in done.stdout.splitlines() if line.endswith("regressed")]
    assert len(flagged) == 1 and flagged[0].startswith(_metric(BIG_DROP))
    assert "5 metrics: 1 regressed, 1 improved, 3 unchanged, 0 new, 0 missing, 0 failed" in done.stdout


@pytest.mark.slow
def test_an_nccl_upgrade_does_not_hide_a_drop_and_is_named(tmp_path: Path) -> None:
    history, run_dir = _history(tmp_path, nccl_tonight="2.28.1")
    done = railbench(["compare", str(run_dir), "--history", str(history)], timeout=60)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "changed since the baseline: NCCL 2.27.3 -> 2.28.1" in done.stdout
    flagged = [line for line in done.stdout.splitlines() if "  regressed  (" in line]
    assert len(flagged) == 1 and flagged[0].startswith(_metric(BIG_DROP))
    assert flagged[0].endswith("(NCCL 2.27.3 -> 2.28.1 since the baseline)")
    doc = json.loads((run_dir / "compare.json").read_text())
    big = next(m for m in doc["metrics"] if m["metric"] == _metric(BIG_DROP))
    assert big["state"] == "regressed" and big["baseline_runs"] == 10
    assert big["changes"] == ["NCCL 2.27.3 -> 2.28.1"]
    assert doc["changes_since_baseline"] == [
        {"fact": "NCCL", "before": "2.27.3", "after": "2.28.1", "text": "NCCL 2.27.3 -> 2.28.1"}
    ]


@pytest.mark.slow
def test_same_environment_keeps_other_nccl_versions_out(tmp_path: Path) -> None:
    history, run_dir = _history(tmp_path, nccl_tonight="2.28.1")
    config = CompareConfig(run_dir=run_dir, history=history, same_environment=True)
    assert run(config) == 0  # no same-version baseline: all new
    doc = json.loads((run_dir / "compare.json").read_text())
    assert {m["state"] for m in doc["metrics"]} == {"new"}
    assert doc["baseline"]["other_nccl"] == [{"nccl": "2.27.3", "runs": 10}]
    big = next(m for m in doc["metrics"] if m["metric"] == _metric(BIG_DROP))
    assert big["other_nccl"][0]["nccl"] == "2.27.3" and big["other_nccl"][0]["change"] == pytest.approx(-0.08, abs=0.01)


def test_pure_functions_on_arrays() -> None:
    history = np.array([[100.0, 102.0, 98.0, 101.0, 99.0], [np.nan] * 5, [50.0, 50.0, np.nan, np.nan, np.nan]])
    stats = baseline_stats(history)
    median, sigma, count = stats.median, stats.sigma, stats.count
    assert median[0] == 100.0 and sigma[0] == pytest.approx(1.4826) and list(count) == [5, 0, 2]
    assert np.isnan(median[1]) and sigma[2] == 0.0
    allowed = allowed_change(median, sigma, np.array([0.05, 0.05, 0.05]), 3.0, 0.01)
    assert allowed[0] == pytest.approx(5.0) and allowed[2] == pytest.approx(2.5)
    # sigma 0 from two identical nights is floored at a fraction of the baseline ...
    floored = floored_sigma(median, sigma, 0.01)
    assert floored[2] == pytest.approx(0.5) and floored[0] == pytest.approx(1.4826) and np.isnan(floored[1])
    # ... and below min_runs the noise term is dropped: a tight threshold alone decides
    estimated = noise_estimated(count, 5)
    assert list(estimated) == [True, False, False]
    tight = allowed_change(median, floored * 10, np.array([0.01] * 3), 3.0, 0.01, estimated)
    assert tight[0] == pytest.approx(3 * 14.826) and tight[2] == pytest.approx(0.5)
    current = np.array([94.0, 10.0, np.nan])
    states = classify(current, np.array([True, True, False]), np.array([False, False, False]), median, allowed)
    assert states == ["regressed", "new", "missing"]
    assert classify(current, np.array([True] * 3), np.array([True] * 3), median, allowed)[0] == "failed"
    # lower-is-better (a time): the same numbers are an improvement
    assert classify(current[:1], np.array([True]), np.array([False]), median[:1], allowed[:1], "lower") == ["improved"]
    assert relative_change(current, median)[0] == pytest.approx(-0.06)
