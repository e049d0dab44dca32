"""rails.json in the run directory: its JSON Schema (``rails.schema.json``, shipped in the package), the one
reader every command uses (:func:`read_rails_json`) and the check it makes (:func:`check_rails_json`).
``bench.rails.output`` builds the document, once, and writes it once; the tests check every rails.json they
produce against the schema.

The check is of the shape readers rely on, not the whole schema: the report also draws older and hand-made
documents (defect kinds of earlier releases, no ``skipped``), and must keep doing so. What it refuses is what
would otherwise be a traceback deep in a reader: a field of the wrong type (``"measurements": 5``,
``"rails": true``), a list item that is not an object, a measurement without its numbers.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bench import jsondoc
from bench.exits import UserError

SCHEMA_PATH = Path(__file__).with_name("rails.schema.json")
MAX_RAILS_JSON_BYTES = 512 << 20
"""rails.json of 4,096 nodes x 8 rails is tens of MiB; a larger file is not one railbench wrote."""
FIX = "re-run railbench rails"

_NUMBER = (int, float)
_TOP: Mapping[str, tuple[tuple[type, ...], str]] = {
    # field: (allowed types, as said in the message)
    "skipped": ((str, type(None)), "a string or null"),
    "nodes": ((list,), "a list"),
    "rails": ((list,), "a list"),
    "measurements": ((list,), "a list"),
    "defects": ((list,), "a list"),
    "transients": ((list,), "a list"),
    "too_noisy": ((str, type(None)), "a string or null"),
    "counter_findings": ((list,), "a list"),
    "below_target": ((list,), "a list"),
    "counters": ((dict,), "an object"),
    "error_windows": ((list,), "a list"),
    "process_groups": ((int, type(None)), "a whole number or null"),
    "intra_node": ((dict, type(None)), "an object or null"),
}
_OBJECT_ITEMS = ("rails", "measurements", "defects", "transients", "error_windows")


def _is(value: object, allowed: tuple[type, ...]) -> bool:
    # bool is an int to Python, never to a JSON reader
    return isinstance(value, allowed) and not (isinstance(value, bool) and bool not in allowed)


def check_rails_json(rails: Mapping[str, Any], path: Path) -> None:
    """UserError naming ``path`` when a rails.json lacks what its readers use (the report, compare, export)."""
    for name, (allowed, said) in _TOP.items():
        if name in rails and not _is(rails[name], allowed):
            raise UserError(f"{path}: '{name}' must be {said}, not {type(rails[name]).__name__}: {FIX}")
    for name in _OBJECT_ITEMS:
        for index, item in enumerate(rails.get(name) or ()):
            if not isinstance(item, dict):
                raise UserError(f"{path}: {name}[{index}] is a {type(item).__name__}, not an object: {FIX}")
    if not all(isinstance(node, str) for node in rails.get("nodes") or ()):
        raise UserError(f"{path}: 'nodes' must list node names: {FIX}")
    for index, rail in enumerate(rails.get("rails") or ()):
        if not _is(rail.get("rail"), (int,)) or not all(
            isinstance(rail.get(key, {}), dict) for key in ("devices", "expected_devices", "bytes_alone")
        ):
            raise UserError(f"{path}: rails[{index}] needs a whole 'rail' and objects for its devices: {FIX}")
    for node, devices in (rails.get("counters") or {}).items():
        if not isinstance(devices, dict) or not all(isinstance(entry, dict) for entry in devices.values()):
            raise UserError(f"{path}: counters of {str(node)[:40]} must map each device to an object: {FIX}")
    for index, window in enumerate(rails.get("error_windows") or ()):
        if not isinstance(window.get("errors", {}), dict):
            raise UserError(f"{path}: error_windows[{index}] needs an object under 'errors': {FIX}")
    for index, item in enumerate(rails.get("measurements") or ()):
        ok = (
            item.get("kind") in ("rail", "pair")
            and _is(item.get("rail"), (int,))
            and _is(item.get("busbw_Gbps"), _NUMBER)
            # a rail group spans every node (no node); a pair names both of its nodes
            and (
                (item.get("kind") == "rail" and (item.get("node") is None or isinstance(item.get("node"), str)))
                or (isinstance(item.get("node"), str) and isinstance(item.get("peer"), str))
            )
        )
        if not ok:
            raise UserError(f"{path} measurement {index} lacks kind/rail/node/peer/busbw_Gbps: {FIX}")


def read_rails_json(run_dir: Path | str) -> dict[str, Any] | None:
    """The run's rails.json, checked (``bench.jsondoc`` reading, then :func:`check_rails_json`); None when the
    run has none. UserError (exit 2) when it is damaged: a FIFO, a link to a device, too large, not JSON, nested
    too deep, numbers out of range, fields of the wrong type."""
    path = Path(run_dir) / "rails.json"
    doc = jsondoc.optional_object(path, fix=FIX, max_bytes=MAX_RAILS_JSON_BYTES)
    if doc is not None:
        check_rails_json(doc, path)
    return doc
