"""Issue 33 item 5, what a run and a report cost beyond their work: the Vega bundle is built once per version
and kept (a third of a report's CPU), and a rank leaves without the interpreter's teardown of torch (seconds
a rank on a busy node), with its output and NCCL's C-buffered lines flushed and MPI finalized. The numbers
are printed by ``python ci/bench_overhead.py``; these tests hold the mechanisms."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import vl_convert

from bench.report.bundle import MIN_BUNDLE_BYTES, vega_bundle
from bench.report.theme import vl_convert_version
from tests.support import REPO, mpirun_command, rank_env


@pytest.fixture(scope="module")
def fresh_bundle() -> str:
    return str(vl_convert.javascript_bundle(vl_version=vl_convert_version()))


@pytest.mark.slow
def test_the_bundle_is_built_once_and_then_read(tmp_path: Path, fresh_bundle: str) -> None:
    version = vl_convert_version()
    assert vega_bundle(version, cache=tmp_path) == fresh_bundle
    (kept,) = tmp_path.iterdir()
    assert version in kept.name and kept.stat().st_size >= MIN_BUNDLE_BYTES
    written = kept.stat().st_mtime_ns, kept.stat().st_ino
    assert vega_bundle(version, cache=tmp_path) == fresh_bundle
    assert (kept.stat().st_mtime_ns, kept.stat().st_ino) == written  # read, not built and written again


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["short", "not utf-8", "fifo", "folder"])
def test_a_damaged_cache_is_built_again(tmp_path: Path, fresh_bundle: str, damage: str) -> None:
    version = vl_convert_version()
    vega_bundle(version, cache=tmp_path)
    (kept,) = tmp_path.iterdir()
    kept.unlink()
    if damage == "short":
        kept.write_text("window.vega = {};")
    elif damage == "not utf-8":
        kept.write_bytes(b"\xff\xfe" * MIN_BUNDLE_BYTES)
    elif damage == "fifo":
        os.mkfifo(kept)  # opening it to read would block for ever
    else:
        kept.mkdir()
    assert vega_bundle(version, cache=tmp_path) == fresh_bundle
    if damage in ("short", "not utf-8"):
        assert kept.read_text() == fresh_bundle
    else:  # what is not a file is never replaced (bench.rundir.files): built for each report, and still right
        assert not kept.is_file()


@pytest.mark.slow
def test_a_cache_that_cannot_be_written_costs_only_time(tmp_path: Path, fresh_bundle: str) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    assert vega_bundle(vl_convert_version(), cache=blocked / "railbench") == fresh_bundle


_RANK = """
import ctypes, sys
from mpi4py import MPI
from bench.runtime.rank_exit import end_rank
rank = MPI.COMM_WORLD.Get_rank()
print(f"python line of rank {rank}", end="")  # no newline: only a flush writes it
ctypes.CDLL(None).printf(b"C line of rank %d", rank)  # C stdio, as NCCL's debug file is written
end_rank(3 if rank == 1 else 0)
"""


@pytest.mark.mpi
def test_a_rank_ends_with_its_output_flushed_mpi_finalized_and_its_status(tmp_path: Path) -> None:
    script = tmp_path / "rank.py"
    script.write_text(_RANK)
    done = subprocess.run(
        mpirun_command(2, [sys.executable, str(script)]),
        cwd=REPO,
        env=rank_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 3, done.stdout + done.stderr
    for rank in (0, 1):
        assert f"python line of rank {rank}" in done.stdout and f"C line of rank {rank}" in done.stdout
    assert "finalize" not in done.stderr.lower(), done.stderr  # Open MPI says so of a rank that skipped it
