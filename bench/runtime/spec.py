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
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar, cast

from bench import jsondoc
from bench.exits import UserError

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

SPEC_FLAG = "--spec"
Config = TypeVar("Config", bound="DataclassInstance")
"""A config class: a (frozen) dataclass of plain fields."""


def _plain(value: object) -> object:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value


def encode(config: DataclassInstance) -> str:
    """``config`` (a frozen dataclass) as one JSON string."""
    return json.dumps(_plain(config), separators=(",", ":"))


class _WrongType(Exception):
    """A value of the spec that does not have its field's type (said by :func:`decode` in one line)."""


def _typed(hint: object, value: object, field: str) -> object:
    """``value`` from the JSON as the field's type; ``_WrongType`` when it is not that type.

    JSON has one number type and Python's ``int`` accepts ``True``: a spec whose ``iters`` is ``2.5`` or
    ``true`` would reach ``range()`` on every rank. Every field is checked against its annotation here,
    before the config's own checks of ranges.
    """
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [h for h in typing.get_args(hint) if h is not type(None)]
        if value is None:
            if len(options) < len(typing.get_args(hint)):
                return None
            raise _WrongType(f"{field} is null")
        for option in options:
            try:
                return _typed(option, value, field)
            except _WrongType:
                continue
        raise _WrongType(f"{field} holds {_shown(value)}, not a {' or '.join(_name(o) for o in options)}")
    if origin is typing.Literal:
        if value in typing.get_args(hint) and not isinstance(value, bool | float):
            return value
        raise _WrongType(f"{field} holds {_shown(value)}, not one of {', '.join(map(repr, typing.get_args(hint)))}")
    if origin is tuple:
        if not isinstance(value, list):
            raise _WrongType(f"{field} holds {_shown(value)}, not a list")
        (item, *_) = typing.get_args(hint)
        return tuple(_typed(item, v, f"{field}[{i}]") for i, v in enumerate(value))
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise _WrongType(f"{field} holds {_shown(value)}, not an object")
        # A field's annotation is a class, never an instance: is_dataclass just said it is a dataclass.
        return _build(cast("type[DataclassInstance]", hint), value, f"{field}.")
    checks: dict[object, Callable[[object], bool]] = {
        bool: lambda v: isinstance(v, bool),
        int: lambda v: isinstance(v, int) and not isinstance(v, bool),
        float: lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        str: lambda v: isinstance(v, str),
        Path: lambda v: isinstance(v, str) and v != "",
    }
    if hint not in checks:
        raise TypeError(f"{SPEC_FLAG} cannot carry a field of type {hint!r} ({field})")
    if not checks[hint](value):
        raise _WrongType(f"{field} holds {_shown(value)}, not a {_name(hint)}")
    # checks[hint] just said what value is: a str for a Path, an int or a float for a float.
    if hint is Path:
        return Path(cast("str", value))
    return float(cast("int | float", value)) if hint is float else value


def _name(hint: object) -> str:
    names: dict[object, str] = {bool: "boolean", int: "whole number", float: "number", str: "string", Path: "path"}
    return names.get(hint, getattr(hint, "__name__", str(hint)))


def _shown(value: object) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _build(cls: type[Config], doc: dict[str, object], prefix: str = "") -> Config:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = set(doc) - names
    if unknown:
        raise UserError(
            f"{SPEC_FLAG} names fields this railbench does not know ({', '.join(sorted(unknown))}): "
            "start the ranks with the same railbench version as the parent"
        )
    required = {
        f.name
        for f in dataclasses.fields(cls)
        if f.init and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    }
    missing = sorted(required - set(doc))
    if missing:
        raise _WrongType(f"{prefix}{missing[0]} is missing")
    return cls(**{name: _typed(hints[name], value, f"{prefix}{name}") for name, value in doc.items()})


def decode(cls: type[Config], text: str) -> Config:
    """The config of type ``cls`` that :func:`encode` wrote (read through ``bench.jsondoc``: depth and numbers
    bounded, so a hand-typed ``--spec`` is one line and exit 2 like any other bad input)."""
    fix = "start the ranks with the same railbench version as the parent"
    doc = jsondoc.loads(text, SPEC_FLAG, f"it is not the JSON a railbench parent writes; {fix}")
    if not isinstance(doc, dict):
        raise UserError(f"{SPEC_FLAG} is not the JSON a railbench parent writes")
    try:
        built = _build(cls, doc)
    except _WrongType as exc:
        raise UserError(f"{SPEC_FLAG} is not what a railbench parent writes: {exc}: {fix}") from None
    except (TypeError, ValueError) as exc:  # a field of the wrong type: what a config's own checks meet
        raise UserError(f"{SPEC_FLAG} does not fit this railbench's config ({str(exc)[:160]}): {fix}") from None
    return built


def rank_argv(command: str, config: DataclassInstance) -> list[str]:
    """The ranks' argv: the command and its whole config."""
    return [command, SPEC_FLAG, encode(config)]
