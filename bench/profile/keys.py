"""A profile's TOML as the codec reads it: :class:`TopLevel`, its top-level keys and each of its tables a declared
record or a value read by a reader of its own, every refusal located at its key by ``bench.profile.toml_lines``.
``bench.profile.cluster`` makes the ``Profile`` from it (and says each key)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from bench import codec
from bench.bounded import out_of_bounds
from bench.profile.actions import Actions
from bench.profile.compare import CompareSettings
from bench.profile.errors import ErrorLimits
from bench.profile.gpu_targets import MAX_RATE_GBPS, GpuTargets, TargetSteps, generations, target_steps
from bench.profile.gpudirect import GpuDirectLimits
from bench.profile.rails_table import RailsTestTable
from bench.profile.soak import SoakLimits
from bench.profile.toml_lines import size
from bench.units import format_size

Transport = Literal["ib", "roce", "socket", "loopback"]
TRANSPORTS: tuple[Transport, ...] = ("ib", "roce", "socket", "loopback")

TARGET_KEYS = ("nvlink_target_gbps", "nvlink_targets_gbps", "node_target_gbps", "node_targets_gbps")
"""The keys that give busbw targets: at the top level, or in each ``[gpu.<generation>]`` table, never both."""
MAX_RAILS = 64
MAX_GPUS_PER_NODE = 1024
MAX_BYTES = 1 << 62

DEFAULT_JUDGE_MIN_BYTES = 256 << 20
"""Small messages measure latency, not bandwidth: a sweep is judged on its sizes at or above this."""

_RATE = codec.bounded(sign="positive", maximum=MAX_RATE_GBPS)


@dataclass(frozen=True)
class RailsTable:
    """The ``[rails]`` table."""

    count: int | None = None
    rate_gbps: float | None = field(default=None, metadata=_RATE)
    link_layer: Literal["InfiniBand", "Ethernet"] | None = None
    names: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    exclude_ifnames: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.count is not None and not 1 <= self.count <= MAX_RAILS:
            raise codec.Invalid("count", f"= {self.count} must be between 1 and {MAX_RAILS}")


@dataclass(frozen=True)
class NetworkTable:
    """The ``[network]`` table: an NCCL_SOCKET_IFNAME value and the bootstrap interface."""

    socket_ifnames: str | None = None
    oob_ifname: str | None = None


def _table(value: object, said: str) -> Mapping[str, object]:
    if not isinstance(value, Mapping):
        raise ValueError(f"= {codec.shown(value)} must be {said}")
    return value


def plan_spans(values: object) -> dict[str, tuple[float, float]]:
    """``[plan]``: every value a finite number >= 0, or a ``[low, high]`` pair of them with low <= high (the
    keys are checked where the plan is made, ``bench.rails.plan.model``); the codec's reader of it."""
    plan: dict[str, tuple[float, float]] = {}
    for key, value in _table(value=values, said="a table").items():
        pair = value if isinstance(value, list) else [value, value]
        numbers = [float(v) for v in pair if isinstance(v, int | float) and not isinstance(v, bool)]
        if len(pair) != 2 or len(numbers) != 2:
            raise codec.Invalid(key, f"= {codec.shown(value)} must be a number or a [low, high] pair")
        for number in numbers:
            refusal = out_of_bounds(number)
            if refusal is not None:
                raise codec.Invalid(key, refusal)
        low, high = numbers
        if low > high:
            raise codec.Invalid(key, f"= [{low:g}, {high:g}]: the low figure comes first")
        plan[key] = (low, high)
    return plan


@dataclass(frozen=True)
class TopLevel:
    """A profile's TOML, read by the codec: each key of its type, each table its record, the checks across keys
    the record's own."""

    name: str | None = None
    description: str = ""
    transport: Transport = "ib"
    gpus_per_node: int | None = None
    gpu_model: str | None = None
    node_target_gbps: float | None = field(default=None, metadata=_RATE)
    nvlink_target_gbps: float | None = field(default=None, metadata=_RATE)
    pass_fraction: float = 0.9
    counter_tolerance_bytes: int = 1 << 20
    judge_min_bytes: int = field(default=DEFAULT_JUDGE_MIN_BYTES, metadata=codec.read_by(size))
    default_max_bytes: int | None = field(default=None, metadata=codec.read_by(size))
    rails: RailsTable = field(default_factory=RailsTable)
    network: NetworkTable = field(default_factory=NetworkTable)
    recommended_env: Mapping[str, str] = field(default_factory=dict)
    nvlink_targets_gbps: Mapping[str, TargetSteps] = field(default_factory=dict, metadata=codec.read_by(target_steps))
    node_targets_gbps: Mapping[str, TargetSteps] = field(default_factory=dict, metadata=codec.read_by(target_steps))
    errors: ErrorLimits = field(default_factory=ErrorLimits)
    actions: Actions = field(default_factory=Actions, metadata=codec.read_by(Actions.from_profile))
    gpudirect: GpuDirectLimits = field(default_factory=GpuDirectLimits)
    soak: SoakLimits = field(default_factory=SoakLimits)
    compare: CompareSettings = field(default_factory=CompareSettings, metadata=codec.read_by(CompareSettings.read))
    rails_test: RailsTestTable = field(
        default_factory=RailsTestTable,
        metadata=codec.read_by(lambda value: RailsTestTable.from_profile(_table(value, "a table"))),
    )
    plan: Mapping[str, tuple[float, float]] = field(default_factory=dict, metadata=codec.read_by(plan_spans))
    gpu: tuple[GpuTargets, ...] = field(
        default=(), metadata=codec.read_by(lambda value: generations(_table(value, "a table of [gpu.<name>] tables")))
    )

    def __post_init__(self) -> None:
        for key, value, low, high in (
            ("gpus_per_node", self.gpus_per_node, 1, MAX_GPUS_PER_NODE),
            ("counter_tolerance_bytes", self.counter_tolerance_bytes, 0, MAX_BYTES),
        ):
            if value is not None and not low <= value <= high:
                raise codec.Invalid(key, f"= {value} must be between {low} and {high}")
        if not 0 < self.pass_fraction <= 1.5:
            raise codec.Invalid(
                "pass_fraction", f"= {self.pass_fraction:g} must be a fraction of the target in (0, 1.5]"
            )
        given = [key for key in TARGET_KEYS if getattr(self, key)]
        if self.gpu and given:  # ambiguous: every target belongs to the generation it was measured on
            raise codec.Invalid(
                given[0],
                "is set at the top level and the profile has [gpu.<generation>] tables: give every target in the "
                "generation it was measured on",
            )
        judged = self.gpu or self.node_target_gbps or self.nvlink_target_gbps or self.nvlink_targets_gbps
        if self.default_max_bytes is not None and judged and self.default_max_bytes < self.judge_min_bytes:
            raise codec.Invalid(
                "default_max_bytes",
                f"= {format_size(self.default_max_bytes)} stops below judge_min_bytes ({self.judge_min_bytes} bytes): "
                "a default run would judge nothing; raise it",
            )
