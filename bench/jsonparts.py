"""Typed records of JSON documents, read and written field by field (``bench.rundir.railsdoc`` is one).

A record is a frozen dataclass whose fields are declared under the keys' own names, in the order its writer
writes them. :class:`Written` writes one as JSON (every field; nested records, tuples and mappings too), and
:func:`fields` reads one from a parsed object by each field's declared type, through :data:`READERS`. A value
of the wrong type reads as absent and a key the object lacks keeps the field's default: what refuses a
document outright is the document's own check, made before.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast, runtime_checkable

from bench.jsondoc import JSONObject, JSONValue, Parsed

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T")


def text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def whole(value: object) -> int | None:
    # bool is an int to Python, never to a JSON reader
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def number(value: object) -> float | None:
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def texts(value: object) -> tuple[str, ...]:
    return tuple(v for v in value if isinstance(v, str)) if isinstance(value, list) else ()


def numbers(value: object) -> tuple[float, ...]:
    return tuple(n for n in map(number, value) if n is not None) if isinstance(value, list) else ()


def objects(value: object) -> list[Parsed]:
    """The items of a JSON list that are objects."""
    return [v for v in value if isinstance(v, Mapping)] if isinstance(value, list) else []


def counts(value: object) -> dict[str, int]:
    """name -> count: the entries of a JSON object that are whole numbers."""
    if not isinstance(value, Mapping):
        return {}
    return {str(name): count for name, count in value.items() if whole(count) is not None}


def per_key(value: object, read: Callable[[object], T], holds: tuple[type, ...] = (Mapping,)) -> dict[str, T]:
    """key -> ``read`` of its value, for the keys of a JSON object whose value is an object (or ``holds``)."""
    if not isinstance(value, Mapping):
        return {}
    return {str(key): read(entry) for key, entry in value.items() if isinstance(entry, holds)}


def _texts_or_none(value: object) -> tuple[str | None, ...]:
    return tuple(map(text, value)) if isinstance(value, list) else ()


def _object(value: object) -> dict[str, JSONValue]:
    return {str(k): v for k, v in value.items()} if isinstance(value, Mapping) else {}


READERS: Mapping[str, Callable[[object], object]] = {
    # a field's declared type -> how a JSON value becomes one
    "str": lambda v: text(v) or "",
    "str | None": text,
    "int": lambda v: whole(v) or 0,
    "int | None": whole,
    "float": lambda v: number(v) or 0.0,
    "float | None": number,
    "bool": lambda v: v is True,
    "bool | None": lambda v: v if isinstance(v, bool) else None,
    "tuple[str, ...]": texts,
    "tuple[str, ...] | None": texts,
    "tuple[int, ...]": lambda v: tuple(r for r in v if whole(r) is not None) if isinstance(v, list) else (),
    "tuple[int, ...] | None": lambda v: tuple(r for r in v if whole(r) is not None) if isinstance(v, list) else None,
    "tuple[float, ...]": numbers,
    "Mapping[str, int]": counts,
    "Mapping[str, int] | None": lambda v: counts(v) if isinstance(v, Mapping) else None,
    "Mapping[str, str]": lambda v: {str(k): str(w) for k, w in v.items()} if isinstance(v, Mapping) else {},
    "Mapping[str, str | None]": lambda v: {str(k): text(w) for k, w in v.items()} if isinstance(v, Mapping) else {},
    "Mapping[str, tuple[float, ...]]": lambda v: per_key(v, numbers, (list,)),
    "Mapping[str, tuple[str | None, ...]]": lambda v: per_key(v, _texts_or_none, (list,)),
    "Mapping[str, Mapping[str, int]]": lambda v: per_key(v, counts),
    "Mapping[str, Mapping[str, JSONValue]]": lambda v: per_key(v, _object),
}


def fields(cls: type[DataclassInstance], doc: Parsed, **given: object) -> dict[str, Any]:
    """The arguments of ``cls`` read from ``doc`` by their declared types, beside those ``given`` (the nested
    records, which the caller reads). Any: the values are of the types the fields declare, which the table
    above guarantees and no annotation can say."""
    out = dict(given)
    for f in dataclasses.fields(cls):
        if f.name not in out and f.name in doc:
            out[f.name] = READERS[str(f.type)](doc[f.name])
    return out


@runtime_checkable
class _Record(Protocol):
    def to_json(self) -> JSONObject: ...


def as_json(value: object) -> JSONValue:
    """A field's value as JSON: a record as it writes itself (some leave keys out), tuples as lists."""
    if isinstance(value, _Record):
        return value.to_json()
    if isinstance(value, tuple | list):
        return [as_json(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): as_json(v) for k, v in value.items()}
    if value is None or isinstance(value, str | int | float | bool):
        return value
    # A numpy count, flag or median (localisation computes with numpy) is a value, not an error: np.int64 is no
    # int and np.bool_ no bool, and refusing one would lose the whole document at write time. A numpy scalar
    # (shape ``()``) gives its Python value through ``item()``.
    item = getattr(value, "item", None)
    if callable(item) and getattr(value, "shape", None) == ():
        return as_json(item())
    raise TypeError(f"JSON cannot hold a {type(value).__name__}")


class Written:
    """A record (a dataclass) written as JSON: every field under its own name, in declared order."""

    def to_json(self) -> JSONObject:
        record = cast("DataclassInstance", self)
        return {f.name: as_json(getattr(record, f.name)) for f in dataclasses.fields(record)}
