"""Read-only and damaged history stores (issue 12): one line and exit 2, never a traceback, and ``compare``
never reads a damaged store as intact (``PRAGMA integrity_check`` on open)."""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.exits import UserError
from bench.history.queries import metrics_of
from bench.history.store import add_run, list_runs, open_store, opened
from tests.support import railbench_inline
from tests.support.history_fixtures import make_run_dir

AR = ("all_reduce", "world", "world", 1 << 30)
PAGE = 4096


def _runs(tmp_path: Path, days: int = 3) -> list[Path]:
    return [
        make_run_dir(tmp_path / "runs" / f"d{day}", started_utc=f"2026-11-{day:02d}T02:00:00Z", busbw={AR: 300.0 + day})
        for day in range(1, days + 1)
    ]


@pytest.fixture
def store(tmp_path: Path) -> tuple[Path, list[Path]]:
    """A history holding the first two runs (the third is tonight's), checkpointed into the main file."""
    runs = _runs(tmp_path)
    history = tmp_path / "h.sqlite"
    for run_dir in runs[:2]:
        add_run(history, run_dir)
    return history, runs


def _root_page(history: Path, name: str) -> int:
    with closing(sqlite3.connect(history)) as conn:
        return int(conn.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (name,)).fetchone()[0])


def _damage(history: Path, page: int) -> None:
    """Overwrite the b-tree header of ``page`` (1-based), as a torn write or a bad sector would."""
    with history.open("r+b") as handle:
        handle.seek((page - 1) * PAGE)
        handle.write(b"\xff" * 16)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _one_line_exit_2(args: list[str], cwd: Path, *words: str) -> str:
    done = railbench_inline(args, cwd=cwd)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    for word in words:
        assert word in done.stderr, done.stderr
    return done.stderr


def test_damage_to_any_page_is_refused_on_open(store: tuple[Path, list[Path]], tmp_path: Path) -> None:
    history, _ = store
    pages = history.stat().st_size // PAGE
    assert pages >= 5
    for page in range(2, pages + 1):
        copy = tmp_path / f"p{page}.sqlite"
        shutil.copy(history, copy)
        _damage(copy, page)
        with pytest.raises(UserError, match="is damaged") as info:
            open_store(copy, create=False)
        assert "\n" not in str(info.value) and ".recover" in str(info.value)


def test_a_damaged_index_is_not_read_as_intact_by_compare(store: tuple[Path, list[Path]], tmp_path: Path) -> None:
    history, runs = store
    _damage(history, _root_page(history, "runs_by_kind"))
    with closing(sqlite3.connect(history)) as conn:  # plain reads still work: only the integrity check sees it
        assert conn.execute("SELECT COUNT(*) FROM runs").fetchone() == (2,)
    _one_line_exit_2(["compare", str(runs[2]), "--history", str(history)], tmp_path, "is damaged")


def test_damage_that_quick_check_misses_is_refused(store: tuple[Path, list[Path]], tmp_path: Path) -> None:
    """Bit flips that leave rows out of primary-key order or an index without its row pass ``quick_check``
    (issue 24: 9 of 29 random flips); list, add and compare read and wrote such a store as intact."""
    history, runs = store
    data = history.read_bytes()
    copy = tmp_path / "flipped.sqlite"
    rng = random.Random(24)
    for _ in range(3000):
        damaged = bytearray(data)
        damaged[rng.randrange(100, len(data))] ^= 1 << rng.randrange(8)
        copy.write_bytes(bytes(damaged))
        try:
            with closing(sqlite3.connect(copy)) as conn:
                quick = conn.execute("PRAGMA quick_check(1)").fetchall()
                full = conn.execute("PRAGMA integrity_check(1)").fetchall()
        except (sqlite3.DatabaseError, UnicodeDecodeError):
            continue
        if quick == [("ok",)] and full != [("ok",)]:
            break
    else:
        pytest.fail("no bit flip that only integrity_check sees in 3000 tries")
    before = _digest(copy)
    _one_line_exit_2(["history", "list", "--history", str(copy)], tmp_path, "is damaged", "integrity_check")
    _one_line_exit_2(["history", "add", str(runs[2]), "--history", str(copy)], tmp_path, "is damaged")
    _one_line_exit_2(["compare", str(runs[2]), "--history", str(copy)], tmp_path, "is damaged")
    assert _digest(copy) == before


@pytest.fixture(scope="module")
def clean_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small history with its runs and metrics, checkpointed into the main file (never written again)."""
    root = tmp_path_factory.mktemp("clean")
    history = root / "h.sqlite"
    for run_dir in _runs(root):
        add_run(history, run_dir)
    with closing(sqlite3.connect(history)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return history


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(where=st.floats(min_value=0.0, max_value=1.0, exclude_max=True), bit=st.integers(0, 7))
def test_any_bit_flip_is_read_whole_or_refused_in_one_line(
    clean_store: Path, tmp_path: Path, where: float, bit: int
) -> None:
    """Whatever one flipped bit does to the store, every read answers or says "damaged" in one line."""
    damaged = bytearray(clean_store.read_bytes())
    damaged[int(where * len(damaged))] ^= 1 << bit
    copy = tmp_path / "flip.sqlite"
    copy.write_bytes(bytes(damaged))
    for suffix in ("-wal", "-shm"):
        Path(f"{copy}{suffix}").unlink(missing_ok=True)
    try:
        with opened(copy, create=False) as conn:
            for run in list_runs(conn):
                assert run.host_names is not None and run.environment_facts is not None
            metrics_of(conn, [run.id for run in list_runs(conn)])
    except UserError as exc:
        assert "\n" not in str(exc)


@pytest.mark.parametrize("table", ["runs", "metrics"])
def test_every_history_command_refuses_a_damaged_store(
    store: tuple[Path, list[Path]], tmp_path: Path, table: str
) -> None:
    history, runs = store
    _damage(history, _root_page(history, table))
    before = _digest(history)
    _one_line_exit_2(["history", "list", "--history", str(history)], tmp_path, "is damaged")
    _one_line_exit_2(["history", "add", str(runs[2]), "--history", str(history)], tmp_path, "is damaged")
    _one_line_exit_2(["compare", str(runs[2]), "--history", str(history)], tmp_path, "is damaged")
    assert _digest(history) == before  # nothing was written into it


def test_damage_met_after_open_is_one_line_too(store: tuple[Path, list[Path]]) -> None:
    history, _ = store
    with pytest.raises(UserError, match="is damaged"), opened(history, create=False) as conn:
        assert len(list_runs(conn)) == 2
        raise sqlite3.DatabaseError("database disk image is malformed")  # as a query would, on a page met late


def _make_read_only(path: Path) -> None:
    """A store nobody may write: mode 0444 for a normal user; root ignores modes, so the immutable flag."""
    if os.geteuid() != 0:
        path.chmod(0o444)
        return
    if shutil.which("chattr") is None:
        pytest.skip("running as root without chattr: no way to make a file read-only here")
    done = subprocess.run(["chattr", "+i", str(path)], capture_output=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"chattr +i is not supported here: {done.stderr.decode(errors='replace').strip()}")


@pytest.fixture
def read_only(store: tuple[Path, list[Path]]) -> Iterator[tuple[Path, list[Path]]]:
    history, runs = store
    _make_read_only(history)
    yield history, runs
    if os.geteuid() == 0:  # pytest must be able to remove tmp_path afterwards
        subprocess.run(["chattr", "-i", str(history)], capture_output=True, check=False)


def test_read_only_store_refuses_add_in_one_line(read_only: tuple[Path, list[Path]], tmp_path: Path) -> None:
    history, runs = read_only
    before = _digest(history)
    _one_line_exit_2(["history", "add", str(runs[2]), "--history", str(history)], tmp_path, "read-only")
    with pytest.raises(UserError, match="read-only"):
        add_run(history, runs[2])
    assert _digest(history) == before


@pytest.mark.slow
def test_read_only_store_still_lists_and_compares(read_only: tuple[Path, list[Path]], tmp_path: Path) -> None:
    history, runs = read_only
    listed = railbench_inline(["history", "list", "--history", str(history)], cwd=tmp_path)
    assert listed.returncode == 0 and len(listed.stdout.splitlines()) == 3, listed.stderr
    compared = railbench_inline(["compare", str(runs[2]), "--history", str(history)], cwd=tmp_path)
    assert compared.returncode == 0 and "2 run(s)" in compared.stdout, compared.stdout + compared.stderr


def test_run_refuses_a_read_only_history_before_any_rank(read_only: tuple[Path, list[Path]], tmp_path: Path) -> None:
    history, _ = read_only
    out = tmp_path / "out"
    _one_line_exit_2(["run", "--np", "2", "--history", str(history), "--out", str(out)], tmp_path, "not writable")
    assert not out.exists()


def test_a_history_that_is_not_a_regular_file_is_never_opened(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.sqlite"
    os.mkfifo(fifo)
    runs = _runs(tmp_path, days=1)
    _one_line_exit_2(["history", "list", "--history", str(fifo)], tmp_path, "not a regular file")
    _one_line_exit_2(["history", "add", str(runs[0]), "--history", str(fifo)], tmp_path, "not a regular file")
    _one_line_exit_2(["compare", str(runs[0]), "--history", str(fifo)], tmp_path, "not a regular file")
