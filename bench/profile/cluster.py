"""Cluster profiles as data: TOML files shipped in ``bench/profile/shipped/`` or given by path.

A profile says what a node of a cluster should look like (its rails, their line rate and link layer, the
devices NCCL must not use, GPUs per node), the NCCL environment to recommend, and the targets and pass
thresholds. Code never hard-codes any of it. ``--profile NAME`` loads ``bench/profile/shipped/NAME.toml``;
``--profile PATH`` (anything with a ``/`` or ending in ``.toml``) loads that file.

Keys (top level unless shown):

=======================  ====================================================================================
``name``                 profile name (defaults to the file name)
``description``          one line
``transport``            ``ib`` | ``roce`` | ``socket`` | ``loopback``
``gpus_per_node``        int, optional
``gpu_model``            substring of the GPU name every GPU must have (``H100``), optional
``node_target_gbps``     target busbw of world collectives spanning nodes (8 x 400 = 3200 on a 1CC)
``nvlink_target_gbps``   target busbw of single-node collectives (those ``[nvlink_targets_gbps]`` omits)
``[nvlink_targets_gbps]``  per-collective single-node targets, ``all_gather = 2880``, or per size range where
                         the published curve is not flat: ``all_reduce = { "256M" = 3296, "1G" = 3720 }``
                         (each from that size up; smaller sizes have no target)
``[node_targets_gbps]``  per-collective targets of collectives spanning nodes, in the same two forms; a
                         collective not listed uses ``node_target_gbps`` (alltoall: one NIC per GPU,
                         ``bench.measure.targets``)
``[gpu.<generation>]``   the four target keys above per GPU generation, with ``match`` (the GPU names it
                         judges) and ``source`` (``bench.profile.gpu_targets``); a profile with these tables has no
                         target keys at its top level, and a run is judged by its GPUs' generation only
``default_max_bytes``    the default ``-e`` of ``run`` and ``accept`` on this profile (a size such as ``8G``);
                         it must reach ``judge_min_bytes`` on a profile with targets
``pass_fraction``        a measurement passes at this fraction of its target (default 0.9)
``counter_tolerance_bytes``  bytes an excluded device may carry before it is flagged (default 1 MiB)
``judge_min_bytes``      sizes below this are measured but not judged against a target (default 256M;
                         an integer or a size such as ``64M``): small messages measure latency
``[rails]``              ``count``, ``rate_gbps``, ``link_layer`` (``InfiniBand``/``Ethernet``), ``names``
                         (expected names on today's nodes: only used to name a missing rail; rails are
                         discovered), ``exclude`` (HCAs NCCL must not use), ``exclude_ifnames``
``[network]``            ``socket_ifnames`` (an NCCL_SOCKET_IFNAME value), ``oob_ifname``
``[recommended_env]``    NCCL_* variables and their recommended values (strings)
``[errors]``             error-counter and link-flap thresholds of ``railbench check``, and how ``rails``
                         judges error counters that rose during its windows (``bench.profile.errors``)
``[actions]``            what to do about each defect kind, one sentence each (``bench.profile.actions``)
``[gpudirect]``          thresholds of the GPUDirect path's checks: the rail NICs' MaxReadReq and MTU, the
                         Xid events that fail a node (``bench.profile.gpudirect``)
``[soak]``               the limits of a soak's gates (error counter rises per window and in total) and the
                         false-alarm rates of its duty-cycle and trend tests (``bench.profile.soak``)
``[compare]``            regression thresholds (``bench.profile.compare``): checked here too, so a bad one
                         is refused by every command, not only by ``compare``
``[rails_test]``         the rails test's defaults (``rail_bytes``, ``pair_bytes``, ``iters``, ``warmup``,
                         ``repeats``, ``relative_fraction``, ``collectives``, ``confirm``): flags win
                         (``bench.profile.rails_table``)
``[plan]``               the acceptance plan's model of this fabric (``railbench rails --plan``): a number
                         >= 0 or a ``[low, high]`` pair by key (``bench.rails.plan.model``)
=======================  ====================================================================================

The file is read through the codec (``bench.codec``), as every run-directory document is: its top level is the
record ``bench.profile.keys.TopLevel``, each table a record of its own or a value read by its own reader, and the
Profile is made from it. An unknown key, a wrong type, a rate or target that is not a finite positive number
(``nan``, ``inf``, ``1e308``), or a TOML syntax error is a ``UserError`` of one line naming the file, the line of
the key, what is wrong and how to fix it (``bench.profile.toml_lines``). The file is read only when it
is a regular file of at most 256 KiB nested at most 16 deep (``bench.tomldoc``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType

from bench import codec, tomldoc
from bench.exits import UserError
from bench.profile.actions import Actions
from bench.profile.compare import CompareSettings
from bench.profile.errors import ErrorLimits
from bench.profile.gpu_targets import Choice, GpuTargets, TargetSteps, choose
from bench.profile.gpudirect import GpuDirectLimits
from bench.profile.keys import DEFAULT_JUDGE_MIN_BYTES, TopLevel, Transport
from bench.profile.rails_table import RailsTestTable
from bench.profile.soak import SoakLimits
from bench.profile.toml_lines import decoded

PROFILE_DIR = Path(__file__).resolve().parent / "shipped"


@dataclass(frozen=True)
class Profile:
    """A cluster profile (see the module docstring for the TOML keys)."""

    name: str
    description: str
    transport: Transport
    """How ranks on different nodes talk: IB verbs on InfiniBand, RoCE, plain sockets, or loopback."""
    rail_count: int | None
    """Rails per node; None means discover and expect uniformity."""
    rail_rate_gbps: float | None
    """Line rate of each rail in Gb/s (400 for NDR)."""
    link_layer: str | None
    """``InfiniBand`` or ``Ethernet``; None accepts either."""
    rail_names: tuple[str, ...]
    """Rail names on today's nodes, only to name a missing rail."""
    excluded_hcas: tuple[str, ...]
    """HCAs (``mlx5_0``) or ports (``mlx5_0:1``) that must carry nothing."""
    excluded_ifnames: tuple[str, ...]
    """Net devices that must carry no benchmark traffic (a management interface)."""
    socket_ifnames: str | None
    """NCCL_SOCKET_IFNAME value for the rails of a socket profile; None when not fixed."""
    oob_ifname: str | None
    """The bootstrap/management interface, when the profile knows it."""
    gpus_per_node: int | None
    gpu_model: str | None
    recommended_env: Mapping[str, str]
    node_target_gbps: float | None
    nvlink_target_gbps: float | None
    pass_fraction: float
    counter_tolerance_bytes: int
    source: str
    """Where the profile came from (a path)."""
    nvlink_targets_gbps: Mapping[str, TargetSteps] = field(default_factory=dict)
    """Single-node target busbw per collective, by size range; a collective not listed uses
    ``nvlink_target_gbps``."""
    node_targets_gbps: Mapping[str, TargetSteps] = field(default_factory=dict)
    """Multi-node target busbw per collective, by size range; a collective not listed uses the node rule."""
    default_max_bytes: int | None = None
    """The default ``-e`` of ``run`` and ``accept`` on this profile; None: the sweep's own default."""
    judge_min_bytes: int = DEFAULT_JUDGE_MIN_BYTES
    """Sizes below this are measured but not judged against a target (they measure latency)."""
    errors: ErrorLimits = field(default_factory=ErrorLimits)
    """The ``[errors]`` table: error-counter and link-flap thresholds."""
    actions: Actions = field(default_factory=Actions)
    """The ``[actions]`` table: what a technician does about each defect kind."""
    gpudirect: GpuDirectLimits = field(default_factory=GpuDirectLimits)
    """The ``[gpudirect]`` table: thresholds of the GPUDirect path's checks."""
    soak: SoakLimits = field(default_factory=SoakLimits)
    """The ``[soak]`` table: the soak's gates and tests (``bench.profile.soak``)."""
    compare: CompareSettings = field(default_factory=CompareSettings)
    """The ``[compare]`` table: the nightly regression thresholds (``bench.profile.compare``)."""
    rails_test: RailsTestTable = field(default_factory=lambda: RailsTestTable())
    """The ``[rails_test]`` table: the rails test's defaults for this cluster."""
    plan: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    """The ``[plan]`` table: ``(low, high)`` by key (a single number is both); which keys, and which are
    fractions, is ``bench.rails.plan.model``'s to say."""
    generations: tuple[GpuTargets, ...] = ()
    """The ``[gpu.<generation>]`` tables: targets per GPU generation (``bench.profile.gpu_targets``). While any exist,
    the four target fields above stay empty until :meth:`for_gpus` fills them from the run's generation."""
    choice: Choice = field(default_factory=lambda: Choice(None, ()))
    """The run's GPUs as :meth:`for_gpus` saw them: the names the ranks reported, and the generation whose
    figures the target fields hold or why none does (``bench.profile.gpu_targets.choose``); no GPU before it."""
    read: ProfileRead | None = field(default=None, compare=False, repr=False)
    """The file as :func:`load_profile` read it: what a parent hands its ranks, so they parse the same bytes."""

    def __post_init__(self) -> None:
        for name in ("recommended_env", "nvlink_targets_gbps", "node_targets_gbps", "plan"):
            object.__setattr__(self, name, MappingProxyType(dict(getattr(self, name))))  # frozen as the record is

    @property
    def has_targets(self) -> bool:
        """Whether any busbw target is given, at the top level or for some GPU generation."""
        return bool(
            self.node_target_gbps
            or self.nvlink_target_gbps
            or self.nvlink_targets_gbps
            or self.node_targets_gbps
            or self.generations
        )

    def for_gpus(self, names: Sequence[str]) -> Profile:
        """This profile as it judges a run whose ranks report these GPUs (one name per rank, empty on a CPU
        rank): a profile without generations as it is; else the one generation of every GPU, its figures in
        the target fields, or no target at all and the choice's ``why_none`` saying why
        (``bench.profile.gpu_targets``)."""
        if not self.generations:
            return replace(self, choice=Choice(None, tuple(dict.fromkeys(n for n in names if n))))
        choice = choose(self.name, self.generations, names)
        chosen = choice.generation
        if chosen is None:
            return replace(
                self,
                choice=choice,
                nvlink_target_gbps=None,
                nvlink_targets_gbps=MappingProxyType({}),
                node_target_gbps=None,
                node_targets_gbps=MappingProxyType({}),
            )
        return replace(
            self,
            choice=choice,
            nvlink_target_gbps=chosen.nvlink_target_gbps,
            nvlink_targets_gbps=MappingProxyType(dict(chosen.nvlink_targets_gbps)),
            node_target_gbps=chosen.node_target_gbps,
            node_targets_gbps=MappingProxyType(dict(chosen.node_targets_gbps)),
        )

    @property
    def generation(self) -> str | None:
        """The name of the generation whose figures the target fields hold, if :meth:`for_gpus` chose one."""
        chosen = self.choice.generation
        return None if chosen is None else chosen.name

    def targets_line(self) -> str:
        """One line on the terminal and the certificate: which GPU generation's figures judge the run and where
        they come from, or why none does; empty for a profile without generations."""
        if not self.generations:
            return ""
        chosen = self.choice.generation
        if chosen is None:
            return f"no NVLink or node target applies: {self.choice.why_none or 'no GPU seen yet'}"
        gpus = ", ".join(self.choice.gpus) or "its GPUs"
        return f"{chosen.name} targets of profile {self.name} for {gpus} (from {chosen.source})"

    @property
    def uses_ib_verbs(self) -> bool:
        """Whether NCCL should run its IB transport (InfiniBand or RoCE) on this cluster."""
        return self.transport in ("ib", "roce")

    @property
    def excluded_devices(self) -> tuple[str, ...]:
        """Every device (HCA, port or interface) that must carry no traffic."""
        return self.excluded_hcas + self.excluded_ifnames


def _parse(text: str, where: str, default_name: str) -> Profile:
    """The profile ``text`` (of the file ``where``) says: its TOML read by the codec (:class:`TopLevel`), and the
    Profile made from that record by the codec, field by field, the [rails] and [network] keys under their
    Profile names."""
    top = decoded(TopLevel, tomldoc.loads(text, where), where, text, ())
    rails, network = top.rails, top.network
    return codec.projected(
        Profile,
        top,
        where=f"{where}: ",
        name=default_name if top.name is None else top.name,
        source=where,
        rail_count=rails.count,
        rail_rate_gbps=rails.rate_gbps,
        link_layer=rails.link_layer,
        rail_names=rails.names,
        excluded_hcas=rails.exclude,
        excluded_ifnames=rails.exclude_ifnames,
        socket_ifnames=network.socket_ifnames,
        oob_ifname=network.oob_ifname,
        # [errors] fail_on_rise decides which counters compare judges: taken from the checked table, not re-read
        compare=replace(top.compare, error_counters=top.errors.fail_on_rise),
        generations=top.gpu,
        choice=Choice(None, ()),
        read=None,
    )


def list_profiles() -> list[str]:
    """Names of the profiles shipped with railbench."""
    return sorted(p.stem for p in PROFILE_DIR.glob("*.toml"))


MAX_CARRIED_BYTES = 64 << 10
"""The largest profile text a parent hands its ranks in their ``--spec`` (Linux refuses one argument over
128 KiB; every shipped profile is under 9 KB). A larger one is read again by each rank, as before."""


@dataclass(frozen=True)
class ProfileRead:
    """A profile file's text as one process read it (a frozen dataclass of strings: it travels in ``--spec``)."""

    name_or_path: str
    """What ``--profile`` said."""
    path: str
    text: str

    def parsed(self) -> Profile:
        """The profile these bytes give, as :func:`load_profile` gave it to the process that read them."""
        return replace(_parse(self.text, self.path, Path(self.path).stem), read=self)


def carried(profile: Profile) -> ProfileRead | None:
    """What a parent hands its ranks of ``profile``: the text it read, when it fits one argument."""
    read = profile.read
    return read if read is not None and len(read.text.encode()) <= MAX_CARRIED_BYTES else None


def profile_for(name_or_path: str, read: ProfileRead | None) -> Profile:
    """``--profile``'s profile: parsed from the text the parent read (``read``, carried in the spec) when it is
    that profile's, else read from its file. A rank under ``--np`` never opens the file the parent already read."""
    if read is not None and read.name_or_path == name_or_path:
        return read.parsed()
    return load_profile(name_or_path)


def load_profile(name_or_path: str) -> Profile:
    """A profile by NAME (shipped) or PATH (a ``.toml`` file); UserError naming the file and line if bad."""
    looks_like_path = "/" in name_or_path or name_or_path.endswith(".toml")
    path = Path(name_or_path) if looks_like_path else PROFILE_DIR / f"{name_or_path}.toml"
    if not looks_like_path and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name_or_path):
        raise UserError(f"profile name {name_or_path!r} is not valid: choose one of {', '.join(list_profiles())}")
    if not looks_like_path and not path.exists():
        raise UserError(
            f"unknown profile {name_or_path!r}: choose one of {', '.join(list_profiles())} or give a .toml path"
        )
    return ProfileRead(name_or_path, str(path), tomldoc.read_text(path, "profile file")).parsed()
