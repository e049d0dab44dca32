"""The nightly problems of issue 11, each reproduced and now given the right verdict: runs of another kind
are not a baseline, two or three runs do not fake a noise estimate, tiny sizes are not compared, a replaced
node keeps world metrics comparable, a driver or NCCL_* change is named, and a backlog imported within one
second keeps its order."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bench.cli import main as cli_main
from bench.commands.compare import CompareConfig, run
from bench.history.store import add_run
from bench.profile.cluster import load_profile
from tests.support import railbench
from tests.support.history_fixtures import make_run_dir, text_log

AR = ("all_reduce", "world", "world")
ACCEPT_SWEEP = {
    "collectives": ["all_reduce", "all_gather", "sendrecv"],
    "min_bytes": 8,
    "max_bytes": 1 << 24,
    "step_factor": 2,
    "step_bytes": 0,
    "dtype": "float",
}
RUN_SWEEP = {**ACCEPT_SWEEP, "min_bytes": 1024, "step_factor": 4}


def _sizes(sweep: dict[str, object]) -> list[int]:
    size, out = int(sweep["min_bytes"]), []  # type: ignore[call-overload]
    while size <= int(sweep["max_bytes"]):  # type: ignore[call-overload]
        out.append(size)
        size *= int(sweep["step_factor"])  # type: ignore[call-overload]
    return out


def _busbw(sweep: dict[str, object], scale: float = 1.0) -> dict[tuple[str, str, str, int], float]:
    return {
        (c, "world", "world", n): scale * n / (n + 1e5) * 10.0
        for c in ("all_reduce", "all_gather")
        for n in _sizes(sweep)
    }


@pytest.mark.slow
def test_accept_then_runs_gives_no_missing(tmp_path: Path) -> None:
    history = tmp_path / "h.sqlite"
    accept = make_run_dir(
        tmp_path / "accept",
        started_utc="2026-11-01T01:00:00Z",
        busbw=_busbw(ACCEPT_SWEEP),
        command="accept",
        meta_extra={"sweep": ACCEPT_SWEEP},
    )
    add_run(history, accept)
    for night in (2, 3):
        add_run(
            history,
            make_run_dir(
                tmp_path / f"run{night}",
                started_utc=f"2026-11-0{night}T02:00:00Z",
                busbw=_busbw(RUN_SWEEP),
                meta_extra={"sweep": RUN_SWEEP},
            ),
        )
    tonight = make_run_dir(
        tmp_path / "tonight",
        started_utc="2026-11-04T02:00:00Z",
        busbw=_busbw(RUN_SWEEP),
        meta_extra={"sweep": RUN_SWEEP},
    )
    assert run(CompareConfig(run_dir=tonight, history=history)) == 0
    doc = json.loads((tonight / "compare.json").read_text())
    assert doc["summary"]["missing"] == 0 and doc["summary"]["new"] == 0
    assert [r["run_dir"] for r in doc["baseline"]["runs"]] == [str(tmp_path / "run3"), str(tmp_path / "run2")]
    assert doc["kind"].startswith("run sweep[min_bytes=1024 max_bytes=16777216 step_factor=4")


@pytest.mark.slow
def test_two_run_noise_gives_no_false_regression(tmp_path: Path) -> None:
    history = tmp_path / "h.sqlite"
    base = {(*AR, 256 << 10): 2.0, (*AR, 1 << 30): 380.0}
    for night in (1, 2):  # two identical nights: sigma 0
        add_run(history, make_run_dir(tmp_path / f"n{night}", started_utc=f"2026-11-0{night}T02:00:00Z", busbw=base))
    # tonight: a -32.7% wobble at 256K (latency-bound) and -3% at 1G
    tonight = make_run_dir(
        tmp_path / "tonight",
        started_utc="2026-11-03T02:00:00Z",
        meta_extra={"profile": "local"},
        busbw={(*AR, 256 << 10): 2.0 * 0.673, (*AR, 1 << 30): 380.0 * 0.97},
    )
    # no --profile: the run's own profile (local) sets min_bytes
    done = railbench(["compare", str(tonight), "--history", str(history), "--all"], timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "fewer than 5 baseline runs: noise per value world 1.0% assumed at the noise floor" in done.stdout
    doc = json.loads((tonight / "compare.json").read_text())
    assert [(m["metric"], m["state"], m["noise_estimated"], m["noise_source"]) for m in doc["metrics"]] == [
        ("all_reduce/world/world/1073741824", "unchanged", False, "floor")  # 256K is below the profile's min_bytes
    ]
    assert doc["settings"]["min_bytes"] == 1 << 20 and doc["metrics"][0]["sigma_GBps"] == pytest.approx(3.8)


def test_every_shipped_profile_sets_compare_min_bytes() -> None:
    shipped = sorted(p.stem for p in (Path(__file__).parents[1] / "bench" / "profile" / "shipped").glob("*.toml"))
    assert {"generic", "lambda-1cc", "local", "runpod-instant", "gb200-nvl72", "hgx-b200", "h200"} <= set(shipped)
    for name in shipped:
        assert load_profile(name).compare.min_bytes == 1 << 20, name


@pytest.mark.slow
def test_a_replaced_node_keeps_world_metrics_comparable(tmp_path: Path) -> None:
    history = tmp_path / "h.sqlite"
    pair_old = ("sendrecv", "pair", "node01-node02/rail0", 1 << 30)
    pair_kept = ("sendrecv", "pair", "node01-node03/rail0", 1 << 30)
    old_hosts = ("node01", "node02", "node03")
    for night in range(1, 7):
        busbw = {(*AR, 1 << 30): 380.0 + night % 2, pair_old: 48.0, pair_kept: 48.0}
        add_run(
            history,
            make_run_dir(
                tmp_path / f"n{night}",
                started_utc=f"2026-11-0{night}T02:00:00Z",
                busbw=busbw,
                hosts=old_hosts,
                nranks=24,
            ),
        )
    # node02 replaced by node04; all_reduce drops 10%
    new_pair = ("sendrecv", "pair", "node01-node04/rail0", 1 << 30)
    busbw = {(*AR, 1 << 30): 342.0, pair_kept: 48.0, new_pair: 47.0}
    tonight = make_run_dir(
        tmp_path / "tonight",
        started_utc="2026-11-09T02:00:00Z",
        hosts=("node01", "node03", "node04"),
        nranks=24,
        busbw=busbw,
    )
    done = railbench(["compare", str(tonight), "--history", str(history)], timeout=60)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "node set node02 -> node04" in done.stdout
    states = {m["metric"]: m["state"] for m in json.loads((tonight / "compare.json").read_text())["metrics"]}
    assert states == {
        "all_reduce/world/world/1073741824": "regressed",
        "sendrecv/pair/node01-node03/rail0/1073741824": "unchanged",
        "sendrecv/pair/node01-node04/rail0/1073741824": "new",
    }  # node02's pair is not "missing": node02 left the set
    # --same-environment restores the old rule: another node set is no baseline
    assert run(CompareConfig(run_dir=tonight, history=history, same_environment=True)) == 0


@pytest.mark.slow
def test_driver_and_nccl_variable_changes_are_named(tmp_path: Path) -> None:
    history = tmp_path / "h.sqlite"
    env = {"NCCL_IB_HCA": "^=mlx5_0", "NCCL_DEBUG": "INFO"}
    for night in range(1, 6):
        add_run(
            history,
            make_run_dir(
                tmp_path / f"n{night}",
                started_utc=f"2026-11-0{night}T02:00:00Z",
                busbw={(*AR, 1 << 30): 380.0},
                meta_extra={"env": env},
            ),
        )
    versions = {"torch": "2.6.0", "nccl": "2.27.3", "cuda": "12.4", "driver": "560.35", "python": "3.11"}
    tonight = make_run_dir(
        tmp_path / "tonight",
        started_utc="2026-11-09T02:00:00Z",
        busbw={(*AR, 1 << 30): 300.0},
        meta_extra={"env": {**env, "NCCL_IB_HCA": "^mlx5_0"}, "versions": versions},
    )
    done = railbench(["compare", str(tonight), "--history", str(history)], timeout=60)
    assert done.returncode == 1
    assert "changed since the baseline: driver 550.90 -> 560.35; NCCL_IB_HCA ^=mlx5_0 -> ^mlx5_0" in done.stdout


@pytest.mark.slow
def test_nine_imports_in_one_second_keep_their_order(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    logs = []
    for i in range(9):
        log = tmp_path / f"ar{i}.log"
        body = text_log("all_reduce", ["gpu-a", "gpu-b"], 8, [1 << 20, 1 << 24, 1 << 28])
        log.write_text(body + f"# night {i}\n")  # nine different logs (one log imported twice is one run)
        os.utime(log, (1_795_000_000, 1_795_000_000))  # no time in the logs, one mtime second for all
        logs.append(log)
    history = tmp_path / "h.sqlite"
    out = tmp_path / "runs"
    # One import after another, as a backlog script would, each through railbench's own entry point (the history
    # orders ties by its own ids, not by anything a process keeps: in-process, nine imports cost one start-up).
    for log in logs:
        status = cli_main(
            ["import", "nccl-tests", str(log), "--cluster", "lab", "--out-root", str(out), "--history", str(history)]
        )
        said = capsys.readouterr()
        assert status == 0, said.err
    (line,) = [x for x in said.out.splitlines() if x.startswith("imported ")]
    last = Path(line.split(" -> ", 1)[1].split(": ", 1)[0])  # the ninth import's run directory
    assert last.parent == out and len(list(out.iterdir())) == 9
    meta = json.loads((last / "run.json").read_text())
    assert meta["started_utc_source"] == "file mtime" and meta["started_utc"] == "2026-11-18T11:06:40Z"
    done = railbench(["compare", str(last), "--history", str(history)], timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    doc = json.loads((last / "compare.json").read_text())
    assert len(doc["baseline"]["runs"]) == 8
