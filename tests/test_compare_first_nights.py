"""The first nights of a history (issue 21): noise pooled from what there is, isolated excursions inside it
are not regressions, spans and repeats are; a missing history is bad input unless asked to start one; a
baseline of another shape is refused or named; a regression is said in run.json and the history too."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bench.commands.compare import CompareConfig, run
from bench.commands.history import HistoryConfig
from bench.commands.history import run as history_run
from bench.exits import UserError
from bench.history.compare import (
    confirm_runs,
    difference_sigma,
    isolated_k,
    pooled_relative_sigma,
    repeated,
)
from bench.history.store import add_run, history_for, list_runs, opened
from tests.support import railbench
from tests.support.history_fixtures import make_run_dir

COLLECTIVES = ("all_reduce", "all_gather", "sendrecv")
SIZES = [1 << e for e in range(20, 34)]  # 1M .. 8G: a 1CC nightly's compared sizes
Key = tuple[str, str, str, int]
KEYS: list[Key] = [(c, "world", "world", n) for c in COLLECTIVES for n in SIZES]


def _nights(root: Path, noise: np.ndarray, scale: dict[Key, float] | None = None) -> dict[Key, float]:
    """busbw of one night: a smooth curve per collective times (1 + noise)."""
    scale = scale or {}
    return {
        key: 400.0 * key[3] / (key[3] + (64 << 20)) * (1 + float(z)) * scale.get(key, 1.0)
        for key, z in zip(KEYS, noise, strict=True)
    }


def _history(
    tmp_path: Path, runs: int = 2, seed: int = 2611
) -> tuple[Path, np.random.Generator, list[dict[Key, float]]]:
    rng = np.random.default_rng(seed)
    runs_dir = tmp_path / "reports" / "runs"
    history = tmp_path / "reports" / "history.sqlite"
    nights = []
    for night in range(runs):
        busbw = _nights(tmp_path, 0.02 * rng.standard_normal(len(KEYS)))
        nights.append(busbw)
        add_run(
            history, make_run_dir(runs_dir / f"n{night}", started_utc=f"2026-11-0{night + 1}T02:00:00Z", busbw=busbw)
        )
    return history, rng, nights


def _tonight(tmp_path: Path, busbw: dict[Key, float], name: str = "tonight", day: int = 9) -> Path:
    run_dir = make_run_dir(
        tmp_path / "reports" / "runs" / name, started_utc=f"2026-11-{day:02d}T02:00:00Z", busbw=busbw
    )
    add_run(tmp_path / "reports" / "history.sqlite", run_dir)  # as run and accept do at their end
    return run_dir


def _metric(key: Key) -> str:
    return "/".join(map(str, key))


def test_pure_first_night_functions() -> None:
    # two runs per metric; deviations from the mean, scaled by sqrt(2), all 0.02: the pool says 2%
    history = np.array([[102.0, 98.0], [51.0, 49.0], [204.0, 196.0], [10.2, 9.8], [np.nan, 5.0]])
    pooled = pooled_relative_sigma(history, ["world"] * 4 + ["pair"], 5)
    assert pooled == {"world": pytest.approx(0.02 * np.sqrt(2))}  # pair: one value, no deviation
    # one odd metric far out is trimmed from the pool, not averaged in
    odd = np.vstack([history[:4]] * 3 + [[[150.0, 50.0]]])
    assert pooled_relative_sigma(odd, ["world"] * 13, 5)["world"] == pytest.approx(0.02 * np.sqrt(2))
    # tonight minus the median of R values: sqrt(1 + 1/R) for R <= 2, sqrt(1 + pi/2/R) from 3
    assert difference_sigma(np.array([1.0, 1.0, 1.0]), np.array([1, 2, 4])) == pytest.approx(
        [np.sqrt(2), np.sqrt(1.5), np.sqrt(1 + np.pi / 8)]
    )
    # Sidak: one look keeps k; 42 looks need about 4 sigmas for the same chance of any false alarm
    assert isolated_k(3.0, 1) == 3.0 and isolated_k(3.0, 42) == pytest.approx(4.0, abs=0.02)
    # runs of adjacent sizes over the 5% threshold, per series; a series boundary ends a run
    worse = np.array([0.09, 0.11, 0.10, 0.0, 0.06, 0.07, 0.30])
    series = ["a", "a", "a", "a", "b", "b", "c"]
    runs = confirm_runs(worse, np.full(7, 0.05), np.full(7, 0.0245), series, 3.0, 4.0)
    assert list(runs.length) == [3, 3, 3, 0, 2, 2, 1]
    assert runs.needed[0] == pytest.approx(0.05 + 3 * 0.0245 / np.sqrt(3))
    assert list(runs.confirmed) == [True, True, True, False, False, False, True]  # 6.5% mean < 10.2% needed
    # a repeat: last night and tonight both 15% under the older run; 2% noise: 5% + 3 x 2.45% needed
    hist = np.array([[85.0, 100.0], [100.0, 100.0]])
    again = repeated(hist, np.array([85.0, 85.0]), np.full(2, 0.05), np.full(2, 0.02), 3.0)
    assert list(again) == [True, False]


@pytest.mark.slow
def test_two_runs_and_a_three_percent_dip_is_no_regression(tmp_path: Path) -> None:
    history, rng, nights = _history(tmp_path)
    base = {k: (nights[0][k] + nights[1][k]) / 2 for k in KEYS}
    dip = (*KEYS[20][:3], KEYS[20][3])  # all_gather at 64M
    tonight = {k: base[k] * 0.97 * (1 + 0.02 * float(rng.standard_normal())) for k in KEYS}
    tonight[dip] = base[dip] * 0.941  # the isolated -5.9%
    run_dir = _tonight(tmp_path, tonight)
    assert run(CompareConfig(run_dir=run_dir, history=history, show_all=False)) == 0
    doc = json.loads((run_dir / "compare.json").read_text())
    by_metric = {m["metric"]: m for m in doc["metrics"]}
    assert doc["summary"]["regressed"] == 0 and doc["summary"]["unchanged"] == len(KEYS)
    shown = by_metric[_metric(dip)]
    assert shown["state"] == "unchanged" and shown["noise_source"] == "pooled" and not shown["noise_estimated"]
    assert shown["change"] == pytest.approx(-0.059, abs=1e-3)
    assert shown["evidence"].startswith("alone it fell 5.9%: within the noise (needed 1")
    assert shown["sigma_GBps"] / shown["baseline_GBps"] == pytest.approx(0.02, rel=0.35)
    assert json.loads((run_dir / "run.json").read_text())["verdict"] == "measured"  # the run's own word


@pytest.mark.slow
def test_a_drop_over_adjacent_sizes_is_regressed_and_said_everywhere(tmp_path: Path) -> None:
    history, rng, nights = _history(tmp_path)
    base = {k: (nights[0][k] + nights[1][k]) / 2 for k in KEYS}
    dropped = [k for k in KEYS if k[0] == "all_reduce" and k[3] >= 256 << 20]  # the judged sizes, 256M-8G
    tonight = {k: base[k] * (0.90 if k in dropped else 1.0) * (1 + 0.02 * float(rng.standard_normal())) for k in KEYS}
    run_dir = _tonight(tmp_path, tonight)
    done = railbench(["compare", str(run_dir), "--history", str(history)], timeout=600)
    assert done.returncode == 1, done.stdout + done.stderr
    doc = json.loads((run_dir / "compare.json").read_text())
    regressed = [m for m in doc["metrics"] if m["state"] == "regressed"]
    assert [m["metric"] for m in regressed] == [_metric(k) for k in dropped]
    assert all(m["evidence"].startswith("6 adjacent sizes fell") for m in regressed)
    assert "noise per value world 2." in done.stdout and "pooled over the baseline's metrics" in done.stdout
    assert "# compare verdict: REGRESSED (the run's verdict in its run.json and the history)" in done.stdout
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["verdict"] == "regressed" and meta["before_compare"]["verdict"] == "measured"
    assert meta["reasons"][0].startswith("all_reduce/world/world/268435456: regressed: tonight")
    with opened(history) as conn:
        stored = {Path(r.run_dir).name: r.verdict for r in list_runs(conn)}
    assert stored == {"tonight": "regressed", "n1": "measured", "n0": "measured"}
    listed = railbench(["history", "list", "--history", str(history)], timeout=600)
    (row,) = [line for line in listed.stdout.splitlines() if line.endswith("/tonight")]
    assert " regressed " in row
    # compared again with a looser profile: nothing regressed, the run's own word comes back everywhere
    loose = tmp_path / "loose.toml"
    loose.write_text('name = "loose"\n[compare]\nmin_bytes = "1M"\ndefault_threshold = "20%"\n')
    assert run(CompareConfig(run_dir=run_dir, history=history, profile=str(loose))) == 0
    assert json.loads((run_dir / "run.json").read_text())["verdict"] == "measured"  # the run's own word
    with opened(history) as conn:
        assert {Path(r.run_dir).name: r.verdict for r in list_runs(conn)}["tonight"] == "measured"


@pytest.mark.slow
def test_a_single_size_that_fell_two_nights_running_is_regressed(tmp_path: Path) -> None:
    rng = np.random.default_rng(2611)
    size = KEYS[30]
    noise = [0.02 * rng.standard_normal(len(KEYS)) for _ in range(4)]
    for z in noise:
        z[30] = 0.0  # this size steady at its curve before it fell, so the margins below are exact
    history = tmp_path / "reports" / "history.sqlite"
    for night in range(2):
        add_run(
            history,
            make_run_dir(
                tmp_path / f"n{night}",
                started_utc=f"2026-11-0{night + 1}T02:00:00Z",
                busbw=_nights(tmp_path, noise[night]),
            ),
        )
    fell = {size: 0.855}  # 14.5%: alone within the noise (needs about 15%), two nights beyond it (about 13.4%)
    _tonight(tmp_path, _nights(tmp_path, noise[2], fell), name="last", day=8)
    run_dir = _tonight(tmp_path, _nights(tmp_path, noise[3], fell))
    assert run(CompareConfig(run_dir=run_dir, history=history)) == 1
    doc = json.loads((run_dir / "compare.json").read_text())
    (flagged,) = [m for m in doc["metrics"] if m["state"] == "regressed"]
    assert flagged["metric"] == _metric(size) and flagged["change"] == pytest.approx(-0.145)
    assert flagged["evidence"].startswith("alone it fell 14.5%") and flagged["evidence"].endswith("last night too")


@pytest.mark.slow
def test_a_missing_history_is_bad_input_unless_started(tmp_path: Path) -> None:
    run_dir = make_run_dir(tmp_path / "t", started_utc="2026-11-02T02:00:00Z", busbw={KEYS[0]: 10.0})
    typo = tmp_path / "typo" / "history.sqlite"
    done = railbench(["compare", str(run_dir), "--history", str(typo)], timeout=600)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and f"--history {typo} does not exist" in done.stderr
    assert "--init" in done.stderr and not typo.exists()
    assert run(CompareConfig(run_dir=run_dir, history=typo, init=True)) == 0
    assert json.loads((run_dir / "compare.json").read_text())["summary"]["new"] == 1 and typo.exists()
    started = tmp_path / "fresh.sqlite"
    assert history_run(HistoryConfig(action="init", history=started)) == 0
    assert history_run(HistoryConfig(action="init", history=started)) == 0  # idempotent
    with opened(started) as conn:
        assert list_runs(conn) == []


@pytest.mark.slow
def test_the_default_history_is_the_one_beside_the_runs_folder(tmp_path: Path) -> None:
    history, _, nights = _history(tmp_path)
    run_dir = _tonight(tmp_path, nights[0])
    assert history_for(run_dir) == history
    elsewhere = tmp_path / "home"
    elsewhere.mkdir()  # a cron job's working directory
    done = railbench(["compare", str(run_dir)], cwd=elsewhere, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"against last 10 comparable runs in {history}: 2 run(s)" in done.stdout
    assert not (elsewhere / "reports").exists()


@pytest.mark.slow
def test_a_baseline_of_another_shape_is_refused_or_named(tmp_path: Path) -> None:
    sixteen = make_run_dir(tmp_path / "r16", started_utc="2026-11-01T02:00:00Z", busbw={KEYS[-1]: 380.0}, nranks=16)
    two = make_run_dir(
        tmp_path / "r2", started_utc="2026-11-02T02:00:00Z", busbw={KEYS[-1]: 15.0}, nranks=2, hosts=("node01",)
    )
    with pytest.raises(UserError, match=r"another shape \(nranks 16 -> 2, nnodes 2 -> 1\)"):
        run(CompareConfig(run_dir=two, baseline=str(sixteen)))
    # last:N never takes another shape as baseline, and says why there is none
    history = tmp_path / "h.sqlite"
    add_run(history, sixteen)
    add_run(history, two)
    out = tmp_path / "out.txt"
    with out.open("w") as fh:
        assert run(CompareConfig(run_dir=two, history=history), out=fh) == 0
    assert "no comparable run: tonight has 2 ranks on 1 node(s), the history's runs of this kind have 16 ranks on" in (
        out.read_text()
    )
    # a rail fewer tonight is named beside the missing rail, not refused
    rails = {("sendrecv", "rail", f"rail{r}", 1 << 28): 45.0 for r in range(8)}
    full = make_run_dir(tmp_path / "full", started_utc="2026-11-03T02:00:00Z", busbw=rails)
    seven = make_run_dir(
        tmp_path / "seven",
        started_utc="2026-11-04T02:00:00Z",
        busbw={k: v for k, v in rails.items() if k[2] != "rail5"},
    )
    with out.open("w") as fh:
        assert run(CompareConfig(run_dir=seven, baseline=str(full)), out=fh) == 1
    assert "note: baseline run has rails 8 -> 7: the rails not measured tonight are missing" in out.read_text()
