"""Everything a user can get wrong about where a run goes and what it runs on, checked before any rank starts.

The parent calls these before it starts mpirun or torch's launcher; ranks started by the user's own
launcher call the same functions before they join the process group, so a bad ``--out`` or ``--history``
is one line and exit 2 either way (``bench.runtime.dist.run_as_rank`` lets rank 0 alone say it). None of
them imports torch: GPUs are counted from the driver's ``/proc`` entries.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from bench.errors import UserError
from bench.history.store import default_history_path, open_store
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
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a directory: give a new directory for the run")
    if (out / "run.json").exists():
        raise UserError(f"--out {out} already holds a run (run.json): give a new directory or move that run away")
    parent = next((p for p in (out, *out.parents) if p.exists()), Path("."))
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"--out {out} cannot be created or written ({parent} is not writable): give another folder")


def check_history(history: Path | None, no_history: bool, default: Path) -> None:
    """The history the finish step will add to opens as a railbench history (created when missing)."""
    if no_history:
        return
    path = history or default
    if path.exists() and not path.is_file():
        raise UserError(f"--history {path} is not a file: give a .sqlite file or --no-history")
    parent = next((p for p in (path.parent, *path.parent.parents) if p.exists()), Path("."))
    if not path.exists() and not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"history {path} cannot be created ({parent} is not writable): pass --history or --no-history")
    if path.exists():
        if not os.access(path, os.R_OK | os.W_OK):
            raise UserError(f"history {path} is not writable: fix its permissions, pass --history or --no-history")
        try:
            open_store(path, create=False, write=True).close()
        except sqlite3.Error as exc:
            raise UserError(f"history {path} cannot be opened ({exc}): pass --history or --no-history") from None


def check_common(
    *, backend: str, out: Path | None, history: Path | None, no_history: bool, graph: bool = False
) -> None:
    """What run, rails and accept check alike before any rank starts (and again on every rank)."""
    check_backend(backend, graph=graph)
    check_out_dir(out)
    check_history(history, no_history, default_history_path())
