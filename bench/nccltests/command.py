"""The command line that started an nccl-tests run, as a log quotes it, read word by word.

``mpirun -np 16 -x NCCL_IB_HCA=^=mlx5_0 /opt/nccl-tests/build/all_gather_perf -b 8 -e 8G -f 2 -g 1`` says
which test ran (the program's name) and how many ranks it ran: processes x threads (``-t``) x GPUs per
thread (``-g``). Processes come from the launcher's ``-np``/``-n``/``--ntasks``; a program started with
no launcher word before it is one process (``./build/sendrecv_perf -b 128M -e 1G -f 2 -g 8`` ran 8 ranks).

Words, not a regex over the line: the line is whitespace-split once, so a long line costs linear time.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath

from bench.bounded import Where, ascii_digits, parse_int
from bench.nccltests.model import collective_from_program

LAUNCHERS = frozenset({"mpirun", "mpiexec", "orterun", "srun", "prun", "jsrun", "aprun", "flux", "oshrun"})
_NP_FLAGS = ("-np", "--np", "-n", "--n", "--ntasks")
_MAX_RANKS = 1 << 20


@dataclass(frozen=True)
class Command:
    """What a quoted command line says about the run."""

    text: str
    collective: str
    processes: int | None
    """MPI processes (``-np``); 1 when no launcher word precedes the program; None when a launcher ran it
    without saying how many."""
    threads: int
    """``-t``/``--nthreads`` (default 1)."""
    gpus: int
    """``-g``/``--ngpus`` (default 1)."""
    launcher: str | None

    @property
    def nranks(self) -> int | None:
        return self.processes * self.threads * self.gpus if self.processes else None


def _flag_value(words: list[str], i: int, short: str, long: str) -> tuple[str, int] | None:
    """(value, words used) when ``words[i]`` is ``short``/``long`` with its value (``-g 8``, ``-g8``,
    ``--ngpus=8``, ``--ngpus 8``)."""
    word = words[i]
    if word in (short, long):
        return (words[i + 1], 2) if i + 1 < len(words) else None
    if word.startswith(long + "="):
        return word[len(long) + 1 :], 1
    if short and word.startswith(short) and len(word) > len(short) and ascii_digits(word[len(short) :]):
        return word[len(short) :], 1
    return None


def _count(text: str, where: Where) -> int:
    return parse_int(text, where, sign="positive", maximum=_MAX_RANKS)


def _launcher_processes(before: list[str], source: str, line_no: int | None) -> int | None:
    """The process count the launcher's words (before the program) give, None where they give none."""
    processes = None
    i = 0
    while i < len(before):
        word = before[i]
        if word.startswith("--ntasks=") or word.startswith("--np="):
            processes = _count(word.partition("=")[2], Where(source, "launcher -np", line_no))
        elif word in _NP_FLAGS and i + 1 < len(before) and ascii_digits(before[i + 1]):
            processes = _count(before[i + 1], Where(source, "launcher -np", line_no))
            i += 1
        i += 1
    return processes


def _threads_and_gpus(after: list[str], source: str, line_no: int | None) -> tuple[int, int]:
    """The program's ``-t`` (threads per process) and ``-g`` (GPUs per thread), 1 where not given."""
    threads = gpus = 1
    i = 0
    while i < len(after):
        for short, long, name in (("-t", "--nthreads", "-t"), ("-g", "--ngpus", "-g")):
            found = _flag_value(after, i, short, long)
            if found is not None:
                value = _count(found[0], Where(source, f"command line {name}", line_no))
                threads, gpus = (value, gpus) if name == "-t" else (threads, value)
                i += found[1] - 1
                break
        i += 1
    return threads, gpus


def read_command(line: str, source: str = "", line_no: int | None = None) -> Command | None:
    """The run a line quotes, or None when it quotes none (the program must be followed by a flag)."""
    words = line.split()
    program, collective = -1, None
    for i, word in enumerate(words[:-1]):
        if "_perf" in word and words[i + 1].startswith("-"):  # all_reduce_perf, or all_reduce_perf_mpi
            program, collective = i, collective_from_program(word)
            if collective:
                break
    if collective is None:
        return None
    before, after = words[:program], words[program + 1 :]
    launcher = next((PurePosixPath(w).name for w in before if PurePosixPath(w).name in LAUNCHERS), None)
    processes = _launcher_processes(before, source, line_no) if launcher else 1
    threads, gpus = _threads_and_gpus(after, source, line_no)
    return Command(line.strip(), collective, processes, threads, gpus, launcher)
