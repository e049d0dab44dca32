"""A history that is not railbench's, on a full disk or on a read-only mount (issue 43, item 4).

``history list`` switched a foreign SQLite file to WAL and gave it railbench's tables before refusing it; a full
disk was called "damaged, restore it from a backup" (the store was intact) and a read-only mount "not a
railbench history". Now a file is opened read-only until it is known to be railbench's
(``bench.history.store``), and the refusals say what they are (``bench.history.faults``). The full and the
read-only file systems are real: a small tmpfs filled up, and a read-only bind mount, in a mount namespace of
the test's own (``unshare --mount``), so nothing outside sees them and they go with the command.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest

from bench.history.store import add_run
from tests.support import REPO, railbench_inline, rank_env
from tests.support.history_fixtures import make_run_dir

AR = ("all_reduce", "world", "world", 1 << 30)


def _run(tmp_path: Path, day: int) -> Path:
    return make_run_dir(
        tmp_path / "runs" / f"d{day}", started_utc=f"2026-11-{day:02d}T02:00:00Z", busbw={AR: 300.0 + day}
    )


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_foreign_sqlite_file_is_refused_and_left_as_it_was(tmp_path: Path) -> None:
    foreign = tmp_path / "inventory.sqlite"
    with closing(sqlite3.connect(foreign)) as conn:
        conn.execute("CREATE TABLE hosts (name TEXT, rack INTEGER)")
        conn.execute("INSERT INTO hosts VALUES ('gpu-node-01', 4)")
        conn.commit()
    before = _digest(foreign)
    run_dir = _run(tmp_path, 1)
    for args in (
        ["history", "list", "--history", str(foreign)],
        ["history", "add", str(run_dir), "--history", str(foreign)],
        ["history", "init", "--history", str(foreign)],
        ["compare", str(run_dir), "--history", str(foreign)],
    ):
        done = railbench_inline(args, cwd=tmp_path)
        assert done.returncode == 2, done.stdout + done.stderr
        assert done.stderr.count("\n") == 1 and "not a railbench history" in done.stderr, done.stderr
        # Not written at all: no journal mode change, no migration, no WAL or shared-memory file beside it.
        assert _digest(foreign) == before, args
        assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("inventory")) == ["inventory.sqlite"]
    with closing(sqlite3.connect(f"{foreign.as_uri()}?mode=ro", uri=True)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        assert conn.execute("SELECT name FROM sqlite_master").fetchall() == [("hosts",)]


def test_an_empty_file_is_a_new_history_and_a_railbench_one_still_opens(tmp_path: Path) -> None:
    empty = tmp_path / "new.sqlite"
    empty.touch()  # what a nightly's set-up step may leave: it becomes the history
    assert railbench_inline(["history", "add", str(_run(tmp_path, 1)), "--history", str(empty)]).returncode == 0
    listed = railbench_inline(["history", "list", "--history", str(empty), "--json"])
    assert listed.returncode == 0 and len(listed.stdout.splitlines()) == 1, listed.stdout + listed.stderr


NAMESPACE_SCRIPT = """
import json, subprocess, sys
from tests.support import railbench_inline
said = []
for step in json.loads(sys.argv[1]):
    if step[0] == "sh":
        done = subprocess.run(step[1], shell=True, capture_output=True, text=True)
        if done.returncode:
            print(done.stderr, file=sys.stderr)
            sys.exit(97)
        continue
    done = railbench_inline(step)
    said.append([done.returncode, done.stdout, done.stderr])
print(json.dumps(said))
"""


def _in_namespace(steps: list[list[str]]) -> list[tuple[int, str, str]]:
    """Each step in one mount namespace of the test's own: ``["sh", CMD]`` runs a shell command (a mount),
    any other is a railbench command line run in that process; returns (status, stdout, stderr) of each."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare to mount a tmpfs in a mount namespace of its own")
    done = subprocess.run(
        ["unshare", "--mount", sys.executable, "-c", NAMESPACE_SCRIPT, json.dumps(steps)],
        cwd=REPO,
        env=rank_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode == 97:
        pytest.skip(f"this machine refuses the mount: {done.stderr.strip()}")
    assert done.returncode == 0, done.stderr[-3000:]
    return [(int(rc), out, err) for rc, out, err in json.loads(done.stdout.splitlines()[-1])]


def _one_line(said: tuple[int, str, str], status: int, *words: str) -> None:
    rc, out, err = said
    assert rc == status, out + err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for word in words:
        assert word in err, err


@pytest.mark.slow
def test_a_full_disk_is_named_as_one_and_the_history_stays_intact(tmp_path: Path) -> None:
    runs = [_run(tmp_path, day) for day in (1, 2)]
    built = tmp_path / "built.sqlite"
    add_run(built, runs[0])
    full = tmp_path / "full"
    full.mkdir()
    history = full / "h.sqlite"
    q = shlex.quote
    steps = [
        ["sh", f"mount -t tmpfs -o size=512k railbench-full {q(str(full))}"],
        ["sh", f"cp {q(str(built))} {q(str(history))} && dd if=/dev/zero of={q(str(full / 'fill'))} bs=4k || true"],
        ["history", "add", str(runs[1]), "--history", str(history)],
        ["history", "list", "--history", str(history)],
        ["history", "init", "--history", str(full / "new.sqlite")],
        ["sh", f"rm {q(str(full / 'fill'))}"],
        ["history", "list", "--history", str(history), "--json"],
    ]
    add, listed, init, after = _in_namespace(steps)
    for said in (add, init):
        _one_line(said, 3, "no space left on its file system (ENOSPC", "free space there")
        assert "damaged" not in said[2] and "not a railbench history" not in said[2], said[2]
    # Closed cleanly (no write-ahead log), the history is whole in its main file: it is still listed.
    assert listed[0] == 0 and str(runs[0]) in listed[1], listed[1] + listed[2]
    assert after[0] == 0 and [json.loads(line)["run_dir"] for line in after[1].splitlines()] == [str(runs[0])]


@pytest.mark.slow
def test_a_read_only_mount_is_listed_and_compared_and_refuses_an_add_in_one_line(tmp_path: Path) -> None:
    runs = [_run(tmp_path, day) for day in (1, 2, 3)]
    folder = tmp_path / "histories"
    folder.mkdir()
    for run_dir in runs[:2]:
        add_run(folder / "h.sqlite", run_dir)  # closed cleanly: no -wal or -shm beside it, as after a nightly
    assert sorted(p.name for p in folder.iterdir()) == ["h.sqlite"]
    ro = tmp_path / "ro"
    ro.mkdir()
    history = ro / "h.sqlite"
    q = shlex.quote
    steps = [
        ["sh", f"mount --bind {q(str(folder))} {q(str(ro))} && mount -o remount,bind,ro {q(str(ro))}"],
        ["history", "list", "--history", str(history), "--json"],
        ["history", "add", str(runs[2]), "--history", str(history)],
        ["compare", str(runs[2]), "--history", str(history), "--baseline", "last:2"],
    ]
    listed, add, compared = _in_namespace(steps)
    assert listed[0] == 0, listed[2]
    assert sorted(json.loads(line)["run_dir"] for line in listed[1].splitlines()) == sorted(map(str, runs[:2]))
    _one_line(add, 2, f"history {history} is on a read-only file system (EROFS", "remount it read-write")
    assert compared[0] == 0 and "Traceback" not in compared[2], compared[1][-2000:] + compared[2]
    assert "2 run(s)" in compared[1], compared[1][-2000:]


def _nights(tmp_path: Path) -> tuple[Path, list[Path]]:
    """Two nights in a history and tonight's run, 100 GB/s lower: compare has a regression to write."""
    history = tmp_path / "h.sqlite"
    runs = []
    for day in (1, 2, 3):
        busbw = {AR: 300.0 + day - (100.0 if day == 3 else 0.0)}
        runs.append(
            make_run_dir(tmp_path / "runs" / f"d{day}", started_utc=f"2026-11-{day:02d}T02:00:00Z", busbw=busbw)
        )
    for run_dir in runs[:2]:
        add_run(history, run_dir)
    return history, runs


@pytest.mark.slow
def test_compare_into_a_read_only_or_full_run_directory_is_one_line(tmp_path: Path) -> None:
    history, runs = _nights(tmp_path)
    tonight = runs[2]
    before = {p.name: _digest(p) for p in tonight.iterdir() if p.is_file()}
    ro, full = tmp_path / "ro", tmp_path / "full"
    ro.mkdir()
    full.mkdir()
    q = shlex.quote
    steps = [
        ["sh", f"mount --bind {q(str(tonight))} {q(str(ro))} && mount -o remount,bind,ro {q(str(ro))}"],
        ["compare", str(ro), "--history", str(history)],
        ["sh", f"mount -t tmpfs -o size=256k railbench-full {q(str(full))} && cp -r {q(str(tonight))} {q(str(full))}/"],
        ["sh", f"dd if=/dev/zero of={q(str(full / 'fill'))} bs=4k || true"],
        ["compare", str(full / tonight.name), "--history", str(history)],
    ]
    read_only, filled = _in_namespace(steps)
    _one_line(read_only, 2, f"the run directory {ro} cannot be written (Read-only file system)", "copy the run")
    _one_line(filled, 3, f"the run directory {full / tonight.name} refused a write: No space left on device")
    assert {p.name: _digest(p) for p in tonight.iterdir() if p.is_file()} == before  # the original untouched
    # With room, the same compare writes its verdict and its outputs.
    done = railbench_inline(["compare", str(tonight), "--history", str(history)], cwd=tmp_path)
    assert done.returncode == 1 and "regressed" in done.stdout, done.stdout[-2000:] + done.stderr
    assert (tonight / "compare.json").is_file()
