"""Concurrency for real: separate processes writing one SQLite history, and a writer killed with SIGKILL."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import pytest

from bench.history.store import add_run, list_runs, metrics_of, open_store
from tests.support import rank_env
from tests.support.history_fixtures import make_run_dir

RUNS_PER_WRITER = 6
METRICS_PER_RUN = 400

# Each writer waits for the go file so that both start adding at the same moment, then adds its runs.
WRITER = """
import sys, time
from pathlib import Path
from bench.history.store import add_run
history, go, dirs = sys.argv[1], Path(sys.argv[2]), sys.argv[3:]
while not go.exists():
    time.sleep(0.005)
for d in dirs:
    add_run(history, d)
"""

# Writes big runs one after another (run i has 60000 metrics) and says when each write starts and ends.
KILLED_WRITER = """
import sys
from bench.history.records import MetricRecord, RunRecord
from bench.history.store import open_store, write_run
from bench.rundir.files import FORMAT_VERSION
from bench.rundir.runjson import RunDoc
conn = open_store(sys.argv[1])
for i in range(1000):
    started = f"2026-11-{1 + i % 28:02d}T02:00:00Z"
    doc = RunDoc(format_version=FORMAT_VERSION, tool="railbench", version="0", command="run", cluster="lab",
                 profile=None, started_utc=started, status="complete", verdict="pass", hosts=("n1", "n2"),
                 nnodes=2, nranks=16, versions={"nccl": "2.27.3"})
    run = RunRecord(doc=doc, run_dir=f"/runs/{i}", run_key=f"key{i}", time_utc=started, node_hash="h")
    metrics = [MetricRecord("all_reduce", "world", "world", b, 16, 300.0 + i, 150.0, 10.0, 0, False, 1)
               for b in range(60000)]
    print(f"writing {i}", flush=True)
    write_run(conn, run, metrics)
    print(f"wrote {i}", flush=True)
"""


def _run_dirs(root: Path, writer: int) -> list[Path]:
    busbw = {("all_reduce", "world", f"g{writer}", 1024 * (k + 1)): 100.0 + k for k in range(METRICS_PER_RUN)}
    return [
        make_run_dir(root / f"w{writer}-{i}", started_utc=f"2026-11-{i + 1:02d}T0{writer}:00:00Z", busbw=busbw)
        for i in range(RUNS_PER_WRITER)
    ]


@pytest.mark.slow
def test_two_processes_adding_at_once_both_land(tmp_path: Path) -> None:
    history, go = tmp_path / "history.sqlite", tmp_path / "go"  # not created yet: both race to create it too
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(history), str(go), *map(str, _run_dirs(tmp_path, w))],
            env=rank_env(),
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in (1, 2)
    ]
    time.sleep(0.3)  # both interpreters are up and polling
    go.touch()
    for proc in writers:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    with closing(open_store(history)) as conn:
        runs = list_runs(conn, limit=None)
        assert len(runs) == 2 * RUNS_PER_WRITER
        assert {r.metrics for r in runs} == {METRICS_PER_RUN}
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


@pytest.mark.slow
def test_sigkill_mid_write_leaves_a_readable_store(tmp_path: Path) -> None:
    history = tmp_path / "history.sqlite"
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(history)], env=rank_env(), stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            if line.strip() == "writing 2":  # runs 0 and 1 are committed; run 2's transaction is under way
                time.sleep(0.03)
                proc.send_signal(signal.SIGKILL)
                break
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    # A fresh reader (as the next nightly job would be) sees whole runs only.
    with closing(sqlite3.connect(history)) as raw:
        assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    with closing(open_store(history)) as conn:
        runs = {r.run_key: r for r in list_runs(conn, limit=None)}
        assert {"key0", "key1"} <= set(runs) <= {"key0", "key1", "key2"}
        assert {r.metrics for r in runs.values()} == {60000}
        assert {m.busbw_GBps for m in metrics_of(conn, [runs["key1"].id])[runs["key1"].id]} == {301.0}
    # And the store keeps working.
    run_dir = make_run_dir(
        tmp_path / "after", started_utc="2026-12-01T02:00:00Z", busbw={("sendrecv", "pair", "p", 8): 1.0}
    )
    assert add_run(history, run_dir) > 0
