"""The one serialisation point between a railbench parent and the ranks it starts.

The parent has already parsed and validated the user's flags into a frozen config; the ranks get that
config itself, as JSON after ``--spec``, never a hand-kept list of flags rebuilt from it (which drifts: a
default changed in one place and not the other, a flag forgotten). Any frozen dataclass of plain fields
round-trips: str, int, float, bool, None, ``Path``, tuples, ``Literal`` values and nested configs.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from bench.exits import UserError

SPEC_FLAG = "--spec"
T = TypeVar("T")


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value


def encode(config: Any) -> str:
    """``config`` (a frozen dataclass) as one JSON string."""
    return json.dumps(_plain(config), separators=(",", ":"))


def _typed(hint: Any, value: Any) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [h for h in typing.get_args(hint) if h is not type(None)]
        if value is None:
            return None
        return _typed(options[0], value) if len(options) == 1 else value
    if hint is Path:
        return Path(value)
    if origin is tuple:
        (item, *_) = typing.get_args(hint)
        return tuple(_typed(item, v) for v in value)
    if dataclasses.is_dataclass(hint) and isinstance(value, dict):
        return _build(hint, value)
    return value


def _build(cls: Any, doc: dict[str, Any]) -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(doc) - names
    if unknown:
        raise UserError(
            f"{SPEC_FLAG} names fields this railbench does not know ({', '.join(sorted(unknown))}): "
            "start the ranks with the same railbench version as the parent"
        )
    return cls(**{name: _typed(hints[name], value) for name, value in doc.items()})


def decode(cls: type[T], text: str) -> T:
    """The config of type ``cls`` that :func:`encode` wrote."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"{SPEC_FLAG} is not the JSON a railbench parent writes ({exc})") from None
    if not isinstance(doc, dict):
        raise UserError(f"{SPEC_FLAG} is not the JSON a railbench parent writes")
    built: T = _build(cls, doc)
    return built


def rank_argv(command: str, config: Any) -> list[str]:
    """The ranks' argv: the command and its whole config."""
    return [command, SPEC_FLAG, encode(config)]
