"""Byte counters as proof of which devices carried a benchmark's traffic.

Around each benchmark, ``snapshot`` reads every IB port's ``port_xmit_data``/``port_rcv_data`` and every net
device's ``statistics/tx_bytes``/``rx_bytes``; ``delta`` turns two snapshots into bytes per device; ``audit``
flags an excluded device (mlx5_0 on a 1CC) that carried more than a small tolerance and an expected rail
that carried nothing.

* IB data counters count 4-byte words: ``bytes = 4 x counter``.
* The extended 64-bit counters (``counters_ext/port_xmit_data_64``, older drivers) are preferred when the
  driver has them; mlx5's ``counters/port_xmit_data`` is already 64-bit.
* Some drivers expose 32-bit counters that wrap: a counter that went down from a value that fits in 32 bits
  wrapped at 2**32. A 32-bit counter stuck at 0xFFFFFFFF has saturated (the IB spec's behaviour), so its
  delta proves nothing and is reported as such.

Every snapshot also holds the devices' error counters (``bench.fabric.error_counters``); ``error_delta``
gives them per device per window, and ``to_json`` writes them beside the bytes.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Literal

from bench.fabric import error_counters
from bench.fabric.error_counters import DeviceErrors
from bench.fabric.sysfs import U64_MAX, Sysfs, natural_key
from bench.finding import EvidenceFinding
from bench.jsondoc import JSONObject, JSONValue
from bench.nccllogs.nccl_evidence import device_matches
from bench.units import format_size

IB_WORD_BYTES = 4
_U32 = 1 << 32
_U64 = 1 << 64
_SATURATED_32 = _U32 - 1

Kind = Literal["ib", "net"]


@dataclass(frozen=True)
class Reading:
    """One device's raw counters at one moment."""

    device: str
    """``mlx5_1:1`` for an IB port, the interface name for a net device."""
    kind: Kind
    tx: int
    """Raw counter value, in ``unit_bytes`` units."""
    rx: int
    unit_bytes: int
    extended: bool
    """Read from 64-bit extended counters."""


@dataclass(frozen=True)
class Snapshot:
    """Every counter at one moment."""

    taken_at: float
    """``time.monotonic()`` when the snapshot was taken."""
    readings: Mapping[str, Reading]
    errors: error_counters.Readings = field(default_factory=lambda: MappingProxyType({}))
    """Each device's error counters at the same moment."""


@dataclass(frozen=True)
class DeviceBytes:
    """Bytes one device carried between two snapshots."""

    tx_bytes: int
    rx_bytes: int
    kind: Kind
    wrapped: bool = False
    """A counter wrapped between the snapshots (the delta accounts for it)."""
    saturated: bool = False
    """A 32-bit counter sat at its maximum: the delta is a lower bound at best."""

    @property
    def total_bytes(self) -> int:
        return self.tx_bytes + self.rx_bytes


def _ib_readings(sysfs: Sysfs) -> Iterable[Reading]:
    for device in sysfs.listdir("class", "infiniband"):
        for port in sysfs.listdir("class", "infiniband", device, "ports"):
            base = ("class", "infiniband", device, "ports", port)
            tx = sysfs.read_int(*base, "counters_ext", "port_xmit_data_64", maximum=U64_MAX)
            rx = sysfs.read_int(*base, "counters_ext", "port_rcv_data_64", maximum=U64_MAX)
            extended = tx is not None and rx is not None
            if not extended:
                tx = sysfs.read_int(*base, "counters", "port_xmit_data", maximum=U64_MAX)
                rx = sysfs.read_int(*base, "counters", "port_rcv_data", maximum=U64_MAX)
            if tx is None or rx is None:
                continue
            yield Reading(f"{device}:{port}", "ib", tx, rx, IB_WORD_BYTES, extended)


def _net_readings(sysfs: Sysfs) -> Iterable[Reading]:
    for name in sysfs.listdir("class", "net"):
        tx = sysfs.read_int("class", "net", name, "statistics", "tx_bytes", maximum=U64_MAX)
        rx = sysfs.read_int("class", "net", name, "statistics", "rx_bytes", maximum=U64_MAX)
        if tx is None or rx is None:
            continue
        yield Reading(name, "net", tx, rx, 1, True)


def snapshot(sysfs_root: Path) -> Snapshot:
    """Read every IB port's and net device's data and error counters now."""
    sysfs = Sysfs(Path(sysfs_root))
    readings = {r.device: r for r in (*_ib_readings(sysfs), *_net_readings(sysfs))}
    return Snapshot(time.monotonic(), MappingProxyType(readings), error_counters.read(sysfs))


def _counter_delta(before: int, after: int, extended: bool) -> tuple[int, bool]:
    """(delta, wrapped) for one counter; a decrease is a wrap at 2**32 when the old value fit in 32 bits."""
    if after >= before:
        return after - before, False
    if not extended and before < _U32:
        return after + _U32 - before, True
    return after + _U64 - before, True


def delta(before: Snapshot, after: Snapshot) -> dict[str, DeviceBytes]:
    """Bytes each device carried between two snapshots (devices present in both), in natural name order."""
    out: dict[str, DeviceBytes] = {}
    for name in sorted(set(before.readings) & set(after.readings), key=natural_key):
        old, new = before.readings[name], after.readings[name]
        tx, tx_wrapped = _counter_delta(old.tx, new.tx, new.extended)
        rx, rx_wrapped = _counter_delta(old.rx, new.rx, new.extended)
        saturated = new.kind == "ib" and not new.extended and _SATURATED_32 in (new.tx, new.rx)
        out[name] = DeviceBytes(tx * new.unit_bytes, rx * new.unit_bytes, new.kind, tx_wrapped or rx_wrapped, saturated)
    return out


def error_delta(before: Snapshot, after: Snapshot) -> dict[str, DeviceErrors]:
    """Each device's error counters over the window between two snapshots (see ``bench.fabric.error_counters``)."""
    return error_counters.delta(before.errors, after.errors)


def audit(
    deltas: Mapping[str, DeviceBytes],
    expected: Iterable[str],
    excluded: Iterable[str],
    tolerance_bytes: int,
    *,
    min_rail_bytes: int | None = None,
) -> list[EvidenceFinding]:
    """Flag excluded devices that carried more than ``tolerance_bytes`` and expected rails that carried
    nothing (at most ``min_rail_bytes``, default ``tolerance_bytes``: an idle IB port still moves a few
    management packets). Names are ``mlx5_0`` (every port) or ``mlx5_0:1`` or an interface."""
    floor = tolerance_bytes if min_rail_bytes is None else min_rail_bytes
    excluded = tuple(excluded)
    out: list[EvidenceFinding] = []
    for name, moved in deltas.items():
        if device_matches(name, excluded) and moved.total_bytes > tolerance_bytes:
            out.append(
                EvidenceFinding(
                    "fail",
                    f"excluded device {name} carried {format_size(moved.total_bytes)}B "
                    f"(tx {moved.tx_bytes}, rx {moved.rx_bytes} bytes), over the {format_size(tolerance_bytes)}B "
                    "tolerance",
                    name,
                )
            )
    for rail in expected:
        matched = [name for name in deltas if device_matches(name, [rail])]
        if not matched:
            out.append(EvidenceFinding("fail", f"expected rail {rail} has no byte counter", rail))
        for name in matched:
            moved = deltas[name]
            if moved.saturated:
                out.append(EvidenceFinding("warn", f"rail {name}: its 32-bit data counter is saturated", name))
            elif moved.total_bytes <= floor:
                out.append(
                    EvidenceFinding("fail", f"expected rail {name} carried nothing ({moved.total_bytes} bytes)", name)
                )
    return out


def to_json(
    deltas: Mapping[str, DeviceBytes], errors: Mapping[str, DeviceErrors] | None = None
) -> dict[str, JSONObject]:
    """The ``counters`` block of run.json: ``{device: {tx_bytes, rx_bytes}}`` (plus wrap/saturation flags),
    and beside the bytes each device's error deltas (``errors``, ``errors_saturated``, ``errors_reset``: see
    ``error_counters.entry_json``) when ``errors`` has the device."""
    out: dict[str, JSONObject] = {}
    errors = errors or {}
    for name, moved in deltas.items():
        entry: JSONObject = {"tx_bytes": moved.tx_bytes, "rx_bytes": moved.rx_bytes, "kind": moved.kind}
        if moved.wrapped:
            entry["wrapped"] = True
        if moved.saturated:
            entry["saturated"] = True
        if name in errors:
            entry.update(error_counters.entry_json(errors[name]))
        out[name] = entry
    return out


def bytes_from_json(entry: Mapping[str, JSONValue]) -> DeviceBytes:
    """One device's entry of :func:`to_json` read back (rank 0 audits what every node sent). The nodes run this
    same code, so every field has the type ``to_json`` gave it; a count of another type reads as 0, which the
    audit reports, rather than a traceback in the middle of a run."""
    tx, rx = entry.get("tx_bytes"), entry.get("rx_bytes")
    kind: Kind = "ib" if entry.get("kind") == "ib" else "net"
    return DeviceBytes(
        tx if isinstance(tx, int) else 0,
        rx if isinstance(rx, int) else 0,
        kind,
        entry.get("wrapped") is True,
        entry.get("saturated") is True,
    )
