"""results.csv as rank 0 writes it while a run goes on (``bench.rundir.results_csv.ResultsWriter``): appended, never
rewritten, every row on disk before the next measurement, and readable after a kill at any moment.
``ci/bench_results.py`` prints what a row costs at 32,768 rows."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from bench.exits import UserError
from bench.rundir.results_csv import RESULT_COLUMNS, ResultsWriter, Row, read_results_rows
from tests.support import rank_env


def _row(index: int) -> Row:
    return {"collective": "sendrecv", "scope": "pair", "group": f"node{index:03d}-node999/rail1", "bytes": 1 << 20}


def test_rows_are_appended_to_one_file_never_rewritten(tmp_path: Path) -> None:
    writer = ResultsWriter(tmp_path / "results.csv")
    writer.append(_row(0))
    inode = (tmp_path / "results.csv").stat().st_ino
    for index in range(1, 50):
        writer.append(_row(index))
    writer.append(_row(50), _row(51))
    assert (tmp_path / "results.csv").stat().st_ino == inode, "the file was replaced, not appended to"
    rows = read_results_rows(tmp_path)
    assert [r["group"] for r in rows] == [_row(i)["group"] for i in range(52)]
    assert writer.count == 52
    assert list(rows[0]) == list(RESULT_COLUMNS)


def test_an_empty_append_makes_the_header_only_file(tmp_path: Path) -> None:
    ResultsWriter(tmp_path / "results.csv").append()
    assert (tmp_path / "results.csv").read_text() == ",".join(RESULT_COLUMNS) + "\n"
    assert read_results_rows(tmp_path) == []


def test_provisional_rows_are_replaced_once_and_appending_goes_on(tmp_path: Path) -> None:
    writer = ResultsWriter(tmp_path / "results.csv")
    writer.append(_row(0), _row(1))  # a sweep's rows
    first = writer.count
    writer.append(_row(100), _row(101), _row(102))  # provisional rails rows
    writer.replace_from(first, [_row(200), _row(201)])  # the final ones
    writer.append(_row(300))
    groups = [r["group"] for r in read_results_rows(tmp_path)]
    assert groups == [_row(i)["group"] for i in (0, 1, 200, 201, 300)]
    assert writer.count == 5


def test_the_file_gets_the_mode_open_would_give(tmp_path: Path) -> None:
    mask = os.umask(0o027)
    try:
        ResultsWriter(tmp_path / "results.csv").append(_row(0))
    finally:
        os.umask(mask)
    assert (tmp_path / "results.csv").stat().st_mode & 0o777 == 0o640


def test_rows_that_would_leave_no_room_to_record_the_run_are_refused_as_a_full_disk(tmp_path: Path) -> None:
    # A run.json as large as the disk's free space (sparse): two more copies of it cannot fit, so the rows are
    # refused with ENOSPC before a byte is written, and run.json can still say why (tests/test_frame_faults.py
    # fills a real tmpfs).
    record = tmp_path / "run.json"
    record.write_text("{}")
    writer = ResultsWriter(tmp_path / "results.csv", keep_room_for=record)
    writer.append(_row(0))
    disk = os.statvfs(tmp_path)
    os.truncate(record, disk.f_bavail * disk.f_frsize)
    size = (tmp_path / "results.csv").stat().st_size
    with pytest.raises(OSError) as refused:
        writer.append(_row(1))
    assert refused.value.errno == errno.ENOSPC
    assert (tmp_path / "results.csv").stat().st_size == size and writer.count == 1


def test_a_last_line_a_crash_cut_is_left_out_and_the_rows_before_it_are_read(tmp_path: Path) -> None:
    writer = ResultsWriter(tmp_path / "results.csv")
    writer.append(_row(0), _row(1))
    with open(tmp_path / "results.csv", "a") as cut:
        cut.write("sendrecv,pair,node002-node9")  # the start of a row, no newline
    assert [r["group"] for r in read_results_rows(tmp_path)] == [_row(0)["group"], _row(1)["group"]]


def test_a_symlink_or_a_fifo_in_its_place_is_refused_and_left_alone(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.csv"
    target.write_text("someone else's data\n")
    (tmp_path / "results.csv").symlink_to(target)
    with pytest.raises(UserError, match="symlink"):
        ResultsWriter(tmp_path / "results.csv").append(_row(0))
    assert target.read_text() == "someone else's data\n"
    fifo_dir = tmp_path / "fifo"
    fifo_dir.mkdir()
    os.mkfifo(fifo_dir / "results.csv")
    with pytest.raises(UserError, match="FIFO"):
        ResultsWriter(fifo_dir / "results.csv").append(_row(0))  # refused at once, never blocks on the FIFO


_WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from bench.rundir.results_csv import ResultsWriter
    writer = ResultsWriter(Path(sys.argv[1]) / "results.csv")
    index = 0
    while True:
        writer.append({"collective": "sendrecv", "scope": "pair", "group": f"g{index}", "bytes": 1 << 20})
        index += 1
        print(index, flush=True)  # this many rows are on disk
    """
)


@pytest.mark.slow
def test_a_killed_writer_leaves_every_row_it_wrote_readable(tmp_path: Path) -> None:
    command = [sys.executable, "-c", _WRITER, str(tmp_path)]
    with subprocess.Popen(command, env=rank_env(), stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None
        written = 0
        began = time.monotonic()
        while written < 200 and time.monotonic() - began < 60:
            written = int(proc.stdout.readline())
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    rows = read_results_rows(tmp_path)
    assert len(rows) >= written > 0
    assert [r["group"] for r in rows] == [f"g{i}" for i in range(len(rows))]
