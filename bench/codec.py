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
``Literal[...]``, unions (``X | None``), ``tuple[X, ...]`` and ``tuple[X, Y]`` (a list of that length),
``Mapping[str, X]``, nested records, and ``JSONValue``/``object`` for a value kept as parsed. JSON has one number
type and Python's ``int`` accepts ``True``: both are told apart here. A field that may be absent from the document,
apart from being null, is typed ``X | Absent`` with the default :data:`ABSENT`: it is left out of the JSON while it
is absent, so a document read and written again keeps its keys (run.json's ``"rails_skipped": null`` is not its
absence).

A refusal names the field in its sentence and says its parts (:class:`Refused`: the path of keys to the value,
what is wrong, the value and the type it should be), so a reader of a file with lines (a profile's TOML:
``bench.profile.toml_lines``) says the line of the key instead. A number field may declare its bounds
(:func:`bounded`: finite, of a sign, at most a maximum) and a record's own check may refuse one value
(:class:`Invalid`): both are refused at that value, as a value of the wrong type is.

A field declared :data:`INLINE` holds a record whose keys are written flat at that place in its parent's
object and read back from the same object: a part two records share (a defect's conviction) is declared once
and the documents keep the shape they always had.
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

from bench.bounded import Sign, out_of_bounds
from bench.codec_refusals import Invalid as Invalid
from bench.codec_refusals import Key as Key
from bench.codec_refusals import Refused as Refused
from bench.codec_refusals import UnknownFields as UnknownFields
from bench.codec_refusals import Wrong, called, wrong_type
from bench.codec_refusals import shown as shown
from bench.jsondoc import JSONValue

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

Record = TypeVar("Record", bound="DataclassInstance")
Value = TypeVar("Value")
Extra = Literal["refuse", "ignore"]


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


_SCALARS = frozenset({str, int, float, bool, type(None)})


def encode(value: object) -> JSONValue:
    """``value`` as JSON: a record by its own ``to_json`` if it has one, else every field under its own name
    in declared order; a ``Path`` as text, tuples as lists."""
    # The plain values first: a run.json of 4,096 nodes holds a million of them, and a Protocol check is slow.
    if type(value) in _SCALARS:
        return cast("JSONValue", value)
    if isinstance(value, tuple | list):
        return [encode(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): encode(v) for k, v in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return value.to_json() if isinstance(value, _WritesItself) else fields_json(value)
    if isinstance(value, _WritesItself):
        return value.to_json()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, str | int | float | bool):  # a subclass (an IntEnum, numpy's float64)
        return value
    # A numpy count, flag or median (localisation computes with numpy) is a value, not an error: np.int64 is no
    # int and np.bool_ no bool, and refusing one would lose the whole document at write time. A numpy scalar
    # (shape ``()``) gives its Python value through ``item()``.
    item = getattr(value, "item", None)
    if callable(item) and getattr(value, "shape", None) == ():
        return encode(item())
    raise TypeError(f"JSON cannot hold a {type(value).__name__}")


_INLINE = "bench.codec.inline"

INLINE: Mapping[str, object] = types.MappingProxyType({_INLINE: True})
"""The metadata of a field written flat (``field(default_factory=Part, metadata=codec.INLINE)``): its record's
keys at this place in the parent's JSON object, in its own order, and read back from that same object (a key
neither declares is refused as any other). The record's keys and the parent's own must differ: a class that
declares one twice is refused (``TypeError``) the first time one is written or read."""


_BOUNDS = "bench.codec.bounds"
_READER = "bench.codec.reader"


def bounded(*, sign: Sign = "non-negative", maximum: float | None = None) -> Mapping[str, object]:
    """The metadata of a number field read within bounds (``field(default=3.0, metadata=codec.bounded(
    maximum=600))``): finite, of ``sign`` and at most ``maximum``, refused in ``bench.bounded``'s words
    (``is nan, not a finite number``) at the field, as a value of the wrong type is. A field that may be None
    is bounded where it holds a number."""
    return types.MappingProxyType({_BOUNDS: (sign, maximum)})


def read_by(reader: Callable[[object], object]) -> Mapping[str, object]:
    """The metadata of a field whose value a document writes in a form of its own (a size as ``"8M"`` or a
    number of bytes): ``reader`` turns the value as parsed into the field's, or raises ``ValueError`` whose
    text says what is wrong after the field's name (``'1Q' is not a size: ...``), refused at the field (an
    :class:`Invalid` at its keys inside the value, for a table of values read whole), or ``TypeError`` whose
    text is what the value should be (``a number of bytes or a size such as "64M"``) for a value of no type it
    reads, refused as any value of the wrong type is (``holds 1.5, not ...``). The reader reads what
    :func:`encode` writes of the field too: a record read back from JSON passes through it. Its
    own type is the reader's to check; the field's bounds (:func:`bounded`) still apply."""
    return types.MappingProxyType({_READER: reader})


_How = tuple[Callable[[object], object] | None, tuple[Sign, float | None] | None]
"""How a field is read past its type: its own reader (:func:`read_by`), and its bounds (:func:`bounded`)."""


@cache
def _reading(cls: type) -> Mapping[str, _How]:
    return {
        f.name: (f.metadata.get(_READER), f.metadata.get(_BOUNDS))
        for f in dataclasses.fields(cls)
        if _READER in f.metadata or _BOUNDS in f.metadata
    }


def _field(hint: object, how: _How | None, value: object, extra: Extra) -> object:
    """``value`` as a field of type ``hint`` reads it: by its type, or by its own reader, within its bounds."""
    if how is None:
        return _typed(hint, value, extra)
    reader, bounds = how
    if reader is None:
        typed = _typed(hint, value, extra)
    else:
        try:
            typed = reader(value)
        except Invalid as exc:  # a key or item inside the value: located there
            raise Wrong.at(exc) from None
        except Refused as exc:  # the value read as a record of its own: located inside it
            raise Wrong.again(exc) from None
        except TypeError as exc:  # a value of no type the reader reads: said as any value of the wrong type
            raise wrong_type(value, str(exc)) from None
        except ValueError as exc:
            raise Wrong(str(exc)) from None
    if bounds is not None and isinstance(typed, int | float) and not isinstance(typed, bool):
        refusal = out_of_bounds(typed, sign=bounds[0], maximum=bounds[1])
        if refusal is not None:
            raise Wrong(refusal)
    return typed


@cache
def _field_names(cls: type) -> tuple[tuple[str, bool], ...]:
    """Each field's name, and whether it is :data:`INLINE`."""
    named = tuple((f.name, bool(f.metadata.get(_INLINE))) for f in dataclasses.fields(cls))
    if any(flat for _, flat in named):
        _inlined(cls)  # a key declared twice would be written once, silently: refuse the class instead
    return named


def fields_json(record: DataclassInstance) -> dict[str, JSONValue]:
    """Every field of ``record`` under its own name, in declared order, but those :data:`ABSENT` (what a
    ``to_json`` that leaves some keys out starts from); an :data:`INLINE` one's keys in its place."""
    out: dict[str, JSONValue] = {}
    for name, flat in _field_names(type(record)):
        value = getattr(record, name)
        if value is ABSENT:
            continue
        written = encode(value)
        if not flat:
            out[name] = written
        elif isinstance(written, dict):
            out.update(written)
        else:
            raise TypeError(f"{type(record).__name__}.{name} is inline but writes no object")
    return out


class Written:
    """A record that writes itself: every field but those :data:`ABSENT`, in declared order. A record that leaves
    more keys out (a None, a key its kind does not have) overrides ``to_json`` and starts from this one's."""

    def to_json(self) -> dict[str, JSONValue]:
        return fields_json(cast("DataclassInstance", self))


def dumps(record: DataclassInstance) -> str:
    """``record`` as one compact line of JSON."""
    return json.dumps(encode(record), separators=(",", ":"))


def decode(cls: type[Record], doc: object, where: str = "", *, extra: Extra = "refuse") -> Record:
    """The ``cls`` record in the parsed JSON ``doc``; :class:`Refused` naming the field (prefixed by
    ``where``, e.g. ``"rails.json: "``) when a value is not of its declared type."""
    if not isinstance(doc, Mapping):
        raise Refused(f"{where}holds {shown(doc)}, not an object")
    try:
        return _record(cls, doc, extra)
    except Wrong as wrong:
        raise wrong.refusal(where) from None


def replaced(record: Record, changes: Mapping[str, object], where: str = "") -> Record:
    """``record`` with the fields ``changes`` names (each a value of its type, or its JSON), each read as
    :func:`decode` reads it and the rest kept as they are (a change to a long document does not read the whole of
    it again); :class:`Refused` as :func:`decode` says it."""
    cls = type(record)
    hints = _hints(cls)
    typed = {}
    for name, value in changes.items():
        if name not in _declared(cls)[0]:
            raise UnknownFields([name], where)
        try:
            typed[name] = _field(hints[name], _reading(cls).get(name), encode(value), "refuse")
        except Wrong as wrong:
            raise wrong.within(name).refusal(where) from None
    try:
        return dataclasses.replace(record, **typed)
    except (TypeError, ValueError) as exc:  # the record's own checks (__post_init__)
        raise Refused(f"{where}{str(exc)[:200]}") from None


def projected(cls: type[Record], *sources: object, where: str = "", **given: object) -> Record:
    """A ``cls`` record that says what other records hold: each field is ``given`` by name, else the attribute of
    that name of the first of ``sources`` that has one (a field neither given nor held refuses); every value
    read as :func:`decode` reads it. A document's section that records a resolved config (run.json's ``sweep``
    and ``rails_test``) is then declared once, as its fields, instead of again as a list of
    ``"iters": config.iters`` kept in step with them by hand. ``sources`` go from the most resolved to the least
    (the settings before the flags)."""
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(given) - set(names))
    if unknown:
        raise UnknownFields(unknown, where)
    doc: dict[str, JSONValue] = {}
    for name in names:
        if name in given:
            doc[name] = encode(given[name])
            continue
        source = next((s for s in sources if hasattr(s, name)), None)
        if source is None:  # a field renamed in the config would otherwise leave the section without its key
            raise Refused(f"{where}{name}: neither given nor held by any source")
        doc[name] = encode(getattr(source, name))
    return decode(cls, doc, where)


# ``JSONValue`` is a recursive alias written as text: evaluating it needs the names its text uses, which a
# module that imports only the alias does not have.
_ALIAS_NAMES: Mapping[str, object] = {"JSONValue": JSONValue, "Sequence": Sequence, "Mapping": Mapping}
_JSON_VALUE: object = typing.get_type_hints(
    type("_Probe", (), {"__annotations__": {"v": "JSONValue"}}), dict(_ALIAS_NAMES)
)["v"]


@cache
def _hints(cls: type) -> Mapping[str, object]:
    return typing.get_type_hints(cls, localns=dict(_ALIAS_NAMES))


@cache
def _declared(cls: type) -> tuple[frozenset[str], tuple[str, ...]]:
    """The names ``cls`` takes, and those of them a document must have (no default)."""
    declared = [f for f in dataclasses.fields(cls) if f.init]
    required = tuple(
        f.name for f in declared if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    )
    return frozenset(f.name for f in declared), required


@cache
def _inlined(cls: type) -> tuple[Mapping[str, tuple[type[DataclassInstance], frozenset[str]]], frozenset[str]]:
    """``cls``'s :data:`INLINE` fields (name -> its record and the keys it reads), and every key a document of
    ``cls`` may hold: its own fields' names but the inline ones', and the inline records' keys in their place."""
    hints = _hints(cls)
    parts: dict[str, tuple[type[DataclassInstance], frozenset[str]]] = {}
    keys: set[str] = set()
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        if not f.metadata.get(_INLINE):
            taken: frozenset[str] = frozenset({f.name})
        else:
            part = hints[f.name]
            if not (dataclasses.is_dataclass(part) and isinstance(part, type)):
                raise TypeError(f"{cls.__name__}.{f.name} is inline but is not a record")
            taken = _inlined(part)[1]
            parts[f.name] = (part, taken)
        if keys & taken:
            raise TypeError(f"{cls.__name__} declares {', '.join(sorted(keys & taken))} twice (an inline field)")
        keys |= taken
    return parts, frozenset(keys)


def _record(cls: type[Record], doc: Mapping[str, object], extra: Extra) -> Record:
    hints = _hints(cls)
    names, required = _declared(cls)
    parts, keys = _inlined(cls)
    unknown = [str(k) for k in doc if k not in keys]
    if unknown and extra == "refuse":
        raise Wrong("", names=unknown, known=sorted(keys))
    missing = [name for name in required if name not in doc and name not in parts]
    if missing:
        raise Wrong("is missing").within(missing[0])
    args = {}
    reading = _reading(cls)
    for name, value in doc.items():
        if name in names and name not in parts:
            try:
                args[name] = _field(hints[name], reading.get(name), value, extra)
            except Wrong as wrong:
                raise wrong.within(name) from None
    # An inline record reads its own keys of this same object: a refusal names the key as the document has it.
    for name, (part, taken) in parts.items():
        args[name] = _record(part, {k: v for k, v in doc.items() if k in taken}, extra)
    try:
        return cls(**args)
    except Invalid as exc:  # the record's own check of one value: located at that value
        raise Wrong.at(exc) from None
    except (TypeError, ValueError) as exc:  # the record's own checks (__post_init__) of values of the right type
        raise Wrong(str(exc)[:200], whole=cls.__name__) from None


@cache
def _shape(hint: object) -> tuple[object, tuple[object, ...]]:
    return typing.get_origin(hint), typing.get_args(hint)


def _typed(hint: object, value: object, extra: Extra) -> object:
    """``value`` as the field's type; :class:`Wrong` when it is not of that type."""
    if hint in _PLAIN:
        return _plain(hint, value)
    if hint is object or hint == _JSON_VALUE:
        return value
    origin, args = _shape(hint)
    if origin in (typing.Union, types.UnionType):
        return _union(args, value, extra)
    if origin is Literal:
        if value in args and not isinstance(value, bool | float):
            return value
        raise wrong_type(value, f"one of {', '.join(map(repr, args))}")
    if origin is tuple:
        if not isinstance(value, list) or (args[-1] is not Ellipsis and len(value) != len(args)):
            raise wrong_type(value, called(hint))
        return tuple(_items(args[0], value, extra) if args[-1] is Ellipsis else _items(args, value, extra))
    if origin in (Mapping, dict):
        if not isinstance(value, Mapping):
            raise wrong_type(value, "an object")
        return _entries(args[1], value, extra)
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, Mapping):
            raise wrong_type(value, "an object")
        # A field's annotation is a class, never an instance: is_dataclass just said it is a dataclass.
        return _record(cast("type[DataclassInstance]", hint), value, extra)
    raise TypeError(f"the codec cannot read a field of type {hint!r}")


def _items(hint: object, values: list[object], extra: Extra) -> list[object]:
    """Each of ``values`` as ``hint``, or as its own of the hints a fixed tuple gives (``tuple[int, float]``)."""
    out = []
    for i, v in enumerate(values):
        try:
            out.append(_typed(hint[i] if isinstance(hint, tuple) else hint, v, extra))
        except Wrong as wrong:
            raise wrong.within(i) from None
    return out


def _entries(hint: object, values: Mapping[object, object], extra: Extra) -> dict[str, object]:
    out = {}
    for k, v in values.items():
        try:
            out[str(k)] = _typed(hint, v, extra)
        except Wrong as wrong:
            raise wrong.within(str(k)) from None
    return out


def _union(options: tuple[object, ...], value: object, extra: Extra) -> object:
    # Absent is never a value a document holds: it is what a field is when its key is not there.
    given = [h for h in options if h is not type(None) and h is not Absent]
    if value is None:
        if type(None) in options:
            return None
        raise Wrong("is null")
    if len(given) == 1:  # one type a value can be: its own refusal names the part that is wrong
        return _typed(given[0], value, extra)
    for option in given:
        try:
            return _typed(option, value, extra)
        except Wrong:
            continue
    raise wrong_type(value, " or ".join(called(o) for o in given))


_PLAIN: Mapping[object, Callable[[object], bool]] = {
    bool: lambda v: isinstance(v, bool),
    int: lambda v: isinstance(v, int) and not isinstance(v, bool),
    float: lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    str: lambda v: isinstance(v, str),
    Path: lambda v: isinstance(v, str) and v != "",
    type(None): lambda v: v is None,
}


def _plain(hint: object, value: object) -> object:
    if not _PLAIN[hint](value):
        raise wrong_type(value, called(hint))
    # _PLAIN[hint] just said what value is: a str for a Path, an int or a float for a float.
    if hint is Path:
        return Path(cast("str", value))
    return float(cast("int | float", value)) if hint is float else value
