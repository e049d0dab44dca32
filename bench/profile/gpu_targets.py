"""A profile's busbw targets, per collective and size range, and per GPU generation.

An 8-GPU node's collectives run at what its NVLink and NVSwitch carry: NVLink 4 on an H100 moves 450 GB/s per
direction, NVLink 5 on a B200 900 GB/s, so one set of single-node figures judges one generation only, and a
B200 judged against H100 figures passes whatever its links do. A profile that covers several generations
(the Lambda 1-Click Cluster sells H100 and B200 nodes) gives each its own ``[gpu.<generation>]`` table:

=========================  ===========================================================================
key                        what
=========================  ===========================================================================
``match``                  the GPU names of this generation, as torch and nvidia-smi say them, as
                           shell patterns (``"NVIDIA H100 80GB HBM3"``, ``"NVIDIA H100 SXM*"``): an
                           exact name keeps a PCIe H100 (no NVSwitch) off the SXM figures
``source``                 where its figures come from, one line: the certificate and run.json say it
``nvlink_target_gbps``     as at the top level of a profile without generations (``bench.profile.cluster``)
``node_target_gbps``
``[...nvlink_targets_gbps]``
``[...node_targets_gbps]``
=========================  ===========================================================================

The run gathers every rank's GPU name (``bench.frame.job``) and the profile is resolved for them
(``bench.profile.cluster.Profile.for_gpus``): every GPU of one generation, that generation's figures; a GPU no table
matches, GPUs of two generations, or no GPU at all, no NVLink or node figure at all, and every collective
they would have judged is MEASURED with the reason (:func:`choose`). A figure a generation does not give is
not judged on it: nothing falls back to another generation's number.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from bench import codec
from bench.bounded import out_of_bounds
from bench.busbw import BUSBW_FACTOR
from bench.jsondoc import Parsed
from bench.profile.toml_lines import refuse_unread
from bench.profile.toml_lines import size as size_of

MAX_RATE_GBPS = 1e6
"""Above any rail, node or NVLink figure (a petabit per second): a larger rate or target is a typo."""

TargetSteps = tuple[tuple[int, float], ...]
"""A target by size range: ``((from_bytes, gbps), ...)`` in rising size; a flat target is ``((0, gbps),)``."""


def target_steps(targets: object) -> dict[str, TargetSteps]:
    """A table of ``collective = Gb/s`` or ``collective = { "SIZE" = Gb/s, ... }`` entries (each step holds from
    its size up), read by the codec (``codec.read_by``): a known collective, positive finite rates, sizes that
    parse; :class:`bench.codec.Invalid` at the entry that is not."""
    if not isinstance(targets, Mapping):
        raise ValueError(f"= {codec.shown(targets)} must be a table of collective = Gb/s")
    out: dict[str, TargetSteps] = {}
    for key, value in targets.items():
        if key not in BUSBW_FACTOR:
            raise codec.Invalid(
                key, f"= {codec.shown(value)}: {key!r} is not a collective; use one of {', '.join(BUSBW_FACTOR)}"
            )
        steps: list[tuple[object, object]] = list(value.items()) if isinstance(value, Mapping) else [("0", value)]
        if not steps:
            raise codec.Invalid(key, 'is an empty table: write e.g. { "256M" = 3296 }')
        out[key] = tuple(sorted(_step(key, size, rate, isinstance(value, Mapping)) for size, rate in steps))
    return out


def _step(key: str, size: object, rate: object, sized: bool) -> tuple[int, float]:
    """One ``"SIZE" = Gb/s`` step of collective ``key`` (a flat target is the step from size 0)."""
    at = (key, str(size)) if sized else (key,)
    if isinstance(rate, bool) or not isinstance(rate, int | float) or rate <= 0:
        raise codec.Invalid(at, f"= {codec.shown(rate)} must be a positive number (Gb/s)")
    refusal = out_of_bounds(float(rate), sign="positive", maximum=MAX_RATE_GBPS)
    if refusal is not None:
        raise codec.Invalid(at, refusal)
    try:
        return size_of(size), float(rate)
    except ValueError as exc:
        raise codec.Invalid(at, str(exc)) from None


_RATE = codec.bounded(sign="positive", maximum=MAX_RATE_GBPS)


@dataclass(frozen=True)
class GpuTargets:
    """One GPU generation's figures (a ``[gpu.<name>]`` table, read by the codec): which GPUs they judge, and
    where they come from."""

    name: str
    """The table's own name (``[gpu.B200]``): given by the reader, never a key of the table."""
    match: tuple[str, ...] = ()
    source: str = ""
    nvlink_target_gbps: float | None = field(default=None, metadata=_RATE)
    nvlink_targets_gbps: Mapping[str, TargetSteps] = field(default_factory=dict)
    """Read from the TOML's form by :func:`target_steps` (:func:`generations`), from JSON's by its type."""
    node_target_gbps: float | None = field(default=None, metadata=_RATE)
    node_targets_gbps: Mapping[str, TargetSteps] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.match or not all(m.strip() for m in self.match):
            raise codec.Invalid("match", 'must list the GPU names it judges, e.g. ["NVIDIA B200"]')
        if not self.source.strip():
            raise codec.Invalid("source", "must say where its figures come from")
        object.__setattr__(self, "source", self.source.strip())

    def matches(self, gpu: str) -> bool:
        """Whether ``gpu`` (``NVIDIA B200``) is of this generation: a pattern matches the whole name, any case."""
        name = " ".join(gpu.split()).lower()
        return any(fnmatch.fnmatchcase(name, pattern.lower()) for pattern in self.match)


_STEP_KEYS = ("nvlink_targets_gbps", "node_targets_gbps")


def _steps(value: object, key: str) -> dict[str, TargetSteps]:
    """A generation's table of targets, read by :func:`target_steps`; a refusal at its key."""
    try:
        return target_steps(value)
    except codec.Invalid as exc:
        raise exc.inside(key) from None
    except ValueError as exc:
        raise codec.Invalid(key, str(exc)) from None


def generations(tables: Parsed) -> tuple[GpuTargets, ...]:
    """The profile's ``[gpu.*]`` tables, each read by the codec; a refusal at its key inside ``[gpu]``."""
    out = []
    for name, values in tables.items():
        if not isinstance(values, Mapping):
            raise codec.Invalid(name, f"must be a table: [gpu.{name}] with match and source")
        try:
            refuse_unread(GpuTargets, values, "name")
            steps = {key: codec.encode(_steps(values[key], key)) for key in _STEP_KEYS if key in values}
            out.append(codec.decode(GpuTargets, {**values, **steps, "name": name}))
        except codec.Refused as exc:
            raise exc.inside(name) from None
        except codec.Invalid as exc:
            raise exc.inside(name) from None
    return tuple(out)


@dataclass(frozen=True)
class Choice:
    """Which generation's figures judge a run's GPUs, or why none does."""

    generation: GpuTargets | None
    gpus: tuple[str, ...]
    """The distinct GPU names the run's ranks reported, most ranks first."""
    why_none: str = ""
    """Why no figure applies (no GPU, an unknown one, two generations); empty when one was chosen."""


def choose(profile: str, known: Sequence[GpuTargets], names: Sequence[str]) -> Choice:
    """The generation every rank's GPU (``names``: one per rank, empty on a CPU rank) belongs to, or why none.

    One generation for every GPU is chosen; anything else judges nothing against NVLink or node figures: no GPU
    (gloo on CPU), a GPU no table matches (a new generation, a PCIe card), or GPUs of two generations in one
    run (one set of figures cannot judge both)."""
    counted: dict[str, int] = {}
    for name in names:
        if name:
            counted[name] = counted.get(name, 0) + 1
    gpus = tuple(sorted(counted, key=lambda n: -counted[n]))
    listed = ", ".join(g.name for g in known)
    if not gpus:
        return Choice(
            None, gpus, f"no GPU: profile {profile}'s NVLink and node targets are per GPU generation ({listed})"
        )
    found = {gpu: next((g for g in known if g.matches(gpu)), None) for gpu in gpus}
    unknown = [gpu for gpu, g in found.items() if g is None]
    if unknown:
        return Choice(
            None,
            gpus,
            f"the {unknown[0]} is of no GPU generation profile {profile} has targets for ({listed}): add a "
            f"[gpu.<generation>] table with its published figures to judge it",
        )
    chosen = {g.name: g for g in found.values() if g is not None}
    if len(chosen) > 1:
        return Choice(
            None,
            gpus,
            f"GPUs of {len(chosen)} generations ({', '.join(chosen)}) in one run: no one set of targets judges them",
        )
    return Choice(next(iter(chosen.values())), gpus)
