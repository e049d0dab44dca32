"""Counter windows of the rails test: the bytes and the error counters of each device, window by window.

On every node one rank (local rank 0) reads the node's counters at each edge of the test: forming the rail
groups, every rail group at once, each rail alone, the pair matrix, the re-measurements. One reading closes
a window and opens the next, so an error between two windows is never lost. The bytes of a window go back
to the caller (they say which device carried a rail); the error deltas are kept per window, *sparse*: only
the devices whose counters said something (rose, saturated, cleared), since a 4,096-node test has too many
quiet ones to list each window. The whole test's block (``whole``) lists every device with every counter,
zeros included, so "nothing rose" and "not read" differ there.

Rank 0 then joins the nodes' windows (``bench.rails.diagnosis.evidence.join``): one rails.json ``ErrorWindow`` per
window with every node's devices. Saturated or cleared counters keep their state; they are never turned into a count.
"""

from __future__ import annotations

from pathlib import Path

from bench.fabric import counters, error_counters
from bench.rails.diagnosis.evidence import DeviceEntries, NodeWindow


class NodeCounters:
    """The counter windows of one node, read by one rank per node (``reads``); others only keep in step."""

    def __init__(self, reads: bool, sysfs_root: Path) -> None:
        self._root = Path(sysfs_root)
        self._first = counters.snapshot(self._root) if reads else None
        self._last = self._first
        self.windows: list[NodeWindow] = []

    def close(self, name: str, rails: tuple[int, ...] | None = None) -> dict[str, int] | None:
        """Bytes (tx + rx) per device since the last edge (None on ranks that do not read); the window's error
        deltas are kept, and the next window opens now."""
        if self._last is None:
            return None
        now = counters.snapshot(self._root)
        moved = {device: d.total_bytes for device, d in counters.delta(self._last, now).items()}
        said = counters.error_delta(self._last, now)
        entries = {d: error_counters.entry_json(e) for d, e in said.items() if e.risen or e.saturated or e.reset}
        for entry in entries.values():
            entry["errors"] = {name: count for name, count in entry["errors"].items() if count}
        self.windows.append(NodeWindow(name, rails, entries))
        self._last = now
        return moved

    def next_test(self) -> None:
        """The next test opens at the last edge (a soak's next window, ``bench.soak.rank``): :meth:`whole` and the
        windows count from here, and an error between the two tests is never lost."""
        self._first = self._last
        self.windows = []

    def whole(self) -> DeviceEntries | None:
        """Every device's bytes (tx + rx, and each apart) and error counters from the first edge to the last
        (``counters`` in rails.json)."""
        if self._first is None or self._last is None:
            return None
        moved = counters.delta(self._first, self._last)
        said = counters.error_delta(self._first, self._last)
        out: DeviceEntries = {}
        for device, d in moved.items():
            # tx and rx apart too: the report's traffic proof shows each direction of every rail's NIC
            out[device] = {"bytes": d.total_bytes, "tx_bytes": d.tx_bytes, "rx_bytes": d.rx_bytes}
            if device in said:
                out[device].update(error_counters.entry_json(said[device]))
        return out
