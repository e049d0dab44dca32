"""Cluster profiles as data: TOML files shipped in ``bench/profiles/`` or given by path.

A profile says what a node of a cluster should look like (its rails, their line rate and link layer, the
devices NCCL must not use, GPUs per node), the NCCL environment to recommend, and the targets and pass
thresholds. Code never hard-codes any of it. ``--profile NAME`` loads ``bench/profiles/NAME.toml``;
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
``[nvlink_targets_gbps]``  per-collective single-node targets, ``all_reduce = 3840``: NVLS all_reduce runs
                         far above all_gather or sendrecv on the same NVLink
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
                         judges error counters that rose during its windows (``bench.error_limits``)
``[actions]``            what to do about each defect kind, one sentence each (``bench.actions``)
``[compare]``            regression thresholds (``bench.compare_settings``): checked here too, so a bad one
                         is refused by every command, not only by ``compare``
``[rails_test]``, ``[run]``, ``[accept]``, ``[report]``: tables read by other commands, kept in ``raw``
=======================  ====================================================================================

An unknown key, a wrong type, a rate or target that is not a finite positive number (``nan``, ``inf``,
``1e308``), or a TOML syntax error is a ``UserError`` naming the file and line. The file is read only when it
is a regular file of at most 256 KiB nested at most 16 deep (``bench.toml_limits``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, cast

from bench import toml_limits
from bench.actions import Actions
from bench.bounded import Where, finite
from bench.busbw import BUSBW_FACTOR
from bench.compare_settings import CompareSettings
from bench.error_limits import ErrorLimits
from bench.errors import UserError
from bench.units import parse_size

PROFILE_DIR = Path(__file__).resolve().parent / "profiles"
Transport = Literal["ib", "roce", "socket", "loopback"]
TRANSPORTS: tuple[Transport, ...] = ("ib", "roce", "socket", "loopback")
LINK_LAYERS = ("InfiniBand", "Ethernet")

# Tables other commands own; accepted as tables and left to them.
EXTENSION_TABLES = frozenset({"compare", "rails_test", "run", "accept", "report"})


MAX_RATE_GBPS = 1e6
"""Above any rail, node or NVLink figure (a petabit per second): a larger rate or target is a typo."""
MAX_RAILS = 64
MAX_GPUS_PER_NODE = 1024
MAX_BYTES = 1 << 62

DEFAULT_JUDGE_MIN_BYTES = 256 << 20
"""Small messages measure latency, not bandwidth: a sweep is judged on its sizes at or above this."""


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
    raw: Mapping[str, Any] = field(default_factory=dict)
    """The whole parsed TOML, for tables other commands own (``[compare]``...)."""
    nvlink_targets_gbps: Mapping[str, float] = field(default_factory=dict)
    """Single-node target busbw per collective; a collective not listed uses ``nvlink_target_gbps``."""
    judge_min_bytes: int = DEFAULT_JUDGE_MIN_BYTES
    """Sizes below this are measured but not judged against a target (they measure latency)."""
    errors: ErrorLimits = field(default_factory=ErrorLimits)
    """The ``[errors]`` table: error-counter and link-flap thresholds."""
    actions: Actions = field(default_factory=Actions)
    """The ``[actions]`` table: what a technician does about each defect kind."""

    def __post_init__(self) -> None:
        if self.transport not in TRANSPORTS:
            raise UserError(f"{self.source}: transport {self.transport!r} must be one of {', '.join(TRANSPORTS)}")
        if not 0 < self.pass_fraction <= 1.5:
            raise UserError(f"{self.source}: pass_fraction {self.pass_fraction} must be in (0, 1.5]")

    @property
    def uses_ib_verbs(self) -> bool:
        """Whether NCCL should run its IB transport (InfiniBand or RoCE) on this cluster."""
        return self.transport in ("ib", "roce")

    @property
    def excluded_devices(self) -> tuple[str, ...]:
        """Every device (HCA, port or interface) that must carry no traffic."""
        return self.excluded_hcas + self.excluded_ifnames


# key -> (python types accepted, description for messages)
_TOP: dict[str, tuple[tuple[type, ...], str]] = {
    "name": ((str,), "a string"),
    "description": ((str,), "a string"),
    "transport": ((str,), "one of " + ", ".join(TRANSPORTS)),
    "gpus_per_node": ((int,), "an integer"),
    "gpu_model": ((str,), "a string"),
    "node_target_gbps": ((int, float), "a number (Gb/s)"),
    "nvlink_target_gbps": ((int, float), "a number (Gb/s)"),
    "pass_fraction": ((int, float), "a number such as 0.9"),
    "counter_tolerance_bytes": ((int,), "an integer number of bytes"),
    "judge_min_bytes": ((int, str), "a size such as 256M"),
    "rails": ((dict,), "a table"),
    "network": ((dict,), "a table"),
    "recommended_env": ((dict,), 'a table of NAME = "value"'),
    "nvlink_targets_gbps": ((dict,), "a table of collective = Gb/s"),
    "errors": ((dict,), "a table"),
    "actions": ((dict,), 'a table of defect kind = "sentence"'),
}
_RAILS: dict[str, tuple[tuple[type, ...], str]] = {
    "count": ((int,), "an integer"),
    "rate_gbps": ((int, float), "a number (Gb/s)"),
    "link_layer": ((str,), "InfiniBand or Ethernet"),
    "names": ((list,), "a list of strings"),
    "exclude": ((list,), "a list of strings"),
    "exclude_ifnames": ((list,), "a list of strings"),
}
_NETWORK: dict[str, tuple[tuple[type, ...], str]] = {
    "socket_ifnames": ((str,), "an NCCL_SOCKET_IFNAME value"),
    "oob_ifname": ((str,), "an interface name"),
}


def _line_of(text: str, key: str, table: str | None) -> int:
    """The line where ``key`` is set (inside ``[table]`` when given); 1 when it cannot be found."""
    current: str | None = None
    pattern = re.compile(rf"^\s*\"?{re.escape(key)}\"?\s*=")
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.lstrip()
        if stripped.startswith("["):  # string methods, not a regex: a hostile line must cost linear time
            current = stripped.lstrip("[").split("]", 1)[0].strip()
            if table is None and (current == key or current.startswith(f"{key}.")):
                return number
            continue
        if pattern.match(line) and current == table:
            return number
    return 1


def _check_table(
    data: Mapping[str, Any],
    spec: Mapping[str, tuple[tuple[type, ...], str]],
    where: str,
    text: str,
    table: str | None,
) -> None:
    for key, value in data.items():
        if table is None and key in EXTENSION_TABLES:
            if not isinstance(value, dict):
                raise UserError(f"{where}:{_line_of(text, key, None)}: [{key}] must be a table")
            continue
        if key not in spec:
            known = ", ".join(sorted(spec) + (sorted(EXTENSION_TABLES) if table is None else []))
            scope = f"[{table}] " if table else ""
            raise UserError(f"{where}:{_line_of(text, key, table)}: unknown {scope}key {key!r}; known keys: {known}")
        types, description = spec[key]
        if isinstance(value, bool) or not isinstance(value, types):
            raise UserError(f"{where}:{_line_of(text, key, table)}: {key} = {value!r} must be {description}")
        if isinstance(value, list) and not all(isinstance(item, str) for item in value):
            raise UserError(f"{where}:{_line_of(text, key, table)}: {key} must be a list of strings")


def _parse(text: str, where: str, default_name: str) -> Profile:
    data = toml_limits.loads(text, where)
    _check_table(data, _TOP, where, text, None)
    rails = data.get("rails", {})
    network = data.get("network", {})
    env = data.get("recommended_env", {})
    _check_table(rails, _RAILS, where, text, "rails")
    _check_table(network, _NETWORK, where, text, "network")
    nvlink_targets = _collective_targets(data.get("nvlink_targets_gbps", {}), where, text, "nvlink_targets_gbps")
    for key, value in env.items():
        if not isinstance(value, str):
            raise UserError(
                f"{where}:{_line_of(text, key, 'recommended_env')}: {key} = {value!r} must be a string; quote it"
            )
    transport = data.get("transport", "ib")
    if transport not in TRANSPORTS:
        raise UserError(
            f"{where}:{_line_of(text, 'transport', None)}: transport {transport!r} must be one of "
            + ", ".join(TRANSPORTS)
        )
    link_layer = rails.get("link_layer")
    if link_layer is not None and link_layer not in LINK_LAYERS:
        raise UserError(
            f"{where}:{_line_of(text, 'link_layer', 'rails')}: link_layer {link_layer!r} must be InfiniBand or Ethernet"
        )
    for key, table, minimum, maximum in (
        ("count", rails, 1, MAX_RAILS),
        ("gpus_per_node", data, 1, MAX_GPUS_PER_NODE),
        ("counter_tolerance_bytes", data, 0, MAX_BYTES),
    ):
        value = table.get(key)
        if value is not None and not minimum <= value <= maximum:
            line = _line_of(text, key, "rails" if table is rails else None)
            raise UserError(f"{where}:{line}: {key} = {value} must be between {minimum} and {maximum}")
    for key, table in (("rate_gbps", rails), ("node_target_gbps", data), ("nvlink_target_gbps", data)):
        if key in table:
            line = _line_of(text, key, "rails" if table is rails else None)
            finite(table[key], Where(where, key, line), sign="positive", maximum=MAX_RATE_GBPS)
    try:  # [compare] is read by compare and report; refuse a bad one here, before any command starts ranks
        CompareSettings.from_profile(data)
    except UserError as exc:
        raise UserError(f"{where}:{_line_of(text, 'compare', None)}: {exc}") from None
    errors = ErrorLimits.from_table(data.get("errors", {}), where, lambda key, table: _line_of(text, key, table))
    actions = Actions.from_table(data.get("actions", {}), where, lambda key, table: _line_of(text, key, table))
    fraction = data.get("pass_fraction", 0.9)
    if not 0 < fraction <= 1.5:
        line = _line_of(text, "pass_fraction", None)
        raise UserError(f"{where}:{line}: pass_fraction = {fraction} must be a fraction of the target in (0, 1.5]")
    return Profile(
        name=data.get("name", default_name),
        description=data.get("description", ""),
        transport=cast(Transport, transport),
        rail_count=rails.get("count"),
        rail_rate_gbps=float(rails["rate_gbps"]) if "rate_gbps" in rails else None,
        link_layer=link_layer,
        rail_names=tuple(rails.get("names", ())),
        excluded_hcas=tuple(rails.get("exclude", ())),
        excluded_ifnames=tuple(rails.get("exclude_ifnames", ())),
        socket_ifnames=network.get("socket_ifnames"),
        oob_ifname=network.get("oob_ifname"),
        gpus_per_node=data.get("gpus_per_node"),
        gpu_model=data.get("gpu_model"),
        recommended_env=MappingProxyType(dict(env)),
        node_target_gbps=float(data["node_target_gbps"]) if "node_target_gbps" in data else None,
        nvlink_target_gbps=float(data["nvlink_target_gbps"]) if "nvlink_target_gbps" in data else None,
        pass_fraction=float(fraction),
        counter_tolerance_bytes=int(data.get("counter_tolerance_bytes", 1 << 20)),
        judge_min_bytes=parse_size(
            str(data.get("judge_min_bytes", DEFAULT_JUDGE_MIN_BYTES)), f"{where}: judge_min_bytes"
        ),
        source=where,
        raw=MappingProxyType(data),
        nvlink_targets_gbps=MappingProxyType(nvlink_targets),
        errors=errors,
        actions=actions,
    )


def _collective_targets(table: Mapping[str, Any], where: str, text: str, name: str) -> dict[str, float]:
    """``collective = Gb/s`` entries, each a known collective and a positive number."""
    out = {}
    for key, value in table.items():
        line = _line_of(text, key, name)
        if key not in BUSBW_FACTOR:
            raise UserError(
                f"{where}:{line}: [{name}] {key!r} is not a collective; use one of {', '.join(BUSBW_FACTOR)}"
            )
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise UserError(f"{where}:{line}: [{name}] {key} = {value!r} must be a positive number (Gb/s)")
        out[key] = finite(float(value), Where(where, f"[{name}] {key}", line), sign="positive", maximum=MAX_RATE_GBPS)
    return out


def list_profiles() -> list[str]:
    """Names of the profiles shipped with railbench."""
    return sorted(p.stem for p in PROFILE_DIR.glob("*.toml"))


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
    return _parse(toml_limits.read_text(path, "profile file"), str(path), path.stem)
