"""The config parts every job that starts ranks shares, declared once: how its ranks start (:class:`Launch`)
and where its run goes (:class:`Output`).

Each job's frozen config nests them (``RunConfig.launch``, ``RailsConfig.output``, ...) instead of listing
the same fields again. A field says on itself how the command line gives it (``bench.flagged.Flag``, in the
field's metadata): ``bench.commands.flags`` builds the argparse flags from these fields, and reads them back
into the part, so a flag's name, help and default text live beside the field they fill.

Nothing here imports torch or the history: every command's ``--help`` imports this module.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from bench import sysroot
from bench.backends import BACKENDS, Backend
from bench.exits import UserError
from bench.flagged import Flag, given_by
from bench.profile.cluster import Profile, ProfileRead, carried
from bench.runtime.deadlines import DEFAULT_TIMEOUT_S, check_timeout

RUN_DIR_DEFAULT = "reports/runs/<UTC time>-<cluster>"
CLUSTER_DEFAULT = (
    "Slurm's SLURM_CLUSTER_NAME, else the name the ranks' hosts share without their trailing numbers, "
    "e.g. gpu-node017, gpu-node018 -> gpu-node"
)
HISTORY_DEFAULT = "reports/history.sqlite"


@dataclass(frozen=True)
class Launch:
    """How a job's ranks start: the same four flags in run, rails and accept."""

    backend: Backend = field(
        default="auto",
        metadata=given_by(Flag("--backend", "auto: nccl on GPUs, gloo on CPU", choices=BACKENDS)),
    )
    timeout_s: float = field(
        default=DEFAULT_TIMEOUT_S,
        metadata=given_by(
            Flag(
                "--timeout",
                "a step that takes longer ends the run with exit 3, naming the ranks that did not arrive",
                dest="timeout",
                metavar="SECONDS",
                kind="seconds",
            )
        ),
    )
    np: int | None = field(
        default=None,
        metadata=given_by(
            Flag("--np", "start N local ranks under mpirun (omit under your own launcher)", metavar="N", kind="int")
        ),
    )
    sysfs_root: Path = field(
        default=sysroot.LIVE,
        metadata=given_by(
            Flag(
                "--sysfs-root",
                "stands in for /sys; {host} becomes each node's host name (a copy of each node's /sys)",
                metavar="DIR",
                kind="path",
            )
        ),
    )

    profile_read: ProfileRead | None = None
    """The profile file as the parent read it (no flag: the parent sets it for its ranks, ``carrying``), so
    that every rank parses those bytes instead of reading the file again (``bench.profile.cluster.profile_for``)."""

    def __post_init__(self) -> None:
        check_timeout(self.timeout_s)
        if self.np is not None and self.np < 1:
            raise UserError(f"--np {self.np} must be at least 1")


@dataclass(frozen=True)
class Output:
    """Where a job's run goes: the run directory, its cluster name and the history it is added to."""

    out: Path | None = field(
        default=None,
        metadata=given_by(Flag("--out", "run directory", metavar="DIR", kind="path", default_text=RUN_DIR_DEFAULT)),
    )
    cluster: str | None = field(
        default=None,
        metadata=given_by(
            Flag(
                "--cluster",
                "cluster name in the run directory and the history",
                metavar="NAME",
                default_text=CLUSTER_DEFAULT,
            )
        ),
    )
    history: Path | None = field(
        default=None,
        metadata=given_by(
            Flag("--history", "the history store", metavar="FILE", kind="path", default_text=HISTORY_DEFAULT)
        ),
    )
    no_history: bool = field(
        default=False, metadata=given_by(Flag("--no-history", "do not add this run to the history", switch=True))
    )


def carrying(launch: Launch, profile: Profile) -> Launch:
    """``launch`` as the parent hands it to its ranks: with the profile it read (when it fits the spec)."""
    return replace(launch, profile_read=carried(profile))
