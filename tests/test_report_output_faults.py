"""Where the report, the metrics and a run write, when that place is hostile (issue 33, items 18 and 19).

A run directory is input (CI artifacts, a tarball from another site): a ``charts`` symlink in it must never
make the report replace or remove files elsewhere. An ``--out`` that cannot be written (``/proc``, a symlink
loop, a read-only file system) is bad input: one line and exit 2 before any chart is drawn. A disk that fills
is an infrastructure fault: one line and exit 3, and run.json still says how the run ended. Real processes,
real files; the read-only and the full file systems are real tmpfs mounts in a mount namespace of the test's
own (``unshare --mount``), so nothing outside sees them and they go with the command.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench.exits import UserError
from bench.report.build import check_report_folder
from tests.support import REPO, rank_env
from tests.support.report_data import ClusterModel, write_run_dir

pytestmark = pytest.mark.slow


def _railbench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bench", *args], cwd=REPO, env=rank_env(), capture_output=True, text=True, timeout=300
    )


def _one_line(done: subprocess.CompletedProcess[str], exit_status: int, said: str) -> None:
    assert done.returncode == exit_status, done.stdout[-2000:] + done.stderr[-2000:]
    assert "Traceback" not in done.stderr + done.stdout, done.stderr[-3000:]
    lines = [line for line in done.stderr.splitlines() if line.startswith("railbench: ")]
    assert len(lines) == 1 and said in lines[0], done.stderr[-2000:]


def _in_namespace(script: str) -> subprocess.CompletedProcess[str]:
    """``script`` (sh) in a mount namespace of its own; skips where root, unshare or tmpfs are missing."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare to mount a small tmpfs in a mount namespace of its own")
    done = subprocess.run(
        ["unshare", "--mount", "sh", "-c", script],
        cwd=REPO,
        env=rank_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode == 97:
        pytest.skip(f"this machine refuses a tmpfs mount: {done.stderr.strip()}")
    return done


def test_export_into_proc_is_one_line(tmp_path: Path) -> None:
    run_dir = write_run_dir(tmp_path / "run", ClusterModel(bad=None))
    done = _railbench("export", "openmetrics", str(run_dir), "--out", "/proc/1/x")
    _one_line(done, 2, "--out /proc/1/x cannot be written")


def test_a_report_into_a_symlink_loop_is_refused_before_any_chart(tmp_path: Path) -> None:
    run_dir = write_run_dir(tmp_path / "run", ClusterModel(bad=None))
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    # The check write_report makes before it plans a chart refuses it: nothing was drawn when it says so.
    with pytest.raises(UserError, match="Too many levels of symbolic links"):
        check_report_folder(tmp_path / "a" / "x")
    _one_line(_railbench("report", str(run_dir), "--out", str(tmp_path / "a" / "x")), 2, "symbolic links")


def test_a_symlinked_charts_folder_is_never_written_through(tmp_path: Path) -> None:
    run_dir = write_run_dir(tmp_path / "run", ClusterModel(bad=None))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "busbw-vs-size.csv").write_text("someone else's file\n")
    (elsewhere / "old.png").write_text("someone else's image\n")  # the report's clean-up removes stale images
    shutil.rmtree(run_dir / "charts", ignore_errors=True)
    (run_dir / "charts").symlink_to(elsewhere)
    done = _railbench("report", str(run_dir))
    _one_line(done, 2, f"{run_dir / 'charts'} is a symlink")
    assert sorted(p.name for p in elsewhere.iterdir()) == ["busbw-vs-size.csv", "old.png"]
    assert (elsewhere / "busbw-vs-size.csv").read_text() == "someone else's file\n"
    # Drawn elsewhere with --out, the same run directory is read and nothing of it is written.
    report = tmp_path / "report"
    assert _railbench("report", str(run_dir), "--out", str(report)).returncode == 0
    assert (report / "charts" / "busbw-vs-size.csv").is_file() and not (report / "charts").is_symlink()
    assert (elsewhere / "busbw-vs-size.csv").read_text() == "someone else's file\n"


def test_a_read_only_folder_is_one_line_before_any_work(tmp_path: Path) -> None:
    run_dir = write_run_dir(tmp_path / "run", ClusterModel(bad=None))
    ro = tmp_path / "ro"
    ro.mkdir()
    bench = shlex.join([sys.executable, "-m", "bench"])
    script = (
        f"mount -t tmpfs -o size=1m,ro railbench-ro {shlex.quote(str(ro))} || exit 97; "
        f"{bench} report {shlex.quote(str(run_dir))} --out {shlex.quote(str(ro / 'report'))}; echo rc=$? >&2; "
        f"{bench} export openmetrics {shlex.quote(str(run_dir))} --out {shlex.quote(str(ro / 'x.prom'))}; "
        "echo rc=$? >&2"
    )
    done = _in_namespace(script)
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    lines = [line for line in done.stderr.splitlines() if line.startswith(("railbench: ", "rc="))]
    assert lines == [
        f"railbench: error: the report folder {ro / 'report'} cannot be written (Read-only file system): give a "
        "folder you can write",
        "rc=2",
        f"railbench: error: --out {ro / 'x.prom'} cannot be written (Read-only file system): give a folder you "
        "can write",
        "rc=2",
    ], done.stderr[-3000:]


@pytest.mark.mpi
def test_a_disk_too_full_for_a_second_run_json_still_records_the_failure(tmp_path: Path) -> None:
    # 8 KiB: run.json (about 2 KB) fits, its atomic copy and results.csv's first rows do not. Before the fix the
    # parent's reading of run.json wrote it again, crashed with a traceback (exit 1) and left it ``running``.
    full, kept = tmp_path / "full", tmp_path / "kept"
    full.mkdir()
    run = [sys.executable, "-m", "bench", "run", "--np", "2", "-b", "8", "-e", "64K", "-n", "1", "-w", "0"]
    script = (
        f"mount -t tmpfs -o size=8k railbench-full {shlex.quote(str(full))} || exit 97; "
        f"{shlex.join([*run, '--out', str(full / 'run'), '--no-history'])}; rc=$?; "
        f"cp -r {shlex.quote(str(full / 'run'))} {shlex.quote(str(kept))}; exit $rc"
    )
    done = _in_namespace(script)
    assert done.returncode == 3, done.stdout[-2000:] + done.stderr[-2000:]
    assert "Traceback" not in done.stderr and "Traceback" not in done.stdout, done.stderr[-3000:]
    said = [line for line in done.stderr.splitlines() if line.startswith("railbench: ")]
    assert said and "No space left on device" in said[0], done.stderr[-2000:]
    meta = json.loads((kept / "run.json").read_text())
    assert (meta["status"], meta["verdict"], meta["exit_status"]) == ("failed", "error", 3), meta
    assert meta["failure"]["kind"] == "write" and meta["failure"]["message"] in said[0], meta
