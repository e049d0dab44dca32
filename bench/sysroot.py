"""Where a node's ``/sys`` is: the one value every command reads node facts from (``--sysfs-root``).

It is ``/sys`` on a real run. A stand-in tree (a copy of another node's ``/sys``, a test's fixture) may be
given instead; ``{host}`` in it becomes each node's own host name, so every node of a launch reads its own
tree: ``--sysfs-root /copies/{host}/sys``. The frame expands it once per rank and carries the result in the
run's context (``bench.runtime.dist.DistContext.sysfs_root``); nothing else names ``/sys``.
"""

from __future__ import annotations

from pathlib import Path

LIVE = Path("/sys")
HOST = "{host}"


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
