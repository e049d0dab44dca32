"""Reading run.json and compare.json fields that may be missing or of the wrong type (older runs, imports)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def table(doc: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    """``doc[key]`` when it is a JSON object, else an empty one."""
    value = doc.get(key)
    return value if isinstance(value, Mapping) else {}
