"""Run directories are claimed, never shared (issue 43, item 4).

The default run directory is named by the start second and the cluster: two runs started in the same second
(two nightly jobs, a retry loop) got one folder, and with it one run.json for two runs, mixed rows in
results.csv and one history record lost. Each run now takes its name with one ``mkdir`` that fails when the
folder exists (``bench.rundir.files.claim_run_dir``). The claims here are real and concurrent: threads, and
separate processes, each with the start second held to the same value so that every claim meets the others.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from bench.rundir import files
from bench.rundir.files import proposed_run_dir, utc_stamp
from tests.support import rank_env

STAMP = "20261125T190000Z"


def test_threads_proposing_in_one_second_each_get_a_folder_of_their_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(files, "utc_stamp", lambda now=None: STAMP)  # every thread starts in the same second
    count = 8
    start = threading.Barrier(count)
    got: list[Path] = []

    def propose() -> None:
        start.wait()
        got.append(proposed_run_dir(None, "gpu-prod"))

    threads = [threading.Thread(target=propose) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    base = Path("reports/runs") / f"{STAMP}-gpu-prod"
    assert sorted(got) == sorted([base, *(base.with_name(f"{base.name}-{n}") for n in range(2, count + 1))])
    assert all(path.is_dir() and not any(path.iterdir()) for path in got)


CLAIM = """
import sys, time
from pathlib import Path
from bench.rundir import files
files.utc_stamp = lambda now=None: {stamp!r}
Path({go!r} + "." + sys.argv[1]).touch()
while not Path({go!r}).exists():
    time.sleep(0.001)
print(files.proposed_run_dir(None, "gpu-prod"))
"""


@pytest.mark.slow
def test_processes_proposing_in_one_second_each_get_a_folder_of_their_own(tmp_path: Path) -> None:
    go = tmp_path / "go"
    script = CLAIM.format(stamp=STAMP, go=str(go))
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(n)], cwd=tmp_path, env=rank_env(), stdout=subprocess.PIPE, text=True
        )
        for n in range(6)
    ]
    deadline = time.monotonic() + 120
    while not all(Path(f"{go}.{n}").exists() for n in range(6)) and time.monotonic() < deadline:
        time.sleep(0.01)
    go.touch()  # every process at its start line: they claim at once
    said = [proc.communicate(timeout=120)[0].strip() for proc in procs]
    assert all(proc.returncode == 0 for proc in procs)
    assert len(set(said)) == 6, said
    made = sorted(p.name for p in (tmp_path / "reports" / "runs").iterdir())
    assert made == sorted(Path(s).name for s in said)


def test_a_taken_name_is_never_reused_and_an_explicit_out_is_kept(tmp_path: Path) -> None:
    base = tmp_path / "runs" / f"{STAMP}-c"
    base.mkdir(parents=True)
    (base / "results.csv").write_text("another run's rows\n")
    assert files.claim_run_dir(base) == base.with_name(f"{base.name}-2")
    assert files.claim_run_dir(base) == base.with_name(f"{base.name}-3")
    assert (base / "results.csv").read_text() == "another run's rows\n"
    assert proposed_run_dir(tmp_path / "mine", "c") == tmp_path / "mine"  # --out: the user's own folder
    assert not (tmp_path / "mine").exists()


@pytest.mark.slow
@pytest.mark.mpi
def test_a_run_started_in_a_second_another_run_holds_writes_a_folder_of_its_own(tmp_path: Path) -> None:
    # Another run has claimed every name this one could be given over the next two minutes, and has written
    # nothing yet (its ranks still starting). Before the fix the launcher handed that folder to this run.
    now = int(time.time())
    others = [tmp_path / "reports" / "runs" / f"{utc_stamp(now + s)}-claimtest" for s in range(-1, 120)]
    for other in others:
        other.mkdir(parents=True)
    run = [sys.executable, "-m", "bench", "run", "--np", "2", "-b", "8", "-e", "1K", "-n", "1", "-w", "0"]
    done = subprocess.run(
        [*run, "--cluster", "claimtest", "--no-history"],
        cwd=tmp_path,
        env=rank_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert all(not any(other.iterdir()) for other in others), [o for o in others if any(o.iterdir())]
    mine = [p for p in (tmp_path / "reports" / "runs").iterdir() if p.name.endswith("-claimtest-2")]
    assert len(mine) == 1, sorted(p.name for p in (tmp_path / "reports" / "runs").iterdir())
    assert json.loads((mine[0] / "run.json").read_text())["status"] == "complete"
    assert f"# run directory: reports/runs/{mine[0].name}" in done.stdout


def test_imports_of_logs_started_in_one_second_each_keep_a_folder_of_their_own(tmp_path: Path) -> None:
    # Before the claim, a name checked free and renamed into later could go to two imports at once, and the
    # second moved the first one's run directory aside as "an earlier import of the same log", then removed it.
    from bench.importer.config import ImportConfig
    from bench.importer.run import import_log
    from tests.support.history_fixtures import text_log

    logs = []
    for n in range(6):
        log = tmp_path / f"night{n}.log"
        log.write_text(text_log("all_reduce", ["node01", "node02"], 8, [1 << 20, 1 << (21 + n)]))
        os.utime(log, (1_764_000_000, 1_764_000_000))  # one start second for every log (no -J start time)
        logs.append(log)
    config = ImportConfig(kind="nccl-tests", logs=tuple(logs), out_root=tmp_path / "runs", no_history=True)
    start = threading.Barrier(len(logs))
    placed: dict[Path, Path] = {}

    def one(log: Path) -> None:
        start.wait()
        placed[log] = import_log(config, log)[0]

    threads = [threading.Thread(target=one, args=(log,)) for log in logs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(placed.values())) == len(logs), placed
    for log, run_dir in placed.items():
        source = json.loads((run_dir / "run.json").read_text())["source"]
        assert source["sha256"] == hashlib.sha256(log.read_bytes()).hexdigest(), (log, run_dir)
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == sorted(p.name for p in placed.values())
