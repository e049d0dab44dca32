"""Where a node's ``/sys`` is: the one value every command reads node facts from (``--sysfs-root``).

It is ``/sys`` on a real run. A stand-in tree (a copy of another node's ``/sys``, a test's fixture) may be
given instead; ``{host}`` in it becomes each node's own host name, so every node of a launch reads its own
tree: ``--sysfs-root /copies/{host}/sys``. The frame expands it once per rank and carries the result in the
run's context (``bench.runtime.dist.DistContext.sysfs_root``); nothing else names ``/sys``. A kernel setting a
run reads from ``/proc/sys`` (the neighbour table's size) follows it: :func:`proc_root`.
"""

from __future__ import annotations

from pathlib import Path

LIVE = Path("/sys")
HOST = "{host}"
PROC = Path("/proc")


def node_root(template: Path | str, host: str) -> Path:
    """``template`` with ``{host}`` replaced by ``host``."""
    return Path(str(template).replace(HOST, host))


def problem(template: Path | str, host: str, flag: str = "--sysfs-root") -> str | None:
    """Why ``template`` cannot stand in for ``host``'s ``/sys`` (not a directory there), else None."""
    root = node_root(template, host)
    if root.is_dir():
        return None
    where = f" on {host}" if HOST in str(template) else ""
    return f"{flag} {root}{where} is not a directory: give /sys, or a copy of the node's /sys ({HOST} = host name)"


def proc_root(sysfs_root: Path | str) -> Path:
    """Where a node's ``/proc`` is for a run whose ``/sys`` is ``sysfs_root`` (already expanded for the node):
    ``/proc`` on a live node; beside a stand-in tree, as a copy of a node's root file system holds them
    (``/copies/{host}/sys`` -> ``/copies/{host}/proc``), so that a stand-in node never reads this machine's kernel
    settings as its own. Where the stand-in has none beside it, a reader finds nothing and says it does not know."""
    return PROC if Path(sysfs_root) == LIVE else Path(sysfs_root).parent / "proc"
