"""The pair directions of a rails.json as parsed JSON, whichever way its format wrote them: one object per
direction in ``measurements`` (format 2 and before) or columns in ``pair_cells`` (format 3,
``bench.rundir.pair_cells``). Tests that read a real run's rails.json ask for the directions, not the layout."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

_ROW_COLUMNS = ("rail", "busbw_Gbps", "bytes", "time_us", "repeat", "round", "confirm")


def pair_directions(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every pair direction of ``doc``: ``rail``, ``node`` and ``peer`` (names), ``busbw_Gbps``, ``bytes``,
    ``time_us``, ``repeat``, ``round``, ``confirm`` and ``stopped``, in the order measured."""
    out = [dict(m) for m in doc.get("measurements", []) if m.get("kind") == "pair"]
    cells = doc.get("pair_cells")
    if not cells:
        return out
    nodes, stopped = doc["nodes"], set(cells.get("stopped", []))
    for i, (node, peer) in enumerate(zip(cells["node"], cells["peer"], strict=True)):
        row = {key: cells[key][i] for key in _ROW_COLUMNS}
        out.append(row | {"kind": "pair", "node": nodes[node], "peer": nodes[peer], "stopped": i in stopped})
    return out
