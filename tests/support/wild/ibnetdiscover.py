"""The reading of one ibnetdiscover capture: the fabric railbench reads from it and what its cabling check says.

``refused``: the one line railbench refuses the file with (its path left out), when it does. Else the hosts, the
HCAs cabled (node cables), the switches and the links between them, whether the fabric is rail-optimised (read
from its structure, ``bench.fabric.cabling_plan.rail_optimised``) and its rails where it is, and every finding of
``cabling_plan.check`` as ``<kind> <where>`` (the node port, else the switch port or uplink it names): what
``check --topology`` fails or warns on.
"""

from __future__ import annotations

from pathlib import Path

from bench.exits import UserError
from bench.fabric import cabling_plan
from bench.fabric.cabling import SwitchPort
from bench.fabric.topology_file import load_cabling


def read(path: Path) -> dict[str, object]:
    try:
        cabling = load_cabling(path)
        rails = cabling_plan.rail_order(cabling)
    except UserError as exc:
        said = str(exc).removeprefix(str(path)).lstrip(":0123456789")
        return {"refused": said.removeprefix(" ")}
    fabric, found = cabling_plan.check(cabling, rails)
    switches = {c.b.switch for c in cabling.cables} | {
        c.a.switch for c in cabling.switch_links if isinstance(c.a, SwitchPort)
    }
    out: dict[str, object] = {
        "hosts": len(cabling.hosts),
        "node_cables": len(cabling.host_ports),
        "switches": len(switches),
        "switch_links": len(cabling.switch_links),
        "rail_optimised": fabric.rail_optimised,
        "findings": [f"{f.kind} {f.node_port or f.switch_port}" for f in found],
    }
    if fabric.rail_optimised:
        out["rails"] = list(fabric.rail_hcas)
    return out
