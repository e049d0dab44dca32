"""Everything a user can get wrong about where a run goes and what it runs on, checked before any rank starts.

The parent calls these before it starts mpirun or torch's launcher; ranks started by the user's own
launcher call the same functions before they join the process group, so a bad ``--out`` is one line and
exit 2 either way (``bench.runtime.dist.run_as_rank`` lets rank 0 alone say it). The history is checked by
the parent and by rank 0 only, which tells every rank through the store (``bench.frame.job``). None of
them imports torch: GPUs are counted from the driver's ``/proc`` entries.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from bench.bounded import check_path_names, file_kind
from bench.exits import InfraError, UserError
from bench.frame.config_parts import Launch, Output
from bench.rundir.files import RUN_FILES, RUN_FOLDERS, check_cluster_name
from bench.runtime.gpus import gpu_count


def check_backend(backend: str, *, graph: bool = False, gpus: int | None = None) -> None:
    """``--backend nccl`` and ``--graph`` need a GPU; ``--graph`` needs NCCL."""
    gpus = gpu_count() if gpus is None else gpus
    if backend == "nccl" and gpus == 0:
        raise UserError("--backend nccl needs an NVIDIA GPU and this node has none: use --backend gloo or auto")
    if graph and (backend == "gloo" or gpus == 0):
        raise UserError("--graph captures CUDA graphs and needs the nccl backend on a GPU: drop --graph here")


def check_out_dir(out: Path | None) -> None:
    """``--out`` must be a directory railbench can write, and must not already hold another run.

    A fixed ``--out`` that still holds last night's run.json would otherwise decide tonight's exit status
    when tonight's run fails before writing its own.
    """
    if out is None:
        return  # the default is a new folder named by the UTC time
    check_path_names(out, "--out")  # ENAMETOOLONG from exists() or mkdir() would be a traceback
    _check_path_resolves(out, "--out")
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a directory: give a new directory for the run")
    if (out / "run.json").exists():
        raise UserError(f"--out {out} already holds a run (run.json): give a new directory or move that run away")
    if out.is_dir():
        _check_run_files(out)
    parent = next((p for p in (out, *out.parents) if p.exists()), Path("."))
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"--out {out} cannot be created or written ({parent} is not writable): give another folder")


def _check_run_files(out: Path) -> None:
    """No file railbench will write in ``out`` is a symlink or anything but a regular file, and none of its
    folders a symlink: rank 0 would refuse it mid-run (an infrastructure fault blamed on the cluster), or write
    through it into someone else's file."""
    for name in (*RUN_FILES, *RUN_FOLDERS):
        try:
            mode = os.lstat(out / name).st_mode
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise UserError(f"--out {out}: {name} cannot be checked ({exc.strerror}): give a new directory") from None
        folder = name in RUN_FOLDERS
        if stat.S_ISLNK(mode):
            raise UserError(
                f"--out {out} holds {name} as a symbolic link: railbench writes its run there and would write "
                "through it or replace it; give a new directory or remove the link"
            )
        if (folder and not stat.S_ISDIR(mode)) or (not folder and not stat.S_ISREG(mode)):
            wanted = "a folder" if folder else "a regular file"
            raise UserError(
                f"--out {out} holds {name} as a {file_kind(mode)}, where railbench writes {wanted}: give a new "
                "directory or move it away"
            )


def _check_path_resolves(path: Path, flag: str) -> None:
    """Every component of ``path`` that exists can be followed: Python's ``exists()`` answers False for a
    symbolic-link loop or a name too long, and the first rank's ``mkdir`` would then fail instead."""
    for part in (path, *path.parents):
        try:
            os.stat(part)
        except FileNotFoundError:
            if part.is_symlink():
                raise UserError(f"{flag} {path}: {part} is a symbolic link to nothing: give a real folder") from None
            continue
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise UserError(f"{flag} {path}: {part} is a loop of symbolic links: give a real folder") from None
            raise UserError(f"{flag} {path} cannot be used ({exc.strerror}): give another folder") from None
        return


def check_history(history: Path | None, no_history: bool, default: Path) -> None:
    """The history the finish step will add to opens as a railbench history (created when missing)."""
    if no_history:
        return
    path = history or default
    check_path_names(path, "--history")
    if path.exists() and not path.is_file():
        raise UserError(f"--history {path} is not a file: give a .sqlite file or --no-history")
    parent = next((p for p in (path.parent, *path.parent.parents) if p.exists()), Path("."))
    if not path.exists() and not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"history {path} cannot be created ({parent} is not writable): pass --history or --no-history")
    if path.exists():
        import sqlite3

        from bench.history.faults import file_system_state
        from bench.history.store import open_store

        if not os.access(path, os.R_OK | os.W_OK):
            if file_system_state(path) == "read-only":
                raise UserError(
                    f"history {path} is on a read-only file system: pass a --history on a writable one, or --no-history"
                )
            raise UserError(f"history {path} is not writable: fix its permissions, pass --history or --no-history")
        try:
            open_store(path, create=False, write=True).close()
        except sqlite3.Error as exc:
            raise UserError(f"history {path} cannot be opened ({exc}): pass --history or --no-history") from None


def check_common(launch: Launch, output: Output, *, graph: bool = False, with_history: bool = True) -> None:
    """What run, rails and accept check alike before any rank starts. On the ranks (``with_history`` off) the
    history is left to rank 0 alone (:func:`history_problem`): it lives on rank 0's node, and opening a
    shared SQLite file from every rank (a quick check, the journal mode, migrations) is rank 0's work."""
    check_cluster_name(output.cluster)  # it names the run directory: a short label, never 100,000 characters
    check_backend(launch.backend, graph=graph)
    check_out_dir(output.out)
    if with_history:
        check_history(output.history, output.no_history, default_history(output.out))


def default_history(out: Path | None) -> Path:
    """The history the finish step adds to without ``--history``: the one of the run directory's ``runs``
    folder when ``--out`` names one (``bench.history.store.history_for``), else ``reports/history.sqlite``."""
    # The store (its records, schema and run.json readers) is imported here, when a history is checked, not
    # with the module: every command's --help imports this one and must start in under 0.5 s.
    from bench.history.store import default_history_path, history_for

    return history_for(out) if out is not None else default_history_path()


def history_problem(history: Path | None, no_history: bool, out: Path | None = None) -> str | None:
    """Why the finish step could not add to the history (rank 0's check), or None."""
    try:
        check_history(history, no_history, default_history(out))
    except (UserError, InfraError) as exc:  # a full disk too: said by every rank, never raised on rank 0 alone
        return str(exc)
    return None
