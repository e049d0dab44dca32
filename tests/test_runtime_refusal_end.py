"""How the ranks other than 0 leave on bad input inside the world (``bench.runtime.dist.quiet_usage_exit``): once
rank 0 has posted its exit status on its way out (a key in the world's store it sets after flushing its output,
``bench.runtime.rank_exit.BEFORE_FINALIZE``), not a fixed hold later; without that word, never before the whole
hold (rank 0's line must not be cut off by a launcher that stops the job at the first non-zero exit). The hold
once cost every refusal under mpirun 3 s: rank 0 sat in MPI's finalize for the others all that while."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
import torch.distributed as dist

from bench.exits import EXIT_USAGE
from bench.runtime import dist as bench_dist
from tests.support import rank_env


@pytest.fixture
def store() -> dist.TCPStore:
    return dist.TCPStore("127.0.0.1", 0, 1, True, timeout=timedelta(seconds=30), wait_for_workers=False)


def test_a_rank_leaves_once_rank_0_said_its_line(store: dist.TCPStore) -> None:
    client = dist.TCPStore("127.0.0.1", store.port, 1, False, timeout=timedelta(seconds=30))
    store.set(bench_dist.RANK0_LEAVING_KEY, "2")
    began = time.monotonic()
    assert bench_dist.quiet_usage_exit(client) == EXIT_USAGE
    assert time.monotonic() - began < bench_dist.USAGE_HOLD_S  # the word, not the hold, ended it


class _Gone:
    """A store whose server went away: every query raises, as torch's client does on a closed connection."""

    def wait(self, keys: list[str], timeout: timedelta) -> None:
        raise RuntimeError("Connection reset by peer")


@pytest.mark.parametrize("silent", ["no store", "no word", "store gone"])
def test_without_rank_0s_word_a_rank_holds_the_whole_time(
    silent: str, store: dist.TCPStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bench_dist, "USAGE_HOLD_S", 0.4)
    given = {"no store": None, "no word": store, "store gone": _Gone()}[silent]
    began = time.monotonic()
    assert bench_dist.quiet_usage_exit(given) == EXIT_USAGE  # type: ignore[arg-type]
    assert time.monotonic() - began >= 0.4


def test_rank_0_gives_its_word_after_its_line_is_out(tmp_path: Path) -> None:
    """``end_rank`` runs what ``BEFORE_FINALIZE`` holds once stderr is flushed (the word sees the line already in
    the file stderr goes to), given the exit status, then leaves with it."""
    said, word = tmp_path / "stderr", tmp_path / "word"
    program = (
        "import pathlib, sys\n"
        "from bench.runtime import rank_exit\n"
        "sys.stderr = open(sys.argv[1], 'w')\n"  # block-buffered: nothing is in the file until a flush
        "sys.stderr.write('railbench: error: the line\\n')\n"
        "said = lambda: pathlib.Path(sys.argv[1]).read_text()\n"
        "rank_exit.BEFORE_FINALIZE.append(lambda status: pathlib.Path(sys.argv[2]).write_text(f'{status} {said()}'))\n"
        "rank_exit.end_rank(2)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program, str(said), str(word)], env=rank_env(), capture_output=True, timeout=60
    )
    assert done.returncode == 2, done.stderr
    assert word.read_text() == "2 railbench: error: the line\n"


# The same word ends an infrastructure fault's hold: rank 0 recorded and said the fault, then posted its exit
# status on its way out and waits in MPI's finalize; the others end with that status, in silence, at once.
@pytest.mark.parametrize("posted", [3, 0])
def test_a_rank_holding_a_fault_hears_the_status_rank_0_left_with(posted: int, store: dist.TCPStore) -> None:
    # 3: the rank ends with it; 0: rank 0 did not see this rank's fault, which the rank then says (run_as_rank).
    client = dist.TCPStore("127.0.0.1", store.port, 1, False, timeout=timedelta(seconds=30))
    store.set(bench_dist.RANK0_LEAVING_KEY, str(posted))
    began = time.monotonic()
    assert bench_dist.rank0_left(client, 5.0) == posted
    assert time.monotonic() - began < 5.0


def test_a_rank_holding_a_fault_hears_nothing_when_rank_0_never_left(store: dist.TCPStore) -> None:
    # Rank 0 silent within the hold may be what was lost: the rank says its fault (bench.runtime.dist.run_as_rank).
    client = dist.TCPStore("127.0.0.1", store.port, 1, False, timeout=timedelta(seconds=30))
    began = time.monotonic()
    assert bench_dist.rank0_left(client, 0.4) is None
    assert time.monotonic() - began >= 0.4
