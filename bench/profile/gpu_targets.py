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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from bench.bounded import Where, finite
from bench.busbw import BUSBW_FACTOR
from bench.exits import UserError
from bench.jsondoc import Parsed
from bench.units import parse_size

MAX_RATE_GBPS = 1e6
"""Above any rail, node or NVLink figure (a petabit per second): a larger rate or target is a typo."""

TargetSteps = tuple[tuple[int, float], ...]
"""A target by size range: ``((from_bytes, gbps), ...)`` in rising size; a flat target is ``((0, gbps),)``."""

LineOf = Callable[[str, str | None], int]
"""The line of a key inside a table of the profile's text (1 when it cannot be found)."""


def collective_targets(targets: Parsed, where: str, name: str, line_of: LineOf) -> dict[str, TargetSteps]:
    """``collective = Gb/s`` or ``collective = { "SIZE" = Gb/s, ... }`` entries: a known collective, positive
    finite rates, sizes that parse (each step holds from its size up). ``name`` is the table's header."""
    out: dict[str, TargetSteps] = {}
    for key, value in targets.items():
        line = line_of(key, name)
        if key not in BUSBW_FACTOR:
            raise UserError(
                f"{where}:{line}: [{name}] {key!r} is not a collective; use one of {', '.join(BUSBW_FACTOR)}"
            )
        steps: list[tuple[object, object]] = list(value.items()) if isinstance(value, Mapping) else [("0", value)]
        if not steps:
            raise UserError(f'{where}:{line}: [{name}] {key} is an empty table: write e.g. {{ "256M" = 3296 }}')
        parsed = []
        for size, rate in steps:
            here = f"[{name}] {key}" + (f" {size!r}" if isinstance(value, Mapping) else "")
            if isinstance(rate, bool) or not isinstance(rate, (int, float)) or rate <= 0:
                raise UserError(f"{where}:{line}: {here} = {rate!r} must be a positive number (Gb/s)")
            gbps = finite(float(rate), Where(where, here, line), sign="positive", maximum=MAX_RATE_GBPS)
            parsed.append((parse_size(str(size), f"{where}:{line}: {here}"), gbps))
        out[key] = tuple(sorted(parsed))
    return out


def rate(values: Parsed, key: str, where: str, line: int) -> float | None:
    """A single target in Gb/s (``nvlink_target_gbps``), checked: absent is None."""
    value = values.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise UserError(f"{where}:{line}: {key} = {value!r} must be a number (Gb/s)")
    return finite(float(value), Where(where, key, line), sign="positive", maximum=MAX_RATE_GBPS)


@dataclass(frozen=True)
class GpuTargets:
    """One GPU generation's figures (a ``[gpu.<name>]`` table): which GPUs they judge, and where they come from."""

    name: str
    match: tuple[str, ...]
    source: str
    nvlink_target_gbps: float | None = None
    nvlink_targets_gbps: Mapping[str, TargetSteps] = field(default_factory=dict)
    node_target_gbps: float | None = None
    node_targets_gbps: Mapping[str, TargetSteps] = field(default_factory=dict)

    def matches(self, gpu: str) -> bool:
        """Whether ``gpu`` (``NVIDIA B200``) is of this generation: a pattern matches the whole name, any case."""
        name = " ".join(gpu.split()).lower()
        return any(fnmatch.fnmatchcase(name, pattern.lower()) for pattern in self.match)


_KEYS = ("match", "source", "nvlink_target_gbps", "node_target_gbps", "nvlink_targets_gbps", "node_targets_gbps")


def generations(table: Parsed, where: str, line_of: LineOf) -> tuple[GpuTargets, ...]:
    """The profile's ``[gpu.*]`` tables, each checked; UserError naming the file and line when one is wrong."""
    out = []
    for name, values in table.items():
        header = f"gpu.{name}"
        line = line_of(name, "gpu") if not isinstance(values, Mapping) else line_of("match", header)
        if not isinstance(values, Mapping):
            raise UserError(f"{where}:{line}: [gpu] {name} must be a table: [gpu.{name}] with match and source")
        unknown = sorted(set(values) - set(_KEYS))
        if unknown:
            raise UserError(
                f"{where}:{line_of(unknown[0], header)}: unknown [{header}] key {unknown[0]!r}; known keys: "
                + ", ".join(_KEYS)
            )
        match, source = values.get("match"), values.get("source")
        if not isinstance(match, list) or not match or not all(isinstance(m, str) and m.strip() for m in match):
            raise UserError(f'{where}:{line}: [{header}] match must list the GPU names it judges, e.g. ["NVIDIA B200"]')
        if not isinstance(source, str) or not source.strip():
            raise UserError(
                f"{where}:{line_of('source', header)}: [{header}] source must say where its figures come from"
            )
        generation = GpuTargets(
            name=name,
            match=tuple(str(m) for m in match),
            source=source.strip(),
            nvlink_target_gbps=rate(values, "nvlink_target_gbps", where, line_of("nvlink_target_gbps", header)),
            node_target_gbps=rate(values, "node_target_gbps", where, line_of("node_target_gbps", header)),
            nvlink_targets_gbps=_table(values, "nvlink_targets_gbps", where, header, line_of),
            node_targets_gbps=_table(values, "node_targets_gbps", where, header, line_of),
        )
        out.append(generation)
    return tuple(out)


def _table(values: Parsed, key: str, where: str, header: str, line_of: LineOf) -> dict[str, TargetSteps]:
    found = values.get(key, {})
    if not isinstance(found, Mapping):
        raise UserError(f"{where}:{line_of(key, header)}: [{header}] {key} must be a table of collective = Gb/s")
    return collective_targets(found, where, f"{header}.{key}", line_of)


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
