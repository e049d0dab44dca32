"""Validate Vega-Lite specs against the official JSON schema of the version they declare, offline.

Altair ships the Vega-Lite schema it was generated from (``altair/vegalite/v5/schema/vega-lite-schema.json``);
a spec must declare exactly that version (``$schema``) to be checked here, so a spec that claims a version
we hold no schema for fails instead of passing unchecked.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any

import altair as alt
import jsonschema

_DECLARED = re.compile(r"^https://vega\.github\.io/schema/vega-lite/(v(\d+)\.\d+\.\d+)\.json$")


@functools.cache
def _validator(version: str) -> jsonschema.protocols.Validator:
    major = version.split(".")[0]  # "v5"
    path = Path(alt.__file__).parent / "vegalite" / major / "schema" / "vega-lite-schema.json"
    if version != alt.SCHEMA_VERSION or not path.is_file():
        raise AssertionError(f"no local Vega-Lite schema for {version} (altair ships {alt.SCHEMA_VERSION})")
    schema = json.loads(path.read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def declared_version(spec: dict[str, Any]) -> str:
    """``v5.20.1`` from the spec's ``$schema`` (the spec must declare one)."""
    match = _DECLARED.match(str(spec.get("$schema", "")))
    if not match:
        raise AssertionError(f"spec declares no Vega-Lite schema: {spec.get('$schema')!r}")
    return match.group(1)


def validate(spec: dict[str, Any]) -> None:
    """Raise ``jsonschema.ValidationError`` unless ``spec`` is valid for the Vega-Lite version it declares."""
    _validator(declared_version(spec)).validate(spec)
