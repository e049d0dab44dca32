"""Reading a profile's TOML: where each key is set, which keys and types each table takes, and the checks of
the values ``bench.profile.cluster`` reads into a ``Profile``, each refusal naming the file and the line."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from bench import codec
from bench.bounded import Where, finite
from bench.exits import UserError
from bench.jsondoc import Parsed, table
from bench.profile.compare import CompareSettings
from bench.profile.gpu_targets import MAX_RATE_GBPS
from bench.profile.toml_lines import line_of
from bench.units import parse_size

Transport = Literal["ib", "roce", "socket", "loopback"]
TRANSPORTS: tuple[Transport, ...] = ("ib", "roce", "socket", "loopback")

# Tables with a parser of their own (typed at load like every other table).
EXTENSION_TABLES = frozenset({"compare", "rails_test", "plan", "gpu"})

TARGET_KEYS = ("nvlink_target_gbps", "nvlink_targets_gbps", "node_target_gbps", "node_targets_gbps")
"""The keys that give busbw targets: at the top level, or in each ``[gpu.<generation>]`` table, never both."""
MAX_RAILS = 64
MAX_GPUS_PER_NODE = 1024
MAX_BYTES = 1 << 62

DEFAULT_JUDGE_MIN_BYTES = 256 << 20
"""Small messages measure latency, not bandwidth: a sweep is judged on its sizes at or above this."""


# key -> (python types accepted, description for messages)
TOP_KEYS: dict[str, tuple[tuple[type, ...], str]] = {
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
    "node_targets_gbps": ((dict,), "a table of collective = Gb/s"),
    "default_max_bytes": ((int, str), "a size such as 8G"),
    "errors": ((dict,), "a table"),
    "actions": ((dict,), 'a table of defect kind = "sentence"'),
    "gpudirect": ((dict,), "a table"),
}


@dataclass(frozen=True)
class RailsTable:
    """The ``[rails]`` table, read by the codec (``bench.profile.cluster`` says each key)."""

    count: int | None = None
    rate_gbps: float | None = field(default=None, metadata=codec.bounded(sign="positive", maximum=MAX_RATE_GBPS))
    link_layer: Literal["InfiniBand", "Ethernet"] | None = None
    names: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    exclude_ifnames: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.count is not None and not 1 <= self.count <= MAX_RAILS:
            raise codec.Invalid("count", f"= {self.count} must be between 1 and {MAX_RAILS}")


@dataclass(frozen=True)
class NetworkTable:
    """The ``[network]`` table, read by the codec: an NCCL_SOCKET_IFNAME value and the bootstrap interface."""

    socket_ifnames: str | None = None
    oob_ifname: str | None = None


def check_table(
    data: Parsed,
    spec: Mapping[str, tuple[tuple[type, ...], str]],
    where: str,
    text: str,
    table: str | None,
) -> None:
    def at(key: str) -> str:  # found only for a refusal: the file is read once per key refused, not per key
        return f"{where}:{line_of(text, (table, key) if table else (key,))}"

    for key, value in data.items():
        if table is None and key in EXTENSION_TABLES:
            if not isinstance(value, dict):
                raise UserError(f"{where}:{line_of(text, (key,))}: [{key}] must be a table")
            continue
        if key not in spec:
            known = ", ".join(sorted(spec) + (sorted(EXTENSION_TABLES) if table is None else []))
            scope = f"[{table}] " if table else ""
            raise UserError(f"{at(key)}: unknown {scope}key {key!r}; known keys: {known}")
        types, description = spec[key]
        if isinstance(value, bool) or not isinstance(value, types):
            raise UserError(f"{at(key)}: {key} = {value!r} must be {description}")
        if isinstance(value, list) and not all(isinstance(item, str) for item in value):
            raise UserError(f"{at(key)}: {key} must be a list of strings")


# Typed reads of values check_table has already checked against TOP_KEYS: each narrows what that check proved, so
# a value absent (or, were the spec ever to drift, of another type) reads as None.
def text_of(values: Parsed, key: str) -> str | None:
    value = values.get(key)
    return value if isinstance(value, str) else None


def whole_of(values: Parsed, key: str) -> int | None:
    value = values.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def number_of(values: Parsed, key: str) -> int | float | None:
    value = values.get(key)
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def _transport(value: object) -> Transport | None:
    return next((t for t in TRANSPORTS if t == value), None)


def refuse_top_level_targets(data: Parsed, per_gpu: bool, where: str, text: str) -> None:
    """A target at the top level beside ``[gpu.<generation>]`` tables is refused: it would be ambiguous."""
    both = [key for key in TARGET_KEYS if key in data]
    if per_gpu and both:
        raise UserError(
            f"{where}:{line_of(text, (both[0],))}: {both[0]} is set at the top level and the profile has "
            "[gpu.<generation>] tables: give every target in the generation it was measured on"
        )


def checked_env(data: Parsed, where: str, text: str) -> dict[str, str]:
    """``[recommended_env]``: every value a string."""
    env: dict[str, str] = {}
    for key, value in table(data, "recommended_env").items():
        if not isinstance(value, str):
            raise UserError(
                f"{where}:{line_of(text, ('recommended_env', key))}: {key} = {value!r} must be a string; quote it"
            )
        env[key] = value
    return env


def checked_transport(data: Parsed, where: str, text: str) -> Transport:
    transport = _transport(data.get("transport", "ib"))
    if transport is None:
        raise UserError(
            f"{where}:{line_of(text, ('transport',))}: transport {data.get('transport')!r} must be one of "
            + ", ".join(TRANSPORTS)
        )
    return transport


def check_ranges(data: Parsed, where: str, text: str) -> None:
    """The top level's counts within their bounds, and its targets positive and finite."""
    for key, minimum, maximum in (
        ("gpus_per_node", 1, MAX_GPUS_PER_NODE),
        ("counter_tolerance_bytes", 0, MAX_BYTES),
    ):
        value = whole_of(data, key)
        if value is not None and not minimum <= value <= maximum:
            raise UserError(f"{where}:{line_of(text, (key,))}: {key} = {value} must be between {minimum} and {maximum}")
    for key in ("node_target_gbps", "nvlink_target_gbps"):
        rate = number_of(data, key)
        if rate is not None:
            finite(rate, Where(where, key, line_of(text, (key,))), sign="positive", maximum=MAX_RATE_GBPS)


def compare_table(data: Parsed, where: str, text: str) -> CompareSettings:
    try:  # [compare] is read by compare and report; refuse a bad one here, before any command starts ranks
        return CompareSettings.from_table(table(data, "compare"))
    except UserError as exc:
        raise UserError(f"{where}:{line_of(text, ('compare',))}: {exc}") from None


def byte_limits(data: Parsed, per_gpu: bool, where: str, text: str) -> tuple[int, int | None]:
    """``judge_min_bytes`` and ``default_max_bytes``; a default run that would stop below the judged sizes of a
    profile with targets is refused."""
    judge_min = parse_size(str(data.get("judge_min_bytes", DEFAULT_JUDGE_MIN_BYTES)), f"{where}: judge_min_bytes")
    default_max = data.get("default_max_bytes")
    default_max_bytes = None if default_max is None else parse_size(str(default_max), f"{where}: default_max_bytes")
    has_targets = per_gpu or any(k in data for k in ("node_target_gbps", "nvlink_target_gbps", "nvlink_targets_gbps"))
    if default_max_bytes is not None and has_targets and default_max_bytes < judge_min:
        raise UserError(
            f"{where}:{line_of(text, ('default_max_bytes',))}: default_max_bytes {default_max} stops below "
            f"judge_min_bytes ({judge_min} bytes): a default run would judge nothing; raise it"
        )
    return judge_min, default_max_bytes


def checked_pass_fraction(data: Parsed, where: str, text: str) -> float:
    fraction = number_of(data, "pass_fraction")
    fraction = 0.9 if fraction is None else fraction
    if not 0 < fraction <= 1.5:
        line = line_of(text, ("pass_fraction",))
        raise UserError(f"{where}:{line}: pass_fraction = {fraction} must be a fraction of the target in (0, 1.5]")
    return float(fraction)


def plan_table(values: Parsed, where: str, text: str) -> dict[str, tuple[float, float]]:
    """``[plan]``: every value a finite number >= 0, or a ``[low, high]`` pair of them with low <= high (the
    keys are checked where the plan is made)."""
    plan: dict[str, tuple[float, float]] = {}
    for key, value in values.items():
        line = line_of(text, ("plan", key))
        pair = value if isinstance(value, list) else [value, value]
        numbers = [v for v in pair if isinstance(v, int | float) and not isinstance(v, bool)]
        if len(pair) != 2 or len(numbers) != 2:
            raise UserError(f"{where}:{line}: [plan] {key} = {value!r} must be a number or a [low, high] pair")
        low, high = (finite(float(v), Where(where, f"[plan] {key}", line)) for v in numbers)
        if low > high:
            raise UserError(f"{where}:{line}: [plan] {key} = [{low:g}, {high:g}]: the low figure comes first")
        plan[key] = (low, high)
    return plan
