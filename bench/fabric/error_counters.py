"""Error counters beside the byte counters: what the fabric says went wrong during a window.

``read`` takes every IB port's PortCounters error counters (``ports/<p>/counters/symbol_error`` ...), the
driver's ``hw_counters`` where it has them, and every net device's ``statistics/{rx,tx}_errors`` ... and
``carrier_changes``, all through :class:`bench.fabric.sysfs_io.Sysfs`. ``delta`` turns two readings into one
:class:`DeviceErrors` per device: per counter either a count (``counted``), or no count at all when the
counter sits at its IBA maximum (``saturated``: it stopped counting, so any delta would be a lie) or went
down (``reset``: someone cleared the counters during the window).

Device names are those of ``bench.fabric.counters``: ``mlx5_1:1`` for an IB port, the interface name for a
net device, so the error deltas of a window sit beside its bytes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

from bench.fabric.sysfs import U64_MAX, natural_key
from bench.fabric.sysfs_io import Sysfs
from bench.profile.errors import CARRIER_CHANGES, HW_COUNTERS, IB_PORT_COUNTERS, NET_STATISTICS, saturation_value

CountState = Literal["counted", "saturated", "reset"]
Readings = Mapping[str, Mapping[str, int]]
"""device -> counter name -> raw value at one moment."""


@dataclass(frozen=True)
class ErrorCount:
    """One counter of one device over one window."""

    before: int
    after: int
    state: CountState

    @property
    def delta(self) -> int | None:
        """How many errors arrived during the window; None when the counter cannot say (saturated, reset)."""
        return self.after - self.before if self.state == "counted" else None


@dataclass(frozen=True)
class DeviceErrors:
    """Every error counter of one device over one window."""

    device: str
    counts: Mapping[str, ErrorCount]

    @property
    def risen(self) -> dict[str, int]:
        """Counter -> its increase, for the counters that rose (and could say so)."""
        return {name: c.delta for name, c in self.counts.items() if c.delta}

    @property
    def saturated(self) -> tuple[str, ...]:
        return tuple(name for name, c in self.counts.items() if c.state == "saturated")

    @property
    def reset(self) -> tuple[str, ...]:
        return tuple(name for name, c in self.counts.items() if c.state == "reset")


def _ib_port(sysfs: Sysfs, device: str, port: str) -> dict[str, int]:
    base = ("class", "infiniband", device, "ports", port)
    values: dict[str, int] = {}
    for name, width in IB_PORT_COUNTERS.items():
        value = sysfs.read_int(*base, "counters", name, maximum=(1 << width) - 1)
        if value is not None:
            values[name] = value
    if sysfs.is_dir(*base, "hw_counters"):
        for name in HW_COUNTERS:
            value = sysfs.read_int(*base, "hw_counters", name, maximum=U64_MAX)
            if value is not None:
                values[name] = value
    return values


def _net(sysfs: Sysfs, name: str) -> dict[str, int]:
    values: dict[str, int] = {}
    for counter in NET_STATISTICS:
        value = sysfs.read_int("class", "net", name, "statistics", counter, maximum=U64_MAX)
        if value is not None:
            values[counter] = value
    carrier = sysfs.read_int("class", "net", name, CARRIER_CHANGES, maximum=U64_MAX)
    if carrier is not None:
        values[CARRIER_CHANGES] = carrier
    return values


def read(sysfs: Sysfs, only: Iterable[str] | None = None) -> Readings:
    """Every device's error counters now (devices without any are left out). ``only`` names the devices
    (``mlx5_1:1``, ``eth1``) when the caller needs a few, as ``check``'s idle window does: then nothing else is
    listed or read."""
    out: dict[str, Mapping[str, int]] = {}
    if only is not None:
        for name in sorted(set(only), key=natural_key):
            device, colon, port = name.partition(":")
            values = _ib_port(sysfs, device, port) if colon else _net(sysfs, name)
            if values:
                out[name] = MappingProxyType(values)
        return MappingProxyType(out)
    for device in sysfs.listdir("class", "infiniband"):
        for port in sysfs.listdir("class", "infiniband", device, "ports"):
            values = _ib_port(sysfs, device, port)
            if values:
                out[f"{device}:{port}"] = MappingProxyType(values)
    for name in sysfs.listdir("class", "net"):
        values = _net(sysfs, name)
        if values:
            out[name] = MappingProxyType(values)
    return MappingProxyType(out)


def _count(name: str, before: int, after: int) -> ErrorCount:
    top = saturation_value(name)
    if top is not None and top in (before, after):
        return ErrorCount(before, after, "saturated")
    if after < before:
        return ErrorCount(before, after, "reset")
    return ErrorCount(before, after, "counted")


def delta(before: Readings, after: Readings) -> dict[str, DeviceErrors]:
    """Each device's error counters over the window between two readings (devices and counters present in
    both), in natural device order."""
    out: dict[str, DeviceErrors] = {}
    for device in sorted(set(before) & set(after), key=natural_key):
        old, new = before[device], after[device]
        counts = {name: _count(name, old[name], new[name]) for name in new if name in old}
        out[device] = DeviceErrors(device, MappingProxyType(counts))
    return out


def entry_json(errors: DeviceErrors) -> dict[str, Any]:
    """The error keys of one device's ``counters`` entry in run.json: ``errors`` (counter -> delta over the
    window, zeros included, so "none" and "not read" differ), ``errors_saturated`` and ``errors_reset``
    (counters that could give no delta) when there are any."""
    entry: dict[str, Any] = {"errors": {n: c.delta for n, c in errors.counts.items() if c.state == "counted"}}
    if errors.saturated:
        entry["errors_saturated"] = list(errors.saturated)
    if errors.reset:
        entry["errors_reset"] = list(errors.reset)
    return entry


def describe(errors: DeviceErrors) -> str:
    """``symbol_error +12, link_downed +1; saturated: port_rcv_errors`` (empty when nothing to say)."""
    parts = []
    if errors.risen:
        parts.append(", ".join(f"{n} +{d}" for n, d in errors.risen.items()))
    if errors.saturated:
        parts.append("saturated: " + ", ".join(errors.saturated))
    if errors.reset:
        parts.append("cleared during the window: " + ", ".join(errors.reset))
    return "; ".join(parts)
