"""The reading of one ``ibv_devinfo`` capture: each port as railbench reads it, or the line it refuses the file with.

Per port (``mlx5_0:1``, in the order printed): its state (``PORT_ACTIVE``, ``PORT_DOWN``), its link layer as
printed (``not printed`` where the build prints no ``link_layer:`` line) and its active MTU in bytes: what the
``port-mtu`` check judges a copied tree's InfiniBand ports by (``--ibv-devinfo``).
"""

from __future__ import annotations

from pathlib import Path

from bench.exits import UserError
from bench.fabric import devinfo


def read(path: Path) -> dict[str, object]:
    try:
        ports = devinfo.read_file(path)
    except UserError as exc:
        return {"refused": str(exc).replace(str(path), "FILE")}
    return {
        "ports": [
            {
                "port": p.name,
                "state": p.state,
                "link_layer": p.link_layer or "not printed",
                "active_mtu": p.active_mtu,
            }
            for p in ports
        ]
    }
