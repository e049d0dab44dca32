"""The one codec between railbench's records and JSON: a frozen dataclass is written field by field and read back
strictly, both by its type hints.

Every document railbench writes (run.json, rails.json, checks.json, compare.json) and the config a parent hands
its ranks (``--spec``) are records: frozen dataclasses of plain fields. :func:`encode` writes one as JSON (a
record that leaves keys out says so in its own ``to_json``); :func:`decode` reads one from parsed JSON and
refuses, in one sentence naming the field, any value that is not of its field's declared type: a reader never
meets ``"iters": 2.5`` or ``"rails": true`` deep inside a report. A key the document lacks keeps the field's
default; a required one refuses it; a key the record does not declare refuses it too unless the reader says
``extra="ignore"`` (a document of an older format is upgraded to the current one by named steps before it is
read: ``bench.rundir.docversion``).

Field types read: ``str``, ``int``, ``float`` (a JSON whole number too), ``bool``, ``None``, ``Path``,
``Literal[...]``, unions (``X | None``), ``tuple[X, ...]``, ``Mapping[str, X]``, nested records, and
``JSONValue``/``object`` for a value kept as parsed. JSON has one number type and Python's ``int`` accepts
``True``: both are told apart here. A field that may be absent from the document, apart from being null, is
typed ``X | Absent`` with the default :data:`ABSENT`: it is left out of the JSON while it is absent, so a
document read and written again keeps its keys (run.json's ``"rails_skipped": null`` is not its absence).
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol, TypeVar, cast, runtime_checkable

from bench.jsondoc import JSONValue

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

Record = TypeVar("Record", bound="DataclassInstance")
Value = TypeVar("Value")
Extra = Literal["refuse", "ignore"]


class Refused(ValueError):
    """A document that is not the record it should be: ``str()`` is one sentence naming the field."""


class UnknownFields(Refused):
    """Keys a record does not declare (``names``): from a newer writer, or a document of another kind."""

    def __init__(self, names: Sequence[str], prefix: str) -> None:
        self.names = tuple(sorted(names))
        super().__init__(
            f"{prefix or 'the document '}names fields this railbench does not know ({', '.join(self.names)})"
        )


@typing.final
class Absent:
    """The value of a field its document does not have (:data:`ABSENT`, the only one): falsy, never written."""

    _made: typing.ClassVar[Absent | None] = None

    def __new__(cls) -> Absent:
        if cls._made is None:
            cls._made = super().__new__(cls)
        return cls._made

    def __bool__(self) -> Literal[False]:
        return False

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT = Absent()


def present(value: Value | Absent | None) -> Value | None:
    """``value``, or None where it is absent: what a reader that treats null and absence alike uses."""
    return None if isinstance(value, Absent) else value


@runtime_checkable
class _WritesItself(Protocol):
    def to_json(self) -> dict[str, JSONValue]: ...


def encode(value: object) -> JSONValue:
    """``value`` as JSON: a record by its own ``to_json`` if it has one, else every field under its own name
    in declared order; a ``Path`` as text, tuples as lists."""
    if isinstance(value, _WritesItself):
        return value.to_json()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return fields_json(value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple | list):
        return [encode(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): encode(v) for k, v in value.items()}
    if value is None or isinstance(value, str | int | float | bool):
        return value
    # A numpy count, flag or median (localisation computes with numpy) is a value, not an error: np.int64 is no
    # int and np.bool_ no bool, and refusing one would lose the whole document at write time. A numpy scalar
    # (shape ``()``) gives its Python value through ``item()``.
    item = getattr(value, "item", None)
    if callable(item) and getattr(value, "shape", None) == ():
        return encode(item())
    raise TypeError(f"JSON cannot hold a {type(value).__name__}")


def fields_json(record: DataclassInstance) -> dict[str, JSONValue]:
    """Every field of ``record`` under its own name, in declared order, but those :data:`ABSENT` (what a
    ``to_json`` that leaves some keys out starts from)."""
    values = ((f.name, getattr(record, f.name)) for f in dataclasses.fields(record))
    return {name: encode(value) for name, value in values if not isinstance(value, Absent)}


def dumps(record: DataclassInstance) -> str:
    """``record`` as one compact line of JSON."""
    return json.dumps(encode(record), separators=(",", ":"))


def decode(cls: type[Record], doc: object, where: str = "", *, extra: Extra = "refuse") -> Record:
    """The ``cls`` record in the parsed JSON ``doc``; :class:`Refused` naming the field (prefixed by
    ``where``, e.g. ``"rails.json: "``) when a value is not of its declared type."""
    if not isinstance(doc, Mapping):
        raise Refused(f"{where}holds {shown(doc)}, not an object")
    return _record(cls, doc, where, extra)


# ``JSONValue`` is a recursive alias written as text: evaluating it needs the names its text uses, which a
# module that imports only the alias does not have.
_ALIAS_NAMES: Mapping[str, object] = {"JSONValue": JSONValue, "Sequence": Sequence, "Mapping": Mapping}
_JSON_VALUE: object = typing.get_type_hints(
    type("_Probe", (), {"__annotations__": {"v": "JSONValue"}}), dict(_ALIAS_NAMES)
)["v"]


@cache
def _hints(cls: type) -> Mapping[str, object]:
    return typing.get_type_hints(cls, localns=dict(_ALIAS_NAMES))


def _record(cls: type[Record], doc: Mapping[str, object], prefix: str, extra: Extra) -> Record:
    hints = _hints(cls)
    declared = [f for f in dataclasses.fields(cls) if f.init]
    names = {f.name for f in declared}
    unknown = [str(k) for k in doc if k not in names]
    if unknown and extra == "refuse":
        raise UnknownFields(unknown, prefix)
    missing = [
        f.name
        for f in declared
        if f.name not in doc and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise Refused(f"{prefix}{missing[0]} is missing")
    args = {f.name: _typed(hints[f.name], doc[f.name], f"{prefix}{f.name}", extra) for f in declared if f.name in doc}
    try:
        return cls(**args)
    except (TypeError, ValueError) as exc:  # the record's own checks (__post_init__) of values of the right type
        if isinstance(exc, Refused):
            raise
        raise Refused(f"{prefix.rstrip('. ') or cls.__name__}: {str(exc)[:200]}") from None


def _typed(hint: object, value: object, field: str, extra: Extra) -> object:
    """``value`` as the field's type; :class:`Refused` when it is not of that type."""
    if hint is object or hint == _JSON_VALUE:
        return value
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return _union(typing.get_args(hint), value, field, extra)
    if origin is Literal:
        if value in typing.get_args(hint) and not isinstance(value, bool | float):
            return value
        raise Refused(f"{field} holds {shown(value)}, not one of {', '.join(map(repr, typing.get_args(hint)))}")
    if origin is tuple:
        if not isinstance(value, list):
            raise Refused(f"{field} holds {shown(value)}, not a list")
        (item, *_) = typing.get_args(hint)
        return tuple(_typed(item, v, f"{field}[{i}]", extra) for i, v in enumerate(value))
    if origin in (Mapping, dict):
        if not isinstance(value, Mapping):
            raise Refused(f"{field} holds {shown(value)}, not an object")
        (_, item) = typing.get_args(hint)
        return {str(k): _typed(item, v, f"{field}.{k}", extra) for k, v in value.items()}
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, Mapping):
            raise Refused(f"{field} holds {shown(value)}, not an object")
        # A field's annotation is a class, never an instance: is_dataclass just said it is a dataclass.
        return _record(cast("type[DataclassInstance]", hint), value, f"{field}.", extra)
    return _plain(hint, value, field)


def _union(options: tuple[object, ...], value: object, field: str, extra: Extra) -> object:
    # Absent is never a value a document holds: it is what a field is when its key is not there.
    given = [h for h in options if h is not type(None) and h is not Absent]
    if value is None:
        if type(None) in options:
            return None
        raise Refused(f"{field} is null")
    if len(given) == 1:  # one type a value can be: its own refusal names the part that is wrong
        return _typed(given[0], value, field, extra)
    for option in given:
        try:
            return _typed(option, value, field, extra)
        except Refused:
            continue
    raise Refused(f"{field} holds {shown(value)}, not {' or '.join(_called(o) for o in given)}")


_PLAIN: Mapping[object, Callable[[object], bool]] = {
    bool: lambda v: isinstance(v, bool),
    int: lambda v: isinstance(v, int) and not isinstance(v, bool),
    float: lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    str: lambda v: isinstance(v, str),
    Path: lambda v: isinstance(v, str) and v != "",
    type(None): lambda v: v is None,
}


def _plain(hint: object, value: object, field: str) -> object:
    if hint not in _PLAIN:
        raise TypeError(f"the codec cannot read a field of type {hint!r} ({field})")
    if not _PLAIN[hint](value):
        raise Refused(f"{field} holds {shown(value)}, not {_called(hint)}")
    # _PLAIN[hint] just said what value is: a str for a Path, an int or a float for a float.
    if hint is Path:
        return Path(cast("str", value))
    return float(cast("int | float", value)) if hint is float else value


def _called(hint: object) -> str:
    """What a value of type ``hint`` is called in a refusal: "a whole number", "an object"."""
    names: dict[object, str] = {
        bool: "a boolean",
        int: "a whole number",
        float: "a number",
        str: "a string",
        Path: "a path",
        type(None): "null",
    }
    if typing.get_origin(hint) is tuple:
        return "a list"
    if typing.get_origin(hint) in (Mapping, dict) or dataclasses.is_dataclass(hint):
        return "an object"
    if typing.get_origin(hint) is Literal:
        return "one of " + ", ".join(map(repr, typing.get_args(hint)))
    return names.get(hint, f"a {getattr(hint, '__name__', hint)}")


def shown(value: object) -> str:
    """A value as a message quotes it: its JSON, cut at 40 characters."""
    text = json.dumps(value, default=str)
    return text if len(text) <= 40 else text[:37] + "..."
