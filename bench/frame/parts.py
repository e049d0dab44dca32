"""The config parts every job that starts ranks shares, declared once: how its ranks start (:class:`Launch`)
and where its run goes (:class:`Output`).

Each job's frozen config nests them (``RunConfig.launch``, ``RailsConfig.output``, ...) instead of listing
the same fields again. A field says on itself how the command line gives it (:class:`Flag`, in the field's
metadata): ``bench.commands.flags`` builds the argparse flags from these fields, and reads them back into
the part, so a flag's name, help and default text live beside the field they fill.

Nothing here imports torch or the history: every command's ``--help`` imports this module.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from bench import sysroot
from bench.exits import UserError
from bench.runtime.deadlines import DEFAULT_TIMEOUT_S, check_timeout

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

Backend = Literal["auto", "nccl", "gloo"]
"""As asked on the command line; auto is nccl when CUDA is available, gloo otherwise."""
ValueKind = Literal["int", "path", "size", "number", "seconds"]
"""How a flag's text becomes the field's value (``bench.commands.flags`` holds the parsers, which name the
flag in the one line they say about a bad value)."""

FLAG = "railbench.flag"
"""The field-metadata key of a field's :class:`Flag`."""
RUN_DIR_DEFAULT = "reports/runs/<UTC time>-<cluster>"
CLUSTER_DEFAULT = "the host name without its trailing digits, e.g. gpu-node017 -> gpu-node"
HISTORY_DEFAULT = "reports/history.sqlite"


@dataclass(frozen=True)
class Flag:
    """How the command line gives one config field."""

    name: str
    """The option, e.g. ``--timeout``."""
    help: str
    dest: str | None = None
    """argparse's name for the value where it is not the field's (``--timeout`` is ``timeout``)."""
    metavar: str | None = None
    kind: ValueKind | None = None
    """None: the text itself (or a switch, with ``switch``)."""
    choices: tuple[str, ...] = ()
    switch: bool = False
    """A flag without a value that sets the field to True."""
    default_text: str | None = None
    """What ``--help`` says the default is, where the value comes from elsewhere (``bench.commands.helptext``)."""
    profile_key: str | None = None
    """The profile table's key that gives the value when the flag is not given (the table is the job's)."""
    fallback: int | float | None = None
    """The value where neither the flag nor the profile gives one."""


def given_by(flag: Flag) -> Mapping[str, Flag]:
    """A field's metadata naming the flag that gives it: ``field(default=..., metadata=given_by(Flag(...)))``."""
    return {FLAG: flag}


def flag_of(declared: dataclasses.Field[object]) -> Flag | None:
    """The field's :class:`Flag`, or None for a field the command line does not give directly."""
    found = declared.metadata.get(FLAG)
    return found if isinstance(found, Flag) else None


def flagged_fields(cls: type[DataclassInstance]) -> list[tuple[dataclasses.Field[object], Flag]]:
    """The fields of ``cls`` that carry a flag, in declaration order (the order ``--help`` lists them)."""
    return [(f, flag) for f in dataclasses.fields(cls) if (flag := flag_of(f)) is not None]


def fallbacks(cls: type[DataclassInstance]) -> Mapping[str, int | float]:
    """Field -> the value used where neither the command line nor the profile gives one."""
    return {f.name: flag.fallback for f, flag in flagged_fields(cls) if flag.fallback is not None}


@dataclass(frozen=True)
class Launch:
    """How a job's ranks start: the same four flags in run, rails and accept."""

    backend: Backend = field(
        default="auto",
        metadata=given_by(Flag("--backend", "auto: nccl on GPUs, gloo on CPU", choices=("auto", "nccl", "gloo"))),
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
