"""Error counters in a fixture tree (``fabric_trees``): the IB ports' and the net devices' files as the kernel
keeps them, one number and a newline each."""

from __future__ import annotations

from pathlib import Path

from bench.profile.errors import IB_PORT_COUNTERS, NET_STATISTICS


def write_errors(root: Path, device: str, values: dict[str, int], folder: str = "counters", port: int = 1) -> None:
    """Set IB port error counters (``folder`` ``counters`` or ``hw_counters``) in a fixture tree."""
    base = root / "class" / "infiniband" / device / "ports" / str(port) / folder
    base.mkdir(parents=True, exist_ok=True)
    for name, value in values.items():
        (base / name).write_text(f"{value}\n")


def write_net_errors(root: Path, name: str, values: dict[str, int]) -> None:
    """Set a net device's error statistics and ``carrier_changes`` in a fixture tree."""
    base = root / "class" / "net" / name
    for counter, value in values.items():
        path = base / counter if counter == "carrier_changes" else base / "statistics" / counter
        path.write_text(f"{value}\n")


def zero_errors(root: Path, devices: list[str], nets: list[str]) -> None:
    """Every error counter present and at zero, as on a freshly cleared healthy node."""
    for device in devices:
        write_errors(root, device, dict.fromkeys(IB_PORT_COUNTERS, 0))
        write_errors(root, device, {"out_of_sequence": 0, "packet_seq_err": 0}, "hw_counters")
    for name in nets:
        write_net_errors(root, name, {**dict.fromkeys(NET_STATISTICS, 0), "carrier_changes": 2})
