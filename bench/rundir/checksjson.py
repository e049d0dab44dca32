"""checks.json in the run directory (``check --json`` as ``accept`` stores it): the one reader every command
uses, and the check of the shape its readers rely on (the report's preflight grid, the history's per-node
versions).

Shape: ``{"profile", "nranks", "verdict", "nodes": [{"node", "verdict", "versions": {...}, "results": [{check,
status, reason, device}, ...]}, ...], "cross_node": [{check, status, reason, device}, ...]}``; an older single
node layout has ``"checks": [...]`` instead of ``nodes``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from bench import jsondoc
from bench.exits import UserError
from bench.jsondoc import Parsed
from bench.rundir.docversion import CHECKS_FORMAT_VERSION, CHECKS_STEPS, upgrade

FIX = "delete it or re-run railbench check"
MAX_CHECKS_JSON_BYTES = 64 << 20
"""A few KiB per node: 4,096 nodes fit in well under this."""


def _objects(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(item, dict) for item in value)


def check_checks_json(doc: Parsed, path: Path) -> None:
    """UserError naming ``path`` when checks.json's lists or objects are of another type than readers use."""
    for name in ("checks", "nodes", "cross_node"):
        if name in doc and not _objects(doc[name]):
            raise UserError(f"{path}: '{name}' must be a list of objects: {FIX}")
    nodes = doc.get("nodes")
    for index, node in enumerate(nodes if isinstance(nodes, list) else ()):
        if not isinstance(node, Mapping):
            continue  # not reached: the loop above made sure that nodes is a list of objects
        if not _objects(node.get("results", [])) or not isinstance(node.get("versions", {}), dict):
            raise UserError(
                f"{path}: nodes[{index}] needs a list of objects under 'results' and an object under 'versions': {FIX}"
            )


def read_checks_json(run_dir: Path | str) -> Parsed | None:
    """The run's checks.json, checked; None when the run has none; UserError (exit 2) when it is damaged."""
    path = Path(run_dir) / "checks.json"
    doc = jsondoc.optional_object(path, fix=FIX, max_bytes=MAX_CHECKS_JSON_BYTES)
    if doc is None:
        return None
    current = upgrade(doc, path, CHECKS_FORMAT_VERSION, CHECKS_STEPS)
    check_checks_json(current, path)
    return current
