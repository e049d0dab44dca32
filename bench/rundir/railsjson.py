"""rails.json in the run directory: its JSON Schema (``rails.schema.json``, shipped in the package) and the
check every reader makes before using it. ``bench.rails.output`` builds the document, once, and writes it
once; the tests check every rails.json they produce against the schema.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bench.exits import UserError

SCHEMA_PATH = Path(__file__).with_name("rails.schema.json")


def check_rails_json(rails: Mapping[str, Any], path: Path) -> None:
    """UserError naming ``path`` when a rails.json lacks what its readers use (the report, compare)."""
    # The history reads each rail's error counts from ``counters`` and ``rails[k].devices``.
    if not isinstance(rails.get("counters", {}), Mapping) or not isinstance(rails.get("error_windows", []), list):
        raise UserError(
            f"{path} needs an object under 'counters' and a list under 'error_windows': re-run railbench rails"
        )
    measurements = rails.get("measurements", [])
    if not isinstance(measurements, list) or not isinstance(rails.get("defects", []), list):
        raise UserError(f"{path} needs lists under 'measurements' and 'defects': re-run railbench rails")
    for index, item in enumerate(measurements):
        ok = (
            isinstance(item, dict)
            and item.get("kind") in ("rail", "pair")
            and isinstance(item.get("rail"), int)
            and isinstance(item.get("busbw_Gbps"), int | float)
            # a rail group spans every node (no node); a pair names both of its nodes
            and (
                (item.get("kind") == "rail" and (item.get("node") is None or isinstance(item.get("node"), str)))
                or (isinstance(item.get("node"), str) and isinstance(item.get("peer"), str))
            )
        )
        if not ok:
            raise UserError(f"{path} measurement {index} lacks kind/rail/node/peer/busbw_Gbps: re-run railbench rails")
