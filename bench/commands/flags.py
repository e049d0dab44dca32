"""Every flag that means one thing in several commands, declared once with its one default.

A command's ``add_arguments`` builds its parser from these groups and its own flags; its ``main`` reads them
back with the matching ``*_part`` or ``*_fields`` function, so a flag's name, type, default and help live in
one place:

* :func:`add_launch` (``--backend --timeout --np --sysfs-root``) and :func:`add_output` (``--out --cluster
  --history --no-history``) are built from the fields of the parts every job nests (``bench.frame.config_parts``:
  each field carries its :class:`~bench.flagged.Flag`) and read back whole by :func:`part`;
  :func:`add_interfaces` (``--oob-ifname``, ``--socket-ifname``) and :func:`add_profile`, in run, rails and
  accept;
* :func:`add_sweep` (nccl-tests' ``-b -e -f -i -n -w``) in run and accept, :func:`add_check` (``-c/--check``
  with nccl-tests' optional 0 or 1, and ``--no-check``) in run, rails and accept, with each command's default;
* :func:`add_rails` and :func:`add_rails_targets`, the rails test's flags, in rails and accept;
* :func:`add_node_sources` (``--sysfs-root``, ``--error-window``) in check and health;
* :func:`add_drain` (``--drain``, off by default) in accept and health: act on Slurm's node states.

Help says the effective default once (``bench.commands.helptext``), in words where the value comes from elsewhere:
``(default: the profile's [rails_test] pair_bytes, else 256M)``. A new flag that several commands share is one
``add_...`` function here (with its ``*_fields`` reader when it feeds a config), called from each command; a
field of a shared part is declared once with its ``Flag`` and needs neither.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict, TypeVar

from bench.commands.helptext import OnOff, said
from bench.exits import UserError
from bench.flagged import Flag, ValueKind, flagged_fields
from bench.frame import config_parts
from bench.measure.collectives import DEFAULT_COLLECTIVES
from bench.profile.rails_table import RAIL_COLLECTIVES, RailsTestTable
from bench.rails.plan.budget import BUDGET_FACTOR, CEILING_S, FLOOR_S
from bench.runtime import spec
from bench.runtime.deadlines import check_timeout
from bench.sweep.config import RunConfig
from bench.units import format_size, parse_size

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T")
P = TypeVar("P", bound="DataclassInstance")
Group = argparse._ArgumentGroup | argparse.ArgumentParser


# What each ``*_fields`` reader returns: the keyword arguments a command splats into its config
# (``RunConfig(**sweep_fields(args))``), typed so that mypy checks each key and value against the config's own
# fields. argparse's Namespace is untyped; the values have the types the flags' ``type=`` functions return.
# The parts every job shares (``bench.frame.config_parts``) need none: their flags are built from their fields.


class SweepFields(TypedDict):
    min_bytes: int
    max_bytes: int | None
    step_factor: int
    step_bytes: int | None
    iters: int
    warmup: int


class RailsFields(TypedDict):
    socket_ifname: str | None
    oob_ifname: str | None
    seed: int
    isolation: bool
    pairs: bool
    intra_node: bool | None
    rail_rate_gbps: float | None
    cell_budget_s: float | None
    topology: Path | None
    full_matrix: bool
    plan: bool
    nodes: int | None
    max_minutes: float | None


class Given(argparse.Action):
    """Store the value and remember that the user typed the flag (``<dest>_given``).

    ``-f`` has a default (2), so its value alone cannot tell ``-i 1K`` from ``-i 1K -f 4``; the second asks
    for two step rules at once and must be refused rather than letting one silently win.
    """

    def __call__(
        self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: object, option: str | None = None
    ) -> None:
        setattr(namespace, self.dest, values)
        setattr(namespace, f"{self.dest}_given", True)


# -- value types: each names its flag in the one line it says about a bad value -----------------------------


def _named(name: str, parse: Callable[[str], T]) -> Callable[[str], T]:
    parse.__name__ = name  # what the CLI freeze (tests/data/cli_freeze.json) records as the flag's type
    return parse


def size(flag: str) -> Callable[[str], int]:
    """A message size: 8, 1K, 64M, 16G (powers of 1024, as nccl-tests reads -b/-e)."""
    return _named("size", lambda text: parse_size(text, flag))


def number(flag: str) -> Callable[[str], float]:
    """A finite number (nan and inf are refused here, so no range check downstream can be fooled by them)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise UserError(f"{flag} {text!r} is not a number") from None
        if not math.isfinite(value):
            raise UserError(f"{flag} {text!r} is not a finite number")
        return value

    return _named("number", parse)


def seconds(flag: str) -> Callable[[str], float]:
    """A step deadline in seconds: finite, above zero, at most a day."""
    parse_number = number(flag)
    return _named("seconds", lambda text: check_timeout(parse_number(text), flag))


def _zero_or_one(text: str) -> bool:
    if text not in ("0", "1"):
        raise UserError(f"-c/--check takes 0 or 1 (nccl-tests' -c), not {text!r}: e.g. -c 1, or --no-check")
    return text == "1"


# -- the shared groups ---------------------------------------------------------------------------------------


def add_profile(group: Group, *, default: str | None) -> None:
    """``--profile NAME|PATH``: required where ``default`` is None."""
    group.add_argument(
        "--profile",
        required=default is None,
        default=default,
        metavar="NAME|PATH",
        help="cluster profile: a shipped name (local, generic, lambda-1cc, runpod-instant) or a TOML path",
    )


def add_launch(group: Group) -> None:
    """``--backend``, ``--timeout``, ``--np``, ``--sysfs-root``: how the ranks start (``config_parts.Launch``)."""
    add_part(group, config_parts.Launch)


def add_sysfs_root(group: Group) -> None:
    """``--sysfs-root DIR``: where each node's facts are read (``bench.sysroot``)."""
    add_part(group, config_parts.Launch, only=("sysfs_root",))


def launch_part(args: argparse.Namespace) -> config_parts.Launch:
    return part(config_parts.Launch, args)


def add_part(group: Group, cls: type[DataclassInstance], only: Sequence[str] | None = None) -> None:
    """The flags of the fields of ``cls`` that carry one (``bench.flagged.Flag``), or of those ``only``
    names, in the fields' order."""
    for field, flag in flagged_fields(cls):
        if only is None or field.name in only:
            add_flag(group, flag, field.default)


def add_flag(group: Group, flag: Flag, default: object, default_text: str | None = None) -> argparse.Action:
    """One field's flag: its name, value type, default and help from its :class:`~bench.flagged.Flag`;
    ``default_text``, where the command words the default (a profile table's field), else the flag's own."""
    names = (flag.short, flag.name) if flag.short else (flag.name,)
    if flag.switch:
        action = group.add_argument(*names, action="store_true", dest=flag.dest, help=flag.help)
    else:
        action = group.add_argument(
            *names,
            choices=flag.choices or None,
            default=default,
            metavar=flag.metavar,
            dest=flag.dest,
            help=flag.help,
        )
        if flag.kind is not None:  # set after: argparse takes no type=None, and a text flag has none
            action.type = _parser(flag.kind, flag.name)
    text = default_text or flag.default_text
    if text is not None:
        said(action, text)
    return action


def _parser(kind: ValueKind, name: str) -> Callable[[str], object]:
    if kind == "int":
        return int
    if kind == "path":
        return Path
    return {"size": size, "number": number, "seconds": seconds}[kind](name)


def part(cls: type[P], args: argparse.Namespace) -> P:
    """The part ``cls`` (a frozen dataclass of flagged fields) from the parsed flags."""
    given = {f.name: getattr(args, flag.dest or f.name) for f, flag in flagged_fields(cls)}
    return cls(**given)


def config_of(cls: type[P], args: argparse.Namespace, **computed: object) -> P:
    """The config ``cls`` from the parsed flags: each field from the flag of its own name (the flags a command
    declares for its config are named for its fields), ``computed`` for those a command makes from a flag's
    text first (a part, a collective's canonical name); a field no flag sets keeps its default."""
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if f.init and hasattr(args, f.name)}
    return cls(**(given | computed))


def add_interfaces(group: Group, *, rails: bool) -> None:
    """``--oob-ifname`` (and, for the rails test, ``--socket-ifname``)."""
    if rails:
        said(
            group.add_argument(
                "--socket-ifname",
                metavar="LIST",
                help="socket rails: the interfaces, in NCCL_SOCKET_IFNAME grammar; local rank k binds the k-th",
            ),
            "the profile's [network] socket_ifnames; none: the IB HCAs",
        )
    said(
        group.add_argument(
            "--oob-ifname", metavar="IF", help="management interface for the rendezvous and the world group"
        ),
        "the profile's [network] oob_ifname, else the default route's interface",
    )


def add_output(group: Group) -> None:
    """``--out``, ``--cluster``, ``--history``, ``--no-history``: where the run goes (``config_parts.Output``)."""
    add_part(group, config_parts.Output)


def output_part(args: argparse.Namespace) -> config_parts.Output:
    return part(config_parts.Output, args)


def add_history(group: Group, *, what: str | None = None, default_text: str | None = None) -> None:
    """``--history FILE`` (and ``--no-history`` when ``what`` is the thing not to add), declared once on
    ``config_parts.Output``; ``default_text``: where a command's default is not the usual one (compare's)."""
    (field, flag), *_ = (pair for pair in flagged_fields(config_parts.Output) if pair[0].name == "history")
    add_flag(group, flag, field.default, default_text)
    if what is not None:
        group.add_argument("--no-history", action="store_true", help=f"do not add {what} to the history")


def add_check(group: Group, *, default: bool, what: str) -> None:
    """``-c/--check`` (optionally ``-c 0`` or ``-c 1``, as nccl-tests) and ``--no-check``: one boolean."""
    check = group.add_argument(
        "-c",
        "--check",
        nargs="?",
        type=_named("zero_or_one", _zero_or_one),
        const=True,
        default=default,
        metavar="0|1",
        help=f"verify {what} element by element and count #wrong",
    )
    group.add_argument("--no-check", dest="check", action="store_false", help="do not verify")
    said(check, "on" if default else "off")


def add_collectives(group: Group, *, default: Sequence[str], help: str, default_text: str | None = None) -> None:
    action = group.add_argument("--collectives", default=",".join(default), metavar="LIST", help=help)
    if default_text is not None:
        said(action, default_text)


def collectives(args: argparse.Namespace, *, empty: str) -> tuple[str, ...]:
    """``--collectives a,b`` as a tuple; ``empty`` is the line for a list with none."""
    names = tuple(c.strip() for c in args.collectives.split(",") if c.strip())
    if not names:
        raise UserError(empty)
    return names


def add_sweep(group: Group) -> None:
    """nccl-tests' sweep: ``-b -e`` and ``-f`` or ``-i``, ``-n`` timed and ``-w`` untimed iterations."""
    defaults = RunConfig()
    said(
        group.add_argument(
            "-b",
            "--min-bytes",
            type=size("--min-bytes"),
            default=defaults.min_bytes,
            metavar="SIZE",
            help="first message size",
        ),
        format_size(defaults.min_bytes),
    )
    said(
        group.add_argument(
            "-e",
            "--max-bytes",
            type=size("--max-bytes"),
            default=defaults.max_bytes,
            metavar="SIZE",
            help="last message size (inclusive)",
        ),
        "the profile's default_max_bytes (8G on lambda-1cc), else 8G on a profile with targets, 64M on local",
    )
    group.add_argument(
        "-f",
        "--step-factor",
        type=int,
        default=defaults.step_factor,
        action=Given,
        metavar="N",
        help="multiply the size by this between steps",
    )
    group.add_argument(
        "-i", "--step-bytes", type=size("--step-bytes"), metavar="SIZE", help="add this many bytes instead of -f"
    )
    group.add_argument("-n", "--iters", type=int, default=defaults.iters, metavar="N", help="timed iterations per size")
    group.add_argument(
        "-w", "--warmup", type=int, default=defaults.warmup, metavar="N", help="untimed iterations per size"
    )


def sweep_fields(args: argparse.Namespace) -> SweepFields:
    """The sweep's fields; -i and -f together are refused (a sweep adds or multiplies)."""
    if args.step_bytes is not None and getattr(args, "step_factor_given", False):
        raise UserError("-i/--step-bytes and -f/--step-factor both given: a sweep adds or multiplies, keep one of them")
    return {
        "min_bytes": args.min_bytes,
        "max_bytes": args.max_bytes,
        "step_factor": args.step_factor,
        "step_bytes": args.step_bytes,
        "iters": args.iters,
        "warmup": args.warmup,
    }


def _from_profile(key: str, shown: str) -> str:
    return f"the profile's [rails_test] {key}, else {shown}"


def add_rails_test(group: Group, *names: str) -> None:
    """The flags of the named fields of the rails test's ``[rails_test]`` table (``RailsTestTable``): each
    field declares its flag and fallback once, and ``--help`` says the profile's key, else the fallback."""
    for field, flag in flagged_fields(RailsTestTable):
        if field.name in names:
            add_flag(group, flag, None, _from_profile(field.name, _shown(flag, field.default)))


def _shown(flag: Flag, fallback: object) -> str:
    """A table field's fallback (its default) as ``--help`` says it: a size as 256M, a fraction as 0.8."""
    if flag.kind == "size" and isinstance(fallback, int):
        return format_size(fallback)
    return f"{fallback:g}" if isinstance(fallback, float) else str(fallback)


RAILS_TEST_FLAGS = ("rail_bytes", "pair_bytes", "repeats", "relative_fraction", "confirm")
"""The ``[rails_test]`` fields rails and accept both give; ``-n``/``-w`` are the rails test's in ``rails`` only
(accept's are its world sweep's)."""


def rails_test(args: argparse.Namespace, *, iterations: bool) -> RailsTestTable:
    """The command line's own ``[rails_test]``: the values given, named in its ``given`` (the profile's, else the
    default, applies to the rest); ``iterations``: whether ``-n``/``-w`` are the rails test's."""
    names = (*RAILS_TEST_FLAGS, "iters", "warmup") if iterations else RAILS_TEST_FLAGS
    return RailsTestTable.of({name: getattr(args, name) for name in names if getattr(args, name) is not None})


def rail_collectives_text() -> str:
    """The rail collectives' default, as ``--help`` says it."""
    return _from_profile("collectives", ",".join(RAIL_COLLECTIVES))


def add_rails(group: Group, *, intra_node: bool | None, intra_node_text: str) -> None:
    """What the rails test measures: message sizes, repeats, the parts it runs."""
    add_rails_test(group, "rail_bytes", "pair_bytes", "repeats")
    group.add_argument("--seed", type=int, default=0, metavar="N", help="seed of the reshuffled repeats")
    group.add_argument("--isolation", action="store_true", help="also time each rail group alone")
    group.add_argument("--no-pairs", action="store_true", help="skip the node x node pair matrix")
    group.add_argument(
        "--full-matrix",
        action="store_true",
        help="pair every two nodes even where --topology gives units (default there: each unit in full, then "
        "enough rounds between units)",
    )
    said(
        group.add_argument(
            "--intra-node", action=OnOff, default=intra_node, help="pair every two local ranks of each node (GPU x GPU)"
        ),
        intra_node_text,
    )


def add_rails_iterations(group: Group) -> None:
    """``-n`` and ``-w`` of the rails test (accept's -n and -w are its world sweep's)."""
    add_rails_test(group, "iters", "warmup")


def add_rails_targets(group: Group) -> None:
    """How the rails test judges: the line rate, the relative cut, confirmation and the cell budget."""
    said(
        group.add_argument(
            "--rail-rate-gbps", type=number("--rail-rate-gbps"), metavar="GBPS", help="line rate of one rail in Gb/s"
        ),
        "the profile's [rails] rate_gbps, else the rail HCA's rate in sysfs",
    )
    add_rails_test(group, "relative_fraction", "confirm")
    said(
        group.add_argument(
            "--cell-budget",
            type=number("--cell-budget"),
            metavar="SECONDS",
            help="time budget of one pair or rail-group measurement",
        ),
        f"{BUDGET_FACTOR:g}x its expected time at the line rate, {FLOOR_S:g}-{CEILING_S:g} s",
    )
    group.add_argument(
        "--topology",
        type=Path,
        metavar="FILE",
        help="the fabric's cabling (ibnetdiscover output or a cabling .toml): name cables, leaves, uplinks, spines",
    )


def add_plan(group: Group) -> None:
    """``--plan``, ``--nodes`` and ``--max-minutes``: the acceptance plan, shared by rails and accept."""
    group.add_argument("--plan", action="store_true", help="print the plan and its projected wall time; run nothing")
    said(
        group.add_argument("--nodes", type=int, metavar="N", help="plan for N nodes"),
        "the launch's node count",
    )
    group.add_argument(
        "--max-minutes",
        type=number("--max-minutes"),
        metavar="M",
        help="fit the run into M minutes: fewer repeats, smaller messages (the plan says what was cut)",
    )


def rails_fields(args: argparse.Namespace) -> RailsFields:
    """The rails test's fields common to rails and accept."""
    return {
        "socket_ifname": args.socket_ifname,
        "oob_ifname": args.oob_ifname,
        "seed": args.seed,
        "isolation": args.isolation,
        "pairs": not args.no_pairs,
        "intra_node": args.intra_node,
        "rail_rate_gbps": args.rail_rate_gbps,
        "cell_budget_s": args.cell_budget,
        "topology": args.topology,
        "full_matrix": args.full_matrix,
        "plan": args.plan,
        "nodes": args.nodes,
        "max_minutes": args.max_minutes,
    }


WORLD_COLLECTIVES = DEFAULT_COLLECTIVES


def add_node_sources(group: Group) -> None:
    """``--sysfs-root`` and ``--error-window``: where a node's checks read it, in check and health."""
    add_sysfs_root(group)
    said(
        group.add_argument(
            "--error-window",
            type=number("--error-window"),
            metavar="SECONDS",
            help="idle seconds between the two samples of the rails' error counters",
        ),
        "the profile's [errors] window_s",
    )


def add_node_captures(group: Group, *, kernel_log: str, kernel_log_default: str) -> None:
    """``--kernel-log``, ``--nvidia-smi`` and ``--ibv-devinfo``: a node's tool output captured in files, judged in
    place of running the tools (check and health; a copied ``--sysfs-root`` needs them)."""
    said(group.add_argument("--kernel-log", type=Path, metavar="FILE", help=kernel_log), kernel_log_default)
    said(
        group.add_argument(
            "--nvidia-smi",
            type=Path,
            nargs="+",
            default=[],
            metavar="FILE",
            help="nvidia-smi -q -x (and nvidia-smi nvlink -s) output to judge the GPUs by",
        ),
        "run nvidia-smi on this node",
    )
    said(
        group.add_argument(
            "--ibv-devinfo",
            type=Path,
            metavar="FILE",
            help="ibv_devinfo (or ibv_devinfo -v) output of this node: the InfiniBand ports' active MTU",
        ),
        "run ibv_devinfo on this node (a copied --sysfs-root: not judged)",
    )


def add_drain(group: Group, *, what: str) -> None:
    """``--drain``: drain nodes in Slurm (``scontrol``) with a reason that opens with railbench's key
    (``bench.slurm.drain_key``); off unless given."""
    group.add_argument(
        "--drain",
        action="store_true",
        help=f"drain in Slurm {what} (reason 'railbench[<key>] <part>; <action>'; never a node someone else drained)",
    )


def add_rails_job_tail(parser: argparse.ArgumentParser, *, profile: str) -> None:
    """The groups every job that runs the rails test's steps ends its flags with (``rails``, ``soak``): the
    targets, the interfaces and start-up, the output, and the rank's spec."""
    judge = parser.add_argument_group("targets")
    add_profile(judge, default=profile)
    add_rails_targets(judge)
    net = parser.add_argument_group("interfaces and start-up")
    add_interfaces(net, rails=True)
    add_launch(net)
    add_output(parser.add_argument_group("output"))
    add_spec_argument(parser)


def add_spec_argument(parser: argparse.ArgumentParser) -> None:
    """``--spec JSON``: how a railbench parent hands its ranks the whole config (not for users)."""
    parser.add_argument(spec.SPEC_FLAG, default=None, help=argparse.SUPPRESS)


def config_or_spec(
    args: argparse.Namespace, cls: type[spec.Config], from_args: Callable[[argparse.Namespace], spec.Config]
) -> spec.Config:
    """The parent's config when this process is one of its ranks, else the config the user's flags give."""
    text = getattr(args, "spec", None)
    return spec.decode(cls, text) if text else from_args(args)
